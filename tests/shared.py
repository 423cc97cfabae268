"""Where the shared bench data lives (../shared beside the checkout, or $VE_SHARED)."""
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path | None:
    for cand in (os.environ.get("VE_SHARED"), ROOT.parent / "shared"):
        if cand and (Path(cand) / "bench" / "data").is_dir():
            return Path(cand)
    return None
