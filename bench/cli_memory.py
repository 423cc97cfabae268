"""Peak RSS of the streaming CLI for a short and a 10x longer video: memory must stay flat.

    .venv/bin/python bench/cli_memory.py                 # 300 and 3,000 frames, 1280x720, built-in flow (~8 min)
    .venv/bin/python bench/cli_memory.py --model blend   # the same with the linear blend (~2 min)

Both inputs are synthetic (engine.samples.make_sample_clip, with audio) and cached in --workdir.
Each run is one child process `python -m engine.cli interpolate IN OUT --multiplier 2 ...` with the
same method and settings; its peak RSS is the kernel's own high-water mark for that child
(os.wait4's ru_maxrss), with psutil polling alongside for the RSS over time. The issue requires the
two peaks to differ by less than 10%. Results go to bench/results/cli_memory.json.

The default method is the CLI's own default, the built-in optical flow: on 2 cores the 3,000-frame
run takes about 6 minutes (0.06 s per interpolated 720p frame on a quiet machine, up to 2-3x that
under load). `--model blend` measures the same streaming machinery (decoder queue, sliding window,
encoder queue, audio, x264) in about 2 minutes. Linux only (os.wait4).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.samples import make_sample_clip  # noqa: E402
from engine.video_io import best_codec, probe  # noqa: E402

log = logging.getLogger("bench.cli_memory")
LIMIT = 0.10


def ensure_clip(path: Path, n: int, size: tuple[int, int], fps: int) -> Path:
    if path.is_file():
        try:
            info = probe(path, count_frames=True)
            if (info.frame_count, info.width, info.height) == (n, *size) and info.has_audio:
                log.info("reusing %s", path)
                return path
        except Exception:  # noqa: BLE001 - regenerate anything odd
            pass
    log.info("generating %s: %d frames %dx%d @ %d fps with audio ...", path, n, size[0], size[1], fps)
    t0 = time.perf_counter()
    make_sample_clip(path, n_frames=n, size=size, fps=fps, audio=True)
    log.info("  done in %.0fs", time.perf_counter() - t0)
    return path


def measure(cmd: list[str], poll_s: float = 0.25) -> dict:
    """Run cmd as one child; its peak RSS from wait4 (kernel high-water mark) plus polled RSS."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc = psutil.Process(p.pid)
    samples: list[tuple[float, int]] = []
    status = rusage = None
    while True:
        pid, status, rusage = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        try:
            samples.append((time.perf_counter() - t0, proc.memory_info().rss))
        except psutil.Error:
            pass
        time.sleep(poll_s)
    p.returncode = os.waitstatus_to_exitcode(status)  # reaped here, so Popen must not wait again
    out, err = p.stdout.read().decode(), p.stderr.read().decode()
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n{err}")
    rss = [r for _, r in samples]
    n = len(rss)
    middle = sorted(rss[n // 4: max(n // 4 + 1, 3 * n // 4)])
    return dict(peak_rss_bytes=int(rusage.ru_maxrss) * 1024, wall_s=round(wall, 1), polled_samples=n,
                polled_peak_rss_bytes=max(rss) if rss else None,
                polled_median_rss_mid_run_bytes=middle[len(middle) // 2] if middle else None,
                stdout=out.strip())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, nargs=2, default=[300, 3000], metavar=("SHORT", "LONG"))
    ap.add_argument("--size", default="1280x720", help="WxH of the synthetic inputs")
    ap.add_argument("--fps", type=int, default=24)
    ap.add_argument("--model", default="builtin-flow",
                    help="method for both runs (default builtin-flow, the CLI's default; blend is ~3x faster)")
    ap.add_argument("--workdir", default="/tmp/ve-bench", help="where the inputs are generated and cached")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "cli_memory.json"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    logging.getLogger("engine").setLevel(logging.WARNING)
    w, h = (int(v) for v in args.size.lower().split("x"))
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    runs = []
    for n in args.frames:
        clip = ensure_clip(work / f"clip_{n}_{w}x{h}.mp4", n, (w, h), args.fps)
        out, report = work / f"out_{n}.mp4", work / f"report_{n}.json"
        cmd = [sys.executable, "-m", "engine.cli", "interpolate", str(clip), str(out), "--multiplier", "2",
               "--model", args.model, "--progress", "none", "--overwrite", "--report", str(report)]
        log.info("running: %s", " ".join(cmd[1:]))
        m = measure(cmd)
        rep = json.loads(report.read_text())
        info = probe(out, count_frames=True)
        assert info.frame_count == rep["frames_out"] == 2 * n - 1, (info.frame_count, rep["frames_out"])
        out.unlink()
        run = dict(frames_in=n, frames_out=rep["frames_out"], size=[w, h], method=rep["method"],
                   settings=rep["final_settings"], codec=rep.get("codec"), audio=rep["audio"]["status"],
                   command=" ".join(["python"] + cmd[1:]), **{k: v for k, v in m.items() if k != "stdout"},
                   cli_reported_peak_rss_bytes=rep["peak_rss_bytes"],
                   peak_source_frames_held=rep["streaming"]["peak_source_frames_held"],
                   timings=rep["timings"])
        runs.append(run)
        log.info("  %d -> %d frames in %.0fs: peak RSS %.1f MiB (polled peak %.1f MiB, mid-run median %.1f MiB)",
                 n, run["frames_out"], run["wall_s"], run["peak_rss_bytes"] / 2**20,
                 (run["polled_peak_rss_bytes"] or 0) / 2**20, (run["polled_median_rss_mid_run_bytes"] or 0) / 2**20)
    short, long = runs
    rel = (long["peak_rss_bytes"] - short["peak_rss_bytes"]) / short["peak_rss_bytes"]
    ok = abs(rel) < LIMIT
    result = dict(
        benchmark="cli_memory", requirement=f"peak RSS of the {args.frames[1]}-frame run within {LIMIT:.0%} of the "
                                            f"{args.frames[0]}-frame run", passes=ok,
        relative_difference=round(rel, 4), runs=runs,
        machine=dict(platform=platform.platform(), python=platform.python_version(), cpus=os.cpu_count(),
                     ram_bytes=psutil.virtual_memory().total, codec=best_codec()),
        measured_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    log.info("peak RSS: %d frames %.1f MiB, %d frames %.1f MiB, relative difference %+.1f%% (limit %.0f%%): %s",
             short["frames_in"], short["peak_rss_bytes"] / 2**20, long["frames_in"], long["peak_rss_bytes"] / 2**20,
             100 * rel, 100 * LIMIT, "PASS" if ok else "FAIL")
    log.info("wrote %s", args.out)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
