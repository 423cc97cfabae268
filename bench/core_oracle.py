"""ComfyUI core's own RIFE (0.25.0), imported at bench time as an oracle: never copied.

`load()` extracts `comfy_extras/frame_interpolation_models/` and `nodes_frame_interpolation.py`
from the 0.25 tarball in ../shared/comfyui/ into a temporary folder, gives them the few `comfy`
names they import (plain torch stand-ins written here), and returns a `Core` that

  - loads a RIFE checkpoint through core's own FrameInterpolationModelLoader key mapping, and
  - runs core's own FrameInterpolate.execute loop (per pair: features cached, reflect padding to 64,
    one IFNet call per timestep batch) on an IMAGE batch.
"""
from __future__ import annotations

import importlib
import os
import shutil
import sys
import tarfile
import tempfile
import types
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("VE_SHARED", ROOT.parent / "shared"))
TARBALL = SHARED / "comfyui" / "ComfyUI-0.25.0-0a92ed16.tar.gz"
MEMBERS = ("comfy_extras/frame_interpolation_models/", "comfy_extras/nodes_frame_interpolation.py")


def _stub_modules(device: torch.device) -> dict[str, types.ModuleType]:
    """The names core's frame-interpolation files import from comfy, folder_paths and comfy_api."""
    mods = {n: types.ModuleType(n) for n in (
        "comfy", "comfy.ops", "comfy.utils", "comfy.model_patcher", "comfy.model_management", "comfy.ldm",
        "comfy.ldm.common_dit", "folder_paths", "comfy_api", "comfy_api.latest")}

    class Ops:  # comfy.ops.disable_weight_init: plain layers on the CPU in fp32
        Conv2d = nn.Conv2d
        ConvTranspose2d = nn.ConvTranspose2d
        Linear = nn.Linear
        GroupNorm = nn.GroupNorm
        LayerNorm = nn.LayerNorm

    mods["comfy.ops"].disable_weight_init = Ops
    mods["comfy.ops"].manual_cast = Ops

    def prefix_replace(sd, repl):
        out = {}
        for k, v in sd.items():
            for old, new in repl.items():
                if k.startswith(old):
                    k = new + k[len(old):]
                    break
            out[k] = v
        return out

    class ProgressBar:
        def __init__(self, total):
            self.total = total

        def update(self, n):
            pass

    u = mods["comfy.utils"]
    u.state_dict_prefix_replace = prefix_replace
    u.ProgressBar = ProgressBar
    u.load_torch_file = lambda path, safe_load=True: torch.load(path, map_location="cpu", weights_only=True)

    mm = mods["comfy.model_management"]
    mm.OOM_EXCEPTION = torch.OutOfMemoryError
    mm.intermediate_device = lambda: torch.device("cpu")
    mm.intermediate_dtype = lambda: torch.float32
    mm.get_torch_device = lambda: device
    mm.unet_offload_device = lambda: torch.device("cpu")
    mm.should_use_fp16 = lambda *a, **k: False
    mm.load_models_gpu = lambda models, memory_required=0, **k: None
    mm.soft_empty_cache = lambda *a, **k: torch.cuda.empty_cache() if torch.cuda.is_available() else None

    class Patcher:
        def __init__(self, model, load_device=None, offload_device=None):
            self.model, self.load_device = model, load_device or device

        def model_dtype(self):
            return next(self.model.parameters()).dtype

    mods["comfy.model_patcher"].CoreModelPatcher = Patcher
    mods["comfy.model_patcher"].ModelPatcher = Patcher

    def pad_to_patch_size(img, patch_size=(2, 2), padding_mode="circular"):
        ph = (patch_size[0] - img.shape[-2] % patch_size[0]) % patch_size[0]
        pw = (patch_size[1] - img.shape[-1] % patch_size[1]) % patch_size[1]
        return F.pad(img, (0, pw, 0, ph), mode=padding_mode)

    mods["comfy.ldm.common_dit"].pad_to_patch_size = pad_to_patch_size
    mods["folder_paths"].get_filename_list = lambda kind: []
    mods["folder_paths"].get_full_path_or_raise = lambda kind, name: name

    class _Any:  # comfy_api.latest.io: the schema classes are only declared, never used by execute()
        def __init__(self, *a, **k):
            pass

        def __getattr__(self, name):
            return _Any

        def __call__(self, *a, **k):
            return _Any()

    class NodeOutput(tuple):
        def __new__(cls, *values):
            return super().__new__(cls, values)

    io = types.SimpleNamespace(ComfyNode=object, Schema=_Any, Custom=lambda name: _Any(), Image=_Any(), Int=_Any(),
                               Combo=_Any(), NodeOutput=NodeOutput)
    mods["comfy_api.latest"].io = io
    mods["comfy_api.latest"].ComfyExtension = object
    mods["comfy"].ops, mods["comfy"].utils = mods["comfy.ops"], u
    mods["comfy"].model_patcher, mods["comfy"].model_management = mods["comfy.model_patcher"], mm
    mods["comfy"].ldm, mods["comfy.ldm"].common_dit = mods["comfy.ldm"], mods["comfy.ldm.common_dit"]
    mods["comfy_api"].latest = mods["comfy_api.latest"]
    return mods


class Core:
    """Core's loader and FrameInterpolate node, imported from an extracted copy of the tarball."""

    def __init__(self, device="cpu", tarball: Path = TARBALL):
        if not Path(tarball).is_file():
            raise FileNotFoundError(f"ComfyUI 0.25 tarball not found at {tarball} (set VE_SHARED)")
        self.device = torch.device(device)
        self.tmp = tempfile.mkdtemp(prefix="ve-core-")
        with tarfile.open(tarball) as tar:
            top = tar.getmembers()[0].name.split("/")[0]
            want = [m for m in tar.getmembers() if any(m.name.startswith(f"{top}/{p}") for p in MEMBERS)]
            tar.extractall(self.tmp, members=want, filter="data")
        saved = {k: sys.modules.get(k) for k in (*_stub_modules(self.device), "comfy_extras")}
        sys.modules.update(_stub_modules(self.device))
        sys.path.insert(0, os.path.join(self.tmp, top))
        try:
            for k in [k for k in sys.modules if k == "comfy_extras" or k.startswith("comfy_extras.")]:
                del sys.modules[k]
            self.nodes = importlib.import_module("comfy_extras.nodes_frame_interpolation")
            self.ifnet = importlib.import_module("comfy_extras.frame_interpolation_models.ifnet")
        finally:
            sys.path.remove(os.path.join(self.tmp, top))

    def close(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def load(self, path, dtype=torch.float32):
        """Core's loader on a raw checkpoint (its own key mapping); returns core's patcher stand-in."""
        sd = torch.load(path, map_location="cpu", weights_only=True)
        model = self.nodes.FrameInterpolationModelLoader._detect_and_load(sd)
        model.eval().to(self.device, dtype)
        return sys.modules["comfy.model_patcher"].CoreModelPatcher(model, load_device=self.device)

    @torch.inference_mode()
    def interpolate(self, patcher, images: torch.Tensor, multiplier: int) -> torch.Tensor:
        """Core's FrameInterpolate.execute on IMAGE [N, H, W, 3] -> [(N - 1) * multiplier + 1, H, W, 3]."""
        return self.nodes.FrameInterpolate.execute(patcher, images, multiplier)[0]
