"""Step 2: ``pytest -m cuda``, the tests of the GPU paths (tests/unit/test_cuda_paths.py and
every other test marked ``cuda``).

Only the test files that mark a test ``cuda`` are collected (collecting the whole suite
costs more than these tests on a small CPU). A case whose id names ``cpu`` is a CPU case;
every other case is a CUDA case. The step passes when pytest does and every case of this
device ran and passed; a CUDA case may skip only for want of tinycudann (optional).
"""
from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from nfws.gpucheck.procs import run_logged, tail
from nfws.gpucheck.report import Context
from nfws.gpucheck.sizes import REPO

OPTIONAL_SKIP = "tinycudann"


def marked_files(tests: Path = REPO / "tests") -> list[Path]:
    """Test files that mark something ``cuda``."""
    return sorted(p for p in tests.rglob("test_*.py") if "pytest.mark.cuda" in p.read_text())


def cases(junit_xml: Path) -> list[dict]:
    """Every test case of a JUnit XML report: name, outcome (passed / failed / skipped),
    device (``cpu`` when its id names it, else ``cuda``) and the skip or failure message."""
    out = []
    for case in ET.parse(junit_xml).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        params = re.search(r"\[(.*)\]$", case.get("name", ""))
        device = "cpu" if params and "cpu" in params.group(1).split("-") else "cuda"
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = "skipped" if child.tag == "skipped" else "failed"
                message = child.get("message", "")
        out.append({"name": name, "outcome": outcome, "device": device, "message": message})
    return out


def run(ctx: Context) -> dict:
    xml, log = ctx.out / "pytest_cuda.xml", ctx.out / "pytest_cuda.log"
    files = marked_files()
    code, seconds = run_logged([sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-rs",
                                "-p", "no:cacheprovider", f"--junitxml={xml}",
                                *map(str, files)], log, timeout=ctx.budget.remaining(), cwd=REPO)
    found = cases(xml) if xml.is_file() else []
    mine = [c for c in found if c["device"] == ctx.device.type]
    must_run = [c for c in mine if not (c["outcome"] == "skipped" and OPTIONAL_SKIP in c["message"])]
    counts = {k: sum(c["outcome"] == k for c in found) for k in ("passed", "failed", "skipped")}
    return {"exit_code": code, "pytest_seconds": seconds,
            "files": [str(p.relative_to(REPO)) for p in files],
            **counts, f"{ctx.device.type}_cases": len(mine),
            "not_passed": [c for c in found if c["outcome"] != "passed"],
            "log_tail": "" if code == 0 else tail(log),
            "checks": {"pytest -m cuda exits 0": code == 0,
                       f"every {ctx.device.type} case ran and passed":
                           bool(must_run) and all(c["outcome"] == "passed" for c in must_run)}}
