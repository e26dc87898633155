"""Tensor-token DiT: layout slicing, chunk tokens, adaLN-Zero identity at init, embeddings."""
import math

import pytest
import torch
from torch.autograd.functional import jacobian

from nfws.mlora.dit import (DiTBlock, TensorTokenDiT, TimestepEmbedder, chunk_spans,
                             layout_size, layout_slices, modulate)

LAYOUT = [{"name": "w0", "shape": [4, 2]}, {"name": "b0", "shape": [4]},
          {"name": "w1", "shape": [3, 4]}, {"name": "b1", "shape": [3]}]


def test_layout_slices_by_hand():
    assert layout_slices(LAYOUT) == [("w0", (4, 2), 0, 8), ("b0", (4,), 8, 12),
                                     ("w1", (3, 4), 12, 24), ("b1", (3,), 24, 27)]
    assert layout_size(LAYOUT) == 27
    with pytest.raises(ValueError, match="bad shape"):
        layout_slices([{"name": "x", "shape": [0, 3]}])


def test_modulate_by_hand():
    x = torch.ones(1, 2, 3)
    out = modulate(x, shift=torch.tensor([[1.0, 0.0, -1.0]]), scale=torch.tensor([[1.0, -1.0, 0.5]]))
    torch.testing.assert_close(out, torch.tensor([[[3.0, 0.0, 0.5]] * 2]))


def test_sinusoid_at_zero_and_known_frequency():
    emb = TimestepEmbedder.sinusoid(torch.tensor([0, 1]), 4)
    torch.testing.assert_close(emb[0], torch.tensor([1.0, 1.0, 0.0, 0.0]))
    # half = 2, freqs = [1, 1e-2]: t = 1 -> cos(1), cos(0.01), sin(1), sin(0.01)
    want = torch.tensor([math.cos(1), math.cos(0.01), math.sin(1), math.sin(0.01)])
    torch.testing.assert_close(emb[1], want)


def test_adaln_zero_block_is_identity_at_init():
    block = DiTBlock(16, 4)
    x, c = torch.randn(3, 5, 16), torch.randn(3, 16)
    torch.testing.assert_close(block(x, c), x)


def test_tensor_token_dit_shapes_and_every_token_is_trained():
    torch.manual_seed(0)
    model = TensorTokenDiT(LAYOUT, hidden=16, depth=2, heads=4)
    assert len(model.tokens.embed_in) == 4 and model.pos.shape == (4, 16)  # all <= 16 values
    x, t = torch.randn(5, 27), torch.randint(0, 500, (5,))
    out = model(x, t)
    assert out.shape == (5, 27)
    assert torch.all(out == 0)  # zero-initialised output projections (DiT)
    # leave the zero init (as training would): outputs and adaLN gates become non-zero
    for layer in [*model.tokens.embed_out, *(b.ada[1] for b in model.backbone.blocks)]:
        torch.nn.init.normal_(layer.weight, std=0.1)
    out = model(x, t)
    out.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0
               for p in model.tokens.embed_in.parameters())
    y = x.clone()
    y[:, 24:] += 1.0  # change only token b1: attention carries it to the other tokens
    assert not torch.allclose(model(y, t)[:, :8], model(x, t)[:, :8])


def test_heads_must_divide_hidden():
    with pytest.raises(ValueError, match="divisible"):
        TensorTokenDiT(LAYOUT, hidden=10, depth=1, heads=4)


def test_chunk_spans_by_hand():
    assert chunk_spans([(0, 33), (33, 40)], 16) == [(0, 16), (16, 32), (32, 33), (33, 40)]
    assert chunk_spans([(5, 21)], 16) == [(5, 21)]  # exactly hidden values: one chunk


def test_tensor_wider_than_hidden_is_split_into_chunk_tokens():
    """A 33-value tensor at hidden 16 becomes tokens of 16, 16 and 1 values; their embedding
    has rank 33. One token of width 16, as before chunking, gave rank at most 16 < 33."""
    torch.manual_seed(0)
    model = TensorTokenDiT([{"name": "w", "shape": [3, 11]}, {"name": "b", "shape": [3]}],
                           hidden=16, depth=1, heads=4)
    assert model.tokens.chunks == [(0, 16), (16, 32), (32, 33), (33, 36)]
    assert model.pos.shape == (4, 16)
    x, t = torch.randn(2, 36), torch.tensor([0, 499])
    assert model(x, t).shape == (2, 36)
    jac = jacobian(lambda v: model.embed(v.unsqueeze(0))[0].reshape(-1), x[0])
    assert jac.shape == (4 * 16, 36)
    assert torch.linalg.matrix_rank(jac.double()).item() == 36


def test_each_chunk_is_written_back_to_its_own_values():
    torch.manual_seed(0)
    model = TensorTokenDiT([{"name": "w", "shape": [33]}], hidden=16, depth=1, heads=4)
    for layer in model.tokens.embed_out:  # leave the zero init: random output maps
        torch.nn.init.normal_(layer.weight)
    x = torch.randn(1, 33)
    # adaLN-Zero blocks are the identity at init, so output chunk k depends on input chunk k only
    jac = jacobian(lambda v: model(v.unsqueeze(0), torch.tensor([7]))[0], x[0])
    for i, (s, e) in enumerate(model.tokens.chunks):
        for j, (s2, e2) in enumerate(model.tokens.chunks):
            assert (jac[s:e, s2:e2].abs().sum() > 0) == (i == j)
