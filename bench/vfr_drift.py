"""A/V offset after interpolating a real variable-frame-rate video with audio.

    .venv/bin/python bench/vfr_drift.py            # x2 and --fps 60; figures to bench/results/vfr_drift.json

The input is a real H.264 + AAC mp4 written by FFmpeg (through PyAV) with variable frame timestamps,
as a phone writes when it drops its rate in low light: 30 fps for 1.5 s, then 10 fps for 0.5 s
(50 frames, 2.0 s, average rate 250/9). Frames 44 (t = 1.467 s, the last one at 30 fps) and 49
(t = 1.9 s, the last frame) are white flashes, and the audio has a 1 kHz beep starting at each
flash. The CLI interpolates it (`python -m engine.cli interpolate vfr.mp4 out.mp4 [...]`); the
offset of a marker is the time of the brightest output frame of its flash minus the time of its
beep (the audio is copied with its timestamps); the last flash is on the last frame, so its offset is
the A/V offset at the end. Retimed correctly, every offset is at most one output frame.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
W, H = 160, 96
RATE = 48000
FLASHES = (44, 49)


def vfr_times() -> list[Fraction]:
    """30 fps for 1.5 s, then 10 fps for 0.5 s."""
    return [Fraction(i, 30) for i in range(45)] + [Fraction(3, 2) + Fraction(i, 10) for i in range(5)]


def _audio(container, stream, samples: np.ndarray, start: int, stop: int) -> int:
    block = 1024
    while start < stop:
        m = min(block, stop - start)
        f = av.AudioFrame.from_ndarray(np.ascontiguousarray(np.stack([samples[start:start + m]] * 2)), format="fltp",
                                       layout="stereo")
        f.sample_rate, f.pts, f.time_base = RATE, start, Fraction(1, RATE)
        container.mux(stream.encode(f))
        start += m
    return start


def make_vfr_clip(path, times=None, flashes=FLASHES, duration: float = 2.0) -> Path:
    """Write the VFR test clip (H.264 in a 1/90000 time base, AAC stereo with a beep at each flash)."""
    times = vfr_times() if times is None else times
    tb = Fraction(1, 90000)
    n = int(duration * RATE)
    beep = (0.8 * np.sin(2 * np.pi * 1000 * np.arange(480) / RATE)).astype(np.float32)
    samples = np.zeros(n, np.float32)
    for i in flashes:
        k = int(round(times[i] * RATE))
        samples[k:k + len(beep)] = beep
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=30)
        v.width, v.height, v.pix_fmt = W, H, "yuv420p"
        v.codec_context.time_base = v.time_base = tb
        a = c.add_stream("aac", rate=RATE)
        a.codec_context.layout = "stereo"
        a.codec_context.time_base = Fraction(1, RATE)
        pos = 0
        for i, t in enumerate(times):
            level = 250 if i in flashes else 40 + i  # a slow ramp, so in-betweens differ from their sources
            f = av.VideoFrame.from_ndarray(np.full((H, W, 3), level, np.uint8), format="rgb24")
            f.pts, f.time_base = int(t / tb), tb
            c.mux(v.encode(f))
            pos = _audio(c, a, samples, pos, min(n, int(t * RATE) + RATE // 10))
        c.mux(v.encode(None))
        _audio(c, a, samples, pos, n)
        c.mux(a.encode(None))
    return Path(path)


def marker_times(path) -> tuple[list[float], list[float], float]:
    """(flash times, beep times, video duration) of a file, in its own seconds."""
    with av.open(str(path)) as c:
        frames = [(float(f.time), float(f.to_ndarray(format="gray").mean())) for f in c.decode(c.streams.video[0])]
        vs = c.streams.video[0]
        duration = float(vs.duration * vs.time_base) if vs.duration else frames[-1][0] + 1 / float(vs.average_rate)
    with av.open(str(path)) as c:
        chunks, t0 = [], None
        for f in c.decode(c.streams.audio[0]):
            t0 = float(f.time) if t0 is None else t0
            chunks.append(f.to_ndarray()[0])
    loud = np.flatnonzero(np.abs(np.concatenate(chunks)) > 0.3)
    beeps = [t0 + g[0] / RATE for g in np.split(loud, np.flatnonzero(np.diff(loud) > RATE // 50) + 1) if len(g)]
    t = np.array([x[0] for x in frames])
    y = np.array([x[1] for x in frames])
    bright = np.flatnonzero(y > (y.min() + y.max()) / 2)
    flashes = [float(t[g[np.argmax(y[g])]]) for g in np.split(bright, np.flatnonzero(np.diff(bright) > 1) + 1)
               if len(g)]
    return flashes, beeps, duration


def offsets(path, source) -> dict:
    """Each flash of `path` against its beep in `source` (the audio is carried over by its timestamps)."""
    flashes, _, duration = marker_times(path)
    _, beeps, _ = marker_times(source)
    return dict(flashes_s=[round(f, 4) for f in flashes], beeps_s=[round(b, 4) for b in beeps],
                offsets_ms=[round(1000 * (f - b), 1) for f, b in zip(flashes, beeps)],
                flashes_found=f"{len(flashes)}/{len(beeps)}", video_duration_s=round(duration, 4))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default="/tmp/ve-vfr-bench")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "vfr_drift.json"))
    args = ap.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    src = make_vfr_clip(work / "vfr.mp4")
    results = dict(input=offsets(src, src))
    for label, extra in (("x2", []), ("fps60", ["--fps", "60"])):
        out = work / f"{label}.mp4"
        cmd = [sys.executable, "-m", "engine.cli", "interpolate", str(src), str(out), "-y", "--progress", "none", *extra]
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(r.stderr)
        with av.open(str(out)) as c:
            fps = c.streams.video[0].average_rate
        results[label] = dict(command=" ".join(cmd[1:]), out_fps=str(fps), one_frame_ms=round(1000 / float(fps), 1),
                              **offsets(out, src))
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
