"""The one-shot GPU check (nfws.gpucheck): its step runner and budget, its targets, its
reading of pytest's report and of wheel metadata, and its dry run on the CPU."""
import json
import logging
import subprocess
import sys
import zipfile

import pytest
import torch
from PIL import Image

from nfws.gpucheck import wheels
from nfws.gpucheck.__main__ import STEPS, targets
from nfws.gpucheck.cuda_tests import cases
from nfws.gpucheck.report import Budget, Context, run_steps
from workflow_helpers import REPO


def _ctx(tmp_path, budget_s, min_seconds):
    return Context(tmp_path, torch.device("cpu"), {"min_seconds": min_seconds}, Budget(budget_s),
                   logging.getLogger("test"))


def test_steps_are_timed_failed_and_skipped_for_budget(tmp_path):
    def boom(ctx):
        raise ValueError("broken input")

    steps = [("ok", lambda ctx: {"x": 1, "checks": {"holds": True}}),
             ("bad", lambda ctx: {"checks": {"holds": False}}), ("raises", boom),
             ("named", lambda ctx: {}), ("big", lambda ctx: {})]
    ctx = _ctx(tmp_path, 60, {"ok": 1, "bad": 1, "raises": 1, "named": 1, "big": 10**6})
    out = run_steps(steps, ctx, {"named"}, tmp_path / "r.json")
    status = {s["name"]: s["status"] for s in out}
    assert status == {"ok": "pass", "bad": "fail", "raises": "fail", "named": "skipped",
                      "big": "skipped-for-budget"}
    reasons = {s["name"]: s.get("reason", "") for s in out}
    assert reasons["bad"] == "failed checks: holds" and "broken input" in reasons["raises"]
    assert reasons["big"].startswith("needs about 1000000 s")
    assert out[0]["x"] == 1 and out[0]["seconds"] >= 0
    # the record on disk is the one in memory, rewritten after every step
    assert json.loads((tmp_path / "r.json").read_text())["steps"] == json.loads(json.dumps(out))


def _farm(ratios, deltas, fraction, skipped=()):
    return {"name": "nerf_farm", "status": "pass", "peak_fraction": fraction,
            "archs_skipped_for_budget": list(skipped),
            "per_arch": {n: {"ratio": r, "psnr_delta": d} for n, r, d in zip("ABC", ratios, deltas)}}


def test_targets_need_every_architecture_fast_enough_at_equal_psnr():
    met = targets([_farm([6, 5, 9], [0.1, -0.3, 2.0], 0.31)], required=True)
    assert met["batched_vs_one_at_a_time"]["met"] and met["farm_mlp_peak_fraction"]["met"]
    assert met["every_step_passes"]["met"] and met["every_step_passes"]["required"]
    for farm in (_farm([6, 4.9, 9], [0, 0, 0], 0.3), _farm([6, 6, 6], [0, -0.31, 0], 0.3),
                 _farm([6, 6, 6], [0, 0, 0], 0.3, skipped=["HASH"])):
        assert not targets([farm], required=True)["batched_vs_one_at_a_time"]["met"]
    low = targets([_farm([6] * 3, [0] * 3, 0.29), {"name": "x", "status": "skipped"}], required=False)
    assert not low["farm_mlp_peak_fraction"]["met"] and not low["every_step_passes"]["met"]
    assert not any(t["required"] for t in low.values())


def test_junit_cases_are_read_with_their_device(tmp_path):
    xml = tmp_path / "r.xml"
    xml.write_text("""<testsuites><testsuite>
      <testcase classname="tests.t" name="test_a[cpu]"/>
      <testcase classname="tests.t" name="test_a[MLP-cuda]"><skipped message="needs CUDA"/></testcase>
      <testcase classname="tests.t" name="test_b[HASH-cpu]"><failure message="boom"/></testcase>
      <testcase classname="tests.t" name="test_c"/>
    </testsuite></testsuites>""")
    got = [(c["name"].split("::")[1], c["outcome"], c["device"], c["message"]) for c in cases(xml)]
    assert got == [("test_a[cpu]", "passed", "cpu", ""), ("test_a[MLP-cuda]", "skipped", "cuda", "needs CUDA"),
                   ("test_b[HASH-cpu]", "failed", "cpu", "boom"), ("test_c", "passed", "cuda", "")]


def _wheel(folder, name, version, requires, tag="py3-none-any"):
    path = folder / f"{name.replace('-', '_')}-{version}-{tag}.whl"
    meta = "".join(f"Requires-Dist: {r}\n" for r in requires)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{name.replace('-', '_')}-{version}.dist-info/METADATA",
                    f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n{meta}")
    return path


def test_wheel_check_names_what_nothing_satisfies(tmp_path, monkeypatch):
    monkeypatch.setattr(wheels, "required_wheels", lambda: {"alpha": "1.0", "beta": "2.0"})
    _wheel(tmp_path, "alpha", "1.0", ["beta>=2", "numpy", "gamma; python_version < '3.10'",
                                      "delta; extra == 'docs'"])
    _wheel(tmp_path, "beta", "2.0", ["epsilon", "alpha<1"], tag="cp311-cp311-manylinux_2_17_x86_64")
    problems = wheels.check(tmp_path)
    # numpy is on the device; gamma and delta do not apply there (old Python, an extra)
    assert len(problems) == 3, problems
    assert any("beta-2.0-cp311" in p and "not for CPython 3.12" in p for p in problems)
    assert any("requires epsilon" in p and "neither" in p for p in problems)
    assert any("requires alpha<1" in p and "has alpha 1.0" in p for p in problems)


def test_the_wheel_list_pins_pyproject_and_needs_no_torch():
    need = wheels.required_wheels()
    pins = wheels.pyproject_pins()
    assert need["snakemake"] == pins["snakemake"] and need["nerfacc"] == pins["nerfacc"]
    assert not set(need) & wheels.DEVICE_HAS


@pytest.mark.gpucheck
def test_dry_run_on_the_cpu_passes_and_records_every_step(tmp_path):
    # the check's CPU dry run at --quick sizes; the smoke DAG it would run last is the one
    # the session fixture runs for the workflow tests, so it is skipped here
    out = tmp_path / "check"
    proc = subprocess.run([sys.executable, "-m", "nfws.gpucheck", "--out", str(out), "--device",
                           "cpu", "--quick", "--skip", "smoke_dag"], capture_output=True,
                          text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-4000:]
    record = json.loads((out / "gpucheck.json").read_text())
    assert [s["name"] for s in record["steps"]] == [name for name, _ in STEPS]
    status = {s["name"]: s["status"] for s in record["steps"]}
    assert status == {"environment": "pass", "cuda_tests": "pass", "nerf_farm": "pass",
                      "learners": "pass", "smoke_dag": "skipped"}
    assert record["passed"] and not any(t["required"] for t in record["targets"].values())
    steps = {s["name"]: s for s in record["steps"]}
    assert steps["cuda_tests"]["cpu_cases"] >= 5 and steps["cuda_tests"]["failed"] == 0
    farm = steps["nerf_farm"]["per_arch"]
    assert set(farm) == {"MLP", "TRI", "HASH"}
    assert all(r["baseline"] > 0 and r["ours"] > 0 and r["nerfs_per_hour_recipe"] > 0
               for r in farm.values())
    assert steps["learners"]["gmn"]["graphs_per_s_all"] > 0
    for png in ("farm_renders.png", "farm_throughput.png"):
        with Image.open(out / png) as image:
            assert image.format == "PNG"
