"""VideoInterpolate: the node that runs engine.pipeline.interpolate inside ComfyUI."""
from __future__ import annotations

import logging
import time
import traceback

import comfy.model_management as mm
import comfy.utils
import torch
from comfy_api.latest import io

from ..engine.errors import Cancelled, InputError
from ..engine.ladder import parse_faults
from ..engine.models import BUILTIN_FLOW, BUILTINS
from ..engine.options import PRECISIONS, Options
from ..engine.pipeline import format_report, interpolate
from ..engine.resources import render_timeline_png
from . import model_cache, model_folder
from .guard_node import comfy_device
from .status import StatusReporter
from .types import (CATEGORY, SEARCH_ALIASES, FallbackSocket, GuardSettings, GuardSocket, InterpModelSocket,
                    schema_extras)

log = logging.getLogger(__name__)

PBAR_MIN_INTERVAL = 0.1  # seconds between ProgressBar updates (the last one is always sent)
DRILL_KEY = "video_engine_faults"  # extra_pnginfo key: injected failures for drills and tests


def model_choices() -> list[str]:
    return list(BUILTINS) + [m for m in model_folder.list_models() if m not in BUILTINS]


def check_model(model) -> str | None:
    """None when `model` names a built-in method or a file in the model folder, else what is wrong."""
    if isinstance(model, str) and (model in BUILTINS or model_folder.full_path(model)):
        return None
    if isinstance(model, str) and model:
        return model_folder.missing_message(model)
    return f"model must be one of {', '.join(model_choices())}, got {model!r}"


def run_options(multiplier, target_fps, source_fps, scene_cut_threshold, precision, settings) -> Options:
    """The node's widgets as the engine's Options (validated there: the same rules and messages as
    the engine API and the command line). target_fps 0 means "use the multiplier"."""
    dst = None if target_fps == 0 else target_fps
    return Options(multiplier=multiplier if dst is None else None, src_fps=source_fps, dst_fps=dst,
                   cut_threshold=scene_cut_threshold, precision=precision, strategy=settings.strategy,
                   device=comfy_device(settings.device), batch_size=settings.batch_size,
                   flow_scale=settings.flow_scale)


def run_inputs(source_fps: bool) -> list:
    """The inputs VideoInterpolate and VideoInterpolateStream share, in order: model, multiplier,
    target_fps, source_fps (VideoInterpolate only: a VIDEO carries its own), scene_cut_threshold,
    precision, then the optional guard and fallback sockets."""
    need_src = " Needs the right source_fps." if source_fps else ""
    inputs = [
        io.Combo.Input("model", options=model_choices(), default=BUILTIN_FLOW,
                       tooltip="builtin-flow: optical flow on the CPU, no download. blend: plain cross-fade. "
                               "Other entries: RIFE or FILM weights (.safetensors, .pth, .pkl) found in "
                               "models/frame_interpolation."),
        io.Int.Input("multiplier", default=2, min=1, max=16, step=1,
                     tooltip="Output frames per input frame: N frames become N + (m-1)(N-1). Ignored when "
                             "target_fps is set."),
        io.Float.Input("target_fps", default=0.0, min=0.0, max=1000.0, step=0.001,
                       tooltip="Convert to this frame rate (any value, e.g. 59.94); 0 = use the multiplier. The "
                               "output lasts as long as the input and ends on its last frame." + need_src),
    ]
    if source_fps:
        inputs.append(io.Float.Input("source_fps", default=24.0, min=0.001, max=1000.0, step=0.001,
                                     tooltip="Frame rate of the input frames. Wire it from GetVideoComponents' fps "
                                             "output. Used for target_fps and for the fps output."))
    return inputs + [
        io.Float.Input("scene_cut_threshold", default=0.3, min=0.0, max=1.0, step=0.01,
                       tooltip="How different two frames must be to count as a scene cut; cut pairs are held, "
                               "not morphed. A change of light on the same picture is no cut. 0 = off; lower "
                               "finds more cuts."),
        io.Combo.Input("precision", options=list(PRECISIONS), default="auto",
                       tooltip="RIFE / FILM arithmetic on the GPU: auto = the strategy's choice (fp16 on CUDA, "
                               "fp32 on the CPU)." + (" The output is always fp32." if source_fps else "")),
    ]


