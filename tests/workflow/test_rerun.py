"""What a finished run reruns after a change: exactly the changed stage and what depends on it.

Expected rule sets come from the run's own rule graph (``--rulegraph``), so rules added
later are covered without editing this file.
"""
import os

import pytest
import yaml

from workflow_helpers import SMOKE_CONFIG, downstream, job_stats, rule_edges, run_snakemake

DATA_RULES = {"objects", "render_objects", "views_store", "images_store"}


def changed_config(tmp_path, section_path, value):
    """A configfile (merged after the smoke config) setting one nested key."""
    smoke = yaml.safe_load(SMOKE_CONFIG.read_text())
    node = smoke
    for key in section_path[:-1]:
        node = node.setdefault(key, {})
    assert node.get(section_path[-1]) != value, "the change must change something"
    override = value
    for key in reversed(section_path):
        override = {key: override}
    path = tmp_path / "changed.yaml"
    path.write_text(yaml.safe_dump(override))
    return path


def dry_run_rules(run, *configfiles):
    proc = run_snakemake(run, "-n", "all", "--configfile", str(SMOKE_CONFIG),
                         *map(str, configfiles))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return job_stats(proc.stdout + proc.stderr), proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def edges(smoke_run):
    proc = run_snakemake(smoke_run, "--rulegraph", "dot", "all", "--configfile", str(SMOKE_CONFIG))
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = rule_edges(proc.stdout)
    assert ("train_nerfs", "graphs") in found, f"rule graph not parsed: {sorted(found)}"
    return found


def test_finished_run_has_nothing_to_do(smoke_run):
    stats, text = dry_run_rules(smoke_run)
    assert stats == {}, f"a finished run schedules {stats}:\n{text[-2000:]}"


def test_nerf_fit_change_reruns_the_farm_and_everything_downstream(smoke_run, edges, tmp_path):
    stats, _ = dry_run_rules(smoke_run, changed_config(tmp_path, ["nerf", "fit", "steps"], 13))
    # the farm, SANE's NeRFs (sane.fit over nerf.fit) and the previews read nerf.fit
    expected = downstream(edges, {"train_nerfs", "sane_nerfs", "nerf_previews"})
    assert set(stats) == expected
    assert {"graphs", "train_encoder", "embed", "classify_all", "gmn_tables"} <= set(stats)
    assert not DATA_RULES & set(stats)


def test_classifier_change_reruns_only_classifiers_and_tables(smoke_run, edges, tmp_path):
    stats, _ = dry_run_rules(smoke_run,
                             changed_config(tmp_path, ["gmn", "classifier", "epochs"], 3))
    classifiers = {"classify_all", "classify_single", "baseline"}
    assert set(stats) == downstream(edges, classifiers)
    assert "gmn_tables" in stats
    assert not {"train_nerfs", "graphs", "train_encoder", "embed"} & set(stats)


def test_list_changes_params_names_the_changed_outputs(smoke_run, tmp_path):
    """``--summary`` marks exactly the outputs of the rules reading nerf.fit "params
    changed" (NeRF shards, SANE's NeRFs, previews); ``--list-changes params`` names them too, but Snakemake 9.27 lists every recorded output with them
    (ParamsChange.__or__ keeps the file set of an empty change), so only inclusion holds."""
    changed = [str(SMOKE_CONFIG), str(changed_config(tmp_path, ["nerf", "fit", "steps"], 13))]
    shards = {f"results/nerfs/{arch.name}/{shard.name}"
              for arch in (smoke_run / "results" / "nerfs").iterdir()
              for shard in arch.glob("*.zarr")}
    assert shards
    previews = (smoke_run / "results" / "plots" / "nerfs").glob("*.png")
    readers = shards | {"results/sane/nerfs"} | {f"results/plots/nerfs/{p.name}" for p in previews}
    summary = run_snakemake(smoke_run, "--summary", "all", "--configfile", *changed)
    assert summary.returncode == 0, summary.stderr[-3000:]
    rows = [line.split("\t") for line in summary.stdout.splitlines() if "\t" in line]
    assert {row[0] for row in rows if "params changed" in row} == readers
    listing = run_snakemake(smoke_run, "--list-changes", "params", "all", "--configfile", *changed)
    assert listing.returncode == 0, listing.stderr[-3000:]
    assert shards <= {line.strip() for line in listing.stdout.splitlines()}


def inside_directory_output(path, results):
    """True for files inside a directory output (Snakemake marks those with a timestamp)."""
    return any((parent / ".snakemake_timestamp").exists()
               for parent in path.parents if parent != results and results in parent.parents)


def test_touching_file_inputs_without_changing_them_reruns_nothing(smoke_copy):
    """Snakemake compares the recorded checksum of an input file newer than the outputs
    (files up to --max-checksum-file-size, 1 MB by default), so a touch alone is no change.
    Only the mtime trigger is exercised here. Directory outputs (.zarr stores) have no
    checksum: touching their .snakemake_timestamp reruns their consumers, whatever the
    rerun triggers."""
    results = smoke_copy / "results"
    touched = [p for p in results.rglob("*")
               if p.is_file() and p.name != ".snakemake_timestamp"
               and not inside_directory_output(p, results)]
    assert any(p.name == "manifest.parquet" for p in touched)
    assert all(p.stat().st_size <= 1_000_000 for p in touched), "a file beyond the checksum limit"
    for path in touched:
        os.utime(path)
    proc = run_snakemake(smoke_copy, "-n", "all", "--rerun-triggers", "mtime",
                         "--configfile", str(SMOKE_CONFIG))
    assert proc.returncode == 0, proc.stderr[-3000:]
    stats = job_stats(proc.stdout + proc.stderr)
    assert stats == {}, f"touching {len(touched)} files schedules {stats}"
