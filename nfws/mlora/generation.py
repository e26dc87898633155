"""Generation from weight-space diffusion models and the generation metrics (Yang et al. §9).

Metric maths (pure functions):
- distributional, on extractor features normalised by the reference set's scalar mean/std:
  FD = (||mu_P - mu_Q||^2 + Tr(S_P + S_Q - 2 (S_P S_Q)^1/2)) / N_feature; MMD with the
  polynomial kernel (gamma x.y + 1)^3, gamma = 1/N_feature (MMD-P) and the Gaussian kernel
  exp(-||x - y||^2 / (2 sigma^2)), sigma = N_feature (MMD-G). MMD uses the unbiased
  estimator of KID (Binkowski et al. 2018): within-set sums skip the diagonal.
- 3D, on point clouds with the Chamfer distance CD(x, y) = mean_x min_y ||x - y||^2 +
  mean_y min_x ||x - y||^2 (squared distances, both directions summed; the PointFlow /
  HyperDiffusion convention): mMD, COV, 1-NNA.

Stage functions: ``generate`` (diffusion samples -> fields -> images or surface point
clouds, a PNG grid) and ``evaluate_generation`` (samples vs the held-out reference set).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from nfws.data.targets import pixel_grid, read_target_store, split_ground_truth
from nfws.config_files import Section
from nfws.mlora.diffusion import sample
from nfws.mlora.feature_extractors import load_extractor, subsample_points
from nfws.figures import save_figure
from nfws.store import atomic_path, read_zarr, write_json, write_zarr

MODALITIES = ("image", "occupancy")


@dataclass(frozen=True)
class GenerationConfig(Section):
    """The ``diffusion.generation`` section: how many samples, how they are instantiated
    (images at ``resolution``; shapes by marching cubes on a ``grid_res`` grid in
    [-bound, bound]^3 at ``level``, ``n_points`` surface points) and the preview grid."""

    SECTION = "diffusion.generation"
    n_samples: int
    instantiate_batch: int
    resolution: int
    grid_res: int
    bound: float
    level: float
    n_points: int
    grid_cols: int


FIELD_CHUNK = 2**15  # grid points per field call: bounds memory at large grid_res

# ----------------------------------------------------------------------------- features
def normalise_features(gen: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rho - mu_Q) / sigma_Q for both sets, mu_Q / sigma_Q scalars of the reference set."""
    mu, sd = float(ref.mean()), float(ref.std())
    if not sd > 0:
        raise ValueError("reference features have zero spread; cannot normalise")
    return (gen - mu) / sd, (ref - mu) / sd


def trace_sqrt_product(s1: np.ndarray, s2: np.ndarray) -> float:
    """Tr((S1 S2)^1/2) for PSD S1, S2 as sum sqrt(eig(S1^1/2 S2 S1^1/2)): real by
    construction, tiny negative eigenvalues from rounding are clipped to 0."""
    w, v = np.linalg.eigh(s1)
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = np.linalg.eigvalsh(root @ s2 @ root)
    return float(np.sqrt(np.clip(inner, 0, None)).sum())


def frechet_distance(p: np.ndarray, q: np.ndarray) -> float:
    """FD between feature sets [n, d] (unbiased covariances), divided by d."""
    p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
    sp, sq = np.cov(p, rowvar=False), np.cov(q, rowvar=False)
    sp, sq = np.atleast_2d(sp), np.atleast_2d(sq)
    diff = p.mean(0) - q.mean(0)
    fd = diff @ diff + np.trace(sp) + np.trace(sq) - 2 * trace_sqrt_product(sp, sq)
    return float(fd / p.shape[1])


def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = 3, offset: float = 1.0):
    return (x @ y.T / x.shape[1] + offset) ** degree


def gaussian_kernel(x: np.ndarray, y: np.ndarray):
    sigma = x.shape[1]
    sq = (x**2).sum(1)[:, None] + (y**2).sum(1)[None, :] - 2 * x @ y.T
    return np.exp(-np.clip(sq, 0, None) / (2 * sigma**2))


