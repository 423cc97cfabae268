"""FILM (Frame Interpolation for Large Motion, Reda et al., ECCV 2022): the film_net architecture.

Per frame (computed once, reused by every pair and t the frame is part of):
  image pyramid    7 levels, each a 2x2 average pooling of the one above (odd sizes round down);
  feature pyramid  one shared 4-level extractor (two 3x3 convs + LeakyReLU 0.2 per level, 2x2
                   average pooling between levels, 64 << level channels) runs on every image level;
                   feature level i concatenates extractor output j of image level i - j (j < 4),
                   so the same weights see every scale ("feature sharing across scales").
Per pair: bidirectional residual flow, coarse to fine. At each level the flow so far is upsampled
  (bilinear, x2 in value), frame B's features are warped by it, and an estimator (3x3 convs, then
  two 1x1 convs to 2 channels) predicts the residual from [features A, warped features B]. The
  deepest levels share one estimator; the three finest each have their own.
Per t: both frames' [image, features] are backward-warped to time t with the linear-motion
  approximation (frame A by the B->A flow times t, frame B by the A->B flow times 1 - t), concatenated
  with the two scaled flows, and a U-Net-like decoder over the 5 finest levels (nearest upsampling,
  a 2x2 conv, two 3x3 convs per level, a 1x1 conv to RGB) fuses them into the frame.
  FILM is trained at t = 0.5. For other t this follows ComfyUI core (and FILM's own model code):
  the flows are computed once per pair and scaled by t / 1 - t, the same network fuses the result;
  no recursive midpoint subdivision.

Module and parameter names follow ComfyUI core's film_net module, so its safetensors load as they
are. Warping is bilinear backward sampling at pixel centres (align_corners=False) with border
padding. Frames need no padding (every level just rounds down), but the 7-level pyramid needs at
least 64 pixels per side: smaller frames are edge-padded to 64 (see pad_to_min).

Precision: convolutions run in the weights' dtype (fp32/fp16/bf16); flows are accumulated, scaled
and upsampled in fp32 and every warp samples in fp32. Layout: the activations follow the weights'
memory format (the method uses channels_last on the CPU: measured about 1.2x faster there).
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

PYRAMID_LEVELS = 7  # not stored in the weights; film_net's (and core's) value
MIN_SIZE = 2 ** (PYRAMID_LEVELS - 1)


@dataclass(frozen=True)
class FilmConfig:
    filters: int = 64  # extractor level 0 width; level j has filters << j
    sub_levels: int = 4  # extractor depth (and fusion depth)
    flow_convs: tuple[int, ...] = (3, 3, 3, 3)  # 3x3 convs per estimator, finest first; the last is shared
    flow_filters: tuple[int, ...] = (32, 64, 128, 256)
    fusion_filters: tuple[int, ...] = (64, 128, 256, 512)  # decoder width per level, finest first
    pyramid_levels: int = PYRAMID_LEVELS
    family: str = "FILM"

    def feature_channels(self, level: int) -> int:
        return sum(self.filters << j for j in range(min(level, self.sub_levels - 1) + 1))

    def aligned_channels(self, level: int) -> int:
        """Fusion input at a level: both frames' [image, features] warped, plus both scaled flows."""
        return 2 * (3 + self.feature_channels(level)) + 4

    @property
    def fusion_levels(self) -> int:
        return len(self.fusion_filters) + 1