def optional_inputs() -> list:
    return [
        GuardSocket.Input("guard", optional=True,
                          tooltip="Optional PerformanceGuard: strategy, device, batch size, flow scale. "
                                  "Unconnected = balanced, auto device."),
        FallbackSocket.Input("fallback", optional=True,
                             tooltip="Optional FallbackSwitch: which recovery steps are allowed when memory "
                                     "runs out. Unconnected = every step, then an error."),
    ]


def core_model_inputs() -> list:
    """VideoInterpolate's interp_model socket: core's loaded model, on cores that have one (0.20+)."""
    if InterpModelSocket is None:
        return []
    return [InterpModelSocket.Input(
        "interp_model", optional=True,
        tooltip="Optional: a model from ComfyUI's Load Frame Interpolation Model (RIFE 4.25/4.26, FILM). "
                "When connected it is used instead of `model`, with this node's frame rates, scene cuts, "
                "memory guard and recovery.")]


def run_model(model, interp_model, opts: Options, shape) -> tuple[model_cache.LoadedModel, Options]:
    """What runs: core's INTERP_MODEL when connected (at the precision core's loader chose, unless the
    node sets one; call its method's restore() afterwards), else `model` from the menu; loaded where
    opts.device says. `shape` is the frames' [N, H, W, C] (core's memory estimate)."""
    if interp_model is not None:
        loaded = model_cache.from_core(interp_model, opts.device, shape)
        if opts.precision == "auto":
            opts = opts.replace(precision=model_cache.precision_of(loaded.method.dtype))
        return loaded, opts
    loaded = model_cache.get(model)
    model_cache.prepare_for_run(loaded, opts.device)
    return loaded, opts


def progress_hooks(status: StatusReporter, node_id):
    """The engine's on_plan and progress callbacks for a node: our live status and ComfyUI's bar
    (whose updates are also ComfyUI's cancel point)."""
    pbar = comfy.utils.ProgressBar(1, node_id=node_id)
    last = [0.0]

    def on_plan(info):
        status.start(info)
        pbar.update_absolute(0, max(1, info.get("frames_out") or 1))

    def on_progress(done, total):
        status.progress(done, total)
        now = time.monotonic()
        if done >= total or now - last[0] >= PBAR_MIN_INTERVAL:
            last[0] = now
            pbar.update_absolute(done, total)

    return on_plan, on_progress


def _send_status(event: str, payload: dict) -> None:
    from server import PromptServer  # ComfyUI's server module

    inst = getattr(PromptServer, "instance", None)
    if inst is not None:
        inst.send_sync(event, payload, getattr(inst, "client_id", None))


def drill_faults(extra_pnginfo) -> list | None:
    """Failures to inject, for drills and tests of the recovery path (never set by the UI):
    extra_data = {"extra_pnginfo": {"video_engine_faults": [{"task": 3, "kind": "oom", "attempt": 0}]}}
    raises an out-of-memory error when output frame 3 is first computed (engine.ladder.Fault)."""
    spec = extra_pnginfo.get(DRILL_KEY) if isinstance(extra_pnginfo, dict) else None
    if not spec:
        return None
    faults = parse_faults(spec, DRILL_KEY)
    log.warning("Video Engine: drill, injecting %d fault(s): %s", len(faults), faults)
    return faults


def _executing():
    try:
        from comfy_execution.utils import get_executing_context
        return get_executing_context()
    except ImportError:  # pragma: no cover - older cores
        return None


def node_status(node_cls) -> tuple[str | None, StatusReporter]:
    """The executing node's id and a live-status reporter for it."""
    ctx = _executing()
    uid = getattr(getattr(node_cls, "hidden", None), "unique_id", None)
    if uid is None:
        uid = getattr(ctx, "node_id", None)
    node_id = None if uid is None else str(uid)
    return node_id, StatusReporter(node_id, _send_status, prompt_id=getattr(ctx, "prompt_id", None))


def report_failure(e: BaseException, status: StatusReporter, node_id) -> None:
    """Say on the status that the run stopped (a user's Cancel, or the error), before ComfyUI reports it."""
    if isinstance(e, (mm.InterruptProcessingException, Cancelled, KeyboardInterrupt)):
        status.cancelled()  # not an error
    else:
        status.error(f"{type(e).__name__}: {e}")
        log.warning("Video Engine: node %s failed: %s", node_id, e)
    # The traceback keeps the finished engine frames, and with them the output buffer and the
    # cached frames, alive for as long as ComfyUI holds the exception: drop their locals now.
    traceback.clear_frames(e.__traceback__)


