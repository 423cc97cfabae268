"""Where the shared bench data lives (../shared beside the checkout, or $VE_SHARED)."""
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path | None:
    for cand in (os.environ.get("VE_SHARED"), ROOT.parent / "shared"):
        if cand and (Path(cand) / "bench" / "data").is_dir():
            return Path(cand)
    return None


def bench_clip(name: str):
    """uint8 frames [N, H, W, 3] of a shared bench clip (bigbuckbunny, carphone, ...), or None."""
    sd = shared_dir()
    if sd is None:
        return None
    import numpy as np

    with np.load(sd / "bench" / "data" / f"{name}.npz") as z:
        return z["frames"]
