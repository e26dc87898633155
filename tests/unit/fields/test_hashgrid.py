"""Hash-grid indexing and interpolation against hand-computed tiny-cuda-nn values."""
import pytest
import torch

from nfws.fields.hashgrid import hash_corners, hash_encoding
from nfws.fields.spec import ArchSpec


def hash_spec(levels=4, log2_t=12, name="HASH"):
    return ArchSpec(name=name, family="HASH", hash_levels=levels, hash_log2_T=log2_t,
                    hash_features=2, hash_base_res=16, hash_per_level_scale=2.0)


def test_level_resolutions_and_sizes_hash():
    spec = hash_spec()
    # scale_l = 16 * 2^l - 1 = 15, 31, 63, 127 -> res = scale + 1
    assert [spec.level_resolution(l) for l in range(4)] == [16, 32, 64, 128]
    # 16^3 = 4096 fits T = 4096 exactly; 32^3, 64^3, 128^3 are capped at T
    assert spec.level_sizes() == [4096, 4096, 4096, 4096]
    assert [spec.level_is_dense(l) for l in range(4)] == [True, False, False, False]


def test_level_sizes_hash_11t_and_3n():
    t11 = hash_spec(log2_t=11, name="HASH-11T")
    assert t11.level_sizes() == [2048] * 4            # 16^3 = 4096 > 2048: even level 0 hashes
    assert [t11.level_is_dense(l) for l in range(4)] == [False] * 4
    n3 = hash_spec(levels=3, name="HASH-3N")
    assert [n3.level_resolution(l) for l in range(3)] == [16, 32, 64]
    assert n3.level_sizes() == [4096] * 3
    assert [n3.level_is_dense(l) for l in range(3)] == [True, False, False]


def test_dense_index_of_hand_picked_corners():
    spec = hash_spec()
    # level 0: scale 15, pos = 15 x + 0.5 = (3.25, 7.5, 10.75): cell (3, 7, 10)
    x = torch.tensor([2.75 / 15, 7.0 / 15, 10.25 / 15])
    idx, w = hash_corners(x, spec)
    assert idx.shape == (4, 8) and w.shape == (4, 8)
    # corner k offsets dim d by bit d of k; index = c0 + 16 c1 + 256 c2
    expected = {0: 3 + 7 * 16 + 10 * 256,     # (3, 7, 10) -> 2675
                1: 4 + 7 * 16 + 10 * 256,     # (4, 7, 10) -> 2676
                2: 3 + 8 * 16 + 10 * 256,     # (3, 8, 10) -> 2691
                4: 3 + 7 * 16 + 11 * 256,     # (3, 7, 11) -> 2931
                7: 4 + 8 * 16 + 11 * 256}     # (4, 8, 11) -> 2948
    for corner, value in expected.items():
        assert int(idx[0, corner]) == value
    # frac = (0.25, 0.5, 0.75): corner 0 weight 0.75*0.5*0.25, corner 1 0.25*0.5*0.25
    assert w[0, 0].item() == pytest.approx(0.09375, abs=1e-5)
    assert w[0, 1].item() == pytest.approx(0.03125, abs=1e-5)
    assert w[0, 7].item() == pytest.approx(0.25 * 0.5 * 0.75, abs=1e-5)
    assert torch.allclose(w.sum(-1), torch.ones(4))


def test_hashed_index_of_hand_picked_corners():
    # level 1: scale 31, pos = 31 x + 0.5 = (5.5, 9.5, 20.5): cell (5, 9, 20)
    x = torch.tensor([5.0 / 31, 9.0 / 31, 20.0 / 31])
    # corner 0 = (5, 9, 20):
    #   9 * 2654435761 = 23889921849 -> mod 2^32 = 23889921849 - 5 * 2^32 = 2415085369
    #   20 * 805459861 = 16109197220 -> mod 2^32 = 16109197220 - 3 * 2^32 = 3224295332
    #   5 ^ 2415085369 ^ 3224295332 = 1339920536;  mod 4096 = 152, mod 2048 = 152
    # corner 7 = (6, 10, 21):
    #   10 * 2654435761 mod 2^32 = 26544357610 - 6 * 2^32 = 774553834
    #   21 * 805459861 mod 2^32 = 16914657081 - 3 * 2^32 = 4029755193
    #   6 ^ 774553834 ^ 4029755193 = 3726372821;   mod 4096 = 4053, mod 2048 = 2005
    idx, _ = hash_corners(x, hash_spec())
    assert int(idx[1, 0]) == 152 and int(idx[1, 7]) == 4053
    idx11, _ = hash_corners(x, hash_spec(log2_t=11))
    assert int(idx11[1, 0]) == 152 and int(idx11[1, 7]) == 2005