def mmd(p: np.ndarray, q: np.ndarray, kernel) -> float:
    """Unbiased MMD^2 estimate: mean off-diagonal k(P,P) + k(Q,Q) - 2 mean k(P,Q)."""
    p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
    n, m = len(p), len(q)
    if n < 2 or m < 2:
        raise ValueError(f"MMD needs >= 2 samples per set, got {n} and {m}")
    kpp, kqq, kpq = kernel(p, p), kernel(q, q), kernel(p, q)
    within_p = (kpp.sum() - np.trace(kpp)) / (n * (n - 1))
    within_q = (kqq.sum() - np.trace(kqq)) / (m * (m - 1))
    return float(within_p + within_q - 2 * kpq.mean())


def distribution_metrics(gen_features: np.ndarray, ref_features: np.ndarray) -> dict:
    """FD, MMD-G, MMD-P after normalising both sets by the reference statistics."""
    gen, ref = normalise_features(np.asarray(gen_features, np.float64),
                                  np.asarray(ref_features, np.float64))
    return {"fd": frechet_distance(gen, ref), "mmd_g": mmd(gen, ref, gaussian_kernel),
            "mmd_p": mmd(gen, ref, polynomial_kernel)}


# ----------------------------------------------------------------------------- 3D shapes
def chamfer_matrix(a: torch.Tensor, b: torch.Tensor, max_elems: int = 2**24) -> torch.Tensor:
    """Chamfer distances [n, m] between clouds a [n, M, 3] and b [m, K, 3] (batched cdist)."""
    a, b = torch.as_tensor(a, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32)
    chunk = max(1, max_elems // (a.shape[1] * b.shape[1]))
    out = torch.empty(len(a), len(b))
    for i in range(len(a)):
        for j in range(0, len(b), chunk):
            bj = b[j:j + chunk]
            d = torch.cdist(a[i].expand(len(bj), -1, -1), bj,
                            compute_mode="use_mm_for_euclid_dist").square()
            out[i, j:j + len(bj)] = d.min(2).values.mean(1) + d.min(1).values.mean(1)
    return out


def shape_metrics(gen: torch.Tensor, ref: torch.Tensor) -> dict:
    """mMD (mean over references of the closest generated CD), COV (share of references
    that are some generated shape's nearest reference), 1-NNA (leave-one-out 1-NN accuracy
    of telling generated from reference; 0.5 is ideal)."""
    d_gr = chamfer_matrix(gen, ref)
    d_gg, d_rr = chamfer_matrix(gen, gen), chamfer_matrix(ref, ref)
    n, m = d_gr.shape
    mmd_cd = d_gr.min(0).values.mean().item()
    cov = len(torch.unique(d_gr.argmin(1))) / m
    inf = torch.tensor(float("inf"))
    d_gg = d_gg.fill_diagonal_(inf)
    d_rr = d_rr.fill_diagonal_(inf)
    gen_right = (d_gg.min(1).values < d_gr.min(1).values).sum().item()
    ref_right = (d_rr.min(1).values < d_gr.min(0).values).sum().item()
    return {"mmd_cd": mmd_cd, "cov": cov, "nna": (gen_right + ref_right) / (n + m)}


# ------------------------------------------------------------------ fields -> samples
@torch.no_grad()
def render_images(field, n: int, resolution: int) -> np.ndarray:
    """uint8 [n, R, R, 3] from a field mapping pixel centres [n, R*R, 2] in [-1, 1]^2
    (``nfws.data.targets.pixel_grid``, the fitting convention) -> RGB in [0, 1]."""
    coords = pixel_grid(resolution).expand(n, -1, -1)
    rgb = field(coords)
    if rgb.shape != (n, resolution * resolution, 3):
        raise ValueError(f"image field returned {tuple(rgb.shape)}, expected "
                         f"{(n, resolution * resolution, 3)}")
    return (rgb.clamp(0, 1) * 255).round().to(torch.uint8).reshape(n, resolution, resolution, 3).numpy()


def sample_mesh(verts: np.ndarray, faces: np.ndarray, n_points: int,
                generator: torch.Generator) -> np.ndarray:
    """Area-weighted uniform points on a triangle mesh."""
    v = torch.from_numpy(np.ascontiguousarray(verts, dtype=np.float32))
    tri = v[torch.from_numpy(np.ascontiguousarray(faces, dtype=np.int64))]
    area = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]).norm(dim=1)
    idx = torch.multinomial(area + 1e-12, n_points, replacement=True, generator=generator)
    u, w = torch.rand(n_points, 1, generator=generator), torch.rand(n_points, 1, generator=generator)
    flip = (u + w) > 1
    u, w = torch.where(flip, 1 - u, u), torch.where(flip, 1 - w, w)
    t = tri[idx]
    return (t[:, 0] + u * (t[:, 1] - t[:, 0]) + w * (t[:, 2] - t[:, 0])).numpy()


