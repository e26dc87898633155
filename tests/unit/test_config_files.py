"""Config-file syntax errors name the file, line and column; typed sections name the
offending key (nfws.config_files)."""
import shutil
import subprocess
import sys
from dataclasses import dataclass

import pytest

from nfws.config_files import ConfigFileError, Section, check_config_file, repo_section
from workflow_helpers import REPO


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("name, text, place, problem", [
    ("flow.yaml", "seed: 0\nnerf:\n  fit: {steps: 3\n", "4:1", "expected ',' or '}'"),
    ("tab.yaml", "nerf:\n\tfit: 1\n", "2:1", "found character '\\t'"),
    ("indent.yaml", "nerf:\n  fit: 1\n bad: 2\n", "3:2", "expected <block end>"),
    ("broken.json", '{"seed": 0\n "nerf": 1}\n', "2:2", "not valid JSON: Expecting ','"),
])
def test_syntax_error_names_file_line_and_column(tmp_path, name, text, place, problem):
    path = write(tmp_path, name, text)
    with pytest.raises(ConfigFileError) as err:
        check_config_file(path)
    assert str(err.value).startswith(f"{path}:{place}: "), err.value
    assert problem in str(err.value)


@pytest.mark.parametrize("text, place", [("- 1\n- 2\n", "1:1"), ("", "1:1"), ("[1, 2]", "1:1"),
                                         ("# only a comment\n7\n", "2:1")])
def test_top_level_must_be_a_mapping(tmp_path, text, place):
    path = write(tmp_path, "list.yaml", text)
    with pytest.raises(ConfigFileError, match=f"{path}:{place}: the top level must be a mapping"):
        check_config_file(path)


def test_valid_yaml_and_json_pass(tmp_path):
    check_config_file(write(tmp_path, "ok.yaml", "seed: 1\nnerf: {fit: {steps: 3}}\n"))
    check_config_file(write(tmp_path, "ok.json", '{"seed": 1}'))
    check_config_file(REPO / "config.yaml")
    # Snakemake falls back to YAML for a .json file that is not JSON; so does the check
    check_config_file(write(tmp_path, "yaml_in.json", "seed: 1\n"))


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigFileError, match=f"{tmp_path / 'none.yaml'}: cannot read"):
        check_config_file(tmp_path / "none.yaml")


def test_broken_embedded_config_is_named_by_the_workflow(tmp_path):
    """A copy of the workflow whose config.yaml leaves a list open on the ``seed`` line."""
    copy = tmp_path / "workflow_copy"
    copy.mkdir()
    shutil.copy(REPO / "Snakefile", copy)
    shutil.copytree(REPO / "workflow", copy / "workflow")
    lines = (REPO / "config.yaml").read_text().splitlines(keepends=True)
    seed = next(i for i, line in enumerate(lines) if line.startswith("seed:"))
    lines[seed] = "seed: [0\n"
    (copy / "config.yaml").write_text("".join(lines))
    workdir = tmp_path / "run"
    workdir.mkdir()
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(copy / "Snakefile"),
                           "--directory", str(workdir), "-n"],
                          capture_output=True, text=True, timeout=120)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"{copy / 'config.yaml'}:{seed + 2}:" in text, text[-2000:]
    assert "not valid YAML" in text


@dataclass(frozen=True)
class Demo(Section):
    SECTION = "demo"
    steps: int
    sizes: tuple

    def check(self, section):
        if self.steps < 1:
            self.bad(section, "steps", "must be >= 1")


def test_section_names_missing_and_unknown_keys():
    with pytest.raises(ValueError, match=r"config demo: missing keys \['sizes'\], unknown keys \['step'\]"):
        Demo.from_dict({"steps": 1, "step": 2})
    with pytest.raises(ValueError, match=r"config other.place: must be a mapping"):
        Demo.from_dict(None, "other.place")


def test_section_pick_takes_its_keys_from_a_larger_section():
    assert Demo.pick({"steps": 3, "sizes": [1, 2], "extra": 0}) == Demo(3, (1, 2))
    with pytest.raises(ValueError, match=r"missing keys \['steps'\], unknown keys \[\]"):
        Demo.pick({"sizes": [1]})


def test_section_check_names_the_key_and_value():
    with pytest.raises(ValueError, match=r"config demo.steps: must be >= 1, got 0"):
        Demo.from_dict({"steps": 0, "sizes": []})
    assert Demo.from_dict({"steps": 2, "sizes": [4]}).to_dict() == {"steps": 2, "sizes": (4,)}


def test_repo_section_reads_the_checkout_config():
    assert set(repo_section("nerf", "fit")) >= {"steps", "lr"}
