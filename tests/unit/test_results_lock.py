"""One run per results folder (nfws.results_lock): refused while held, stale after a kill."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import yaml

import fake_data
from nfws.results_lock import LOCK_NAME, ResultsInUse, ResultsLock
from workflow_helpers import snakemake_cmd

HOLD = ("import sys, time\n"
        "from nfws.results_lock import ResultsLock\n"
        "ResultsLock(sys.argv[1]).acquire()\n"
        "print('held', flush=True)\n"
        "time.sleep(600)\n")


def wait_for(predicate, what, timeout=180):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.fixture
def holder(tmp_path):
    """Another process holding the lock of ``tmp_path / 'results'``; SIGKILLed at the end."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "results")],
                            cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    yield proc
    proc.kill()
    proc.wait()


def test_second_run_is_refused_naming_the_holder(tmp_path, holder):
    with pytest.raises(ResultsInUse) as err:
        ResultsLock(tmp_path / "results").acquire()
    message = str(err.value)
    assert f"results folder {tmp_path / 'results'} is in use by another run: pid {holder.pid} " \
           f"on host {socket.gethostname()}, working directory {tmp_path}, started 20" in message
    assert json.loads((tmp_path / "results" / LOCK_NAME).read_text())["pid"] == holder.pid


def test_lock_of_a_killed_run_is_cleared_and_reported(tmp_path, holder, caplog):
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    lock = ResultsLock(tmp_path / "results")
    lock.acquire()
    assert f"cleared the stale lock of a run that ended without releasing it (pid " \
           f"{holder.pid} on host" in caplog.text
    assert json.loads(lock.path.read_text())["pid"] == os.getpid()
    lock.release()
    assert not lock.path.exists()


def test_released_lock_is_free_and_acquire_is_idempotent(tmp_path, caplog):
    lock = ResultsLock(tmp_path / "results")
    lock.acquire()
    lock.acquire()
    lock.release()
    lock.release()
    other = ResultsLock(tmp_path / "results")
    other.acquire()
    other.release()
    assert "stale" not in caplog.text and not other.path.exists()


# ----- through the workflow ---------------------------------------------------------
def nf2vec_config(tmp_path, results):
    """nf2vec data whose first object's transforms file is a FIFO: the views store blocks
    reading it until something writes, so the run holding the lock stays alive."""
    root, _ = fake_data.nf2vec_tree(tmp_path / "nf2vec", objects_per_synset=5, n_views=2,
                                    size=8)
    fifo = root / fake_data.SYNSETS[0] / "model000" / "transforms_train.json"
    fifo.unlink()
    os.mkfifo(fifo)
    config = {"results": str(results), "device": "cpu",
              "data": {"shapenet": {"source": "nf2vec", "root": str(root),
                                    "classes": ["airplane", "car"], "resolution": 8},
                       "faces": {"count": 20, "resolution": 16}}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, fifo


def unblock(fifo):
    """Give a reader blocked on ``fifo`` an end of file (nothing when none is left)."""
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass


def snakemake(workdir, configfile, *args):
    return subprocess.run(snakemake_cmd(workdir, *args, "--configfile", str(configfile)),
                          capture_output=True, text=True, timeout=300)


def test_two_runs_on_one_results_folder(tmp_path):
    results = tmp_path / "shared_results"
    configfile, fifo = nf2vec_config(tmp_path, results)
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    first = subprocess.Popen(
        snakemake_cmd(first_dir, "--cores", "1", str(results / "data/shapenet/views.zarr"),
                      "--configfile", str(configfile)),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    lock_file = results / LOCK_NAME
    faces = str(results / "data/faces/manifest.parquet")
    try:
        wait_for(lambda: lock_file.exists() and lock_file.read_text().strip(),
                 "the first run to take the lock")
        assert json.loads(lock_file.read_text())["pid"] == first.pid
        second = snakemake(second_dir, configfile, "--cores", "1", faces)
        text = second.stdout + second.stderr
        assert second.returncode != 0
        assert f"is in use by another run: pid {first.pid} on host {socket.gethostname()}, " \
               f"working directory {first_dir}, started 20" in text, text[-3000:]
        assert not (results / "data/faces").exists()
        dry = snakemake(second_dir, configfile, "-n", faces)
        assert dry.returncode == 0, dry.stderr[-3000:]
        assert json.loads(lock_file.read_text())["pid"] == first.pid
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        unblock(fifo)
    third = snakemake(second_dir, configfile, "--cores", "1", faces)
    text = third.stdout + third.stderr
    assert third.returncode == 0, text[-3000:]
    assert f"{lock_file}: cleared the stale lock of a run that ended without releasing it " \
           f"(pid {first.pid} on host" in text
    assert (results / "data/faces/manifest.parquet").exists() and not lock_file.exists()
