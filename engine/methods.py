"""Interpolation methods behind one small interface the runner drives.

    state = method.prepare(img)                   # once per source frame, img [1, 3, H, W] padded
    out = method.interpolate(s0, s1, t, scale=1)  # lists of states, t [B] -> [B, 3, H, W]

`prepare` is where a frame's cached work lives (RIFE encoder features; FILM's image and feature
pyramids; grey image for the flow method), so a frame used by several pairs and timesteps is
processed once.

Methods:
  rife    a RIFE IFNet checkpoint (any family the zoo detects).
  film    a FILM checkpoint (engine.film): flows once per pair (kept while the pair's frames are
          cached, so a pair whose timesteps span batches is not redone), then one batched fusion
          for every t. No padding (frames under 64 px a side are edge-padded to 64); no flow scale,
          no ensemble; arbitrary t as ComfyUI core does it (flows scaled by t, one fusion pass).
  flow    built-in, no download: OpenCV DIS optical flow both ways, t-flows by the linear-motion
          approximation, backward warping, plain (1 - t) / t fusion (occlusion weighting measured
          worse on the shared bench). Two DIS fields per direction (the MEDIUM preset, and the same with
          smoother variational refinement, alpha 10) each give a frame; their mean scores higher on the
          shared bench than either alone. Flows are computed once per pair and reused for every t.
          DIS fails (cv2.error) or crashes on images with a side under 16 px (its pyramid follows the
          longer side), so smaller images are edge-padded to MIN_FLOW_SIDE for the flow and the flow is
          cropped back: every size from 2x2 works.
  blend   linear mix (1 - t) * a + t * b: the last-resort method that cannot fail.
  module  a network built elsewhere (ComfyUI core's INTERP_MODEL: its RIFE IFNet or FILM), driven
          through its own interface; see ModuleMethod.
"""
from __future__ import annotations

import contextlib
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

import numpy as np
import torch

from .models import BLEND, BUILTIN_FLOW, builtin, find, where

log = logging.getLogger(__name__)


class Method:
    name: str = ""
    kind: str = ""
    network = False  # a neural network: runs on a device in a chosen precision, calibrated by the guard
    supports_ensemble = False
    supports_scale = False
    pad_mode = "constant"  # how the runner pads frames to pad_multiple() (F.pad mode)
    device = torch.device("cpu")
    dtype = torch.float32

    def pad_multiple(self, scale: float = 1.0) -> int:
        return 1

    def to(self, device, dtype) -> "Method":
        return self

    def prepare(self, img: torch.Tensor):
        return img

    def prepare_many(self, imgs: list, size: tuple[int, int]) -> list:
        """[prepare(img()) for img in imgs]: imgs are functions that make the images, each of `size`
        (h, w), only when it is prepared (a method may run them side by side)."""
        return [self.prepare(img()) for img in imgs]

    def interpolate(self, s0: list, s1: list, t: torch.Tensor, scale: float = 1.0, ensemble: bool = False) -> torch.Tensor:
        raise NotImplementedError

    def describe(self) -> str:
        return self.name


