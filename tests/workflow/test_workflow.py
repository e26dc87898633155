"""The workflow as a whole: the smoke run's tables and plots, dry runs, lint, config errors."""
import re

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

import fake_data
from nfws.device import visible_gpu_count
from nfws.eval.tables import PUBLISHED
from workflow_helpers import run_snakemake

#: Lint findings we accept, with why:
#: - "Mixed rules and functions" reported for common.smk: the linter's own advice is to
#:   collect the helper functions in rules/common.smk, which is exactly what that file is.
ACCEPTED_LINTS = {
    "Mixed rules and functions in same snakefile.": "common.smk",
}


def tables(run):
    csvs = sorted((run / "results" / "tables").glob("*.csv"))
    assert csvs, f"no tables under {run / 'results' / 'tables'}"
    return csvs


def is_published(column: str) -> bool:
    """Published-value columns: 'published', 'paper_x' or 'x (paper)' (track conventions)."""
    return "published" in column.lower() or "paper" in column.lower()


def our_value_columns(df: pd.DataFrame) -> list[str]:
    """Numeric columns holding our measurements: not published values, not spreads
    (undefined for a single seed), not counts."""
    return [c for c in df.columns
            if pd.api.types.is_numeric_dtype(df[c]) and not is_published(c)
            and not c.lower().endswith("std") and not re.fullmatch(r"n(_\w+)?", c)]


def test_smoke_tables_have_markdown_and_our_numbers(smoke_run):
    for csv in tables(smoke_run):
        md = csv.with_suffix(".md")
        assert md.is_file(), f"{csv.name}: no Markdown twin"
        df = pd.read_csv(csv)
        assert len(df) > 0, f"{csv.name}: empty table"
        ours = our_value_columns(df)
        assert ours, f"{csv.name}: no numeric column of ours in {list(df.columns)}"
        assert any(df[c].notna().any() for c in ours), f"{csv.name}: no value of ours"
        assert all(np.isfinite(df[c].dropna()).all() for c in ours), f"{csv.name}: inf"
        text = md.read_text()
        assert text.startswith("# "), f"{md.name}: no title line"
        header = next(line for line in text.splitlines() if line.startswith("|"))
        assert [c.strip() for c in header.strip("|").split("|")] == list(df.columns), \
            f"{md.name}: Markdown columns differ from the CSV's"
    mds = sorted((smoke_run / "results" / "tables").glob("*.md"))
    assert all(md.with_suffix(".csv").is_file() for md in mds), "a Markdown table lacks its CSV"


def test_smoke_tables_with_published_numbers_show_them(smoke_run):
    with_paper = [c for c in tables(smoke_run)
                  if any(c.stem == p or c.stem.startswith(p + "_") for p in PUBLISHED)]
    assert with_paper, "no table of the smoke run has published numbers"
    for csv in with_paper:
        df = pd.read_csv(csv)
        published = [c for c in df.columns if is_published(c)]
        assert published, f"{csv.name}: no published column in {list(df.columns)}"
        assert any(df[c].notna().any() for c in published), f"{csv.name}: published empty"


def test_smoke_plots_are_valid_pngs(smoke_run):
    plots = sorted((smoke_run / "results" / "plots").rglob("*.png"))
    assert plots, "no plots"
    for png in plots:
        with Image.open(png) as image:
            assert image.format == "PNG", png
            image.verify()
        with Image.open(png) as image:
            assert min(image.size) >= 16, f"{png}: {image.size}"
            assert np.ptp(np.asarray(image.convert("L"))) > 0, f"{png}: a blank image"


def test_dry_run_of_default_config(tmp_path):
    proc = run_snakemake(tmp_path, "-n", "all")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert not (tmp_path / "results").exists()


def lint_findings(text):
    """[(snakefile or rule header, finding title)] of ``snakemake --lint`` text output."""
    findings, where = [], None
    for line in text.splitlines():
        if line.startswith("Lints for "):
            where = line[len("Lints for "):]
        elif re.match(r"^    \* ", line):
            findings.append((where, line.strip()[2:].rstrip(":")))
    return findings


