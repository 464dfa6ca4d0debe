import pytest
import torch

import smt  # noqa: F401  (registers the models with timm)

# One intra-op thread: tests are small, and oversubscribed OpenMP threads (two xdist workers, or a busy
# machine) spin and made float64 forwards 10-20x slower.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
