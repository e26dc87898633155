"""The ``nfws`` command: config files checked before Snakemake reads them (nfws.cli)."""
import subprocess
import sys

import pytest

from nfws.cli import configfile_arguments


def nfws(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "nfws.cli", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("argv, files", [
    (["--cores", "2", "all"], []),
    (["all", "--configfile", "a.yaml", "b.yaml", "-n"], ["a.yaml", "b.yaml"]),
    (["--configfiles", "a.yaml", "--cores", "1", "--configfile=b.json"], ["a.yaml", "b.json"]),
    (["--configfile", "a.yaml", "--", "all"], ["a.yaml"]),
    (["--config", "seed=1", "--configfile", "a.yaml", "all"], ["a.yaml", "all"]),
])
def test_configfile_arguments_are_the_words_snakemake_reads_as_files(argv, files):
    assert configfile_arguments(argv) == files


def test_check_config_names_each_broken_file(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("seed: 1\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("nerf:\n  fit: [1, 2\n")
    also_bad = tmp_path / "also_bad.json"
    also_bad.write_text('{"seed": "a}')
    proc = nfws("check-config", good, bad, also_bad)
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert [line.split(": ")[0] for line in lines] == [f"{bad}:3:1", f"{also_bad}:1:10"], lines
    ok = nfws("check-config", good)
    assert ok.returncode == 0 and ok.stderr == ""


def test_run_refuses_a_broken_configfile_before_snakemake(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("seed: 1\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: 1\nnerf:\n\tfit: 2\n")
    proc = nfws("run", "-n", "--configfile", good, bad, cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"{bad}:3:1: not valid YAML"), proc.stderr
    assert "Config file is not valid JSON or YAML" not in proc.stdout + proc.stderr


def test_run_names_a_target_read_as_a_configfile(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("seed: 1\n")
    proc = nfws("run", "--configfile", good, "all", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.startswith("all: no such config file"), proc.stderr
    assert "put targets before --configfile" in proc.stderr


def test_run_hands_its_arguments_to_snakemake(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("seed: 1\n")
    proc = nfws("run", "--version", "--configfile", good, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().startswith("9."), proc.stdout


def test_unknown_command_prints_usage():
    proc = nfws("train")
    assert proc.returncode == 2 and proc.stderr.startswith("usage: nfws run")
