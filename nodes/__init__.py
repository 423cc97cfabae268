"""ComfyUI nodes of the Video Engine pack (V3 API). Only imported inside ComfyUI.

    VideoInterpolate   frames -> interpolated frames, fps, report, resource plot
    VideoInterpolateStream  VIDEO -> VIDEO (a file), fps, report; streamed, memory flat in length
    PerformanceGuard   strategy / device / batch / flow scale  -> VIDEO_ENGINE_GUARD
    FallbackSwitch     allowed recovery steps                  -> VIDEO_ENGINE_FALLBACK
"""
from __future__ import annotations

import inspect
import logging
import sys

from comfy_api.latest import ComfyExtension, io

from . import model_folder

log = logging.getLogger(__name__)

model_folder.register()

from .fallback_node import FallbackSwitch  # noqa: E402
from .guard_node import PerformanceGuard  # noqa: E402
from .interpolate_node import VideoInterpolate  # noqa: E402
from .stream_node import VideoInterpolateStream  # noqa: E402

NODES = [VideoInterpolate, VideoInterpolateStream, PerformanceGuard, FallbackSwitch]

PACKAGE_NAME = "video_engine"


def name_error_types() -> None:
    """ComfyUI imports a custom-node folder under its path (``/.../custom_nodes/video-engine``), so
    its error reports, which name an exception by module and class, would show that path. Give the
    pack's exception classes the pack's name instead: ``video_engine.engine.ladder.LadderExhausted``.
    (Only inside ComfyUI; the engine alone keeps its own module names.)"""
    root = __name__.rpartition(".")[0]
    if not root:
        return
    for name, mod in list(sys.modules.items()):
        if mod is None or not name.startswith(root + "."):
            continue
        for cls in vars(mod).values():
            if inspect.isclass(cls) and issubclass(cls, BaseException) and cls.__module__ == name:
                cls.__module__ = PACKAGE_NAME + name[len(root):]


name_error_types()


class VideoEngineExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)


async def comfy_entrypoint() -> VideoEngineExtension:
    return VideoEngineExtension()
