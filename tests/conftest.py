"""Session-wide fixtures: one torch thread for every test, one smoke run of the whole DAG."""
import shutil
import subprocess

import pytest
import torch

from workflow_helpers import SMOKE_CONFIG, snakemake_cmd

#: Seconds the smoke run may take before the session gives up on it (budget: 5 minutes
#: on 2 idle cores; the slack absorbs other jobs sharing the machine).
SMOKE_TIMEOUT = 2400


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Pin torch to one thread: timings and results do not depend on the machine's cores."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """A finished ``snakemake --cores 2 all`` of tests/smoke.yaml; treat it as read-only
    (tests that change files work on ``smoke_copy``)."""
    workdir = tmp_path_factory.mktemp("smoke")
    cmd = snakemake_cmd(workdir, "--cores", "2", "all", "--configfile", str(SMOKE_CONFIG))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=SMOKE_TIMEOUT)
    assert proc.returncode == 0, (
        f"smoke run failed ({' '.join(cmd)}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return workdir


@pytest.fixture
def smoke_copy(smoke_run, tmp_path):
    """A private copy of the finished smoke run (timestamps and metadata kept)."""
    target = tmp_path / "run"
    subprocess.run(["cp", "-a", str(smoke_run), str(target)], check=True)
    shutil.rmtree(target / ".snakemake" / "locks", ignore_errors=True)
    return target