def padded(n: int, multiple: int) -> int:
    """n rounded up to a multiple of `multiple` (the size a frame is padded to for a method)."""
    return -(-int(n) // multiple) * multiple


class _NetMethod(Method):
    network = True
    net: torch.nn.Module

    def to(self, device, dtype) -> "_NetMethod":
        # read the weights' real place: ComfyUI's model manager may have moved them since
        device = torch.device(device)
        p = next(self.net.parameters())
        if p.device.type != device.type or (device.index is not None and p.device != device) or p.dtype != dtype:
            self.net.to(device=device, dtype=dtype)
        self.device, self.dtype = device, dtype
        return self


class RifeMethod(_NetMethod):
    kind = "rife"
    network = True
    supports_scale = True

    def __init__(self, net, name: str):
        self.net = net.pack()
        self.name = name
        self.cfg = net.cfg
        self.supports_ensemble = True  # inside the net where the family allows, else by averaging outputs
        self.refine = False
        self.lean = False  # memory over speed (see IFNet.forward_packed)

    def pad_multiple(self, scale: float = 1.0) -> int:
        m = self.cfg.pad_multiple
        return int(max(m, round(m / scale)))

    def to(self, device, dtype) -> "RifeMethod":
        super().to(device, dtype)
        self.net.set_layout(channels_last=self.device.type == "cpu")  # channels-last measured on the CPU only
        return self

    def prepare(self, img):
        return self.net.pack_frame(img.to(self.device, self.dtype))

    def concurrent_items(self, n: int, device, dtype, size: tuple[int, int]) -> int:
        """How many of a batch's n items run at once, each on its own thread with its share of torch's
        CPU threads (1: the batch runs as one forward), for padded frames of size (h, w) on device in
        dtype. On the CPU in fp32, for frames small enough for the stacked path (ifnet.stacks): up to
        CONCURRENT_ITEMS. Measured (2 threads, the same frames): 8 items as two single-threaded
        streams took 0.82-0.88 of the time of 8 forwards one after the other at 320x192-640x384,
        2 items 0.94-0.96, one batched forward of 2 0.99 (bench/results/levers.md, session 6). Not
        lean (memory first), nor inside one_item_at_a_time()."""
        from .ifnet import stacks

        packed_bytes = (3 + self.cfg.feat_ch) * size[0] * size[1] * torch.empty((), dtype=dtype).element_size()
        if (torch.device(device).type != "cpu" or n < 2 or self.lean or dtype != torch.float32
                or getattr(_ONE_AT_A_TIME, "on", False) or not stacks(packed_bytes)):
            return 1
        return min(n, CONCURRENT_ITEMS, torch.get_num_threads())

    def prepare_many(self, imgs: list, size: tuple[int, int]) -> list:
        k = self.concurrent_items(len(imgs), self.device, self.dtype, size)
        if k > 1:
            return _concurrently(lambda i: self.prepare(imgs[i]()), len(imgs), k)
        return super().prepare_many(imgs, size)

    def interpolate(self, s0, s1, t, scale=1.0, ensemble=False):
        f = s0[0]
        k = self.concurrent_items(len(s0), f.device, f.dtype, f.shape[-2:])
        if k > 1:
            return torch.cat(_concurrently(lambda i: self.interpolate([s0[i]], [s1[i]], t[i:i + 1], scale, ensemble),
                                           len(s0), k))
        x0 = s0[0] if len(s0) == 1 else torch.cat(s0)
        x1 = s1[0] if len(s1) == 1 else torch.cat(s1)
        t = t.to(self.device, self.dtype)
        if ensemble and not self.cfg.supports_ensemble:
            # test-time ensemble by swapping the frames (t -> 1 - t) and averaging the two results
            a = self.net.forward_packed(x0, x1, t, scale=scale, refine=self.refine, lean=self.lean)
            b = self.net.forward_packed(x1, x0, 1 - t, scale=scale, refine=self.refine, lean=self.lean)
            return (a + b) / 2
        return self.net.forward_packed(x0, x1, t, scale=scale, ensemble=ensemble, refine=self.refine, lean=self.lean)

    def describe(self) -> str:
        return f"RIFE {self.cfg.family} ({self.name})"


_ONE_AT_A_TIME = threading.local()


@contextlib.contextmanager
def one_item_at_a_time():
    """Within (this thread): a batch runs as one forward, never as streams side by side. For the
    guard's probes: its memory count sees only its own thread, and worker threads that ran the
    probes would keep their own malloc arenas' memory for the rest of the process (+40-50 MB of RSS
    in a 720p run that never uses them; bench/rss_720p.py)."""
    before = getattr(_ONE_AT_A_TIME, "on", False)
    _ONE_AT_A_TIME.on = True
    try:
        yield
    finally:
        _ONE_AT_A_TIME.on = before


CONCURRENT_ITEMS = 2  # the most batch items RifeMethod runs side by side on the CPU (measured with 2 threads)
_POOL: list = [None, 0]  # the item threads (kept: a thread's first oneDNN calls set up per-thread state) and their count


def _concurrently(item, n: int, k: int) -> list:
    """[item(0), .., item(n - 1)], run by k streams at once (each takes the next item not yet taken,
    so a stream slowed down by something else does not hold the others up), torch's CPU threads
    divided among them; torch's thread count is restored after. After an error no stream takes a
    new item, and every stream is waited for before it is raised (none is left running)."""
    threads = torch.get_num_threads()
    inference = torch.is_inference_mode_enabled()
    if _POOL[1] != k:
        if _POOL[0] is not None:
            _POOL[0].shutdown()
        _POOL[:] = ThreadPoolExecutor(k, thread_name_prefix="video-engine-item"), k
    todo, lock, failed = iter(range(n)), threading.Lock(), threading.Event()
    out = [None] * n

    def stream():
        torch.set_num_threads(max(1, threads // k))
        with torch.inference_mode(inference):
            while not failed.is_set():
                with lock:
                    i = next(todo, None)
                if i is None:
                    return
                try:
                    out[i] = item(i)
                except BaseException:
                    failed.set()  # the other streams take no new item
                    raise

    try:
        futures = [_POOL[0].submit(stream) for _ in range(k)]
        wait(futures)
        for f in futures:
            f.result()
    finally:
        torch.set_num_threads(threads)
    return out


class FilmMethod(_NetMethod):
    kind = "film"

    def __init__(self, net, name: str):
        from .film import PairFlows

        self.net = net
        self.name = name
        self.cfg = net.cfg
        self._pairs = PairFlows()

    def to(self, device, dtype) -> "FilmMethod":
        self._pairs.clear()
        super().to(device, dtype)
        # channels_last measured ~1.2x faster on the CPU (oneDNN); elsewhere the default layout (not measured here)
        fmt = torch.channels_last if self.device.type == "cpu" else torch.contiguous_format
        if self.net.memory_format != fmt:
            self.net.to(memory_format=fmt)
        return self

    def prepare(self, img):
        from .film import pad_to_min

        return self.net.frame(pad_to_min(img.to(self.device)))

    def interpolate(self, s0, s1, t, scale=1.0, ensemble=False):
        from .film import film_pairs

        return film_pairs(self.net, s0, s1, t, self._pairs)

    def describe(self) -> str:
        return f"FILM ({self.name})"


class ModuleMethod(_NetMethod):
    """A network built elsewhere, driven through its own interface (ComfyUI core's frame
    interpolation models, RIFE IFNet and FILM, follow it):

        feats = module.extract_features(img)                                # per frame, cached
        out = module(img0, img1, timestep=t [B, 1, H, W], cache={"img0": f0, "img1": f1})
        out = module.forward_multi_timestep(img0, img1, [t, ...], cache=...)  # optional: flow once
                                                                            # per pair, batch 1
        module.pad_align                                                    # optional, default 1

    Frames are padded to pad_align by reflection, as the module's owner pads them, so the output
    equals what its owner computes. The weights are moved (device, dtype) as the run needs, and
    `restore()` puts them back where they were when the method was made.
    """

    kind = "module"
    supports_ensemble = True  # by swapping the frames (t -> 1 - t) and averaging
    pad_mode = "reflect"

    def __init__(self, module: torch.nn.Module, name: str, label: str | None = None):
        self.net = self.module = module
        self.name = name
        self.label = label or name
        p = next(module.parameters())
        self.home = (p.device, p.dtype)
        self.device, self.dtype = p.device, p.dtype

    def pad_multiple(self, scale: float = 1.0) -> int:
        return max(1, int(getattr(self.module, "pad_align", 1) or 1))

    def restore(self) -> None:
        """Weights back to the device and precision they had before this method moved them."""
        self.to(*self.home)

    def prepare(self, img):
        x = img.to(self.device, self.dtype)
        return x, self.module.extract_features(x)

    def _run(self, s0, s1, t):
        multi = getattr(self.module, "forward_multi_timestep", None)
        if multi is not None:  # batch 1 per pair, every t of the pair at once
            outs, k = [], 0
            while k < len(s0):
                j = k
                while j < len(s0) and s0[j] is s0[k] and s1[j] is s1[k]:
                    j += 1
                cache = {"img0": s0[k][1], "img1": s1[k][1]}
                outs.append(multi(s0[k][0], s1[k][0], [float(v) for v in t[k:j]], cache=cache))
                k = j
            return torch.cat(outs)
        x0 = torch.cat([s[0] for s in s0])
        x1 = torch.cat([s[0] for s in s1])
        cache = {"img0": torch.cat([s[1] for s in s0]), "img1": torch.cat([s[1] for s in s1])}
        ts = t.to(self.device, self.dtype).view(-1, 1, 1, 1).expand(-1, 1, x0.shape[2], x0.shape[3])
        return self.module(x0, x1, timestep=ts, cache=cache)

    def interpolate(self, s0, s1, t, scale=1.0, ensemble=False):
        y = self._run(s0, s1, t)
        if ensemble:
            y = (y + self._run(s1, s0, 1 - t)) / 2
        return y

    def describe(self) -> str:
        return self.label


MIN_FLOW_SIDE = 32  # DIS is safe from 16 px per side (measured on 2..15000 px); twice that for margin


@dataclass
class _FlowState:
    rgb: np.ndarray  # float32 [H, W, 3] in [0, 1]
    grey: np.ndarray  # uint8 [max(H, MIN_FLOW_SIDE), max(W, MIN_FLOW_SIDE)]: edge-padded below the minimum


class FlowMethod(Method):
    """Built-in optical-flow interpolation (CPU, OpenCV DIS)."""

    kind = "flow"
    name = BUILTIN_FLOW

    def __init__(self, preset: str = "MEDIUM"):
        import cv2

        self._cv2 = cv2
        self.preset = preset
        self._dis = []
        for alpha in (None, 10.0):  # preset default, then smoother variational refinement
            dis = cv2.DISOpticalFlow_create(getattr(cv2, "DISOpticalFlow_PRESET_" + preset))
            if alpha is not None:
                dis.setVariationalRefinementAlpha(alpha)
            self._dis.append(dis)
        self._pair = (None, None, None)  # (state0, state1, [(f01, f10) per DIS field])
        self._grid = None

    def prepare(self, img):
        rgb = img[0].detach().to("cpu", torch.float32).permute(1, 2, 0).contiguous().numpy()
        rgb8 = np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)
        grey = self._cv2.cvtColor(rgb8, self._cv2.COLOR_RGB2GRAY)
        h, w = grey.shape
        if min(h, w) < MIN_FLOW_SIDE:
            grey = self._cv2.copyMakeBorder(grey, 0, max(0, MIN_FLOW_SIDE - h), 0, max(0, MIN_FLOW_SIDE - w),
                                            self._cv2.BORDER_REPLICATE)
        return _FlowState(rgb, grey)

    def _flows(self, a: _FlowState, b: _FlowState):
        pa, pb, flows = self._pair
        if pa is a and pb is b:
            return flows
        h, w = a.rgb.shape[:2]
        flows = [(d.calc(a.grey, b.grey, None)[:h, :w], d.calc(b.grey, a.grey, None)[:h, :w]) for d in self._dis]
        self._pair = (a, b, flows)
        return flows

    def _warp(self, img, flow):
        h, w = flow.shape[:2]
        if self._grid is None or self._grid[0].shape != (h, w):
            gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
            self._grid = (gx, gy)
        gx, gy = self._grid
        return self._cv2.remap(img, gx + flow[..., 0], gy + flow[..., 1], interpolation=self._cv2.INTER_LINEAR,
                               borderMode=self._cv2.BORDER_REPLICATE)

    def synth(self, a: _FlowState, b: _FlowState, t: float) -> np.ndarray:
        out = None
        for f01, f10 in self._flows(a, b):
            ft0 = (-(1.0 - t) * t) * f01 + (t * t) * f10
            ft1 = ((1.0 - t) ** 2) * f01 - (t * (1.0 - t)) * f10
            y = (1.0 - t) * self._warp(a.rgb, ft0.astype(np.float32)) + t * self._warp(b.rgb, ft1.astype(np.float32))
            out = y if out is None else out + y
        return out / len(self._dis)

    def interpolate(self, s0, s1, t, scale=1.0, ensemble=False):
        outs = [self.synth(a, b, float(tt)) for a, b, tt in zip(s0, s1, t.tolist())]
        return torch.from_numpy(np.stack(outs)).permute(0, 3, 1, 2)

    def describe(self) -> str:
        return f"built-in optical flow (OpenCV DIS {self.preset.lower()}, 2 fields)"


class BlendMethod(Method):
    kind = "blend"
    name = BLEND

    def prepare(self, img):
        return img.to("cpu", torch.float32)

    def interpolate(self, s0, s1, t, scale=1.0, ensemble=False):
        a, b = torch.cat(s0), torch.cat(s1)
        tt = t.to(torch.float32).view(-1, 1, 1, 1)
        return torch.lerp(a, b, tt)

    def describe(self) -> str:
        return "linear blend"


def load_method(spec: str | os.PathLike | None, search_dirs=()) -> Method:
    """A method from a built-in name (engine.models.builtin), a weights path, or a file name inside
    search_dirs. None or "" picks the built-in flow method (no download needed)."""
    from .film import FilmNet
    from .zoo import CheckpointError, load_net

    name = builtin(spec)
    if name is not None:
        return FlowMethod() if name == BUILTIN_FLOW else BlendMethod()
    if os.path.isdir(os.fspath(spec)):
        raise CheckpointError(f"model {spec!r} is a directory; give the path of a weights file inside it "
                              f"(.safetensors, .pth, .pkl) or a built-in method ('{BUILTIN_FLOW}', '{BLEND}')")
    path = find(spec, search_dirs)
    if path is None:
        raise CheckpointError(f"model {spec!r} not found: looked for the file {os.fspath(spec)!r} and in "
                              f"{where(search_dirs)}. Put RIFE or FILM weights there, or use '{BUILTIN_FLOW}' "
                              "(no download).")
    net = load_net(path)
    return (FilmMethod if isinstance(net, FilmNet) else RifeMethod)(net, os.path.basename(path))


def resolve_dtype(precision: str, device) -> torch.dtype:
    """The torch dtype of a precision option (checked by engine.options); auto: fp16 on CUDA, else fp32."""
    from .options import check_precision

    if check_precision(precision) == "auto":
        return torch.float16 if torch.device(device).type == "cuda" else torch.float32
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
