"""Every rule's script calls one function of its track's jobs module, named like the script;
every rule runs in the pipeline's conda environment (``snakemake --sdm conda``), and that
environment holds what pyproject.toml pins."""
import importlib
import re
from pathlib import Path

import pytest
import yaml

from nfws.jobenv import WORKFLOW_DIR_ENV

ROOT = Path(__file__).resolve().parents[2]
RULE_FILES = sorted((ROOT / "workflow" / "rules").glob("*.smk"))
ENV_FILE = ROOT / "envs" / "nfws.yaml"
HEADER = re.compile(r"^(?:rule|checkpoint)\s+(\w+)\s*:", re.MULTILINE)
ACTION = re.compile(r"^\s+(?:script|shell|run|wrapper|notebook)\s*:", re.MULTILINE)
SCRIPT = re.compile(r"^\s+script\s*:\s*\n?\s*[\"']([^\"']+)[\"']", re.MULTILINE)
CONDA = re.compile(r"^\s+conda\s*:\s*\n?\s*[\"']([^\"']+)[\"']", re.MULTILINE)


def rule_blocks(text: str) -> dict[str, str]:
    """Rule (or checkpoint) name → its text, up to the next unindented line."""
    blocks = {}
    for match in HEADER.finditer(text):
        rest = text[match.end():]
        end = re.search(r"^\S", rest, re.MULTILINE)
        blocks[match.group(1)] = rest[:end.start()] if end else rest
    return blocks


def script_call(path: Path) -> tuple[str, str]:
    """(module, function) of a rule script that is ``from M import F`` then ``F(snakemake)``."""
    lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    code = [line for line in lines if line and not line.startswith('"""')]
    match = re.fullmatch(r"from ([\w.]+) import (\w+)", code[0])
    assert match and code[1:] == [f"{match.group(2)}(snakemake)"], (
        f"{path}: a rule script imports one job function and calls it with snakemake, got {code}")
    return match.group(1), match.group(2)


def test_script_checker_on_hand_written_scripts(tmp_path):
    good = tmp_path / "tsne.py"
    good.write_text('"""Rule tsne."""\nfrom nfws.gmn.jobs import tsne\n\ntsne(snakemake)  # noqa\n')
    assert script_call(good) == ("nfws.gmn.jobs", "tsne")
    bad = tmp_path / "bad.py"
    bad.write_text("from nfws.gmn.jobs import tsne\nimport os\ntsne(snakemake)\n")
    with pytest.raises(AssertionError, match="one job function"):
        script_call(bad)


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_every_rule_calls_its_tracks_job_of_the_scripts_name(path):
    """A rule in ``{track}.smk`` runs ``workflow/scripts/{name}.py``, which calls
    ``nfws.{track}.jobs.{name}``: opening that module finds any rule's code."""
    for rule, body in rule_blocks(path.read_text()).items():
        script = SCRIPT.search(body)
        assert script, f"{path.name}: rule {rule} has no script"
        script_path = (path.parent / script.group(1)).resolve()
        module, function = script_call(script_path)
        assert (module, function) == (f"nfws.{path.stem}.jobs", script_path.stem), (
            f"{path.name}: rule {rule}: {script_path.name} calls {module}.{function}")
        assert callable(getattr(importlib.import_module(module), function, None)), (module, function)


def test_every_script_belongs_to_a_rule():
    used = {(f.parent / s).resolve() for f in RULE_FILES for body in rule_blocks(f.read_text()).values()
            if (match := SCRIPT.search(body)) for s in [match.group(1)]}
    scripts = set((ROOT / "workflow" / "scripts").glob("*.py"))
    assert scripts == used, sorted(str(p) for p in scripts ^ used)


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


def test_rule_files_import_only_the_plan():
    imports = {f.name: re.findall(r"^(?:from|import) (nfws[\w.]*)", f.read_text(), re.MULTILINE)
               for f in RULE_FILES}
    assert imports["common.smk"] == ["nfws.plan"]
    assert all(m == "nfws.plan" for names in imports.values() for m in names), imports
