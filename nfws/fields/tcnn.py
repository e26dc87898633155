"""tiny-cuda-nn parameter layout, and tinycudann as an optional CUDA backend.

:func:`to_tcnn` / :func:`from_tcnn` convert one NeRF's parameters to and from a single
flat float32 vector of length ``spec.n_params()``, in the order tiny-cuda-nn (and the
reference code) keeps them, so weights move both ways: ``[network]`` (MLP family),
``[network | hash grid]`` (HASH), ``[network | planes]`` (TRI). :class:`TcnnField`
evaluates one NeRF through tinycudann (CUDA only, :func:`tcnn_available`).
Layout: docs/formats.md, "tiny-cuda-nn parameter vector".
"""
from __future__ import annotations

import numpy as np
import torch

from nfws.fields.encodings import to_unit_cube, triplane_features
from nfws.fields.spec import OUTPUT_DIM, ArchSpec


def _check_arrays(spec: ArchSpec, arrays: dict[str, np.ndarray]) -> None:
    for name, shape in spec.param_shapes().items():
        if name not in arrays:
            raise ValueError(f"architecture {spec.name!r}: parameter {name!r} missing")
        if tuple(np.shape(arrays[name])) != shape:
            raise ValueError(f"architecture {spec.name!r}: parameter {name!r} has shape "
                             f"{tuple(np.shape(arrays[name]))}, expected {shape} (one NeRF)")


def to_tcnn(spec: ArchSpec, arrays: dict[str, np.ndarray]) -> np.ndarray:
    """One NeRF's named arrays (no leading field axis) -> flat float32 tiny-cuda-nn vector."""
    _check_arrays(spec, arrays)
    parts = [np.asarray(arrays[f"mlp.{i}"], dtype=np.float32).ravel()
             for i in range(len(spec.mlp_shapes()))]
    if spec.family == "HASH":
        table = np.asarray(arrays["hash"], dtype=np.float32)
        parts += [table[level, :size].ravel() for level, size in enumerate(spec.level_sizes())]
    if spec.family == "TRI":
        parts.append(np.asarray(arrays["triplane"], dtype=np.float32).transpose(0, 2, 3, 1).ravel())
    return np.concatenate(parts)


def _check_flat(spec: ArchSpec, flat: np.ndarray) -> np.ndarray:
    flat = np.asarray(flat, dtype=np.float32)
    if flat.ndim != 1 or flat.size != spec.n_params():
        raise ValueError(f"architecture {spec.name!r}: tiny-cuda-nn vector must have "
                         f"{spec.n_params()} entries, got shape {flat.shape}")
    return flat


def _n_network_params(spec: ArchSpec) -> int:
    return sum(rows * cols for rows, cols in spec.mlp_shapes())


def from_tcnn(spec: ArchSpec, flat: np.ndarray) -> dict[str, np.ndarray]:
    """Flat tiny-cuda-nn vector -> one NeRF's named float32 arrays (inverse of :func:`to_tcnn`)."""
    flat = _check_flat(spec, flat)
    out: dict[str, np.ndarray] = {}
    pos = 0

    def take(count: int) -> np.ndarray:
        nonlocal pos
        pos += count
        return flat[pos - count:pos]

    for i, (rows, cols) in enumerate(spec.mlp_shapes()):
        out[f"mlp.{i}"] = take(rows * cols).reshape(rows, cols).copy()
    if spec.family == "HASH":
        table = np.zeros((spec.hash_levels, spec.hash_T, spec.hash_features), dtype=np.float32)
        for level, size in enumerate(spec.level_sizes()):
            table[level, :size] = take(size * spec.hash_features).reshape(size, spec.hash_features)
        out["hash"] = table
    if spec.family == "TRI":
        r, c = spec.triplane_res, spec.triplane_channels
        out["triplane"] = take(3 * r * r * c).reshape(3, r, r, c).transpose(0, 3, 1, 2).copy()
    return {name: out[name] for name in spec.param_shapes()}


def tcnn_available() -> bool:
    """True when tinycudann imports and a CUDA device is present (the only case it runs)."""
    if not torch.cuda.is_available():
        return False
    try:
        import tinycudann  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


def _network_config(spec: ArchSpec) -> dict:
    # the reference trains ReLU fields with the fully fused MLP and Sine fields with Cutlass
    return {
        "otype": "CutlassMLP" if spec.activation == "sine" else "FullyFusedMLP",
        "activation": "Sine" if spec.activation == "sine" else "ReLU",
        "output_activation": "None",
        "n_neurons": spec.width,
        "n_hidden_layers": spec.hidden_layers,
    }


def _encoding_config(spec: ArchSpec) -> dict:
    if spec.family == "HASH":
        return {"otype": "HashGrid", "n_levels": spec.hash_levels,
                "n_features_per_level": spec.hash_features,
                "log2_hashmap_size": spec.hash_log2_T,
                "base_resolution": spec.hash_base_res,
                "per_level_scale": spec.hash_per_level_scale}
    return {"otype": "Frequency", "n_frequencies": spec.n_freqs}


class TcnnField(torch.nn.Module):
    """One NeRF evaluated by tinycudann with our parameters (CUDA only).

    MLP and HASH build ``tinycudann.NetworkWithInputEncoding``; TRI builds the reference's
    pair of a frequency ``Encoding`` and a ``Network`` fed with [frequency | tri-plane].
    """

    def __init__(self, spec: ArchSpec, flat: np.ndarray, seed: int = 0):
        super().__init__()
        if not tcnn_available():
            raise RuntimeError("TcnnField needs tinycudann and a CUDA device")
        import tinycudann as tcnn

        flat = _check_flat(spec, flat)
        n_net = _n_network_params(spec) if spec.family == "TRI" else flat.size
        self.spec = spec
        if spec.family == "TRI":
            self.encoding = tcnn.Encoding(3, _encoding_config(spec), seed=seed)
            self.net = tcnn.Network(spec.encoding_dim, OUTPUT_DIM, _network_config(spec), seed=seed)
            r, c = spec.triplane_res, spec.triplane_channels
            planes = torch.from_numpy(flat[n_net:].reshape(3, r, r, c)).permute(0, 3, 1, 2)
            self.planes = torch.nn.Parameter(planes.contiguous().cuda())
        else:
            self.net = tcnn.NetworkWithInputEncoding(3, OUTPUT_DIM, _encoding_config(spec),
                                                     _network_config(spec), seed=seed)
        if self.net.params.numel() != n_net:
            raise ValueError(f"architecture {spec.name!r}: tinycudann holds "
                             f"{self.net.params.numel()} parameters, our layout has {n_net}")
        with torch.no_grad():
            self.net.params.copy_(torch.from_numpy(flat[:n_net]).to(self.net.params))

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        """The 4 raw outputs ``[N, 4]`` (float32) at world points ``x [N, 3]``."""
        x01 = to_unit_cube(x, self.spec.bbox).contiguous()
        if self.spec.family == "TRI":
            planes = triplane_features(self.planes.unsqueeze(0), x01.unsqueeze(0))[0]
            return self.net(torch.cat([self.encoding(x01).float(), planes], -1)).float()
        return self.net(x01).float()