def test_lint_has_only_accepted_findings(tmp_path):
    proc = run_snakemake(tmp_path, "--lint")
    text = proc.stdout + proc.stderr
    findings = lint_findings(text)
    # A non-zero exit without findings is a crash, not lint.
    assert proc.returncode == 0 or findings, text[-3000:]
    unexpected = [(where, title) for where, title in findings
                  if title not in ACCEPTED_LINTS
                  or (ACCEPTED_LINTS[title] is not None and ACCEPTED_LINTS[title] not in where)]
    assert not unexpected, f"lint findings: {unexpected}"


def run_with_config(tmp_path, overrides):
    """Run only the ShapeNet objects stage (cheap if validation lets it through) with
    ``overrides`` as an extra configfile; the finished process."""
    configfile = tmp_path / "bad.yaml"
    configfile.write_text(yaml.safe_dump(overrides))
    workdir = tmp_path / "run"
    workdir.mkdir()
    proc = run_snakemake(workdir, "--cores", "1", "results/data/shapenet/manifest.parquet",
                         "--configfile", str(configfile), timeout=120)
    return proc, workdir


@pytest.mark.parametrize("overrides, names", [
    ({"nerf": {"shard_size": 0}}, ["shard_size", "minimum"]),
    ({"bogus_section": {"a": 1}}, ["bogus_section"]),
    ({"nerf": {"fit": {"steps": "many"}}}, ["steps", "integer"]),
    ({"data": {"shapenet": {"classes": ["unicorn"]}}}, ["classes", "unicorn"]),
])
def test_bad_config_is_refused_before_anything_runs(tmp_path, overrides, names):
    proc, workdir = run_with_config(tmp_path, overrides)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "validating config" in text.lower(), text[-2000:]
    for name in names:
        assert name in text, f"{name!r} not in the error:\n{text[-2000:]}"
    assert not (workdir / "results").exists(), "results written despite a bad config"


def test_missing_data_root_is_named(tmp_path):
    root = tmp_path / "no_such_shapenet_render"
    proc, workdir = run_with_config(tmp_path, {"data": {"shapenet": {
        "source": "shapenet_render", "root": str(root)}}})
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert str(root) in text and "data.shapenet.root" in text, text[-3000:]
    assert not (workdir / "results" / "data" / "shapenet" / "manifest.parquet").exists()


@pytest.mark.skipif(visible_gpu_count() > 0, reason="checks a machine without CUDA")
def test_cuda_device_without_cuda_fails_the_dry_run(tmp_path):
    proc = run_snakemake(tmp_path, "-n", "all", "--config", "device=cuda")
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "config key device: 'cuda' requested but this machine has no CUDA" in text, \
        text[-2000:]
    opted_out = run_snakemake(tmp_path, "-n", "all", "--config", "device=cuda",
                              "check_device=False")
    assert opted_out.returncode == 0, opted_out.stderr[-2000:]
    assert not (tmp_path / "results").exists()


def test_face_image_outside_the_size_limits_is_named_by_the_images_store(tmp_path):
    root, _ = fake_data.image_folder(tmp_path / "faces", count=4, size=20)
    Image.fromarray(np.zeros((7, 300, 3), np.uint8)).save(root / "thin.png")
    faces = {"source": "folder", "root": str(root), "count": 5, "resolution": 16}
    texts = {}
    for on_bad_image in ("fail", "warn"):
        configfile = tmp_path / f"{on_bad_image}.yaml"
        configfile.write_text(yaml.safe_dump(
            {"data": {"faces": {**faces, "on_bad_image": on_bad_image}}}))
        workdir = tmp_path / on_bad_image
        proc = run_snakemake(workdir, "--cores", "1", "results/data/faces/images.zarr",
                             "--configfile", str(configfile), timeout=300)
        store = workdir / "results" / "data" / "faces" / "images.zarr"
        assert (proc.returncode == 0) == (on_bad_image == "warn"), proc.stderr[-3000:]
        assert store.exists() == (on_bad_image == "warn")
        texts[on_bad_image] = (workdir / "results" / "logs" / "images_store.log").read_text()
    named = f"{root / 'thin.png'} (300x7: shorter side 7 < min_side 16, aspect ratio 42.86"
    assert f"{named} > max_aspect 1.5) is refused" in texts["fail"]
    assert f"{named} > max_aspect 1.5) is used anyway" in texts["warn"]
