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


#: The smoke config's data stages, one NeRF shard and its parameter graphs: every kind of
#: job (checkpoint, directory outputs, a training job) through sbatch, in minutes. The
#: whole DAG through SLURM costs ~40 s of status polling per job wave, too long for CI.
TARGETS = ("results/graphs/MLP/000.zarr", "results/plots/contact_sheet_faces.png")


def test_smoke_config_through_slurm(cluster, tmp_path):
    cmd = snakemake_cmd(tmp_path, "--profile", str(REPO / "workflow/profiles/slurm"),
                        "--configfile", str(SMOKE_CONFIG), "--jobs", "4", *TARGETS)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    logs = {p.parent.name if p.parent.name.startswith("rule_") else p.parent.parent.name
            for p in (tmp_path / ".snakemake" / "slurm_logs").rglob("*.log")}
    # Every job went through sbatch and left its SLURM log.
    assert {"rule_objects", "rule_render_objects", "rule_views_store", "rule_train_nerfs",
            "rule_graphs", "rule_images_store", "rule_contact_sheet_faces"} <= logs, logs
    for target in TARGETS:
        assert (tmp_path / target).exists(), target
