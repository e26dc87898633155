"""Each stage's share of a run: the usage lines that every job's log ends with, summed per rule.

``python -m nfws.jobusage results/logs`` prints one row per rule (jobs, CPU seconds, share of
all jobs' CPU, summed and longest wall seconds, peak memory) and a total, as markdown;
``--csv FILE`` also writes the rows. The numbers come from inside each job
(:func:`nfws.runlog.job_usage`), so measuring costs nothing while the run goes.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import pandas as pd

from nfws.runlog import USAGE_MARK
from nfws.store import write_text

COLUMNS = ["rule", "jobs", "cpu_s", "share", "wall_s", "longest_wall_s", "max_rss_mb", "failed"]


def read_usage(log: Path) -> dict | None:
    """The last usage line of one log, or None for a log without one (a job that ran
    before usage was recorded, or one killed before it could write it)."""
    found = None
    with open(log, errors="replace") as fh:
        for line in fh:
            if line.startswith(USAGE_MARK):
                found = line[len(USAGE_MARK):]
    if found is None:
        return None
    try:
        usage = json.loads(found)
        return {"rule": str(usage["rule"]), "cpu_s": float(usage["cpu_s"]),
                "wall_s": float(usage["wall_s"]), "max_rss_mb": float(usage["max_rss_mb"]),
                "status": str(usage["status"])}
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{log}: malformed usage line ({err!r}): {found.strip()[:200]}") from err


def collect(log_dir: str | os.PathLike) -> tuple[pd.DataFrame, list[Path]]:
    """Per-job usage of every ``*.log`` under ``log_dir``, and the logs that have none."""
    root = Path(log_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such log directory")
    rows, missing = [], []
    for log in sorted(root.rglob("*.log")):
        usage = read_usage(log)
        if usage is None:
            missing.append(log)
        else:
            rows.append({**usage, "log": str(log.relative_to(root))})
    return pd.DataFrame(rows, columns=["rule", "cpu_s", "wall_s", "max_rss_mb", "status", "log"]), missing


def per_rule(jobs: pd.DataFrame) -> pd.DataFrame:
    """One row per rule, most CPU first, and a final ``all jobs`` row."""
    grouped = jobs.groupby("rule").agg(
        jobs=("cpu_s", "size"), cpu_s=("cpu_s", "sum"), wall_s=("wall_s", "sum"),
        longest_wall_s=("wall_s", "max"), max_rss_mb=("max_rss_mb", "max"),
        failed=("status", lambda s: int((s != "ok").sum()))).reset_index()
    total = jobs["cpu_s"].sum()
    grouped["share"] = grouped["cpu_s"] / total if total > 0 else 0.0
    grouped = grouped.sort_values("cpu_s", ascending=False)
    overall = {"rule": "all jobs", "jobs": len(jobs), "cpu_s": total, "share": 1.0 if total > 0 else 0.0,
               "wall_s": jobs["wall_s"].sum(), "longest_wall_s": jobs["wall_s"].max(),
               "max_rss_mb": jobs["max_rss_mb"].max(), "failed": int((jobs["status"] != "ok").sum())}
    return pd.concat([grouped, pd.DataFrame([overall])], ignore_index=True)[COLUMNS]


def markdown(table: pd.DataFrame) -> str:
    lines = ["| rule | jobs | CPU s | share | wall s (sum) | longest wall s | peak MB | failed |",
             "|---|---|---|---|---|---|---|---|"]
    for r in table.itertuples():
        lines.append(f"| {r.rule} | {r.jobs} | {r.cpu_s:,.0f} | {100 * r.share:.1f} % | {r.wall_s:,.0f} "
                     f"| {r.longest_wall_s:,.0f} | {r.max_rss_mb:,.0f} | {r.failed} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nfws.jobusage", description=__doc__.splitlines()[0])
    parser.add_argument("log_dir", help="a run's log directory, e.g. results/logs")
    parser.add_argument("--csv", help="also write the per-rule rows to this CSV file")
    args = parser.parse_args(argv)
    jobs, missing = collect(args.log_dir)
    for log in missing:
        print(f"{log}: no usage line (not counted)", file=sys.stderr)
    if jobs.empty:
        print(f"{args.log_dir}: no job logs with a usage line", file=sys.stderr)
        return 1
    table = per_rule(jobs)
    print(markdown(table))
    if args.csv:
        write_text(table.to_csv(index=False), args.csv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
