"""Scale out on Ray: many videos (one task each), or one long video in chunks (one task per chunk).

    python -m engine.cli batch a.mp4 b.mp4 c.mp4 --out-dir out/ --ray local
    python -m engine.cli interpolate long.mp4 long_x2.mp4 --ray local --chunk-frames 600

Ray is an optional extra (requirements-ray.txt); nothing else in the pack imports it. `local`
starts a Ray on this machine for the run; any other address joins a running cluster (`auto`,
`ray://host:port`). Input, model and output folder must be visible at the same paths to every
worker: a shared file system on a cluster, trivially so with `local`. The engine package itself
is shipped to the workers (Ray's py_modules).

Chunks. The schedule (multiplier or exact target fps) is built once for the whole video, and
chunk k owns the outputs whose left source frame lies in its source range [a, b): the last chunk
also the final source frame. Its worker decodes frames a..b itself (VideoReader(start=a): one
frame of overlap, for the pair (b - 1, b)), runs the streamed entry point over just its output
range and encodes a piece without audio; no raw frame goes through Ray's object store. A scene
cut is scored from the two frames of its pair, so every pair is scored by exactly one chunk, the
same way as in one process. The driver joins the pieces in order without re-encoding
(VideoWriter.append_file) and adds the audio once. The frames handed to the encoder are therefore
identical to a one-process run; with a lossless codec (ffv1, png) so are the decoded frames, with
a lossy one the encoder starts afresh (a keyframe) at each chunk.

Faults. A task whose worker dies is retried by Ray (max_retries) and rewrites its piece from the
start; an error in the task itself (a corrupt input, a bad model) is not retried. Ctrl-C cancels
every task; the pieces' temporary folder is removed in every case and nothing appears at the
output name unless the whole run succeeded.
"""
from __future__ import annotations

import bisect
import contextlib
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from .errors import Cancelled, InputError, describe
from .options import Options, fps_text
from .schedule import Schedule
from .stream import source_frames
from .video_io import VideoIOError, VideoWriter, probe

log = logging.getLogger(__name__)

TASK_RETRIES = 3  # Ray re-runs a task this often when its worker process dies
POLL_S = 0.25


def _ray():
    try:
        import ray
    except ImportError:
        raise InputError("--ray needs Ray, an optional extra: pip install -r requirements-ray.txt") from None
    return ray


