"""Peak RSS of the ComfyUI server process: the streamed VIDEO node on a short and a 10x longer video,
and the IMAGE path on the short one, in one server, one run.

    .venv/bin/python bench/comfy_stream_memory.py                  # 300 and 3,000 frames, 1280x720, built-in flow
    .venv/bin/python bench/comfy_stream_memory.py --size 320x180   # smaller frames (bench/results/*_320x180.json)
    .venv/bin/python bench/comfy_stream_memory.py --frames 48 480  # a quick check of the machinery

Graphs (API format, built-in flow method, x2):
  stream: LoadVideo -> VideoInterpolateStream -> SaveVideo                       (300 and 3,000 frames)
  image:  LoadVideo -> GetVideoComponents -> VideoInterpolate -> CreateVideo -> SaveVideo   (300 frames)

One ComfyUI server (tools/comfyui.sh up, the project's launcher; --root as the tests use:
$VE_COMFY_ROOT or the default) serves every case in this order, each graph after one small warm-up
run of it (the stream cases first, so the IMAGE path's leftovers cannot hide their peaks). Before
each case the kernel's peak-RSS mark of the server process is reset (`echo 5 > /proc/PID/clear_refs`),
and after it VmHWM is read from /proc/PID/status: the peak of that case alone. psutil polls the RSS
alongside. The inputs (synthetic, with audio; engine.samples.make_sample_clip) are cached in --workdir
and linked into the server's input/ folder. The issue asks for the two stream peaks to differ by < 10%.
Results: bench/results/comfy_stream_memory.json. Linux only.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "comfyui"))

from engine.samples import make_sample_clip  # noqa: E402
from engine.video_io import probe  # noqa: E402
from server import ComfyServer, default_root, free_port  # noqa: E402  (the tests' launcher wrapper)

log = logging.getLogger("bench.comfy_stream_memory")
LIMIT = 0.10
MIB = 2 ** 20


def ensure_clip(path: Path, n: int, size: tuple[int, int], fps: int) -> Path:
    if path.is_file():
        try:
            info = probe(path, count_frames=True)
            if (info.frame_count, info.width, info.height) == (n, *size) and info.has_audio:
                return path
        except Exception:  # noqa: BLE001 - regenerate anything odd
            pass
    log.info("generating %s (%d frames %dx%d @ %d fps, audio) ...", path, n, size[0], size[1], fps)
    make_sample_clip(path, n_frames=n, size=size, fps=fps, audio=True)
    return path


def stream_graph(file: str, prefix: str, model: str) -> dict:
    return {
        "1": {"class_type": "LoadVideo", "inputs": {"file": file}},
        "2": {"class_type": "VideoInterpolateStream", "inputs": dict(
            video=["1", 0], model=model, multiplier=2, target_fps=0.0, scene_cut_threshold=0.3, precision="auto",
            save_output=False, filename_prefix="video/unused")},
        "3": {"class_type": "SaveVideo", "inputs": {"video": ["2", 0], "filename_prefix": prefix, "format": "auto",
                                                    "codec": "auto"}},
    }


def image_graph(file: str, prefix: str, model: str) -> dict:
    return {
        "1": {"class_type": "LoadVideo", "inputs": {"file": file}},
        "2": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}},
        "3": {"class_type": "VideoInterpolate", "inputs": dict(
            images=["2", 0], model=model, multiplier=2, target_fps=0.0, source_fps=["2", 2], scene_cut_threshold=0.3,
            precision="auto")},
        "4": {"class_type": "CreateVideo", "inputs": {"images": ["3", 0], "fps": ["3", 1], "audio": ["2", 1]}},
        "5": {"class_type": "SaveVideo", "inputs": {"video": ["4", 0], "filename_prefix": prefix, "format": "auto",
                                                    "codec": "auto"}},
    }


def _status_kb(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def measure(client, pid: int, prompt: dict, timeout: float, poll_s: float = 0.25) -> dict:
    """Run one prompt; the server's peak RSS during it (VmHWM after a reset) and polled RSS."""
    proc = psutil.Process(pid)
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")  # reset the peak-RSS mark to the current RSS
    start_rss = proc.memory_info().rss
    samples: list[tuple[float, int]] = []
    stop = threading.Event()
    t0 = time.perf_counter()

    def poll():
        while not stop.is_set():
            try:
                samples.append((round(time.perf_counter() - t0, 2), proc.memory_info().rss))
            except psutil.Error:
                return
            stop.wait(poll_s)

    th = threading.Thread(target=poll, daemon=True)
    th.start()
    try:
        result = client.run(prompt, timeout=timeout)
    finally:
        stop.set()
        th.join()
    wall = time.perf_counter() - t0
    result.raise_for_status()
    peak = _status_kb(pid, "VmHWM") * 1024
    return dict(peak_rss_bytes=peak, rss_before_bytes=start_rss, peak_above_start_bytes=peak - start_rss,
                polled_peak_rss_bytes=max(r for _, r in samples) if samples else None, polled_samples=len(samples),
                wall_s=round(wall, 1), result=result)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, nargs=2, default=[300, 3000], metavar=("SHORT", "LONG"))
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--fps", type=int, default=24)
    ap.add_argument("--model", default="builtin-flow")
    ap.add_argument("--no-image-path", action="store_true", help="skip the IMAGE-path comparison")
    ap.add_argument("--root", default=None, help="ComfyUI install root (default: as the tests: $VE_COMFY_ROOT ...)")
    ap.add_argument("--workdir", default="/tmp/ve-bench")
    ap.add_argument("--timeout", type=float, default=7200)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "comfy_stream_memory.json"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stdout)
    w, h = (int(v) for v in args.size.lower().split("x"))
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    short_n, long_n = args.frames
    clips = {n: ensure_clip(work / f"clip_{n}_{w}x{h}.mp4", n, (w, h), args.fps) for n in (12, short_n, long_n)}

    server = ComfyServer(Path(args.root) if args.root else default_root(), free_port())
    log.info("starting ComfyUI (tools/comfyui.sh up --root %s --port %d) ...", server.root, server.port)
    server.start()
    try:
        from client import ComfyClient

        client = ComfyClient(server.url, comfy_dir=server.comfy_dir)
        pid = int((server.root / "run" / f"comfyui-{server.port}.pid").read_text())
        version = client.system_stats().get("system", {}).get("comfyui_version")
        names = {}
        for n, path in clips.items():
            name = f"ve_bench_{n}_{w}x{h}.mp4"
            dst = server.comfy_dir / "input" / name
            dst.unlink(missing_ok=True)
            try:
                os.link(path, dst)
            except OSError:
                shutil.copyfile(path, dst)
            names[n] = name
        tag = time.strftime("%H%M%S")
        cases = [("stream", short_n), ("stream", long_n)] + ([] if args.no_image_path else [("image", short_n)])
        runs = []
        for kind, n in cases:
            if not any(r["path"] == kind for r in runs):  # each graph's first use loads its code: not measured
                log.info("warm-up run of the %s graph (12 frames) ...", kind)
                warm = (stream_graph if kind == "stream" else image_graph)(names[12], f"ve_bench/warm_{kind}_{tag}",
                                                                          args.model)
                client.run(warm, timeout=1200).raise_for_status()
            graph = (stream_graph if kind == "stream" else image_graph)(names[n], f"ve_bench/{kind}_{n}_{tag}",
                                                                        args.model)
            log.info("%s path, %d frames ...", kind, n)
            m = measure(client, pid, graph, args.timeout)
            result = m.pop("result")
            saved = [f for f in result.files() if f["type"] == "output"]
            out = client.file_path(saved[0])
            info = probe(out, count_frames=True)
            assert info.frame_count == 2 * n - 1 and info.fps == Fraction(2 * args.fps) and info.has_audio, info
            out.unlink()
            run = dict(path=kind, graph=" -> ".join(v["class_type"] for v in graph.values()), frames_in=n,
                       frames_out=info.frame_count, out_fps=str(info.fps), audio=info.has_audio, **m)
            runs.append(run)
            log.info("  %s %d -> %d frames in %.0fs: server peak RSS %.0f MiB (%.0f MiB above its %.0f MiB at the "
                     "start; polled peak %.0f MiB)", kind, n, run["frames_out"], run["wall_s"],
                     run["peak_rss_bytes"] / MIB, run["peak_above_start_bytes"] / MIB, run["rss_before_bytes"] / MIB,
                     (run["polled_peak_rss_bytes"] or 0) / MIB)
    finally:
        server.stop()
    short, long = runs[0], runs[1]
    rel = (long["peak_rss_bytes"] - short["peak_rss_bytes"]) / short["peak_rss_bytes"]
    ok = abs(rel) < LIMIT
    result = dict(
        benchmark="comfy_stream_memory",
        requirement=f"server peak RSS, stream path: {long_n} frames within {LIMIT:.0%} of {short_n} frames",
        passes=ok, relative_difference=round(rel, 4), comfyui_version=version, model=args.model, size=[w, h],
        command="python bench/comfy_stream_memory.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        runs=runs,
        machine=dict(platform=platform.platform(), python=platform.python_version(), cpus=os.cpu_count(),
                     ram_bytes=psutil.virtual_memory().total, shared="other jobs ran on the machine at the same time"),
        measured_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )
    if len(runs) > 2:
        result["image_path_vs_stream_short"] = round(runs[2]["peak_rss_bytes"] / short["peak_rss_bytes"], 2)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    log.info("stream: %d frames %.0f MiB, %d frames %.0f MiB (%+.1f%%, limit %.0f%%): %s%s", short_n,
             short["peak_rss_bytes"] / MIB, long_n, long["peak_rss_bytes"] / MIB, 100 * rel, 100 * LIMIT,
             "PASS" if ok else "FAIL",
             f"; image path {short_n} frames {runs[2]['peak_rss_bytes'] / MIB:.0f} MiB" if len(runs) > 2 else "")
    log.info("wrote %s", args.out)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
