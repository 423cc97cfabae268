"""The `frame_interpolation` model folder (ComfyUI's folder_paths).

Newer ComfyUI cores register `frame_interpolation` themselves (models/frame_interpolation, for their own
FrameInterpolate node); 0.3.75 does not. `register()` shares the core's entry when there is one and
creates it when there is not, so users keep one folder for both. Either way the folder accepts the
formats the engine reads (.safetensors, .pth, .pkl, ...), and the default folder exists on disk so
users can see where weights go.
"""
from __future__ import annotations

import logging
import os

import folder_paths

from ..engine.models import BUILTIN_FLOW, FOLDER
from ..engine.zoo import WEIGHT_SUFFIXES

log = logging.getLogger(__name__)

EXTENSIONS = {s.lower() for s in WEIGHT_SUFFIXES}  # .safetensors .pth .pkl .pt .ckpt .bin


def default_dir() -> str:
    return os.path.join(folder_paths.models_dir, FOLDER)


def register() -> str:
    """Make sure folder_paths knows FOLDER with our extensions; returns how it was done."""
    default = default_dir()
    entry = folder_paths.folder_names_and_paths.get(FOLDER)
    if entry is None:
        folder_paths.folder_names_and_paths[FOLDER] = ([default], set(EXTENSIONS))
        how = "registered"
    else:
        paths, exts = entry
        if default not in paths:
            folder_paths.add_model_folder_path(FOLDER, default)
        exts = set(exts)
        # an empty set means "every file" to folder_paths: leave that alone
        if exts and not EXTENSIONS <= exts:
            # a new set: core's extension sets are shared between folders, never mutate them
            folder_paths.folder_names_and_paths[FOLDER] = (folder_paths.folder_names_and_paths[FOLDER][0],
                                                          exts | EXTENSIONS)
        how = "shared with ComfyUI core"
    try:
        os.makedirs(default, exist_ok=True)
    except OSError as e:  # a read-only install: listing still works, the error names the folder
        log.warning("Video Engine: could not create the model folder %s: %s", default, e)
    log.debug("Video Engine: model folder '%s' %s: %s", FOLDER, how, folder_paths.get_folder_paths(FOLDER))
    return how


def folders() -> list[str]:
    try:
        return folder_paths.get_folder_paths(FOLDER)
    except KeyError:
        return [default_dir()]


def list_models() -> list[str]:
    """Weight files in the folder(s), as names relative to their folder (sub-folders included)."""
    try:
        return folder_paths.get_filename_list(FOLDER)
    except Exception as e:  # noqa: BLE001 - a broken folder must not break /object_info
        log.warning("Video Engine: cannot list the %s folder: %s", FOLDER, e)
        return []


def where() -> str:
    return " or ".join(folders())


def full_path(name: str) -> str | None:
    return folder_paths.get_full_path(FOLDER, name)


def missing_message(name: str) -> str:
    return (f"Video Engine: model file '{name}' was not found in the '{FOLDER}' model folder "
            f"({where()}). Put the weights file there (.safetensors, .pth or .pkl) and refresh, or choose "
            f"'{BUILTIN_FLOW}' (no download needed).")
