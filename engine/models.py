"""Where models come from: the built-in methods' names, the model folders, and finding a weights
file by name. The one place for these facts; the command line, engine.methods.load_method and the
ComfyUI nodes (whose folder list comes from ComfyUI's folder_paths) all look models up here.

    find("rife/rife49.pth", model_dirs())    # the path, or None
    builtin("flow")                           # "builtin-flow" (an alias), or None for a weights file
"""
from __future__ import annotations

import os
from pathlib import Path

from . import fetch as fetch_mod
from .zoo import WEIGHT_SUFFIXES

FOLDER = "frame_interpolation"  # ComfyUI's models/<FOLDER>, where the nodes (and the CLI) find weights
BUILTIN_FLOW = "builtin-flow"
BLEND = "blend"
BUILTINS = (BUILTIN_FLOW, BLEND)
_ALIASES = {None: BUILTIN_FLOW, "": BUILTIN_FLOW, "builtin": BUILTIN_FLOW, "flow": BUILTIN_FLOW,
            BUILTIN_FLOW: BUILTIN_FLOW, BLEND: BLEND}


def builtin(spec) -> str | None:
    """The built-in method `spec` names (None and "" mean the built-in flow), else None."""
    return _ALIASES.get(spec) if spec is None or isinstance(spec, str) else None


def default_models_dir() -> Path:
    """$VE_MODELS, else models/ inside the engine cache ($VE_CACHE or ~/.cache/video-engine)."""
    env = os.environ.get("VE_MODELS")
    return Path(env).expanduser() if env else fetch_mod.cache_dir() / "models"


def comfyui_models_dir() -> tuple[Path, str] | None:
    """ComfyUI's models/frame_interpolation folder and how it was found, or None.

    $COMFYUI_MODEL_DIR (ComfyUI's models folder, or frame_interpolation itself), then
    $COMFYUI_PATH (the ComfyUI folder), then the folders above this pack when it is installed as
    ComfyUI/custom_nodes/<pack>.
    """
    env = os.environ.get("COMFYUI_MODEL_DIR")
    if env:
        p = Path(env).expanduser()
        return (p if p.name == FOLDER else p / FOLDER), "$COMFYUI_MODEL_DIR"
    env = os.environ.get("COMFYUI_PATH")
    if env:
        return Path(env).expanduser() / "models" / FOLDER, "$COMFYUI_PATH"
    pack = Path(__file__).resolve().parents[1]
    for anc in pack.parents:
        if anc.name == "custom_nodes" and (anc.parent / "models").is_dir():
            return anc.parent / "models" / FOLDER, f"ComfyUI install at {anc.parent}"
    return None


def model_dirs(models_dir=None) -> list[Path]:
    """The folders a model name is looked up in: `models_dir` (or the default), then ComfyUI's."""
    dirs = [Path(models_dir).expanduser() if models_dir else default_models_dir()]
    comfy = comfyui_models_dir()
    if comfy is not None:
        dirs.append(comfy[0])
    return dirs


def weight_files(folder: Path) -> list[Path]:
    """Weight files in folder and its sub-folders (as ComfyUI lists them), sorted."""
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in WEIGHT_SUFFIXES)


def find(spec, dirs=()) -> str | None:
    """The path of the weights file `spec` names: an existing file, or a name (sub-folders included,
    "rife/rife49.pth") inside one of `dirs`, first match wins; None when there is none."""
    p = Path(os.fspath(spec)).expanduser()
    if p.is_file():
        return str(p)
    if not p.is_absolute():
        for d in dirs:
            if d and (Path(d) / p).is_file():
                return str(Path(d) / p)
    return None


def where(dirs) -> str:
    return ", ".join(str(d) for d in dirs) or "(no model folder configured)"
