"""Fixtures shared by several test files; pytest.ini puts the repository root on sys.path."""
import pytest
import torch


@pytest.fixture
def one_thread():
    """One intra-op thread: on a shared 2-core machine two OpenMP threads ran small steps ~10x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
