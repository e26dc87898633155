"""Every rule runs in the pipeline's conda environment (``snakemake --sdm conda``), and that
environment holds what pyproject.toml pins."""
import re
from pathlib import Path

import pytest
import yaml

from nfws.jobenv import WORKFLOW_DIR_ENV

ROOT = Path(__file__).resolve().parents[1]
RULE_FILES = sorted((ROOT / "workflow" / "rules").glob("*.smk"))
ENV_FILE = ROOT / "envs" / "nfws.yaml"
HEADER = re.compile(r"^(?:rule|checkpoint)\s+(\w+)\s*:", re.MULTILINE)
ACTION = re.compile(r"^\s+(?:script|shell|run|wrapper|notebook)\s*:", re.MULTILINE)
CONDA = re.compile(r"^\s+conda\s*:\s*\n?\s*[\"']([^\"']+)[\"']", re.MULTILINE)


def rule_blocks(text: str) -> dict[str, str]:
    """Rule (or checkpoint) name → its text, up to the next unindented line."""
    blocks = {}
    for match in HEADER.finditer(text):
        rest = text[match.end():]
        end = re.search(r"^\S", rest, re.MULTILINE)
        blocks[match.group(1)] = rest[:end.start()] if end else rest
    return blocks


def test_rule_files_are_found():
    assert RULE_FILES and any(rule_blocks(f.read_text()) for f in RULE_FILES)


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_every_rule_names_the_conda_env(path):
    blocks = rule_blocks(path.read_text())
    lacking = [name for name, body in blocks.items() if not CONDA.search(body)]
    assert not lacking, f"{path.name}: rules without a conda: directive: {lacking}"
    for name, body in blocks.items():
        # Snakemake resolves a relative conda path against the rule file's own folder.
        env = (path.parent / CONDA.search(body).group(1)).resolve()
        assert env == ENV_FILE, f"{path.name}: rule {name}: conda env {env} is not {ENV_FILE}"


def test_snakefile_rules_that_run_code_name_the_conda_env():
    blocks = rule_blocks((ROOT / "Snakefile").read_text())
    lacking = [name for name, body in blocks.items()
               if ACTION.search(body) and not CONDA.search(body)]
    assert not lacking, f"Snakefile: rules without a conda: directive: {lacking}"


def test_env_pins_the_project_dependencies():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load(ENV_FILE.read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert sorted(pip) == sorted(project["dependencies"])
    python = next(d for d in env["dependencies"] if isinstance(d, str) and
                  d.startswith("python"))
    minimum = tuple(int(x) for x in project["requires-python"].removeprefix(">=").split("."))
    assert tuple(int(x) for x in python.split("=")[1].split(".")) >= minimum


def test_env_installs_this_checkout():
    """No pip path relative to the env file (Snakemake builds the env from a copy of it
    elsewhere); the post-deploy script installs the workflow's own checkout instead."""
    deploy = ENV_FILE.with_name("nfws.post-deploy.sh")
    assert f'-e "${WORKFLOW_DIR_ENV}"' in deploy.read_text()
    assert "os.environ[WORKFLOW_DIR_ENV] = workflow.basedir" in (ROOT / "Snakefile").read_text()
