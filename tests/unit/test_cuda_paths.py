"""The GPU paths: nerfacc occupancy-grid rendering, the farm on CUDA, bf16 autocast, GPU
slots, the tinycudann backend. ``pytest -m cuda`` runs them (``python -m nfws.gpucheck``
does, step 2). Each test is parametrised by device: a ``cuda`` case skips without a GPU,
a ``cpu`` case, where the test has one, runs everywhere."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from nfws.bench.nerf_farm import ARCHS
from nfws.data.cameras import intrinsics_from_fov, orbit_c2w, pixel_centres, pixel_rays
from nfws.data.synthetic_views import synthetic_views
from nfws.fields.spec import ArchSpec
from nfws.fields.stacks import make_stack
from nfws.fields.tcnn import TcnnField, from_tcnn, tcnn_available, to_tcnn
from nfws.config_files import repo_section
from nfws.farm.train import FarmConfig, autocast, fit_stack
from nfws.render.volrend import (make_occupancy_estimators, render_pixels,
                                 render_rays_occupancy, update_occupancy)
from hand_built import one_nerf

pytestmark = pytest.mark.cuda

BOTH, CUDA_ONLY = ["cpu", "cuda"], ["cuda"]


def on(device: str) -> torch.device:
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    return torch.device(device)


# ----- a fixed field whose image is known in closed form ----------------------------------
#: two spheres at the origin (one per field of the stack) of constant density and colour
RADII, DENSITY, COLOUR, BOX, RES = (0.3, 0.45), 3.0, (0.9, 0.4, 0.1), 0.7, 32
STEP = 5e-3     # nerfacc's marching step (the farm's render_step_size)


def spheres(device):
    radii = torch.tensor(RADII, device=device)
    colour = torch.tensor(COLOUR, device=device)

    def field(x):
        sigma = DENSITY * (x.norm(dim=-1) < radii[:, None]).float()
        return colour.expand(*x.shape[:2], 3), sigma
    return field


def camera_rays(device):
    """[2, RES², 3] origins and directions of one camera 2 units from the origin."""
    c2w = orbit_c2w(30.0, 20.0, 2.0)
    origins, dirs = pixel_rays(c2w, intrinsics_from_fov(0.8, RES, RES),
                               pixel_centres(RES, RES).reshape(-1, 2))
    return (origins.expand(2, -1, -1).contiguous().to(device),
            dirs.expand(2, -1, -1).contiguous().to(device))


def closed_form(origins, dirs):
    """On black: colour x (1 - exp(-density x chord)), the chord of each ray in its sphere."""
    radii = torch.tensor(RADII, device=origins.device)[:, None]
    along = -(origins * dirs).sum(-1)
    miss2 = (origins + dirs * along[..., None]).square().sum(-1)
    chord = 2 * (radii**2 - miss2).clamp(min=0).sqrt()
    opacity = 1 - torch.exp(-DENSITY * chord)
    return torch.tensor(COLOUR, device=origins.device) * opacity[..., None]


def boxes(device):
    return torch.tensor([[-BOX] * 3, [BOX] * 3], device=device).expand(2, 2, 3)


@pytest.mark.parametrize("device", BOTH)
def test_even_render_of_spheres_matches_the_closed_form(device):
    dev = on(device)
    origins, dirs = camera_rays(dev)
    truth = closed_form(origins, dirs)
    assert (truth.sum(-1) > 0).float().mean() > 0.05   # the spheres fill part of the image
    out = render_pixels(spheres(dev), origins, dirs, boxes(dev), 512, torch.zeros(3, device=dev))
    # midpoint samples 2.7-4.7e-3 apart: only silhouette pixels differ (6e-5 on the CPU)
    assert (out.rgb - truth).abs().mean() < 1e-3


@pytest.mark.parametrize("device", CUDA_ONLY)
def test_occupancy_grid_render_matches_the_even_render(device):
    dev = on(device)
    field, origins, dirs = spheres(dev), *camera_rays(dev)
    estimators = make_occupancy_estimators(boxes(dev), 128, dev)
    for step in range(4):   # the max over jittered evaluations marks every touched cell
        update_occupancy(estimators, field, step, STEP, every=1)
    for est, radius in zip(estimators, RADII):
        share = 4 / 3 * np.pi * radius**3 / (2 * BOX) ** 3
        occupied = est.binaries.float().mean().item()
        assert share <= occupied < 1.3 * share, (radius, occupied, share)
    with torch.no_grad():
        occ = render_rays_occupancy(field, estimators, origins, dirs, torch.zeros(3, device=dev),
                                    STEP, stratified=False)
    even = render_pixels(field, origins, dirs, boxes(dev), 512, torch.zeros(3, device=dev))
    truth = closed_form(origins, dirs)
    # the same spacing as the even render's, plus a cell's width at the silhouette
    assert (occ.rgb - truth).abs().mean() < 3e-3
    assert (occ.rgb - even.rgb).abs().mean() < 3e-3
    # rays that miss the sphere marched no occupied cell: exactly background
    miss = truth.sum(-1) == 0
    assert torch.all(occ.opacity[miss] == 0)


# ----- the farm on CUDA ----------------------------------------------------------------
FARM = {**repo_section("nerf", "fit"), "steps": 160, "rays_per_step": 128, "log_every": 160, "checkpoint_every": 160,
        "heldout_views": [0, 4], "psnr_floor": -1e9}


@pytest.mark.parametrize("device", CUDA_ONLY)
@pytest.mark.parametrize("arch", ["MLP", "TRI", "HASH"])
def test_a_shard_trained_on_cuda_reaches_the_cpu_psnr(arch, device):
    dev = on(device)
    views = synthetic_views(8, 32, 8, seed=0)
    spec = ArchSpec.from_dict(arch, ARCHS[arch])
    cfg = FarmConfig.from_dict(FARM)
    cpu = fit_stack(views, spec, cfg, "cpu", 0, progress=False).psnr
    gpu = fit_stack(views, spec, cfg, dev, 0, progress=False).psnr
    one_step = fit_stack(views, spec, FarmConfig.from_dict({**FARM, "steps": 1, "log_every": 1}),
                         dev, 0, progress=False).psnr
    assert np.isfinite(gpu).all()
    assert np.median(gpu) >= np.median(cpu) - 0.3, (gpu, cpu)
    assert np.median(gpu) > np.median(one_step) + 3.0    # it learned the objects


# ----- bf16 autocast -------------------------------------------------------------------
@pytest.mark.parametrize("device", BOTH)
@pytest.mark.parametrize("arch", ["MLP", "TRI", "HASH"])
def test_bf16_autocast_runs_the_stack_in_bf16_close_to_fp32(arch, device):
    dev = on(device)
    spec = ArchSpec.from_dict(arch, ARCHS[arch])
    stack = make_stack(spec, 4, torch.Generator().manual_seed(0), dev)
    x = ((torch.rand(4, 4096, 3, generator=torch.Generator().manual_seed(1)) * 2 - 1) * 0.69).to(dev)

    def raw_and_grad(precision):
        stack.zero_grad(set_to_none=True)
        with autocast(dev, precision):
            raw = stack.raw(x)
        raw.float().square().mean().backward()
        return raw, stack.params["mlp_1"].grad.flatten().clone()

    ref, ref_grad = raw_and_grad("fp32")
    low, low_grad = raw_and_grad("bf16")
    assert ref.dtype == torch.float32 and low.dtype == torch.bfloat16
    rel = ((low.float() - ref).norm() / ref.norm()).item()
    # bf16 keeps 8 significant bits (rounding 2^-9): far above float32's 1e-7, far below 1
    assert 1e-4 < rel < 3e-2, rel
    assert torch.nn.functional.cosine_similarity(low_grad, ref_grad, dim=0) > 0.99


# ----- GPU slots -----------------------------------------------------------------------
#: a pipeline job: take a slot through job_device (a simulated GPU count when argv[2] > 0),
#: report what it holds, keep it until the release file appears
SLOT_JOB = r"""
import json, os, sys, time
from pathlib import Path
import nfws.device as dev
lock_dir, simulated, release = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
if simulated:
    dev.visible_gpu_count = lambda: simulated
