"""ComfyUI nodes of the Video Engine pack (V3 API). Only imported inside ComfyUI.

    VideoInterpolate   frames -> interpolated frames, fps, report, resource plot
    VideoInterpolateStream  VIDEO -> VIDEO (a file), fps, report; streamed, memory flat in length
    PerformanceGuard   strategy / device / batch / flow scale  -> VIDEO_ENGINE_GUARD
    FallbackSwitch     allowed recovery steps                  -> VIDEO_ENGINE_FALLBACK
"""
from __future__ import annotations

import logging

from comfy_api.latest import ComfyExtension, io

from . import model_folder

log = logging.getLogger(__name__)

model_folder.register()

from .fallback_node import FallbackSwitch  # noqa: E402
from .guard_node import PerformanceGuard  # noqa: E402
from .interpolate_node import VideoInterpolate  # noqa: E402
from .stream_node import VideoInterpolateStream  # noqa: E402

NODES = [VideoInterpolate, VideoInterpolateStream, PerformanceGuard, FallbackSwitch]


class VideoEngineExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)


async def comfy_entrypoint() -> VideoEngineExtension:
    return VideoEngineExtension()
