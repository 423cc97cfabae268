"""Socket types and shared names of the Video Engine nodes."""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from comfy_api.latest import io

CATEGORY = "Video Engine"

# Custom sockets: PerformanceGuard -> VideoInterpolate.guard, FallbackSwitch -> VideoInterpolate.fallback
GuardSocket = io.Custom("VIDEO_ENGINE_GUARD")
FallbackSocket = io.Custom("VIDEO_ENGINE_FALLBACK")

# ComfyUI core's loaded frame interpolation model (FrameInterpolationModelLoader, cores >= 0.20);
# None on cores without it (0.3.75): there VideoInterpolate has no interp_model input.
def _core_has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


InterpModelSocket = io.Custom("INTERP_MODEL") if _core_has("comfy_extras.nodes_frame_interpolation") else None

SEARCH_ALIASES = ["rife", "film", "vfi", "frame interpolation", "interpolate frames", "fps", "frame rate",
                  "slow motion", "slowmo", "video"]


def schema_extras(aliases) -> dict:
    """Schema keyword arguments this ComfyUI version knows (search_aliases came after 0.3.75)."""
    fields = getattr(io.Schema, "__dataclass_fields__", {})
    return {"search_aliases": list(aliases)} if "search_aliases" in fields else {}


def option_outputs(socket, name: str, text: str, text_tooltip: str) -> list:
    """An option node's two outputs: its settings on `socket`, for VideoInterpolate's input `name`, and a
    text output `text` that puts them in words."""
    return [socket.Output(name, display_name=name, tooltip=f"Connect to VideoInterpolate's {name} input."),
            io.String.Output(text, display_name=text, tooltip=text_tooltip)]


@dataclass(frozen=True)
class GuardSettings:
    """What travels on a VIDEO_ENGINE_GUARD socket (PerformanceGuard's choices)."""

    strategy: str = "balanced"
    device: str = "auto"
    batch_size: int | None = None  # None = the strategy decides
    flow_scale: float | None = None  # None = the strategy decides
    monitor_interval: float = 0.25
