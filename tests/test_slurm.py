"""The smoke config through a real single-node SLURM cluster, via the slurm profile.

Needs root and Debian's slurm-wlm + munge (CI installs them). Skipped elsewhere unless
NFWS_REQUIRE_SLURM=1, in which case a missing cluster is a failure, not a skip.
"""
import os
import re
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


#: The smoke config's data stages, one NeRF shard and its parameter graphs: every kind of
#: job (checkpoint, directory outputs, a training job) through sbatch, in minutes. The
#: whole DAG through SLURM costs ~40 s of status polling per job wave, too long for CI.
TARGETS = ("results/graphs/MLP/000.zarr", "results/plots/contact_sheet_faces.png")


def test_smoke_config_through_slurm(cluster, tmp_path):
    cmd = snakemake_cmd(tmp_path, "--profile", str(REPO / "workflow/profiles/slurm"),
                        "--configfile", str(SMOKE_CONFIG), "--jobs", "4", *TARGETS)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    # Every job went through sbatch: the executor names each submission's SLURM log,
    # .../slurm_logs/rule_<name>/... (it deletes the logs of jobs that succeeded).
    submitted = set(re.findall(r"submitted with SLURM jobid \d+ \(log: \S*/slurm_logs/rule_(\w+)/",
                               proc.stdout + proc.stderr))
    assert {"objects", "render_objects", "views_store", "train_nerfs", "graphs", "images_store",
            "contact_sheet_faces"} <= submitted, submitted
    for target in TARGETS:
        assert (tmp_path / target).exists(), target