def test_hashed_indices_match_python_uint32_arithmetic_at_fine_levels():
    """Coordinates in the thousands (paper-size grids) overflow 32 bits in every product:
    the indices equal the hash computed with Python integers taken mod 2^32."""
    spec = ArchSpec(name="HASH-paper", family="HASH", hash_levels=16, hash_log2_T=19,
                    hash_features=2, hash_base_res=16, hash_per_level_scale=1.5)
    level = 15
    assert not spec.level_is_dense(level) and spec.level_resolution(level) > 4000
    x = torch.rand(300, 3, generator=torch.Generator().manual_seed(1))
    idx, _ = hash_corners(x, spec)
    scale = float(torch.tensor(spec.level_scale(level), dtype=torch.float32))
    cells = torch.floor((x.double() * scale + 0.5).float()).long().tolist()
    for p, cell in enumerate(cells):
        for k in range(8):
            c = [cell[d] + ((k >> d) & 1) for d in range(3)]
            h = (c[0] ^ ((c[1] * 2654435761) % 2**32) ^ ((c[2] * 805459861) % 2**32)) % 2**19
            assert int(idx[p, level, k]) == h


def test_indices_stay_inside_each_level():
    spec = hash_spec(log2_t=11)
    x = torch.rand(1000, 3, generator=torch.Generator().manual_seed(0))
    idx, w = hash_corners(x, spec)
    sizes = torch.tensor(spec.level_sizes()).view(-1, 1)
    assert (idx >= 0).all() and (idx < sizes).all()
    assert (w >= 0).all() and torch.allclose(w.sum(-1), torch.ones(1000, 4))


def test_trilinear_interpolation_of_hand_set_table():
    spec = hash_spec()
    tables = torch.zeros(1, 4, 4096, 2)
    tables[0, 0, 2675, 0] = 1.0     # corner 0 of the point below, weight 0.09375
    tables[0, 0, 2676, 0] = 10.0    # corner 1, weight 0.03125
    tables[0, 0, 2948, 1] = 2.0     # corner 7, weight 0.09375
    x = torch.tensor([[[2.75 / 15, 7.0 / 15, 10.25 / 15]]])
    feats = hash_encoding(tables, x, spec)
    assert feats.shape == (1, 1, 8)
    assert feats[0, 0, 0].item() == pytest.approx(0.09375 + 0.3125, abs=1e-5)
    assert feats[0, 0, 1].item() == pytest.approx(0.1875, abs=1e-5)
    assert torch.count_nonzero(feats[0, 0, 2:]) == 0


def test_dense_level_reproduces_a_linear_function():
    # trilinear interpolation is exact on a function linear in the corner coordinates:
    # table(c) = 1 + 2 c0 - c1 + 0.5 c2 gives 1 + 2 p0 - p1 + 0.5 p2 at pos p = 15 x + 0.5
    spec = hash_spec(levels=1)
    c = torch.arange(16.0)
    c0, c1, c2 = c.view(1, 1, 16), c.view(1, 16, 1), c.view(16, 1, 1)
    values = (1 + 2 * c0 - c1 + 0.5 * c2).reshape(-1)        # entry = c0 + 16 c1 + 256 c2
    tables = torch.stack([values, torch.zeros(4096)], -1).view(1, 1, 4096, 2)
    x = torch.rand(1, 50, 3, generator=torch.Generator().manual_seed(1)) * 0.9
    p = 15 * x + 0.5
    expected = 1 + 2 * p[..., 0] - p[..., 1] + 0.5 * p[..., 2]
    assert torch.allclose(hash_encoding(tables, x, spec)[..., 0], expected, atol=1e-4)


def test_hash_encoding_is_batched_per_field():
    spec = hash_spec()
    g = torch.Generator().manual_seed(2)
    tables = torch.randn(3, 4, 4096, 2, generator=g)
    x = torch.rand(3, 20, 3, generator=g)
    batched = hash_encoding(tables, x, spec)
    for b in range(3):
        # equal up to float32 summation order (the corner sum is vectorised over points)
        assert torch.allclose(batched[b], hash_encoding(tables[b:b + 1], x[b:b + 1], spec)[0], atol=1e-6)


def test_non_hash_spec_is_rejected():
    spec = ArchSpec(name="MLP", family="MLP")
    with pytest.raises(ValueError, match="HASH"):
        hash_corners(torch.zeros(3), spec)


def test_negative_cells_wrap_around_like_uint32():
    # x0 = -0.05: level 0 pos = -0.75 + 0.5 -> cell -1; level 1 pos = -1.55 + 0.5 -> cell -2
    x = torch.tensor([-0.05, 0.0, 0.0])
    idx, _ = hash_corners(x, hash_spec())
    # dense level 0, corner 0 = (-1, 0, 0): uint32 2^32 - 1, mod 4096 = 4095;
    # corner 2 = (-1, 1, 0): (2^32 - 1 + 16) mod 2^32 = 15
    assert int(idx[0, 0]) == 4095 and int(idx[0, 2]) == 15
    # hashed level 1, corner 2 = (-2, 1, 0): (2^32 - 2) xor 2654435761 (= 0x9E3779B1);
    # low 12 bits 0xFFE xor 0x9B1 = 0x64F = 1615
    assert int(idx[1, 2]) == 1615
