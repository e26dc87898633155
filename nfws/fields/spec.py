"""Architectures as data.

An :class:`ArchSpec` names everything that fixes the shape of one NeRF's parameters. The
farm, the graph converter, the tokenisers and the tiny-cuda-nn layout code all derive
their shapes from it, so a new architecture is a config entry, not new code. Parameters
(one NeRF; a stack prepends B): ``mlp.{i}`` ``[out, in]`` weights without biases,
``triplane`` ``[3, C, R, R]`` (TRI family), ``hash`` ``[L, T, F]`` (HASH family).
Names and shapes: docs/formats.md, "NeRF parameters".
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

FAMILIES = ("MLP", "TRI", "HASH")
ACTIVATIONS = ("relu", "sine")
OUTPUT_DIM = 4
PAD = 16
# Frequencies of the xyz encoding when an architecture does not set n_freqs: the MLP
# family's 24 (nf2vec) and the TRI family's 48 (the GMN authors' tri-plane NeRFs).
DEFAULT_N_FREQS = {"MLP": 24, "TRI": 48, "HASH": 24}


def pad16(n: int) -> int:
    """tiny-cuda-nn's fully fused MLP rounds input and output widths up to 16."""
    return int(math.ceil(n / PAD) * PAD)


@dataclass(frozen=True)
class ArchSpec:
    name: str
    family: str
    hidden_layers: int = 3
    width: int = 64
    activation: str = "relu"
    n_freqs: int | None = None   # None: DEFAULT_N_FREQS[family]
    triplane_res: int = 0
    triplane_channels: int = 0
    hash_levels: int = 0
    hash_log2_T: int = 0
    hash_features: int = 0
    hash_base_res: int = 16
    hash_per_level_scale: float = 2.0
    bbox: float = 0.7

    def __post_init__(self):
        def bad(key, why):
            raise ValueError(f"architecture {self.name!r}: {key} {why}")

        if self.family not in FAMILIES:
            bad("family", f"must be one of {FAMILIES}, got {self.family!r}")
        if self.n_freqs is None:
            object.__setattr__(self, "n_freqs", DEFAULT_N_FREQS[self.family])
        if self.activation not in ACTIVATIONS:
            bad("activation", f"must be one of {ACTIVATIONS}, got {self.activation!r}")
        if self.hidden_layers < 1:
            bad("hidden_layers", f"must be >= 1, got {self.hidden_layers}")
        if self.width < 1 or self.width % PAD:
            bad("width", f"must be a positive multiple of {PAD}, got {self.width}")
        if self.family == "TRI" and (self.triplane_res < 2 or self.triplane_channels < 1):
            bad("triplane_res/triplane_channels", "must be set for the TRI family")
        if self.family == "HASH" and (
            self.hash_levels < 1 or self.hash_log2_T < 1 or self.hash_features < 1
        ):
            bad("hash_levels/hash_log2_T/hash_features", "must be set for the HASH family")
        if self.family != "HASH" and self.n_freqs < 1:
            bad("n_freqs", "must be >= 1 for MLP and TRI families")
        if self.bbox <= 0:
            bad("bbox", f"must be > 0, got {self.bbox}")

    # ----- encodings ---------------------------------------------------------------
    @property
    def freq_dim(self) -> int:
        """Width of the frequency encoding of xyz (0 for HASH)."""
        return 0 if self.family == "HASH" else 3 * 2 * self.n_freqs

    @property
    def hash_T(self) -> int:
        return 2**self.hash_log2_T if self.family == "HASH" else 0

    def level_scale(self, level: int) -> float:
        """tiny-cuda-nn: scale_l = base * 2^(l * log2(per_level_scale)) - 1."""
        return self.hash_base_res * 2.0 ** (level * math.log2(self.hash_per_level_scale)) - 1.0

    def level_resolution(self, level: int) -> int:
        return int(math.ceil(self.level_scale(level))) + 1

    def level_sizes(self) -> list[int]:
        """Entries per level: min(res^3 rounded up to a multiple of 8, T)."""
        out = []
        for level in range(self.hash_levels):
            dense = self.level_resolution(level) ** 3
            out.append(min(int(math.ceil(dense / 8) * 8), self.hash_T))
        return out

    def level_is_dense(self, level: int) -> bool:
        return self.level_resolution(level) ** 3 <= self.level_sizes()[level]

    @property
    def encoding_dim(self) -> int:
        """Features entering the MLP before padding."""
        if self.family == "MLP":
            return self.freq_dim
        if self.family == "TRI":
            return self.triplane_channels + self.freq_dim
        return self.hash_levels * self.hash_features

    # ----- parameters --------------------------------------------------------------
    def mlp_shapes(self) -> list[tuple[int, int]]:
        dims = [pad16(self.encoding_dim)] + [self.width] * self.hidden_layers + [pad16(OUTPUT_DIM)]
        return [(dims[i + 1], dims[i]) for i in range(len(dims) - 1)]

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shapes of one NeRF's parameter tensors, in a fixed order."""
        shapes: dict[str, tuple[int, ...]] = {}
        if self.family == "TRI":
            shapes["triplane"] = (3, self.triplane_channels, self.triplane_res, self.triplane_res)
        if self.family == "HASH":
            shapes["hash"] = (self.hash_levels, self.hash_T, self.hash_features)
        for i, shape in enumerate(self.mlp_shapes()):
            shapes[f"mlp.{i}"] = shape
        return shapes

    def n_params(self) -> int:
        """Trainable parameters as tiny-cuda-nn counts them (hash levels at true size)."""
        total = sum(o * i for o, i in self.mlp_shapes())
        if self.family == "TRI":
            total += 3 * self.triplane_channels * self.triplane_res**2
        if self.family == "HASH":
            total += sum(self.level_sizes()) * self.hash_features
        return total

    # ----- (de)serialisation -------------------------------------------------------
    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, name: str | None = None, data: dict | None = None) -> "ArchSpec":
        data = dict(data or {})
        if name is not None:
            data["name"] = name
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"architecture {data.get('name')!r}: unknown keys {unknown}")
        return cls(**data)


def archs_from_config(cfg: dict) -> dict[str, ArchSpec]:
    """Build every ``nerf.architectures`` entry of the config."""
    return {name: ArchSpec.from_dict(name, entry) for name, entry in cfg.items()}
