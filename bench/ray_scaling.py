"""One video on a local Ray: 1 task vs 2 tasks (1 torch thread each), built-in method, a 720p clip.

    .venv/bin/python bench/ray_scaling.py                # 240 frames 1280x720 x2, ~2 min on 2 cores
    .venv/bin/python bench/ray_scaling.py --frames 120   # shorter

Both runs are `engine.distributed.interpolate_chunked` on the same local Ray (started once, 2 CPUs,
not timed): chunk_frames = all frames (one task) and half of them (two tasks). Throughput is output
frames per second of wall time from submitting the tasks to the joined file, so it includes each
worker's model load, decode, interpolation, encode and the driver's join. The per-stage seconds
(decode wait, interpolation, encode wait, join) come from the runs' own reports, and are what the
scaling model in the README is built from. Results go to bench/results/ray_scaling.json.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine import distributed  # noqa: E402
from engine.options import Options  # noqa: E402
from engine.samples import make_sample_clip  # noqa: E402
from engine.video_io import probe  # noqa: E402

log = logging.getLogger("bench.ray_scaling")


def run(clip: Path, out: Path, chunk_frames: int) -> dict:
    if out.exists():
        out.unlink()
    t0 = time.perf_counter()
    rep = distributed.interpolate_chunked(clip, out, address="local", chunk_frames=chunk_frames,
                                          options=Options(multiplier=2), threads=1)
    wall = time.perf_counter() - t0
    return dict(tasks=len(rep["chunks"]), chunk_frames=chunk_frames, wall_s=round(wall, 2),
                frames_out=rep["frames_written"], fps_out=round(rep["frames_written"] / wall, 2),
                stage_seconds=rep["stage_seconds"], join_s=rep["timings"]["join_s"],
                chunks=[dict(outputs=c["outputs"], timings=c["timings"]) for c in rep["chunks"]])


def stages(clip: Path, n: int) -> dict:
    """Seconds per frame of each stage on one thread, in this process: decode, interpolate, encode."""
    import cv2
    import numpy as np
    import torch

    from engine import pipeline
    from engine.video_io import VideoReader, VideoWriter

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    t0 = time.perf_counter()
    with VideoReader(clip) as r:
        frames = [f for f, _ in zip(r, range(n))]
    decode = (time.perf_counter() - t0) / len(frames)
    x = torch.from_numpy(np.stack(frames)).float().div_(255)
    t0 = time.perf_counter()
    res = pipeline.interpolate(x, None, multiplier=2, cut_threshold=0)
    compute = (time.perf_counter() - t0) / (len(frames) - 1)  # per interpolated frame
    out = (res.frames.clamp(0, 1).mul(255).add(0.5)).to(torch.uint8).numpy()
    tmp = clip.with_name("stages_out.mp4")
    t0 = time.perf_counter()
    with VideoWriter(tmp, 48, out.shape[2], out.shape[1]) as w:
        for f in out:
            w.write(f)
    encode = (time.perf_counter() - t0) / len(out)
    tmp.unlink()
    return dict(frames=len(frames), decode_s_per_source_frame=round(decode, 4),
                interpolate_s_per_new_frame=round(compute, 4), encode_s_per_output_frame=round(encode, 4))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=240)
    ap.add_argument("--workdir", type=Path, default=ROOT / "bench" / "results" / "tmp")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "ray_scaling.json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.workdir.mkdir(parents=True, exist_ok=True)
    clip = args.workdir / f"ray_720p_{args.frames}.mp4"
    if not clip.is_file() or probe(clip, count_frames=True).frame_count != args.frames:
        make_sample_clip(clip, n_frames=args.frames, size=(1280, 720), fps=24, audio=True)
    with distributed.connect("local"):
        runs = [run(clip, args.workdir / "ray_out_1.mp4", args.frames),
                run(clip, args.workdir / "ray_out_2.mp4", (args.frames + 1) // 2)]
    one, two = runs
    per_stage = stages(clip, min(args.frames, 48))
    result = dict(stages_one_thread=per_stage, clip=dict(frames=args.frames, size=[1280, 720], fps=24), method="builtin-flow", multiplier=2,
                  cpus=os.cpu_count(), machine=platform.processor() or platform.machine(), runs=runs,
                  throughput_ratio_2_over_1=round(two["fps_out"] / one["fps_out"], 3))
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for r in runs:
        log.info("%d task(s): %.1fs wall, %.2f output frames/s; stages %s, join %.2fs", r["tasks"], r["wall_s"],
                 r["fps_out"], r["stage_seconds"], r["join_s"])
    log.info("one thread per stage: %s", per_stage)
    log.info("throughput 2 tasks / 1 task: %.2fx -> %s", result["throughput_ratio_2_over_1"], args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