with dev.job_device("cuda", lock_dir) as device:
    seen = {"visible": os.environ["CUDA_VISIBLE_DEVICES"], "device": str(device)}
    if not simulated:
        import torch
        seen.update(count=torch.cuda.device_count(),
                    uuid=str(torch.cuda.get_device_properties(device).uuid))
    print(json.dumps(seen), flush=True)
    deadline = time.monotonic() + 120
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
"""


@pytest.mark.parametrize("device", BOTH)
def test_concurrent_jobs_hold_distinct_gpus(device, tmp_path, monkeypatch):
    # cpu: 3 simulated GPUs; cuda: every real GPU, each job seeing only its own
    real = on(device).type == "cuda"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    n = torch.cuda.device_count() if real else 3
    release = tmp_path / "release"
    jobs = [subprocess.Popen([sys.executable, "-c", SLOT_JOB, str(tmp_path / "locks"),
                              str(0 if real else n), str(release)], stdout=subprocess.PIPE, text=True)
            for _ in range(n)]
    try:
        seen = [json.loads(job.stdout.readline()) for job in jobs]
    finally:
        release.touch()
        for job in jobs:
            job.wait(timeout=60)
    assert all(job.returncode == 0 for job in jobs)
    assert sorted(s["visible"] for s in seen) == [str(i) for i in range(n)]
    assert all(s["device"] == "cuda:0" for s in seen)
    if real:
        uuids = {str(torch.cuda.get_device_properties(i).uuid) for i in range(n)}
        assert all(s["count"] == 1 for s in seen)
        assert {s["uuid"] for s in seen} == uuids


# ----- tinycudann ----------------------------------------------------------------------
@pytest.mark.skipif(not tcnn_available(), reason="needs tinycudann and CUDA")
@pytest.mark.parametrize("device", CUDA_ONLY)
@pytest.mark.parametrize("arch", ["MLP", "TRI", "HASH"])
def test_tinycudann_holds_our_parameters_exactly(arch, device):
    spec = ArchSpec.from_dict(arch, ARCHS[arch])
    arrays = one_nerf(spec, seed=2)
    field = TcnnField(spec, to_tcnn(spec, arrays))
    held = [field.net.params.detach().float().cpu().numpy()]
    if spec.family == "TRI":
        held.append(field.planes.detach().permute(0, 2, 3, 1).cpu().numpy().ravel())
    back = from_tcnn(spec, np.concatenate(held))
    for name, value in arrays.items():
        assert np.array_equal(back[name], value), name
