"""Running the pipeline from tests: the repository, the smoke config, command lines."""
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SMOKE_CONFIG = REPO / "tests" / "smoke.yaml"


def snakemake_cmd(workdir, *args):
    """``snakemake`` on the repository's Snakefile with results under ``workdir``."""
    return [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"),
            "--directory", str(workdir), *args]
