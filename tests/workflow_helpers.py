"""Running the pipeline from tests: the repository, the smoke config, command lines."""
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SMOKE_CONFIG = REPO / "tests" / "workflow" / "smoke.yaml"


def snakemake_cmd(workdir, *args):
    """``snakemake`` on the repository's Snakefile with results under ``workdir``."""
    return [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"),
            "--directory", str(workdir), *args]


def run_snakemake(workdir, *args, timeout=300):
    """Run ``snakemake_cmd(workdir, *args)``; the finished process (never raises on failure)."""
    import subprocess

    return subprocess.run(snakemake_cmd(workdir, *args), capture_output=True, text=True,
                          timeout=timeout)


def job_stats(output: str) -> dict[str, int]:
    """``{rule: job count}`` from the "Job stats:" table a (dry) run prints; {} if none."""
    lines = output.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Job stats:")
    except StopIteration:
        return {}
    stats = {}
    # The table: a header ("job count"), a dashed rule, one row per rule, then "total N".
    for line in lines[start + 3:]:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        stats[parts[0]] = int(parts[1])
    return stats


def rule_edges(dot: str) -> set[tuple[str, str]]:
    """(upstream rule, downstream rule) pairs of a ``--rulegraph`` dot graph."""
    import re

    names = dict(re.findall(r'^\s*(\d+)\[label = "([^"]+)"', dot, flags=re.M))
    return {(names[a], names[b]) for a, b in re.findall(r"^\s*(\d+) -> (\d+)", dot, flags=re.M)}


def downstream(edges, rules) -> set[str]:
    """``rules`` and every rule that depends on one of them, transitively."""
    found, frontier = set(rules), list(rules)
    while frontier:
        rule = frontier.pop()
        for up, down in edges:
            if up == rule and down not in found:
                found.add(down)
                frontier.append(down)
    return found