@torch.no_grad()
def surface_point_clouds(field, n: int, cfg: GenerationConfig, generator: torch.Generator):
    """Marching cubes on the field over [-bound, bound]^3 at ``level`` -> surface points.

    Returns (points float32 [n, n_points, 3], empty bool [n]). A field without a level
    crossing gives an all-origin cloud and empty=True, so failures count in the metrics.
    """
    from skimage.measure import marching_cubes

    res, bound = cfg.grid_res, cfg.bound
    axis = torch.linspace(-bound, bound, res)
    grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    values = torch.cat([field(grid[s:s + FIELD_CHUNK].expand(n, -1, -1))
                        for s in range(0, len(grid), FIELD_CHUNK)], dim=1)
    if values.shape[:2] != (n, len(grid)):
        raise ValueError(f"occupancy field returned {tuple(values.shape)}, expected [{n}, {len(grid)}, 1]")
    volumes = values.reshape(n, res, res, res).float().numpy()
    points = np.zeros((n, cfg.n_points, 3), np.float32)
    empty = np.zeros(n, bool)
    spacing = 2 * bound / (res - 1)
    for k, vol in enumerate(volumes):
        if not (vol.min() < cfg.level < vol.max()):
            empty[k] = True
            continue
        verts, faces, _, _ = marching_cubes(vol, level=cfg.level, spacing=(spacing,) * 3)
        points[k] = sample_mesh(verts - bound, faces, cfg.n_points, generator)
    return points, empty


