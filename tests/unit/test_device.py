import multiprocessing as mp
import os
import time

import pytest
import torch

import nfws.device
from nfws.device import check_config_devices, choose_device, cuda_keys, gpu_slot, job_device


def test_choose_device_cpu_and_auto():
    assert choose_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert choose_device("auto").type == expected


def test_choose_device_rejects_bad_value():
    with pytest.raises(ValueError, match="device"):
        choose_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error")
def test_choose_device_cuda_without_gpu_fails():
    with pytest.raises(RuntimeError, match="no CUDA"):
        choose_device("cuda")


def _hold(lock_dir, n_gpus, hold_seconds, queue):
    with gpu_slot(lock_dir, n_gpus=n_gpus, poll_seconds=0.02) as index:
        queue.put((index, os.environ["CUDA_VISIBLE_DEVICES"], time.monotonic()))
        time.sleep(hold_seconds)
        releasing = time.monotonic()   # still held: any other holder acquires after this
    queue.put(("released", index, releasing))


def test_concurrent_jobs_get_distinct_slots(tmp_path):
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_hold, args=(tmp_path, 3, 0.6, queue)) for _ in range(3)]
    for p in procs:
        p.start()
    got = [queue.get(timeout=10) for _ in range(6)]
    for p in procs:
        p.join(timeout=10)
    acquired = [g for g in got if g[0] != "released"]
    assert sorted(g[0] for g in acquired) == [0, 1, 2]
    assert sorted(g[1] for g in acquired) == ["0", "1", "2"]


def test_job_waits_when_all_slots_busy(tmp_path):
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    first = ctx.Process(target=_hold, args=(tmp_path, 1, 0.5, queue))
    first.start()
    index, _, t_first = queue.get(timeout=10)
    second = ctx.Process(target=_hold, args=(tmp_path, 1, 0.0, queue))
    second.start()
    events = [queue.get(timeout=10) for _ in range(3)]
    first.join(timeout=10)
    second.join(timeout=10)
    released = next(e for e in events if e[0] == "released" and e[2] >= t_first + 0.45)
    second_acquired = next(e for e in events if e[0] != "released")
    assert index == 0 and second_acquired[0] == 0
    # the second job only got GPU 0 after the first released it
    assert second_acquired[2] >= released[2]


def test_slot_restores_environment_and_handles_no_gpu(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with gpu_slot(tmp_path, n_gpus=2) as index:
        assert index == 0 and os.environ["CUDA_VISIBLE_DEVICES"] == "0"
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
    with gpu_slot(tmp_path, n_gpus=0) as none:
        assert none is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback")
def test_job_device_on_cpu_locks_nothing(tmp_path):
    for choice in ("cpu", "auto"):
        with job_device(choice, tmp_path / "locks") as device:
            assert device == torch.device("cpu")
    assert not (tmp_path / "locks").exists()


CONFIG_ASKING_CUDA = {"device": "cuda", "check_device": True,
                      "diffusion": {"model": {"device": "cuda"},
                                    "feature_extractor": {"device": "auto"}}}


def test_cuda_keys_are_named_at_any_depth():
    assert cuda_keys(CONFIG_ASKING_CUDA) == ["device", "diffusion.model.device"]
    assert cuda_keys({"device": "auto", "nerf": {"device": "cpu"}}) == []


def test_config_asking_cuda_without_a_gpu_fails_naming_the_keys(monkeypatch):
    monkeypatch.setattr(nfws.device, "visible_gpu_count", lambda: 0)
    with pytest.raises(RuntimeError, match=r"config key device, diffusion\.model\.device: "
                                           r"'cuda' requested but this machine has no CUDA"):
        check_config_devices(CONFIG_ASKING_CUDA)
    check_config_devices({"device": "auto", "check_device": True})   # auto never fails
    check_config_devices({**CONFIG_ASKING_CUDA, "check_device": False})  # opted out


def test_config_asking_cuda_with_a_gpu_passes(monkeypatch):
    monkeypatch.setattr(nfws.device, "visible_gpu_count", lambda: 1)
    check_config_devices(CONFIG_ASKING_CUDA)
