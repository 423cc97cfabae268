"""ComfyUI core's own FILM (comfy_extras/frame_interpolation_models/film_net.py), imported at test
time from the 0.25 source tarball in ../shared/comfyui as an oracle; never copied into the project.

It imports only `comfy.ops` (for `disable_weight_init.Conv2d`, a Conv2d that skips its own init);
a stub module with torch's plain Conv2d stands in while it is imported, then is removed again.
"""
from __future__ import annotations

import importlib.util
import sys
import tarfile
import types
from pathlib import Path
from unittest import mock

from torch import nn

from shared import shared_dir

MEMBER = "comfy_extras/frame_interpolation_models/film_net.py"


def tarball() -> Path | None:
    sd = shared_dir()
    hits = sorted((sd / "comfyui").glob("ComfyUI-0.25.*.tar.gz")) if sd else []
    return hits[-1] if hits else None


def load(dest: Path):
    """Extract core's film_net.py into dest and import it; the module (FILMNet etc.)."""
    tb = tarball()
    if tb is None:
        return None
    with tarfile.open(tb) as tf:
        member = next(m for m in tf.getmembers() if m.name.endswith(MEMBER))
        path = dest / "core_film_net.py"
        path.write_bytes(tf.extractfile(member).read())
    ops = types.ModuleType("comfy.ops")
    ops.disable_weight_init = types.SimpleNamespace(Conv2d=nn.Conv2d)
    comfy = types.ModuleType("comfy")
    comfy.ops = ops
    with mock.patch.dict(sys.modules, {"comfy": comfy, "comfy.ops": ops}):
        spec = importlib.util.spec_from_file_location("_core_film_net", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    return mod
