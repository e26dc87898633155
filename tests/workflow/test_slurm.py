"""The smoke run through a real single-node SLURM cluster, via the slurm profile.

The session's smoke run (conftest.py) goes through SLURM on machines that can start the
cluster (root and Debian's slurm-wlm + munge; CI installs them). This test checks that
every job of that run was submitted with sbatch; it is skipped where the run was local,
unless NFWS_REQUIRE_SLURM=1 (then the smoke fixture itself fails).
"""
import re

import pytest


def submitted_rules(output: str) -> set[str]:
    """Rules of the jobs the executor submitted: it names each submission's SLURM log
    .../slurm_logs/rule_<name>/... (and deletes the logs of jobs that succeeded)."""
    return set(re.findall(r"submitted with SLURM jobid \d+ \(log: \S*/slurm_logs/rule_(\w+)/",
                          output))


def test_submitted_rules_are_parsed_from_the_executor_output():
    line = ("Job 12 has been submitted with SLURM jobid 345 "
            "(log: /tmp/x/.snakemake/slurm_logs/rule_train_nerfs/MLP_000/345.log).")
    assert submitted_rules(line) == {"train_nerfs"}
    assert submitted_rules("Job 3 finished locally") == set()


def finished_rules(output: str) -> set[str]:
    """Rules of the jobs Snakemake reports finished ("Finished jobid: 7 (Rule: objects)")."""
    return set(re.findall(r"Finished jobid: \d+ \(Rule: (\w+)\)", output))


def test_every_smoke_job_went_through_sbatch(smoke_result):
    if smoke_result.executor != "slurm":
        pytest.skip("the smoke run used the local executor (no SLURM cluster here)")
    ran = finished_rules(smoke_result.output) - {"all"}   # `all` has no action: local
    assert {"objects", "train_nerfs", "graphs", "train_encoder", "fit_instances",
            "train_diffusion", "train_sane", "gmn_tables"} <= ran, sorted(ran)
    submitted = submitted_rules(smoke_result.output)
    assert ran <= submitted, f"ran outside SLURM: {sorted(ran - submitted)}"
