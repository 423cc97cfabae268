"""Load each weights file once; hand its network to ComfyUI's memory manager.

A RIFE or FILM checkpoint is read, checked and built by the engine (engine.methods.load_method) the first
time it is used and kept, keyed by (path, mtime, size): a changed file is read again. Its network is
wrapped in a ComfyUI ModelPatcher, so `model_management.load_model_gpu` can account for it and
offload it when other models need the memory; the engine's method .to() reads where the weights
really are before every run.
"""
from __future__ import annotations

import inspect
import logging
import os
import threading
from dataclasses import dataclass

import comfy.model_management as mm
import comfy.model_patcher

import torch

from ..engine.methods import Method, ModuleMethod, load_method
from ..engine.models import BUILTINS
from ..engine.zoo import CheckpointError
from . import model_folder

log = logging.getLogger(__name__)


class ModelFileError(RuntimeError):
    """A missing or unreadable weights file; the message names the folder and the file."""


@dataclass
class LoadedModel:
    method: Method
    path: str | None = None
    patcher: object | None = None  # comfy.model_patcher.ModelPatcher for RIFE nets
    key: tuple | None = None


_cache: dict[str, LoadedModel] = {}
_lock = threading.Lock()


def _file_key(path: str) -> tuple:
    st = os.stat(path)
    return (os.path.realpath(path), st.st_mtime_ns, st.st_size)


def get(name: str) -> LoadedModel:
    """The method for a model combo value: a built-in name or a file in the model folder."""
    if name in BUILTINS:
        return LoadedModel(load_method(name))  # cheap, and per-run state stays per run
    path = model_folder.full_path(name)
    if path is None:
        raise ModelFileError(model_folder.missing_message(name))
    try:
        key = _file_key(path)
    except OSError as e:
        raise ModelFileError(f"Video Engine: cannot read model file '{name}' in the "
                             f"'{model_folder.FOLDER}' folder ({path}): {e.strerror}") from None
    with _lock:
        hit = _cache.get(path)
        if hit is not None and hit.key == key:
            return hit
        try:
            method = load_method(path)
        except CheckpointError as e:
            raise ModelFileError(f"Video Engine: cannot use model file '{name}' from the "
                                 f"'{model_folder.FOLDER}' folder ({os.path.dirname(path)}): {e}") from None
        except Exception as e:  # noqa: BLE001 - whatever a damaged file raises, name the file
            raise ModelFileError(f"Video Engine: cannot read model file '{name}' in the "
                                 f"'{model_folder.FOLDER}' folder ({path}): {type(e).__name__}: {e}") from None
        patcher = None
        net = getattr(method, "net", None)
        if net is not None:
            patcher = comfy.model_patcher.ModelPatcher(net, load_device=mm.get_torch_device(),
                                                       offload_device=mm.unet_offload_device())
        loaded = LoadedModel(method, path, patcher, key)
        _cache[path] = loaded  # replaces (and frees) an older version of the same file
        log.info("Video Engine: loaded %s from %s", method.describe(), path)
        return loaded


def prepare_for_run(loaded: LoadedModel, device: str) -> None:
    """Let ComfyUI load (and account for) the net when it runs on ComfyUI's own device."""
    if loaded.patcher is None:
        return
    if str(loaded.patcher.load_device).split(":")[0] == str(device).split(":")[0]:
        # What load_model_gpu does, but never a partial (lowvram) load: the net is small, and the
        # engine needs all of its weights on one device. ComfyUI frees other models to make room.
        if "force_full_load" in inspect.signature(mm.load_models_gpu).parameters:
            mm.load_models_gpu([loaded.patcher], force_full_load=True)
        else:
            mm.load_model_gpu(loaded.patcher)


CORE_FAMILIES = {"IFNet": "RIFE 4.25/4.26", "FILMNet": "FILM"}  # core's classes (comfy_extras.frame_interpolation_models)
_PRECISIONS = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}


def from_core(interp_model, device: str, shape) -> LoadedModel:
    """Core's INTERP_MODEL (a ModelPatcher around its IFNet or FILMNet) as an engine method, loaded
    the way core's FrameInterpolate loads it when it runs on ComfyUI's own device."""
    module = getattr(interp_model, "model", None)
    if not isinstance(module, torch.nn.Module) or not callable(getattr(module, "extract_features", None)):
        raise ModelFileError(f"Video Engine: interp_model is not a frame interpolation model from ComfyUI's "
                             f"Load Frame Interpolation Model (got {type(interp_model).__name__}); connect that "
                             f"node's output, or disconnect interp_model to use `model`")
    if str(interp_model.load_device).split(":")[0] == str(device).split(":")[0]:
        need = module.memory_used_forward(shape, interp_model.model_dtype()) if hasattr(module, "memory_used_forward") else 0
        mm.load_models_gpu([interp_model], memory_required=need, force_full_load=True)
    kind = type(module).__name__
    family = CORE_FAMILIES.get(kind, kind)
    return LoadedModel(ModuleMethod(module, name=f"INTERP_MODEL {family}",
                                    label=f"{family} (ComfyUI core's {kind}, from INTERP_MODEL)"),
                       patcher=interp_model)


def precision_of(dtype: torch.dtype) -> str:
    return _PRECISIONS.get(dtype, "fp32")
