"""Benchmarks set a thread count for a section and give the process its own back."""
import pytest
import torch

from nfws.bench._threads import torch_threads


def test_thread_count_is_set_inside_and_restored_after_an_error():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with pytest.raises(RuntimeError, match="inside"):
            with torch_threads(1):
                assert torch.get_num_threads() == 1
                raise RuntimeError("inside")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