class VideoInterpolate(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VideoInterpolate",
            display_name="Video Interpolate (Video Engine)",
            category=CATEGORY,
            description=("Makes in-between frames for a batch of images (a video's frames or keyframes): multiply "
                         "the frame count, or convert to any target frame rate (e.g. 24 -> 60 fps). Uses RIFE "
                         "or FILM weights from models/frame_interpolation, or the built-in optical flow (no "
                         "download). Scene cuts are never morphed. Out of memory? It steps down (smaller batch, "
                         "coarser flow, lower resolution, CPU...) instead of failing; see FallbackSwitch. Also known "
                         "as: RIFE, FILM, VFI, frame interpolation, slow motion, fps conversion."),
            inputs=[
                io.Image.Input("images", tooltip="The frames, in order (e.g. GetVideoComponents' images, or a "
                                                 "batch of keyframes)."),
                *run_inputs(source_fps=True),
                *optional_inputs(),
                *core_model_inputs(),
            ],
            outputs=[
                io.Image.Output("interpolated", display_name="images", tooltip="The interpolated frames."),
                io.Float.Output("fps", display_name="fps",
                                tooltip="Frame rate of the output: target_fps, or source_fps x multiplier. Wire it "
                                        "into CreateVideo's or Video Combine's frame rate."),
                io.String.Output("report", display_name="report",
                                 tooltip="What ran: method, device, precision, batch, fallbacks taken, scene cuts, "
                                         "time and peak memory."),
                io.Image.Output("resource_plot", display_name="resource_plot",
                                tooltip="RAM, VRAM and CPU use over the run, as an image."),
            ],
            hidden=[io.Hidden.unique_id, io.Hidden.extra_pnginfo],
            **schema_extras(SEARCH_ALIASES),
        )

    @classmethod
    def validate_inputs(cls, model=None):
        # Checked here (not by the combo list) so the message names the folder and the file.
        return check_model(model) or True

    @classmethod
    def execute(cls, images, model, multiplier, target_fps, source_fps, scene_cut_threshold, precision,
                guard=None, fallback=None, interp_model=None) -> io.NodeOutput:
        node_id, status = node_status(cls)
        on_plan, on_progress = progress_hooks(status, node_id)
        settings = guard if isinstance(guard, GuardSettings) else GuardSettings()
        result = core_method = None
        try:
            opts = run_options(multiplier, target_fps, source_fps, scene_cut_threshold, precision, settings)
            bad_model = check_model(model)
            if bad_model:
                raise InputError(bad_model)
            if images.shape[-1] > 3:
                images = images[..., :3]
            if images.device.type != "cpu":
                images = images.cpu()
            loaded, opts = run_model(model, interp_model, opts, images.shape)
            core_method = loaded.method if interp_model is not None else None
            result = interpolate(
                images, loaded.method, options=opts, policy=fallback, progress=on_progress, cancel=mm.throw_exception_if_processing_interrupted,
                on_event=status.fallback, on_plan=on_plan, monitor_interval=settings.monitor_interval,
                faults=drill_faults(getattr(getattr(cls, "hidden", None), "extra_pnginfo", None)))
        except BaseException as e:
            report_failure(e, status, node_id)
            raise
        finally:
            if core_method is not None:
                core_method.restore()  # core's model back where its ModelPatcher put it (e.g. after the CPU rung)
            mm.soft_empty_cache()  # no gc.collect(): ComfyUI's prompt worker runs it (0.36 s in a 0.25 server)

        report = result.report
        text = format_report(report)
        status.finish(report, text)
        fps_out = float(result.fps)  # the source fps is always given, so the output's is known
        png = render_timeline_png(report.get("timeline", []), markers=report.get("timeline_marks", ()))
        plot = torch.from_numpy(png).float().div_(255.0).unsqueeze(0)
        log.info("Video Engine: %s", text.replace("\n", " | "))
        return io.NodeOutput(result.frames, fps_out, text, plot)