def image_grid_png(images: np.ndarray, path, cols: int) -> None:
    """Tile uint8 images [n, H, W, 3] into one PNG (atomic)."""
    from PIL import Image

    n, h, w, _ = images.shape
    rows = math.ceil(n / cols)
    sheet = np.full((rows * h, cols * w, 3), 255, np.uint8)
    for k, img in enumerate(images):
        sheet[(k // cols) * h:(k // cols + 1) * h, (k % cols) * w:(k % cols + 1) * w] = img
    with atomic_path(path) as tmp:
        Image.fromarray(sheet).save(tmp, format="PNG")


def point_grid_png(points: np.ndarray, path, cols: int) -> None:
    """Scatter plots of point clouds [n, M, 3] (oblique view), one panel each (atomic)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(points)
    rows = math.ceil(n / cols)
    fig = plt.figure(figsize=(1.6 * cols, 1.6 * rows))
    for k, pc in enumerate(points):
        ax = fig.add_subplot(rows, cols, k + 1, projection="3d")
        ax.scatter(pc[:, 0], pc[:, 2], pc[:, 1], s=0.3, c=pc[:, 1], cmap="viridis")
        ax.set_axis_off()
    save_figure(fig, path, dpi=80)


def generate(model_path, instantiate, modality: str, cfg: dict, seed: int, out_path,
             grid_png=None) -> dict:
    """Sample ``n_samples`` weight vectors, instantiate fields, write the samples store.

    instantiate(weights float32 tensor [b, P]) -> field, field(points [b, M, D]) -> [b, M, C]
    (2D: RGB in [0, 1] at pixel centres in [-1, 1]^2; 3D: occupancy logit, surface at
    ``level``). Writes ``out_path`` (zarr): weights [n, P], images uint8 [n, R, R, 3] or
    points float32 [n, S, 3] + empty bool [n]; attrs modality, model, seconds.
    """
    if modality not in MODALITIES:
        raise ValueError(f"generate: modality must be one of {MODALITIES}, got {modality!r}")
    cfg = GenerationConfig.from_dict(cfg)
    n = int(cfg.n_samples)
    start = time.perf_counter()
    weights = sample(model_path, n, seed)
    sample_seconds = time.perf_counter() - start
    gen = torch.Generator().manual_seed(seed)
    outs, empties = [], []
    batch = int(cfg.instantiate_batch)
    for s in tqdm(range(0, n, batch), desc="instantiating samples"):
        w = torch.from_numpy(weights[s:s + batch])
        field = instantiate(w)
        if modality == "image":
            outs.append(render_images(field, len(w), cfg.resolution))
        else:
            pts, empty = surface_point_clouds(field, len(w), cfg, gen)
            outs.append(pts)
            empties.append(empty)
    arrays = {"weights": weights}
    if modality == "image":
        arrays["images"] = np.concatenate(outs)
    else:
        arrays["points"], arrays["empty"] = np.concatenate(outs), np.concatenate(empties)
    seconds = time.perf_counter() - start
    summary = {"modality": modality, "model": str(model_path), "n_samples": n, "seed": seed,
               "sample_seconds": sample_seconds, "seconds": seconds,
               "n_empty": int(arrays["empty"].sum()) if "empty" in arrays else 0}
    write_zarr(out_path, arrays, attrs=summary)
    if grid_png is not None:
        shown = min(n, cfg.grid_cols * 4)
        if modality == "image":
            image_grid_png(arrays["images"][:shown], grid_png, cfg.grid_cols)
        else:
            point_grid_png(arrays["points"][:shown], grid_png, cfg.grid_cols)
    return summary


def evaluate_generation(samples_path, targets_path, manifest_path, extractor_path,
                        out_path, cfg: dict, extractor_cfg: dict, seed: int = 0,
                        split: str = "test") -> dict:
    """Metrics of generated samples against the held-out reference; writes a JSON dict
    (metrics, extractor name, sizes and the reference set's class names).

    Distributional metrics on extractor features (both modalities); for 3D also mMD, COV,
    1-NNA on the point clouds, the reference clouds subsampled (seeded) to the generated
    clouds' ``n_points`` so both sides of every Chamfer distance have the same density.
    """
    samples, attrs = read_zarr(samples_path)
    modality, ref, ref_labels = split_ground_truth(targets_path, manifest_path, split)
    class_names = read_target_store(targets_path, with_arrays=False).class_names
    if attrs.get("modality") != modality:
        raise ValueError(f"{samples_path}: modality {attrs.get('modality')!r} does not match "
                         f"the reference {targets_path} ({modality!r})")
    extractor = load_extractor(extractor_path, extractor_cfg, modality)
    gen_data = samples["images"] if modality == "image" else samples["points"]
    gen_f, ref_f = extractor.features(gen_data), extractor.features(ref)
    result = {"modality": modality, "split": split, "n_gen": int(len(gen_data)),
              "n_ref": int(len(ref)), "extractor": extractor.name,
              "n_feature": int(gen_f.shape[1]), "n_empty": int(attrs.get("n_empty", 0)),
              "classes": [str(class_names[k]) if k < len(class_names) else str(k)
                          for k in np.unique(ref_labels).tolist()],
              **distribution_metrics(gen_f, ref_f)}
    if modality == "occupancy":
        ref_pts = subsample_points(ref, GenerationConfig.from_dict(cfg).n_points,
                                   torch.Generator().manual_seed(seed))
        result.update(shape_metrics(torch.from_numpy(gen_data), ref_pts))
    write_json(result, out_path)
    return result
