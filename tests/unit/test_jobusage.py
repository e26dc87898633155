"""Job usage: the line script_setup writes at the end of every log, and its per-rule sums."""
import json
import time
from types import SimpleNamespace

import pandas as pd
import pytest

from nfws.jobusage import collect, main, per_rule, read_usage
from nfws.runlog import USAGE_MARK, job_usage, process_age, script_setup


class FakeWildcards(dict):
    """What a Snakemake script's ``snakemake.wildcards`` offers: ``items()``."""


def fake_smk(log, rule="train_nerfs"):
    return SimpleNamespace(log=[str(log)], threads=1, rule=rule,
                           wildcards=FakeWildcards(arch="MLP", shard="000"))


def usage_lines(log):
    return [json.loads(l[len(USAGE_MARK):]) for l in log.read_text().splitlines()
            if l.startswith(USAGE_MARK)]


def test_usage_counts_the_process_cpu_and_age():
    began = time.monotonic()
    before = time.process_time()
    x = 0
    while time.process_time() - before < 0.3:     # burn 0.3 s of CPU in this process
        x += 1
    usage = job_usage()
    assert usage["cpu_s"] >= time.process_time() - 0.01      # own CPU, children added
    assert process_age() >= time.monotonic() - began          # the process began before this test
    assert usage["max_rss_mb"] > 10                           # a Python process with torch loaded


def test_the_log_ends_with_the_usage_line(tmp_path):
    log = tmp_path / "logs" / "job.log"
    with script_setup(fake_smk(log)):
        print("working")
    lines = log.read_text().splitlines()
    assert lines[0] == "working" and lines[-1].startswith(USAGE_MARK)
    (usage,) = usage_lines(log)
    assert usage["rule"] == "train_nerfs" and usage["wildcards"] == {"arch": "MLP", "shard": "000"}
    assert usage["status"] == "ok" and usage["wall_s"] > 0 and usage["cpu_s"] > 0


def test_a_failed_job_still_reports_and_reraises(tmp_path):
    log = tmp_path / "job.log"
    with pytest.raises(RuntimeError, match="boom"):
        with script_setup(fake_smk(log)):
            raise RuntimeError("boom")
    text = log.read_text()
    assert "RuntimeError: boom" in text
    assert usage_lines(log)[-1]["status"] == "failed"


def write_log(path, rule, cpu, wall, rss, status="ok"):
    path.parent.mkdir(parents=True, exist_ok=True)
    usage = {"rule": rule, "wildcards": {}, "wall_s": wall, "cpu_s": cpu, "max_rss_mb": rss,
             "status": status}
    path.write_text("progress...\n" + USAGE_MARK + json.dumps(usage) + "\n")


def test_per_rule_sums_by_hand(tmp_path, capsys):
    logs = tmp_path / "logs"
    write_log(logs / "train_nerfs" / "MLP_000.log", "train_nerfs", 30.0, 40.0, 900)
    write_log(logs / "train_nerfs" / "TRI_000.log", "train_nerfs", 50.0, 55.0, 1200)
    write_log(logs / "nerf_table.log", "nerf_table", 20.0, 22.0, 300, status="failed")
    (logs / "old.log").write_text("a log from before usage lines\n")
    jobs, missing = collect(logs)
    assert missing == [logs / "old.log"]
    table = per_rule(jobs).set_index("rule")
    assert table.loc["train_nerfs", "jobs"] == 2
    assert table.loc["train_nerfs", "cpu_s"] == 80.0
    assert table.loc["train_nerfs", "share"] == pytest.approx(0.8)      # 80 of 100 CPU s
    assert table.loc["train_nerfs", "longest_wall_s"] == 55.0
    assert table.loc["train_nerfs", "max_rss_mb"] == 1200
    assert table.loc["nerf_table", "failed"] == 1
    assert table.loc["all jobs", "cpu_s"] == 100.0 and table.loc["all jobs", "wall_s"] == 117.0
    assert list(per_rule(jobs)["rule"]) == ["train_nerfs", "nerf_table", "all jobs"]

    csv = tmp_path / "usage.csv"
    assert main([str(logs), "--csv", str(csv)]) == 0
    out, err = capsys.readouterr()
    assert "| train_nerfs | 2 | 80 | 80.0 % |" in out
    assert "old.log: no usage line" in err
    assert pd.read_csv(csv)["cpu_s"].tolist() == [80.0, 20.0, 100.0]


def test_bad_logs_are_named(tmp_path):
    log = tmp_path / "logs" / "x.log"
    log.parent.mkdir()
    log.write_text(USAGE_MARK + '{"rule": "x"}\n')
    with pytest.raises(ValueError, match="x.log: malformed usage line"):
        read_usage(log)
    with pytest.raises(FileNotFoundError, match="nowhere: no such log directory"):
        collect(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 1
