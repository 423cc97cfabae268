"""FILM speed and memory: our engine.film against ComfyUI core's own film_net, same weights, same run.

    .venv/bin/python bench/film.py                  # 448x256, x2 over 4 real frames, 3 interleaved rounds
    .venv/bin/python bench/film.py --rounds 5 --frames 6

Core's film_net.py is imported from the 0.25 tarball in ../shared/comfyui (tests/core_film.py; never
copied), built with random weights (seed 0); ours is loaded from its state dict through the zoo.
The frames are the shared bench's bigbuckbunny clip (448x256, real footage), fp32 on the CPU.

Each round runs both on the same job, alternating which goes first: x2 over the frames, core the way
its FrameInterpolate node drives it (features of a frame extracted once and handed to the next pair,
forward_multi_timestep per pair), ours through the engine's Runner (batch 1: features cached per
frame, flows once per pair). ms/frame is per interpolated frame; the ratio is core / ours per round
(> 1: ours faster). Peak memory is the peak of live tensor bytes while one pair is interpolated
(engine.guard.measure_peak_bytes, the counter the guard calibrates with), for each. The machine may
be shared: the ratio from interleaved rounds is the figure to read, not the absolute times.
Results go to bench/results/film.json.
"""
from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the oracle loader lives with the tests

import core_film  # noqa: E402
from engine.guard import measure_peak_bytes  # noqa: E402
from engine.methods import FilmMethod  # noqa: E402
from engine.runner import Runner, Settings, allocate_output  # noqa: E402
from engine.schedule import make_schedule  # noqa: E402
from engine.zoo import build_film  # noqa: E402
from shared import shared_dir  # noqa: E402

log = logging.getLogger("bench.film")


def core_x2(net, frames_bchw):
    """Core's node loop for multiplier 2 (features of img1 reused as the next pair's img0)."""
    outs, cache = [], {}
    for i in range(len(frames_bchw) - 1):
        cache["img0"] = cache.pop("next") if "next" in cache else net.extract_features(frames_bchw[i])
        cache["img1"] = net.extract_features(frames_bchw[i + 1])
        cache["next"] = cache["img1"]
        outs.append(net.forward_multi_timestep(frames_bchw[i], frames_bchw[i + 1], [0.5], cache=cache))
    return torch.cat(outs).clamp(0, 1)


def ours_x2(method, frames_hwc):
    sched = make_schedule(len(frames_hwc), 2)
    out = allocate_output(sched.n_out, *frames_hwc.shape[1:3])
    Runner(method, Settings(batch_size=1)).run(frames_hwc, sched, out)
    return out[1::2].permute(0, 3, 1, 2)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "film.json"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        core = core_film.load(Path(tmp))
    if core is None or shared_dir() is None:
        log.error("needs ../shared/comfyui/ComfyUI-0.25.*.tar.gz and ../shared/bench/data")
        return 2
    with np.load(shared_dir() / "bench" / "data" / "bigbuckbunny.npz") as z:
        u8 = z["frames"][20:20 + args.frames]
    frames = torch.from_numpy(u8).float().div(255)  # [N, 256, 448, 3]
    h, w = frames.shape[1:3]
    bchw = [f.permute(2, 0, 1)[None].contiguous() for f in frames]

    torch.manual_seed(0)
    core_net = core.FILMNet().eval().requires_grad_(False)
    method = FilmMethod(build_film(core_net.state_dict()), "random-seed0").to("cpu", torch.float32)
    n_mid = args.frames - 1

    with torch.inference_mode():
        ref, got = core_x2(core_net, bchw), ours_x2(method, frames)  # warm-up, and the outputs agree
        max_diff = float((ref - got).abs().max())
        rounds = []
        for r in range(args.rounds):
            order = ("core", "ours") if r % 2 == 0 else ("ours", "core")
            row = {}
            for who in order:
                t0 = time.perf_counter()
                core_x2(core_net, bchw) if who == "core" else ours_x2(method, frames)
                row[who] = (time.perf_counter() - t0) * 1000 / n_mid
            row["ratio"] = row["core"] / row["ours"]
            rounds.append(row)
            log.info("round %d: core %.0f ms/frame, ours %.0f ms/frame, core/ours %.2f", r + 1, row["core"],
                     row["ours"], row["ratio"])
        peak_core = measure_peak_bytes(lambda: core_x2(core_net, bchw[:2]), "cpu")
        peak_ours = measure_peak_bytes(lambda: ours_x2(method, frames[:2]), "cpu")

    result = dict(
        benchmark="film", size=[int(w), int(h)], frames=args.frames, interpolated_frames=n_mid, rounds=args.rounds,
        device="cpu", dtype="float32", threads=args.threads, weights="random (torch.manual_seed(0), core's init)",
        clip="bigbuckbunny (shared bench), frames 20..",
        ms_per_frame_core_median=round(statistics.median(r["core"] for r in rounds), 1),
        ms_per_frame_ours_median=round(statistics.median(r["ours"] for r in rounds), 1),
        ratio_core_over_ours_median=round(statistics.median(r["ratio"] for r in rounds), 3),
        rounds_detail=[{k: round(v, 3) for k, v in r.items()} for r in rounds],
        peak_tensor_mib_one_pair_core=round(peak_core / 2**20, 1),
        peak_tensor_mib_one_pair_ours=round(peak_ours / 2**20, 1),
        max_abs_diff_core_vs_ours=max_diff,
        machine=dict(python=platform.python_version(), torch=torch.__version__, processor=platform.processor(),
                     note="shared 2-core machine, other jobs running: read the interleaved ratio"),
        command="python bench/film.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    log.info("core %.0f ms/frame, ours %.0f ms/frame (core/ours %.2f); peak one pair: core %.0f MiB, ours %.0f MiB; "
             "max |diff| %.2g -> %s", result["ms_per_frame_core_median"], result["ms_per_frame_ours_median"],
             result["ratio_core_over_ours_median"], result["peak_tensor_mib_one_pair_core"],
             result["peak_tensor_mib_one_pair_ours"], max_diff, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