class Conv(nn.Module):
    """A conv with TF 'same' padding (even kernels pad one extra row/column at the end) and an
    optional LeakyReLU(0.2). The child is named `conv` as in core's checkpoints."""

    def __init__(self, cin: int, cout: int, k: int, act: bool = True):
        super().__init__()
        self.even = k % 2 == 0
        self.conv = nn.Conv2d(cin, cout, k, padding=0 if self.even else k // 2)
        self.act = act

    def forward(self, x):
        if self.even:
            x = F.pad(x, (0, 1, 0, 1))
        x = self.conv(x)
        return F.leaky_relu(x, 0.2, inplace=True) if self.act else x


# ----------------------------------------------------------------------------- warping
_GRIDS: dict = {}


def warp(img: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """img sampled at x + flow(x) (pixels, fp32 [B, 2, h, w]); bilinear, border, pixel centres.
    The sampling runs in fp32 whatever img's dtype; the result has img's dtype."""
    _, _, h, w = flow.shape
    key = (h, w, flow.device)
    base = _GRIDS.get(key)
    if base is None:
        xs = (torch.arange(w, device=flow.device, dtype=torch.float32) * 2 + 1) / w - 1
        ys = (torch.arange(h, device=flow.device, dtype=torch.float32) * 2 + 1) / h - 1
        base = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)[None]
        if len(_GRIDS) > 32:
            _GRIDS.clear()
        _GRIDS[key] = base
    scale = torch.tensor([2.0 / w, 2.0 / h], device=flow.device, dtype=torch.float32)
    grid = base + flow.float().permute(0, 2, 3, 1) * scale
    out = F.grid_sample(img.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out if img.dtype == torch.float32 else out.to(img.dtype)


def _up(flow: torch.Tensor, size) -> torch.Tensor:
    """A flow at the next finer level: bilinear resize, values doubled."""
    return F.interpolate(flow, size=tuple(size), mode="bilinear", align_corners=False) * 2


# ----------------------------------------------------------------------------- per frame
class SubTree(nn.Module):
    def __init__(self, filters: int, levels: int):
        super().__init__()
        chans = [3] + [filters << j for j in range(levels)]
        self.convs = nn.ModuleList(nn.Sequential(Conv(chans[j], chans[j + 1], 3), Conv(chans[j + 1], chans[j + 1], 3))
                                   for j in range(levels))

    def forward(self, x, n: int) -> list[torch.Tensor]:
        """The first n outputs (each level pooled from the previous one's output)."""
        out = []
        for j in range(n):
            if j:
                x = F.avg_pool2d(x, 2, 2)
            x = self.convs[j](x)
            out.append(x)
        return out


class FeaturePyramid(nn.Module):
    def __init__(self, cfg: FilmConfig):
        super().__init__()
        self.extract_sublevels = SubTree(cfg.filters, cfg.sub_levels)
        self.sub_levels = cfg.sub_levels

    def forward(self, images: list[torch.Tensor]) -> list[torch.Tensor]:
        n, k = len(images), self.sub_levels
        sub: list = [None] * n
        out = []
        for i in range(n):
            sub[i] = self.extract_sublevels(images[i], min(n - i, k))
            out.append(torch.cat([sub[i - j][j] for j in range(min(i + 1, k))], 1) if i else sub[0][0])
            if i >= k - 1:
                sub[i - k + 1] = None  # no later level needs it
        return out


# ----------------------------------------------------------------------------- per pair
class FlowEstimator(nn.Module):
    def __init__(self, cin: int, n: int, width: int):
        super().__init__()
        convs = [Conv(cin if k == 0 else width, width, 3) for k in range(n)]
        convs += [Conv(width, width // 2, 1), Conv(width // 2, 2, 1, act=False)]
        self._convs = nn.ModuleList(convs)

    def forward(self, a, b):
        x = torch.cat((a, b), 1)
        for conv in self._convs:
            x = conv(x)
        return x


class PyramidFlow(nn.Module):
    """`_predictor` serves the deepest levels (shared); `_predictors[k]` serves level
    len(_predictors) - 1 - k (core's ordering)."""

    def __init__(self, cfg: FilmConfig):
        super().__init__()
        n = len(cfg.flow_convs)
        est = [FlowEstimator(2 * cfg.feature_channels(i), cfg.flow_convs[i], cfg.flow_filters[i]) for i in range(n)]
        self._predictor = est[-1]
        self._predictors = nn.ModuleList(est[:-1][::-1])

    def estimator(self, level: int) -> FlowEstimator:
        k = len(self._predictors) - 1 - level
        return self._predictor if k < 0 else self._predictors[k]

    def forward(self, fa: list[torch.Tensor], fb: list[torch.Tensor], keep: int) -> list[torch.Tensor]:
        """Flow from A to B (in A's pixels, sampling B) at the `keep` finest levels, fp32, finest first."""
        levels = len(fa)
        v = self._predictor(fa[-1], fb[-1]).float()
        flows = [v]
        for i in range(levels - 2, -1, -1):
            v = _up(v, fa[i].shape[-2:])
            v = v + self.estimator(i)(fa[i], warp(fb[i], v)).float()
            flows.append(v)
        return flows[::-1][:keep]


# ----------------------------------------------------------------------------- per t
class Fusion(nn.Module):
    """`convs[k]` serves level n - 1 - k (coarse to fine): [2x2 conv after nearest upsampling,
    3x3 conv over [aligned, upsampled], 3x3 conv]; `output_conv` maps to RGB."""

    def __init__(self, cfg: FilmConfig):
        super().__init__()
        n = len(cfg.fusion_filters)
        self.convs = nn.ModuleList()
        prev = cfg.aligned_channels(n)
        for i in range(n - 1, -1, -1):
            w = cfg.fusion_filters[i]
            self.convs.append(nn.ModuleList([Conv(prev, w, 2, act=False), Conv(cfg.aligned_channels(i) + w, w, 3),
                                             Conv(w, w, 3)]))
            prev = w
        self.output_conv = nn.Conv2d(cfg.fusion_filters[0], 3, 1)

    def forward(self, aligned: list[torch.Tensor]) -> torch.Tensor:
        net = aligned[-1]
        for k, (up, conv1, conv2) in enumerate(self.convs):
            x = aligned[len(self.convs) - 1 - k]
            net = up(F.interpolate(net, size=x.shape[-2:], mode="nearest"))
            net = conv2(conv1(torch.cat((x, net), 1)))
        return self.output_conv(net)


# ----------------------------------------------------------------------------- network
class FilmFrame:
    """A frame's cached work: per pyramid level, [image, features] in the net's dtype."""

    __slots__ = ("levels", "__weakref__")

    def __init__(self, levels: list[torch.Tensor]):
        self.levels = levels

    def features(self) -> list[torch.Tensor]:
        return [x[:, 3:] for x in self.levels]


def pad_to_min(img: torch.Tensor, size: int = MIN_SIZE) -> torch.Tensor:
    """Edge-pad (bottom/right) a frame smaller than `size` on a side; larger frames are unchanged."""
    h, w = img.shape[-2:]
    if h >= size and w >= size:
        return img
    return F.pad(img, (0, max(0, size - w), 0, max(0, size - h)), mode="replicate")


class FilmNet(nn.Module):
    def __init__(self, cfg: FilmConfig = FilmConfig()):
        super().__init__()
        self.cfg = cfg
        self.extract = FeaturePyramid(cfg)
        self.predict_flow = PyramidFlow(cfg)
        self.fuse = Fusion(cfg)

    @property
    def dtype(self) -> torch.dtype:
        return self.fuse.output_conv.weight.dtype

    @property
    def memory_format(self) -> torch.memory_format:
        w = self.extract.extract_sublevels.convs[0][0].conv.weight
        return torch.channels_last if w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous() \
            else torch.contiguous_format

    def frame(self, img: torch.Tensor) -> FilmFrame:
        """img [B, 3, H, W] (H, W >= 64) -> its image + feature pyramids."""
        h, w = img.shape[-2:]
        if min(h, w) < MIN_SIZE:
            raise ValueError(f"FILM needs frames of at least {MIN_SIZE}x{MIN_SIZE} pixels, got {w}x{h} (pad_to_min)")
        x = img.to(self.dtype).contiguous(memory_format=self.memory_format)
        images = [x]
        for _ in range(self.cfg.pyramid_levels - 1):
            images.append(F.avg_pool2d(images[-1], 2, 2))
        feats = self.extract(images)
        return FilmFrame([torch.cat((im, f), 1) for im, f in zip(images, feats)])

    def flows(self, a: FilmFrame, b: FilmFrame) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(A->B, B->A) flow pyramids of the fusion levels, fp32."""
        fa, fb = a.features(), b.features()
        keep = self.cfg.fusion_levels
        return self.predict_flow(fa, fb, keep), self.predict_flow(fb, fa, keep)

    def synthesize(self, a: list[torch.Tensor], b: list[torch.Tensor], fwd, bwd, t: torch.Tensor) -> torch.Tensor:
        """a/b: per fusion level the frames' [image, features] ([B, C, h, w]); fwd/bwd their flows; t [B]."""
        t = t.to(fwd[0].device, torch.float32).view(-1, 1, 1, 1)
        aligned = []
        for i in range(self.cfg.fusion_levels):
            f_ta = bwd[i] * t  # time t -> frame A
            f_tb = fwd[i] * (1 - t)  # time t -> frame B
            aligned.append(torch.cat((warp(a[i], f_ta), warp(b[i], f_tb), f_ta.to(self.dtype), f_tb.to(self.dtype)), 1))
        return self.fuse(aligned)

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, t=0.5) -> torch.Tensor:
        """img0/img1 [B, 3, H, W], t float or [B] -> [B, 3, H, W] (not clamped)."""
        a, b = self.frame(img0), self.frame(img1)
        if not torch.is_tensor(t):
            t = torch.full((img0.shape[0],), float(t))
        fwd, bwd = self.flows(a, b)
        n = self.cfg.fusion_levels
        return self.synthesize(a.levels[:n], b.levels[:n], fwd, bwd, t)


class PairFlows:
    """Flows of the pairs in use, keyed by the two FilmFrame objects; an entry goes when either
    frame is freed (weak references), so nothing outlives the runner's own frame cache."""

    def __init__(self):
        self._d: dict = {}

    def get(self, a: FilmFrame, b: FilmFrame):
        hit = self._d.get((id(a), id(b)))
        if hit is not None and hit[0]() is a and hit[1]() is b:
            return hit[2]
        return None

    def put(self, a: FilmFrame, b: FilmFrame, flows) -> None:
        key = (id(a), id(b))
        drop = lambda _ref, d=self._d, k=key: d.pop(k, None)  # noqa: E731
        self._d[key] = (weakref.ref(a, drop), weakref.ref(b, drop), flows)

    def clear(self) -> None:
        self._d.clear()

    def __len__(self) -> int:
        return len(self._d)


def film_pairs(net: FilmNet, s0: list[FilmFrame], s1: list[FilmFrame], t: torch.Tensor, cache: PairFlows):
    """Interpolate a batch of tasks (frame pairs and t, pairs may repeat): each pair's flows once
    (cached across batches), then one batched synthesis."""
    n = net.cfg.fusion_levels
    per_task = []
    for a, b in zip(s0, s1):
        fl = cache.get(a, b)
        if fl is None:
            fl = net.flows(a, b)
            cache.put(a, b, fl)
        per_task.append(fl)

    def stack(xs):
        return xs[0] if len(xs) == 1 else torch.cat(xs)

    la = [stack([a.levels[i] for a in s0]) for i in range(n)]
    lb = [stack([b.levels[i] for b in s1]) for i in range(n)]
    fwd = [stack([f[0][i] for f in per_task]) for i in range(n)]
    bwd = [stack([f[1][i] for f in per_task]) for i in range(n)]
    return net.synthesize(la, lb, fwd, bwd, t)
