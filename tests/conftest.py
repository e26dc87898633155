"""Session-wide fixtures: one torch thread for every test, one smoke run of the whole DAG.

The smoke run goes through a real single-node SLURM cluster (tests/workflow/slurm/cluster.sh,
the slurm profile) when this machine can start one (root and slurm-wlm + munge, as in
CI), and through the local executor otherwise. ``NFWS_REQUIRE_SLURM=1`` turns a machine
that cannot start the cluster into a failure instead of the local fallback.
"""
import contextlib
import dataclasses
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from workflow_helpers import REPO, SMOKE_CONFIG, snakemake_cmd

#: Seconds the smoke run may take before the session gives up on it (budget: 5 minutes
#: locally on 2 idle cores; the slack absorbs SLURM's scheduling and other jobs sharing
#: the machine).
SMOKE_TIMEOUT = 2400

SLURM_CLUSTER = REPO / "tests" / "workflow" / "slurm" / "cluster.sh"
SLURM_REQUIRED = os.environ.get("NFWS_REQUIRE_SLURM") == "1"
SLURM_AVAILABLE = shutil.which("slurmctld") is not None and os.geteuid() == 0

#: Through SLURM: the profile, at most 4 jobs queued (the node runs 2 at once) and a 5 s
#: first status check instead of 40 s (the executor adds 10 s per check that finds no job
#: finished, so short smoke jobs would otherwise wait ~40 s each for their status).
SLURM_ARGS = ("--profile", str(REPO / "workflow" / "profiles" / "slurm"), "--jobs", "4",
              "--slurm-init-seconds-before-status-checks", "5")


@dataclasses.dataclass(frozen=True)
class SmokeRun:
    """A finished smoke run: its directory, the executor it ran with and its log."""
    workdir: Path
    executor: str   # "slurm" | "local"
    output: str


WORKFLOW_TESTS = Path(__file__).parent / "workflow"


def pytest_collection_modifyitems(items):
    """Everything under tests/workflow is a whole-DAG test: ``-m "not workflow"`` skips it."""
    for item in items:
        if WORKFLOW_TESTS in Path(item.fspath).parents:
            item.add_marker(pytest.mark.workflow)


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Pin torch to one thread: timings and results do not depend on the machine's cores."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@contextlib.contextmanager
def slurm_cluster():
    """Start the single-node cluster; stop its daemons afterwards, whatever happened."""
    if not SLURM_AVAILABLE:
        raise RuntimeError("NFWS_REQUIRE_SLURM=1 but this machine cannot start the SLURM "
                           "test cluster (needs root and slurmctld from slurm-wlm)")
    try:
        subprocess.run(["bash", str(SLURM_CLUSTER), "start"], check=True, timeout=180)
        yield
    finally:
        subprocess.run(["bash", str(SLURM_CLUSTER), "stop"], check=False, timeout=60)


@pytest.fixture(scope="session")
def smoke_result(tmp_path_factory) -> SmokeRun:
    """``snakemake all`` of tests/workflow/smoke.yaml, through SLURM where possible."""
    workdir = tmp_path_factory.mktemp("smoke")
    use_slurm = SLURM_AVAILABLE or SLURM_REQUIRED
    args = SLURM_ARGS if use_slurm else ("--cores", "2")
    cmd = snakemake_cmd(workdir, *args, "all", "--configfile", str(SMOKE_CONFIG))
    with slurm_cluster() if use_slurm else contextlib.nullcontext():
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=SMOKE_TIMEOUT)
    assert proc.returncode == 0, (
        f"smoke run failed ({' '.join(cmd)}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return SmokeRun(workdir, "slurm" if use_slurm else "local", proc.stdout + proc.stderr)


@pytest.fixture(scope="session")
def smoke_run(smoke_result) -> Path:
    """The finished smoke run's directory; treat it as read-only (tests that change files
    work on ``smoke_copy``)."""
    return smoke_result.workdir


@pytest.fixture
def smoke_copy(smoke_run, tmp_path):
    """A private copy of the finished smoke run (timestamps and metadata kept)."""
    target = tmp_path / "run"
    subprocess.run(["cp", "-a", str(smoke_run), str(target)], check=True)
    shutil.rmtree(target / ".snakemake" / "locks", ignore_errors=True)
    return target
