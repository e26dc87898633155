"""ArchSpec shapes against the architecture table of docs/recipes.md, computed by hand."""
import pytest

from nfws.fields.spec import ArchSpec, pad16

HASH = dict(family="HASH", hash_levels=4, hash_log2_T=12, hash_features=2)


def test_pad16():
    assert [pad16(n) for n in (1, 8, 16, 17, 144, 160)] == [16, 16, 16, 32, 144, 160]


def test_mlp_family_shapes():
    s = ArchSpec("MLP", "MLP")
    # 144 = 3 coords * 2 (sin, cos) * 24 frequencies, already a multiple of 16.
    assert s.mlp_shapes() == [(64, 144), (64, 64), (64, 64), (16, 64)]
    assert s.n_params() == 64 * 144 + 2 * 64 * 64 + 16 * 64


def test_tri_family_shapes():
    s = ArchSpec("TRI", "TRI", activation="sine", triplane_res=32, triplane_channels=16)
    assert s.param_shapes()["triplane"] == (3, 16, 32, 32)
    assert s.mlp_shapes()[0] == (64, 304)  # 16 channels + 288 frequency entries (48 by default)
    assert ArchSpec("T", "TRI", activation="sine", n_freqs=24, triplane_res=32,
                    triplane_channels=16).mlp_shapes()[0] == (64, 160)


def test_hash_levels_follow_tiny_cuda_nn():
    s = ArchSpec("HASH", **HASH)
    # scale_l = 16 * 2^l - 1 -> 15, 31, 63, 127; res = ceil(scale) + 1 -> 16, 32, 64, 128.
    assert [s.level_resolution(l) for l in range(4)] == [16, 32, 64, 128]
    # 16^3 = 4096 fits T = 4096 exactly: dense; the others hash into 4096 entries.
    assert s.level_sizes() == [4096] * 4
    assert [s.level_is_dense(l) for l in range(4)] == [True, False, False, False]
    assert s.mlp_shapes()[0] == (64, 16)  # 4 levels * 2 features = 8, padded to 16
    assert s.n_params() == 4 * 4096 * 2 + 64 * 16 + 2 * 64 * 64 + 16 * 64


def test_hash_11t_has_no_dense_level():
    s = ArchSpec("HASH-11T", **{**HASH, "hash_log2_T": 11})
    assert s.level_sizes() == [2048] * 4
    assert not any(s.level_is_dense(l) for l in range(4))


def test_small_levels_round_up_to_multiple_of_eight():
    s = ArchSpec("tiny", **{**HASH, "hash_base_res": 3, "hash_levels": 1})
    # scale = 2, res = 3, 27 entries -> rounded up to 32.
    assert s.level_sizes() == [32]


@pytest.mark.parametrize("bad, key", [
    (dict(family="NOPE"), "family"),
    (dict(family="MLP", width=60), "width"),
    (dict(family="TRI"), "triplane"),
    (dict(family="HASH"), "hash_levels"),
])
def test_bad_specs_name_the_key(bad, key):
    with pytest.raises(ValueError, match=key):
        ArchSpec("x", **bad)


def test_unknown_key_in_config_entry():
    with pytest.raises(ValueError, match="unknown keys"):
        ArchSpec.from_dict("MLP", {"family": "MLP", "widht": 64})