@contextlib.contextmanager
def connect(address: str):
    """Ray for the duration of the block: 'local' starts one here, anything else joins that cluster."""
    ray = _ray()
    if ray.is_initialized():
        yield ray
        return
    import engine

    runtime_env = {"py_modules": [str(Path(engine.__file__).resolve().parent)],
                   "env_vars": {"PYTHONWARNINGS": "ignore::DeprecationWarning"}}
    kw = dict(include_dashboard=False, log_to_driver=False, runtime_env=runtime_env, logging_level=logging.ERROR)
    try:
        if address == "local":
            ray.init(_node_ip_address="127.0.0.1", **kw)  # a local Ray talks over loopback only
        else:
            ray.init(address=address, **kw)
    except Exception as exc:  # noqa: BLE001 - Ray raises many kinds for an unreachable cluster
        raise InputError(f"cannot start or join Ray at {address!r}: {describe(exc)}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


# ============================================================================ chunks of one video
@dataclass(frozen=True)
class Chunk:
    """Outputs [out_lo, out_hi) of the global schedule; they read source frames src_lo .. src_hi."""

    index: int
    src_lo: int
    src_hi: int
    out_lo: int
    out_hi: int

    @property
    def frames(self) -> int:
        return self.out_hi - self.out_lo


def plan_chunks(sched: Schedule, chunk_frames: int) -> list[Chunk]:
    """Split the schedule by source frames: chunk k owns the outputs whose left frame is in [k*N, (k+1)*N)."""
    if isinstance(chunk_frames, bool) or not isinstance(chunk_frames, int) or chunk_frames < 2:
        raise InputError(f"--chunk-frames must be a whole number >= 2 (source frames per task), got {chunk_frames!r}")
    chunks: list[Chunk] = []
    for a in range(0, max(sched.n_in, 1), chunk_frames):
        b = min(a + chunk_frames, sched.n_in)
        lo = bisect.bisect_left(range(sched.n_out), a, key=sched.position)  # first output at or after frame a
        hi = sched.n_out if b >= sched.n_in else bisect.bisect_left(range(sched.n_out), b, key=sched.position)
        if lo < hi:
            chunks.append(Chunk(len(chunks), a, min(b, sched.n_in - 1), lo, hi))
    return chunks


@dataclass(frozen=True)
class Job:
    """What a worker needs for one chunk (or one whole video: chunk None). Plain data: it is pickled."""

    input: str
    output: str
    options: Options
    model: str | None
    encode: dict  # codec, crf, preset, pix_fmt
    chunk: Chunk | None = None
    overwrite: bool = False
    threads: int | None = None


def run_job(job: Job, progress=None) -> dict:
    """One chunk or one video in this process; returns its report. progress(key, frames_done), if given,
    is called at most every half second and at the end."""
    from . import cli  # noqa: PLC0415 - the command line's file-level entry point

    if job.threads:  # torch's and OpenCV's thread pools (the built-in method is OpenCV)
        import cv2
        import torch

        torch.set_num_threads(job.threads)
        cv2.setNumThreads(job.threads)
    part = None if job.chunk is None else (job.chunk.out_lo, job.chunk.out_hi)
    key = job.chunk.index if job.chunk is not None else job.input
    last = [0.0]

    def on_written(done, total):
        now = time.monotonic()
        if progress is not None and (now - last[0] >= 0.5 or done >= total):
            last[0] = now
            progress(key, done - (part[0] if part else 0))

    return cli.interpolate_file(job.input, job.output, options=job.options, model=job.model, part=part,
                                audio=job.chunk is None, overwrite=job.overwrite, on_written=on_written,
                                **job.encode)


class _ProgressBoard:
    """A Ray actor the tasks report to: frames done per task key."""

    def __init__(self):
        self.done: dict = {}

    def update(self, key, n: int) -> None:
        self.done[key] = n

    def total(self) -> int:
        return sum(self.done.values())


def render(job: Job, board) -> dict:
    """The Ray task: run_job, reporting progress to the board actor."""
    return run_job(job, lambda key, n: board.update.remote(key, n))


def _remote(ray, cluster_gpus: float):
    """render as a Ray task: retried when its worker dies, one CPU (and a GPU where the cluster has them)."""
    opts = dict(max_retries=TASK_RETRIES, num_cpus=1, num_gpus=1 if cluster_gpus >= 1 else 0)
    return ray.remote(**opts)(render)


def _wait_all(ray, refs: list, board, bar, stop) -> None:
    """Wait for every ref, updating the bar from the board; Ctrl-C (stop) cancels them all."""
    pending = list(refs)
    try:
        while pending:
            if stop is not None and stop():
                raise Cancelled("interpolation cancelled")
            _, pending = ray.wait(pending, num_returns=len(pending), timeout=POLL_S)
            if bar is not None:
                bar.update(ray.get(board.total.remote()))
    except BaseException:
        for ref in refs:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        raise


def _get(ray, ref):
    """ray.get, raising the task's own exception (an InputError stays one) rather than Ray's wrapper."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, Exception):
            raise cause from None
        raise


def interpolate_chunked(input_path, output_path, *, address: str, chunk_frames: int, options: Options,
                        model: str | None = None, models_dir=None, overwrite: bool = False, encode: dict | None = None,
                        progress=None, stop=None, threads: int | None = None) -> dict:
    """interpolate_file for one video, split into chunks of source frames run as Ray tasks; returns the report."""
    from . import cli  # noqa: PLC0415

    t0 = time.perf_counter()
    encode = dict(encode or {})
    info = probe(input_path, count_frames=True)
    n_in, times = source_frames(info)
    if n_in < 1:
        raise VideoIOError(f"'{input_path}' has a video stream but no frames")
    opts = options.replace(src_fps=info.fps)
    sched = opts.schedule(n_in, times=times)  # the same schedule (variable frame rate included) as each worker's
    chunks = plan_chunks(sched, chunk_frames)
    spec = cli.resolve_model(model, cli.model_dirs(models_dir), models_dir)
    out = Path(output_path)
    VideoWriter.check_path(out, overwrite, protect=[input_path])  # before any work: fails in a second
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.stem}.chunks.", dir=out.parent if str(out.parent) else "."))
    pieces = [tmp / f"piece{c.index:05d}{out.suffix}" for c in chunks]
    try:
        with connect(address) as ray, _bar(progress, sched.n_out) as bar:
            board = ray.remote(num_cpus=0)(_ProgressBoard).remote()
            task = _remote(ray, ray.cluster_resources().get("GPU", 0))
            refs = [task.remote(Job(str(input_path), str(p), opts, spec, encode, c, overwrite=True, threads=threads),
                                board) for c, p in zip(chunks, pieces)]
            log.info("%d chunks of %d source frames as Ray tasks", len(chunks), chunk_frames)
            _wait_all(ray, refs, board, bar, stop)
            reports = [_get(ray, r) for r in refs]
        for c, r in zip(chunks, reports):
            if r["frames_written"] != c.frames:
                raise RuntimeError(f"chunk {c.index} wrote {r['frames_written']} frames, expected {c.frames}")
        t_join = time.perf_counter()
        with VideoWriter(out, sched.dst_fps, info.width, info.height, overwrite=overwrite, template=pieces[0],
                         protect=[input_path], audio_from=input_path if info.has_audio else None, **encode) as writer:
            for c, p in zip(chunks, pieces):
                writer.append_file(p, c.frames)
        join_s = time.perf_counter() - t_join
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return merge_reports(reports, chunks, sched, dict(
        input=str(input_path), output=str(writer.final_path), status="complete", frames_in=n_in,
        frames_out=sched.n_out, frames_written=writer.frames_written, size=[info.width, info.height],
        src_fps=str(info.fps), dst_fps=str(sched.dst_fps), codec=writer.codec, pix_fmt=writer.pix_fmt,
        audio=dict(status=writer.audio_status, detail=writer.audio_detail),
        timings=dict(total_s=round(time.perf_counter() - t0, 3), join_s=round(join_s, 3))))


def merge_reports(reports: list[dict], chunks: list[Chunk], sched: Schedule, head: dict) -> dict:
    """One report for a chunked run: the chunks' cuts, fallbacks and per-stage times put together."""
    first = reports[0]
    stages = ("probe_s", "load_s", "plan_s", "process_s", "decode_wait_s", "encode_wait_s", "finalize_s")
    head.update(
        method=first.get("method"), model=first.get("model"), multiplier=first.get("multiplier"),
        cuts=sorted({c for r in reports for c in r.get("cuts", [])}), cut_threshold=first.get("cut_threshold"),
        fallbacks=[dict(ev, chunk=c.index) for c, r in zip(chunks, reports) for ev in r.get("fallbacks", [])],
        path=[p for r in reports for p in r.get("path", [])],
        passthrough_frames=sum(r.get("passthrough_frames") or 0 for r in reports),
        chunks=[dict(index=c.index, source=[c.src_lo, c.src_hi], outputs=[c.out_lo, c.out_hi],
                     timings=r.get("timings", {}), method=r.get("method")) for c, r in zip(chunks, reports)],
        stage_seconds={s: round(sum(r.get("timings", {}).get(s, 0.0) for r in reports), 3) for s in stages},
    )
    head["elapsed_s"] = head["timings"]["total_s"]
    return head


# ============================================================================ many videos
def batch_outputs(inputs: list, out_dir) -> list[Path]:
    """DIR/<input name> for each input; two inputs with one name (or an input inside DIR) are refused."""
    out_dir = Path(out_dir)
    outs, seen = [], {}
    for src in inputs:
        o = out_dir / Path(src).name
        if o.name in seen:
            raise InputError(f"'{src}' and '{seen[o.name]}' would both be written to '{o}'; give them different "
                             "names or run them separately")
        seen[o.name] = src
        with contextlib.suppress(OSError):
            if o.resolve() == Path(src).resolve():
                raise InputError(f"'{src}' is inside --out-dir; its output would replace it. Choose another folder")
        outs.append(o)
    return outs


def run_batch(inputs: list, out_dir, *, options: Options, address: str | None = None, model: str | None = None,
              models_dir=None, overwrite: bool = False, encode: dict | None = None, progress=None, stop=None,
              threads: int | None = None) -> list[dict]:
    """Interpolate every input into out_dir (one Ray task per video, or one after another without Ray).

    A failed video does not stop the others: each entry says status "complete" or "failed" with the
    error. Ctrl-C stops everything (Cancelled).
    """
    from . import cli  # noqa: PLC0415

    if not inputs:
        raise InputError("batch needs at least one input video")
    outs = batch_outputs(inputs, out_dir)
    spec = cli.resolve_model(model, cli.model_dirs(models_dir), models_dir)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    jobs = [Job(str(i), str(o), options, spec, dict(encode or {}), overwrite=overwrite, threads=threads)
            for i, o in zip(inputs, outs)]
    total = sum(_frames_out(job) for job in jobs)
    if address is None:
        board, results = _ProgressBoard(), []
        with _bar(progress, total) as bar:
            def report(key, n):
                board.update(key, n)
                if bar is not None:
                    bar.update(board.total())

            for job in jobs:
                if stop is not None and stop():
                    raise Cancelled("interpolation cancelled")
                results.append(_batch_entry(job, lambda j=job: run_job(j, report)))
        return results
    with connect(address) as ray, _bar(progress, total) as bar:
        board = ray.remote(num_cpus=0)(_ProgressBoard).remote()
        task = _remote(ray, ray.cluster_resources().get("GPU", 0))
        refs = [task.remote(job, board) for job in jobs]
        _wait_all(ray, refs, board, bar, stop)
        return [_batch_entry(job, lambda r=ref: _get(ray, r)) for job, ref in zip(jobs, refs)]


@contextlib.contextmanager
def _bar(progress, total: int):
    bar = progress(total) if progress is not None else None
    try:
        yield bar
    finally:
        if bar is not None:
            bar.close()


def _frames_out(job: Job) -> int:
    """How many frames a video of the batch will give (0 when it cannot be read: it fails later, alone)."""
    try:
        info = probe(job.input, count_frames=True)
        n_in, times = source_frames(info)
        return job.options.replace(src_fps=info.fps).schedule(n_in, times=times).n_out
    except Exception:  # noqa: BLE001 - reported by its own task
        return 0


def _batch_entry(job: Job, get) -> dict:
    t0 = time.perf_counter()
    entry = dict(input=job.input, output=job.output)
    try:
        report = get()
    except (KeyboardInterrupt, Cancelled):
        raise
    except Exception as exc:  # noqa: BLE001 - one video's failure is reported, the others go on
        entry.update(status="failed", error=" ".join(describe(exc, limit=1000).split()))
        log.error("%s: %s", job.input, entry["error"])
    else:
        entry.update(status="complete", frames_in=report["frames_in"], frames_out=report["frames_written"],
                     fps=fps_text(Fraction(report["dst_fps"])), method=report.get("method"),
                     seconds=report["timings"]["total_s"])
    entry.setdefault("seconds", round(time.perf_counter() - t0, 3))
    return entry


def summary_table(entries: list[dict]) -> str:
    """The batch summary: a row per video (a failed one's error on the line below it), then the totals."""
    rows = [("status", "frames", "time", "input -> output")]
    for e in entries:
        ok = e["status"] == "complete"
        rows.append((e["status"], f"{e['frames_in']} -> {e['frames_out']}" if ok else "-", f"{e['seconds']:.1f}s",
                     f"{e['input']} -> {e['output']}"))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = []
    for r, e in zip(rows, [None, *entries]):
        lines.append("  ".join(v.ljust(w) for v, w in zip(r[:3], widths)) + "  " + r[3])
        if e is not None and e["status"] != "complete":
            lines.append(f"    error: {e['error']}")
    ok = sum(e["status"] == "complete" for e in entries)
    lines.append(f"{ok} of {len(entries)} videos done" + (f", {len(entries) - ok} failed" if ok < len(entries) else ""))
    return "\n".join(lines)
