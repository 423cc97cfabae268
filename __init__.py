"""Video Engine: a ComfyUI custom-node pack for video frame interpolation.

ComfyUI imports this folder as a package (custom_nodes/<this folder>/__init__.py) and calls
``comfy_entrypoint()`` (the V3 node API). The interpolation itself lives in ``engine/``, plain torch
with no ComfyUI imports; the nodes in ``nodes/`` are the only code that talks to ComfyUI.

Outside ComfyUI (pytest, the command line) importing this file does nothing ComfyUI-related:
the nodes are only imported when ``comfy_api`` is importable and this file is loaded as a package.
"""
import importlib.util
import logging

log = logging.getLogger(__name__)

WEB_DIRECTORY = "./web"

# No NODE_CLASS_MAPPINGS here on purpose: ComfyUI's loader ignores comfy_entrypoint when it exists.
__all__ = ["WEB_DIRECTORY"]


def _in_comfyui() -> bool:
    if not __package__:  # loaded as a plain module (e.g. by a test runner), not as the pack
        return False
    try:
        return importlib.util.find_spec("comfy_api") is not None
    except (ImportError, ValueError):
        return False


if _in_comfyui():
    from .nodes import comfy_entrypoint  # noqa: E402,F401

    __all__.append("comfy_entrypoint")
