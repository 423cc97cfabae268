"""The in-memory entry point: frames in, interpolated frames + fps + report out.

    result = interpolate(frames, "rife-4.25.safetensors", multiplier=2)
    result = interpolate(frames, None, src_fps=24, dst_fps=60)      # built-in flow method

The options (engine.options.Options) and the frames are validated first, then the output's RAM
is checked (a clear InputError before any model is loaded or anything allocated), scene cuts are
detected, and the run goes through the recovery ladder (engine.ladder) with the settings the
guard (engine.guard) picked for the strategy. The streamed entry point is engine.stream.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable

import torch

from . import guard as guard_mod
from . import ladder as ladder_mod
from .methods import Method, load_method
from .options import Options
from .resources import GIB, ResourceMonitor, check_output_fits
from .runner import allocate_output, check_frame_values, validate_frames
from .schedule import Schedule, detect_cuts

log = logging.getLogger(__name__)


@dataclass
class Result:
    frames: torch.Tensor
    fps: Fraction | None
    schedule: Schedule
    cuts: list[int]
    report: dict = field(default_factory=dict)


def cut_warnings(n_in: int, cuts, threshold) -> list[str]:
    """A warning when most frame pairs are scene cuts: the run then mostly repeats frames, which is
    right for a slideshow of unrelated pictures and wrong for keyframes of one scene."""
    pairs = max(int(n_in) - 1, 0)
    if pairs < 2 or 2 * len(cuts) <= pairs:
        return []
    return [f"{len(cuts)} of {pairs} frame pairs were taken as scene cuts (score above {threshold:g}) and not "
            "morphed: their in-betweens repeat a source frame. If the frames show one scene (keyframes, a change "
            "of light), raise scene_cut_threshold (--scene-threshold) or set it to 0"]


def run_report(run, sched: Schedule, method, model, plan, size_hw, opts: Options, cuts, elapsed: float) -> dict:
    """The JSON-able report of a run (in memory or streamed): what ran, the path taken, timings."""
    h, w = size_hw
    warnings = cut_warnings(sched.n_in, cuts, opts.cut_threshold or 0)
    for text in warnings:
        log.warning("%s", text)
    return dict(
        method=run.method_description, model=getattr(method, "name", str(model)),
        frames_in=sched.n_in, frames_out=sched.n_out, size=[w, h], multiplier=opts.effective_multiplier,
        src_fps=str(sched.src_fps) if sched.src_fps else None, dst_fps=str(sched.dst_fps) if sched.dst_fps else None,
        cuts=list(cuts), cut_threshold=opts.cut_threshold,
        plan=plan.as_dict(), final_settings=run.final_settings.as_dict() if run.final_settings else None,
        path=run.path, fallbacks=run.events, segments=run.segments, passthrough_frames=run.passthrough_frames,
        passthrough_from=run.passthrough_from,
        eta_s=plan.eta_s, elapsed_s=round(elapsed, 3), warnings=warnings,
    )


def interpolate(frames: torch.Tensor, model: str | Method | None = None, *, options: Options | None = None,
                policy: "ladder_mod.Policy | None" = None, progress: Callable[[int, int], None] | None = None,
                cancel: Callable[[], bool | None] | None = None, on_event: Callable[[dict], None] | None = None,
                model_dirs=(), monitor_interval: float = 0.25, faults=None,
                on_plan: Callable[[dict], None] | None = None, **option_values) -> Result:
    """Interpolate an IMAGE batch [N, H, W, 3] (float in [0, 1]); returns a Result (CPU float32 frames).

    The options are engine.options.Options fields given by name (multiplier=4, src_fps=24,
    dst_fps=60, cut_threshold, cut_fill, strategy, device, precision, batch_size, flow_scale) or
    as `options=`; they are validated first, then the frames, then the output's RAM, before any
    model is loaded.

    on_plan(dict), if given, is called once before any frame is produced, with the guard's plan
    (plan=Plan.as_dict(), method=description, frames_in, frames_out, cuts) so a caller can show the
    chosen device, precision and batch while the run goes on.
    """
    t0 = time.perf_counter()
    opts = Options.of(options, **option_values)
    validate_frames(frames)
    n, h, w = (int(x) for x in frames.shape[:3])
    sched = opts.schedule(n)
    check_output_fits(sched.n_out, h, w)  # before any work: never get killed by the OS halfway
    check_frame_values(frames)  # a pass over the values: after the shape-only checks
    cuts = detect_cuts(frames, opts.cut_threshold) if n > 1 and opts.detects_cuts else []
    sched = sched.with_cuts(cuts)
    n_out = sched.n_out
    method = model if isinstance(model, Method) else load_method(model, model_dirs)
    plan = guard_mod.plan(method, (h, w), n_out, strategy=opts.strategy, device=opts.device,
                          precision=opts.precision, batch_size=opts.batch_size, flow_scale=opts.flow_scale,
                          n_tasks=sched.n_tasks)
    policy = policy or ladder_mod.Policy()
    if on_plan is not None:
        on_plan(dict(plan=plan.as_dict(), method=method.describe(), frames_in=n, frames_out=n_out, cuts=list(cuts)))
    out = allocate_output(n_out, h, w)
    with ResourceMonitor(interval=monitor_interval) as mon:
        run = ladder_mod.run(frames, sched, method, plan.settings, out, policy=policy, progress=progress,
                             cancel=cancel, on_event=on_event, adapt=plan.adapt, faults=faults)
    elapsed = time.perf_counter() - t0
    report = run_report(run, sched, method, model, plan, (h, w), opts, cuts, elapsed)
    report.update(resources=mon.summary(), timeline=mon.timeline,
                  timeline_marks=[(round(ev["time"] - mon.started_at, 3), ev["rung"]) for ev in run.events])
    log.info("interpolated %d -> %d frames in %.1fs with %s (%d fallback%s)", n, n_out, elapsed,
             run.method_description, len(run.events), "" if len(run.events) == 1 else "s")
    return Result(out, sched.dst_fps, sched, cuts, report)


def format_report(report: dict) -> str:
    """Readable multi-line summary of a report dict (for ComfyUI's STRING output and the CLI)."""
    fs = report.get("final_settings", {})  # None: no frame was interpolated
    res = report.get("resources", {})
    strategy = (report.get("plan") or {}).get("strategy")
    n_pass, first_pass = report.get("passthrough_frames") or 0, report.get("passthrough_from")
    passed = (f"frames {first_pass}..{report['frames_out'] - 1} passed through (copies of source frames)"
              if first_pass is not None else "")
    if fs is not None:  # what made the last interpolated frames (not the plan, not a rung that then failed)
        method = f"method: {report['method']}" + (f"; {passed}" if passed else "")
        settings = (f"device {fs.get('device')}, {fs.get('dtype')}, batch {fs.get('batch_size')}, "
                    f"flow scale {fs.get('flow_scale')}"
                    + (f", resolution x{fs.get('res_scale')}" if fs.get("res_scale", 1) != 1 else ""))
    else:
        method = f"method: none, no frame was interpolated; {passed or 'nothing was written'}"
        settings = "settings: none worked"
    lines = [
        f"{report['frames_in']} -> {report['frames_out']} frames at {report['size'][0]}x{report['size'][1]}"
        + (f", {report['src_fps']} -> {report['dst_fps']} fps" if report.get("dst_fps") else ""),
        method,
        (f"strategy {strategy}: " if strategy else "") + settings,
        f"path: {' -> '.join(report.get('path', [])) or 'planned settings, no fallback'}",
        f"scene cuts: {report['cuts'] if report.get('cuts') else 'none'}",
        f"time {report['elapsed_s']:.1f}s (estimated {report['eta_s']:.1f}s)" if report.get("eta_s") is not None
        else f"time {report['elapsed_s']:.1f}s",
    ]
    if res:
        peak = res.get("peak_rss_bytes")
        vram = res.get("peak_vram_used_bytes") or res.get("torch_peak_allocated_bytes")
        lines.append("peak RAM " + (f"{peak / GIB:.2f} GiB" if peak else "?")
                     + (f", peak VRAM {vram / GIB:.2f} GiB" if vram else ""))
    for ev in report.get("fallbacks", []):
        lines.append(f"fallback at frame {ev['at']}: {ev['kind']} ({ev['error']}) -> {ev['rung']}")
    lines += [f"WARNING: {text}" for text in report.get("warnings", [])]
    if n_pass:
        lines.append(f"WARNING: {n_pass} frames were passed through as duplicates "
                     "after every allowed recovery step failed")
    return "\n".join(lines)
