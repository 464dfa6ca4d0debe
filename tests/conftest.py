import os

import pytest
import torch

import smt  # noqa: F401  (registers the models with timm)

# One intra-op thread per xdist worker: oversubscribed OpenMP threads spin and slow everything down.
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
