"""The smoke config through a real single-node SLURM cluster, via the slurm profile.

Needs root and Debian's slurm-wlm + munge (CI installs them). Skipped elsewhere unless
NFWS_REQUIRE_SLURM=1, in which case a missing cluster is a failure, not a skip.
"""
import os
import shutil
import subprocess

import pytest

from workflow_helpers import REPO, SMOKE_CONFIG, snakemake_cmd

CLUSTER = REPO / "tests" / "slurm" / "cluster.sh"
REQUIRED = os.environ.get("NFWS_REQUIRE_SLURM") == "1"
AVAILABLE = shutil.which("slurmctld") is not None and os.geteuid() == 0

pytestmark = pytest.mark.skipif(not (AVAILABLE or REQUIRED),
                                reason="needs root and slurm-wlm + munge")


@pytest.fixture(scope="module")
def cluster():
    subprocess.run(["bash", str(CLUSTER), "start"], check=True, timeout=180)
    try:
        yield
    finally:
        subprocess.run(["bash", str(CLUSTER), "stop"], check=False, timeout=60)


def test_smoke_run_through_slurm(cluster, tmp_path):
    cmd = snakemake_cmd(tmp_path, "--profile", str(REPO / "workflow/profiles/slurm"),
                        "--configfile", str(SMOKE_CONFIG), "--jobs", "2", "all")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    # Every job but the local target rule went through sbatch and left a SLURM log.
    slurm_logs = list((tmp_path / ".snakemake" / "slurm_logs").rglob("*.log"))
    assert slurm_logs, "no SLURM job logs: jobs did not go through sbatch"
    assert (tmp_path / "results" / "tables").is_dir()
