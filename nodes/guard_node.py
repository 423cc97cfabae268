"""PerformanceGuard: how VideoInterpolate should use the machine (strategy, device, batch, flow scale)."""
from __future__ import annotations

import logging

import comfy.model_management as mm
from comfy_api.latest import io

from ..engine.errors import InputError
from ..engine.guard import STRATEGIES
from ..engine.options import check_device, check_flow_scale, check_strategy
from ..engine.resources import describe_snapshot, snapshot
from .types import CATEGORY, GuardSettings, GuardSocket, option_outputs, schema_extras

log = logging.getLogger(__name__)

DEVICES = ["auto", "cpu", "cuda"]


def comfy_device(requested: str) -> str:
    """The engine device for a PerformanceGuard device choice; "auto" follows ComfyUI's own device
    (so --cpu is honoured), and only CUDA or CPU are used."""
    requested = (requested or "auto").lower()
    if requested != "auto":
        return requested
    dev = mm.get_torch_device()
    if getattr(dev, "type", str(dev)) == "cuda":
        return f"cuda:{dev.index or 0}"
    return "cpu"


def guard_report(settings: GuardSettings) -> str:
    try:
        resolved = comfy_device(settings.device)
    except Exception as e:  # noqa: BLE001 - a report must not fail
        resolved = f"? ({e})"
    lines = [
        STRATEGIES[settings.strategy].describe(),
        f"device {settings.device}" + (f" -> {resolved} (ComfyUI's device)" if settings.device == "auto" else "")
        + "; the built-in flow and blend methods always run on the CPU",
        f"batch size {settings.batch_size or 'auto (strategy)'}, flow scale {settings.flow_scale or 'auto (strategy)'}, "
        f"resource sampling every {settings.monitor_interval:g} s",
        describe_snapshot(snapshot()),
    ]
    return "\n".join(lines)


class PerformanceGuard(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PerformanceGuard",
            display_name="Performance Guard (Video Engine)",
            category=CATEGORY,
            description=("Chooses how VideoInterpolate uses this machine: a strategy (speed, quality, balance, "
                         "lowest memory, or adaptive), the device, the batch size and RIFE's flow scale. Wire its "
                         "output into VideoInterpolate's 'guard' input. The report shows the choices and the "
                         "machine's free memory when the node ran."),
            inputs=[
                io.Combo.Input("strategy", options=list(STRATEGIES), default="balanced",
                               tooltip="speed_first: biggest batch that fits, half precision, coarser flow from "
                                       "720p. quality_first: fp32, test-time ensemble. balanced: fp16 on CUDA, batch "
                                       "up to 8. memory_efficient: batch 1, the lowest peak memory. adaptive: re-sizes "
                                       "the batch while it runs. The report lists the exact choices."),
                io.Combo.Input("device", options=DEVICES, default="auto",
                               tooltip="auto follows ComfyUI's device (CPU when ComfyUI runs with --cpu). "
                                       "The built-in flow and blend methods always run on the CPU."),
                io.Int.Input("batch_size", default=0, min=0, max=256, step=1,
                             tooltip="Frames generated per forward pass. 0 = let the strategy pick it from the "
                                     "measured memory use."),
                io.Float.Input("flow_scale", default=0.0, min=0.0, max=4.0, step=0.05,
                               tooltip="RIFE flow resolution: 0 = auto (strategy), else 0.25, 0.5, 1, 2 or 4. Lower uses less "
                                       "memory and suits big motion at high resolution; 1 is full resolution."),
                io.Float.Input("monitor_interval", default=0.25, min=0.05, max=10.0, step=0.05,
                               tooltip="Seconds between resource samples (RAM, CPU, VRAM) during a run; they make "
                                       "VideoInterpolate's resource_plot."),
            ],
            outputs=option_outputs(GuardSocket, "guard", "report",
                                   "The strategy's choices and a snapshot of free memory when this node ran."),
            **schema_extras(["performance", "vram", "memory", "batch size", "oom", "rife", "vfi"]),
        )

    @classmethod
    def validate_inputs(cls, flow_scale=None):
        try:
            check_flow_scale(None if flow_scale == 0 else flow_scale)
        except InputError as exc:
            return f"{exc} (0 = auto)"
        return True

    @classmethod
    def execute(cls, strategy, device, batch_size, flow_scale, monitor_interval) -> io.NodeOutput:
        # the engine's rules and messages (engine.options); 0 = auto for batch size and flow scale
        check_strategy(strategy)
        check_device(device)
        check_flow_scale(None if flow_scale == 0 else flow_scale)
        if not (isinstance(monitor_interval, (int, float)) and 0.05 <= monitor_interval <= 10):
            raise InputError(f"monitor_interval must be between 0.05 and 10 seconds, got {monitor_interval!r}")
        settings = GuardSettings(strategy=strategy, device=device, batch_size=int(batch_size) or None,
                                 flow_scale=float(flow_scale) or None, monitor_interval=float(monitor_interval))
        return io.NodeOutput(settings, guard_report(settings))


__all__ = ["PerformanceGuard", "comfy_device", "guard_report"]
