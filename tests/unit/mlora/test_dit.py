"""Tensor-token DiT: layout slicing, adaLN-Zero identity at init, embeddings."""
import math

import pytest
import torch

from nfws.mlora.dit import (DiTBlock, TensorTokenDiT, TimestepEmbedder, layout_size,
                             layout_slices, modulate)

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
    assert len(model.embed_in) == 4 and model.pos.shape == (4, 16)
    x, t = torch.randn(5, 27), torch.randint(0, 500, (5,))
    out = model(x, t)
    assert out.shape == (5, 27)
    assert torch.all(out == 0)  # zero-initialised output projections (DiT)
    # leave the zero init (as training would): outputs and adaLN gates become non-zero
    for layer in [*model.embed_out, *(b.ada[1] for b in model.backbone.blocks)]:
        torch.nn.init.normal_(layer.weight, std=0.1)
    out = model(x, t)
    out.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.embed_in.parameters())
    y = x.clone()
    y[:, 24:] += 1.0  # change only token b1: attention carries it to the other tokens
    assert not torch.allclose(model(y, t)[:, :8], model(x, t)[:, :8])


def test_heads_must_divide_hidden():
    with pytest.raises(ValueError, match="divisible"):
        TensorTokenDiT(LAYOUT, hidden=10, depth=1, heads=4)
