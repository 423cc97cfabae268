"""RIFE IFNet, one implementation for every v4 family, configured from a checkpoint's shapes.

Families (block widths, per-frame encoder, what a block returns):
  legacy  4.0-4.3 (HDv3): PReLU, 8 plain convs + outer residual, ConvTranspose -> 5 ch at half
          resolution, mask accumulated across blocks, optional contextnet/unet refinement.
  4.5/4.6: LeakyReLU, ResConv (conv * beta + x), ConvTranspose + PixelShuffle -> 5/6 ch,
          mask accumulated, no encoder.
  4.7-4.21: as 4.5 plus a per-frame feature encoder (4, 8 ch) fed to every block; mask replaced.
  4.22+ (incl. the 5-block 4.25/4.26 family): 13-ch output whose last 8 channels are block
          features passed to the next block; Head encoder.
Warping is backward bilinear sampling with border padding and align_corners=True.

Speed choices that keep the maths of the reference: the ResConv beta is folded into the conv
weights after loading, each frame's encoder features are computed once by the caller and reused
for every pair and t, and both frames (image + features) are warped in one grid_sample call. A
warp whose result the next block only reads downscaled by 1/4 or less is evaluated at the pixels
that downscale reads (warp_down), the last block computes only flow and mask, a block's mask and
features reach the next block at that block's resolution without the frame-sized tensor between
(_up_down), and on the CPU the blocks' convolutions run channels-last, through oneDNN with weights
reordered once per input shape and the LeakyReLU / residual add fused (_onednn_conv; also the Head
encoder's).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def passthrough_channels(out_channels: int) -> int:
    """Feature channels a block passes to the next beyond flow 4 + mask 1 (a 6th channel is unused)."""
    return out_channels - 5 if out_channels > 6 else 0


@dataclass(frozen=True)
class IFNetConfig:
    family: str
    widths: tuple[int, ...]
    in_channels: tuple[int, ...]
    out_channels: int  # channels a block emits: flow 4 + mask 1 (+ 1 unused | + passthrough features)
    legacy: bool = False  # 4.0-4.3 block layout
    encoder: str | None = None  # None | "seq" (nn.Sequential, 4.7-4.12) | "head" (Head, 4.13+)
    encoder_layers: tuple[tuple[int, int, int, bool], ...] = ()  # (seq index, in, out, transposed)
    feat_ch: int = 0
    scale_list: tuple[float, ...] = (8, 4, 2, 1)
    pad_multiple: int = 32
    refine: bool = False  # contextnet + unet present (4.0-4.3)
    clamp_input: bool = False

    @property
    def passthrough(self) -> int:
        return passthrough_channels(self.out_channels)

    @property
    def accumulate_mask(self) -> bool:
        return self.encoder is None

    @property
    def supports_ensemble(self) -> bool:
        return self.passthrough == 0


# ----------------------------------------------------------------------------- warping
_GRIDS: dict = {}


def _cached(key, make):
    val = _GRIDS.get(key)
    if val is None:
        if len(_GRIDS) > 32:
            _GRIDS.clear()
        val = _GRIDS[key] = make()
    return val


def _base_grid(h: int, w: int, device) -> torch.Tensor:
    def make():
        gy, gx = torch.meshgrid(torch.linspace(-1.0, 1.0, h, device=device, dtype=torch.float32),
                                torch.linspace(-1.0, 1.0, w, device=device, dtype=torch.float32), indexing="ij")
        return torch.stack((gx, gy), dim=-1)[None]

    return _cached((h, w, device), make)


def _sample(img, flow, grid, norm):
    g = torch.addcmul(grid, flow.permute(0, 2, 3, 1).float(), norm)
    if img.dtype == torch.float32:
        return F.grid_sample(img, g, mode="bilinear", padding_mode="border", align_corners=True)
    return F.grid_sample(img.float(), g, mode="bilinear", padding_mode="border", align_corners=True).to(img.dtype)


def warp(img: torch.Tensor, flow: torch.Tensor, rows: slice = slice(None)) -> torch.Tensor:
    """img(x + flow(x)): bilinear, border padding, align_corners=True. flow [B, 2, H, W] in pixels;
    rows: only those rows of the result are computed (the same values as slicing the whole result).

    Sampling positions are computed in fp32 whatever the compute dtype: fp16/bf16 cannot address
    pixels of a wide frame exactly (bf16 keeps 8 mantissa bits)."""
    _, _, h, w = flow.shape
    norm = torch.tensor([2.0 / (w - 1), 2.0 / (h - 1)], device=flow.device, dtype=torch.float32)
    return _sample(img, flow[:, :, rows], _base_grid(h, w, flow.device)[:, rows], norm)


def sub_sampled(s: float, h: int, w: int) -> bool:
    """Whether a bilinear downscale by 1/s reads a sparse, regular subset of the pixels: for an even
    integer s >= 4 dividing the frame, output pixel i is the mean of input pixels i*s + s/2 - 1 and
    i*s + s/2 in each direction (and nothing else is read)."""
    return s >= 4 and float(s).is_integer() and int(s) % 2 == 0 and h % int(s) == 0 and w % int(s) == 0


def _sub_index(n: int, s: int, device) -> torch.Tensor:
    def make():
        i = torch.arange(n // s, device=device) * s + s // 2 - 1
        return torch.stack((i, i + 1), 1).flatten()

    return _cached(("idx", n, s, device), make)


def warp_down(img: torch.Tensor, flow: torch.Tensor, s: float) -> torch.Tensor:
    """_resize(warp(img, flow), 1 / s) for sub_sampled(s): the warp is evaluated only at the pixels
    the downscale reads (1 in s*s / 4), then downscaled by 2 with the same weights (0.5, 0.5)."""
    _, _, h, w = flow.shape
    s = int(s)
    rows, cols = _sub_index(h, s, flow.device), _sub_index(w, s, flow.device)
    grid = _cached(("sub", h, w, s, flow.device), lambda: _base_grid(h, w, flow.device)[:, rows][:, :, cols])
    norm = torch.tensor([2.0 / (w - 1), 2.0 / (h - 1)], device=flow.device, dtype=torch.float32)
    return _resize(_sample(img, flow.index_select(2, rows).index_select(3, cols), grid, norm), 0.5)


def _row_bands(n: int, row_bytes: int):
    """(r0, r1) bands of n output rows, each reading about BAND_BYTES of input (row_bytes per output
    row; at least one row a band)."""
    step = max(1, BAND_BYTES // row_bytes)
    return ((r0, min(n, r0 + step)) for r0 in range(0, n, step))


def _warp_halved(img: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """_resize(warp(img, flow), 0.5) without the whole warped frame: a bilinear halving averages rows
    2i and 2i + 1 (and columns), so it is done a band of rows at a time (_row_bands)."""
    b, c = img.shape[:2]
    h, w = flow.shape[-2:]
    out = torch.empty((b, c, h // 2, w // 2), dtype=img.dtype, device=img.device)
    for r0, r1 in _row_bands(h // 2, 2 * c * w * img.element_size()):
        out[:, :, r0:r1] = _resize(warp(img, flow, slice(2 * r0, 2 * r1)), 0.5)
    return out


def _resize(x: torch.Tensor, factor: float) -> torch.Tensor:
    if factor == 1:
        return x
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)


def _rows_resized(x: torch.Tensor, f: float, a: int, z: int) -> torch.Tensor:
    """Rows [a, z) of _resize(x, f) for f a power of two >= 1, made from the rows of x they read (plus
    one on each side, so the edge clamping of the slab never reaches them): the same sample
    positions and weights (exact in floating point for a power of two), the same values up to rounding."""
    if f == 1:
        return x[:, :, a:z]
    f_int, n = int(f), x.shape[2]
    lo, hi = max(a // f_int - 1, 0), min(z // f_int + 2, n)
    return _resize(x[:, :, lo:hi], f)[:, :, a - lo * f_int:z - lo * f_int]


def _up_down(x: torch.Tensor, up: float, nxt: float) -> torch.Tensor:
    """_resize(_resize(x, up), 1 / nxt) without the large tensor between: bilinear resizing is
    separable, so each axis is resized up and down on its own (the same weights and positions)."""
    if nxt == 1:
        return _resize(x, up)
    for f in ((up, 1), (1.0 / nxt, 1), (1, up), (1, 1.0 / nxt)):  # H up, H down, W up, W down
        x = F.interpolate(x, scale_factor=f, mode="bilinear", align_corners=False)
    return x


# ----------------------------------------------------------------------------- oneDNN convolutions (CPU)
def _onednn_conv(conv: nn.Conv2d | nn.ConvTranspose2d, x: torch.Tensor, residual: torch.Tensor | None = None,
                 act: bool = True, padding: tuple | None = None) -> torch.Tensor:
    """LeakyReLU(0.2) of conv(x) (+ residual), or conv(x) alone (act False, no residual), as one oneDNN call with
    the weights reordered for the input shape once and kept (re-done when the shape or the weights
    change): what torch.compile's freezing does for a CPU convolution, without a compiler. CPU, fp32,
    channels-last input. padding: instead of the conv's own (a conv, not a transposed one).

    The kept weights are those of one (batch, channels, width) and of each input height seen with it:
    the bands of IFBlock.forward_banded (2 or 3 heights) keep theirs, and are not re-ordered (and
    re-allocated) in every forward; another frame size or batch drops them all."""
    mk = torch.ops.mkldnn
    p, st, d = list(padding or conv.padding), list(conv.stride), list(conv.dilation)
    transposed = isinstance(conv, nn.ConvTranspose2d)
    weight = conv.weight
    group = (x.shape[0], x.shape[1], x.shape[3], weight.data_ptr(), 0 if weight.is_inference() else weight._version)
    kept = conv.__dict__.get("_onednn")
    if kept is None or kept[0] != group:
        kept = conv.__dict__["_onednn"] = (group, {})
    w = kept[1].get((x.shape[2], tuple(p)))
    if w is None:
        w = weight.detach()
        if transposed:
            w = mk._reorder_convolution_transpose_weight(w, p, list(conv.output_padding), st, d, conv.groups,
                                                         list(x.shape))
        else:
            w = torch._C._nn.mkldnn_reorder_conv2d_weight(w.to_mkldnn(), p, st, d, conv.groups, list(x.shape))
        kept[1][(x.shape[2], tuple(p))] = w
    if residual is not None:  # the add is fused; torch's binary fused op takes no LeakyReLU after it
        y = mk._convolution_pointwise.binary(x, residual, w, conv.bias, p, st, d, conv.groups, "add", None, None,
                                             [], None)
        return F.leaky_relu_(y, 0.2)
    attr, scalars = ("leaky_relu", [0.2]) if act else ("none", [])
    if transposed:
        return mk._convolution_transpose_pointwise(x, w, conv.bias, p, list(conv.output_padding), st, d,
                                                   conv.groups, attr, scalars, "")
    return mk._convolution_pointwise(x, w, conv.bias, p, st, d, conv.groups, attr, scalars, "")


def _fused(module: nn.Module, x: torch.Tensor) -> bool:
    """Whether `module` runs its convolutions through _onednn_conv for this input (never while torch's
    oneDNN use is switched off: torch.backends.mkldnn.enabled = False)."""
    return (getattr(module, "onednn", False) and x.dtype == torch.float32 and x.device.type == "cpu"
            and torch.backends.mkldnn.enabled)


_ONEDNN_OK: bool | None = None


def onednn_available() -> bool:
    """Whether this torch runs _onednn_conv and gets the plain modules' result (checked once on a tiny
    convolution: a torch build without oneDNN, or one whose fused-op signature differs, falls back)."""
    global _ONEDNN_OK
    if _ONEDNN_OK is None:
        try:
            with torch.inference_mode():
                conv, up = nn.Conv2d(8, 8, 3, 1, 1), nn.ConvTranspose2d(8, 4, 4, 2, 1)
                x = torch.rand(1, 8, 6, 5).contiguous(memory_format=torch.channels_last)
                ref = F.leaky_relu(conv(x) + x, 0.2), F.leaky_relu(conv(x), 0.2), up(x)
                got = _onednn_conv(conv, x, x), _onednn_conv(conv, x), _onednn_conv(up, x, act=False)
                _ONEDNN_OK = all(torch.allclose(a, b, atol=1e-5) for a, b in zip(ref, got))
        except (RuntimeError, AttributeError, TypeError, NotImplementedError):
            _ONEDNN_OK = False
    return _ONEDNN_OK


# ----------------------------------------------------------------------------- blocks
class ResConv(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1)
        self.beta = nn.Parameter(torch.ones(1, c, 1, 1))
        self.relu = nn.LeakyReLU(0.2, inplace=True)
        self.folded = False

    def fold(self) -> None:
        """Fold beta into the conv: conv(x) * beta == conv'(x) with w' = w * beta, b' = b * beta."""
        if not self.folded:
            beta = self.beta.detach().reshape(-1)
            self.conv.weight.data.mul_(beta.view(-1, 1, 1, 1))
            self.conv.bias.data.mul_(beta)
            self.beta.data.fill_(1.0)
            self.folded = True

    def forward(self, x):
        y = self.conv(x)
        if not self.folded:
            y = y * self.beta
        return self.relu(y + x)


def _conv(cin, cout, stride=1, prelu=False):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.PReLU(cout) if prelu else nn.LeakyReLU(0.2, inplace=True))


class IFBlock(nn.Module):
    def __init__(self, cin: int, c: int, out_channels: int, legacy: bool):
        super().__init__()
        self.legacy = legacy
        self.channels_last = False  # set by IFNet.set_layout
        self.onednn = False  # convolutions through _onednn_conv (set by IFNet.set_layout)
        self.conv0 = nn.Sequential(_conv(cin, c // 2, 2, legacy), _conv(c // 2, c, 2, legacy))
        if legacy:
            self.convblock = nn.Sequential(*[_conv(c, c, 1, True) for _ in range(8)])
            self.lastconv = nn.ConvTranspose2d(c, out_channels, 4, 2, 1)
        else:
            self.convblock = nn.Sequential(*[ResConv(c) for _ in range(8)])
            self.lastconv = nn.Sequential(nn.ConvTranspose2d(c, 4 * out_channels, 4, 2, 1), nn.PixelShuffle(2))

    def _first(self, x, padding=(1, 1)):
        """conv0[0] with its activation; padding (rows, columns) instead of its own (1, 1)."""
        conv, act = self.conv0[0]
        if _fused(self, x):
            return _onednn_conv(conv, x, padding=padding)
        return act(F.conv2d(x, conv.weight, conv.bias, conv.stride, padding))

    def _second(self, x):
        """conv0[1] with its activation."""
        return _onednn_conv(self.conv0[1][0], x) if _fused(self, x) else self.conv0[1](x)

    def _convblock(self, feat):
        if _fused(self, feat):
            for res in self.convblock:
                feat = _onednn_conv(res.conv, feat, residual=feat)
            return feat
        return self.convblock(feat) + feat if self.legacy else self.convblock(feat)

    def _cat(self, xs: list) -> torch.Tensor:
        """The inputs concatenated (and the list emptied, so what only it held is freed)."""
        if self.channels_last:  # the concatenation is written straight into the convolutions' layout
            n, _, h, w = xs[0].shape
            x = torch.empty((n, sum(p.shape[1] for p in xs), h, w), dtype=xs[0].dtype, device=xs[0].device,
                            memory_format=torch.channels_last)
            torch.cat(xs, 1, out=x)
        else:
            x = torch.cat(xs, 1)
        xs.clear()
        return x

    def _last(self, feat, scale: float):
        if _fused(self, feat):
            tmp = F.pixel_shuffle(_onednn_conv(self.lastconv[0], feat, act=False), 2)
        else:
            tmp = self.lastconv(feat)
        return tmp.contiguous(), scale * 2 if self.legacy else scale

    def forward(self, xs: list, scale: float):
        """xs: the block's inputs already at its resolution (1/scale of the frame), a list the block
        empties once they are concatenated (so what only it held is freed before its convolutions);
        returns its output [flow delta 4, mask 1, passthrough features] at 1/up of the frame's
        resolution, and up."""
        x = self._first(self._cat(xs))
        x = self._second(x)  # (x rebound at each step: what a step read is freed once it is done)
        return self._last(self._convblock(x), scale)

    def forward_banded(self, band, h: int, w: int, scale: float):
        """forward() for inputs that are made a band of rows at a time and never exist whole:
        band(a, z) returns the list forward() takes, cut to rows [a, z) of the h x w input (h even).
        conv0[0] (3x3, stride 2, padding 1) reads rows 2r-1 .. 2r+1 for its output row r, so its
        output rows [r0, r1) are conv0[0] of input rows [2 r0 - 1, 2 r1) with no padding above and
        below (the first band, rows [0, 2 r1), keeps the padding above)."""
        conv = self.conv0[0][0]
        y = None
        for r0, r1 in _row_bands(h // 2, 2 * conv.in_channels * w * conv.weight.element_size()):
            a = max(2 * r0 - 1, 0)
            yb = self._first(self._cat(band(a, 2 * r1)), padding=(int(a == 0), 1))
            if y is None:
                y = torch.empty((yb.shape[0], yb.shape[1], h // 2, yb.shape[3]), dtype=yb.dtype, device=yb.device,
                                memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)
            y[:, :, r0:r1] = yb
            del yb
        y = self._second(y)
        return self._last(self._convblock(y), scale)


class Head(nn.Module):
    def __init__(self, hidden: int, out: int):
        super().__init__()
        self.cnn0 = nn.Conv2d(3, hidden, 3, 2, 1)
        self.cnn1 = nn.Conv2d(hidden, hidden, 3, 1, 1)
        self.cnn2 = nn.Conv2d(hidden, hidden, 3, 1, 1)
        self.cnn3 = nn.ConvTranspose2d(hidden, out, 4, 2, 1)
        self.relu = nn.LeakyReLU(0.2, inplace=True)
        self.onednn = False  # set by IFNet.set_layout

    def forward(self, x):
        if _fused(self, x):
            for conv in (self.cnn0, self.cnn1, self.cnn2):
                x = _onednn_conv(conv, x)
            return _onednn_conv(self.cnn3, x, act=False).contiguous()
        x = self.relu(self.cnn0(x))
        x = self.relu(self.cnn1(x))
        x = self.relu(self.cnn2(x))
        return self.cnn3(x)


def _seq_encoder(layers) -> nn.Sequential:
    """nn.Sequential whose conv indices match the checkpoint; gaps between them are LeakyReLUs."""
    mods: list[nn.Module] = []
    for idx, cin, cout, transposed in layers:
        while len(mods) < idx:
            mods.append(nn.LeakyReLU(0.2, inplace=True))
        stride = 2 if not mods else 1  # only the first conv downsamples; the transposed conv restores
        mods.append(nn.ConvTranspose2d(cin, cout, 4, 2, 1) if transposed else nn.Conv2d(cin, cout, 3, stride, 1))
    return nn.Sequential(*mods)


# ----------------------------------------------------------------------------- refinement (4.0-4.3)
def _prelu_conv(cin, cout, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.PReLU(cout))


class _Conv2(nn.Module):
    def __init__(self, cin, cout, stride=2):
        super().__init__()
        self.conv1 = _prelu_conv(cin, cout, stride)
        self.conv2 = _prelu_conv(cout, cout, 1)

    def forward(self, x):
        return self.conv2(self.conv1(x))


class ContextNet(nn.Module):
    def __init__(self, c=16):
        super().__init__()
        self.conv1, self.conv2 = _Conv2(3, c), _Conv2(c, 2 * c)
        self.conv3, self.conv4 = _Conv2(2 * c, 4 * c), _Conv2(4 * c, 8 * c)

    def forward(self, x, flow):
        out = []
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            x = conv(x)
            flow = _resize(flow, 0.5) * 0.5
            out.append(warp(x, flow))
        return out


class UNet(nn.Module):
    def __init__(self, c=16):
        super().__init__()
        self.down0, self.down1 = _Conv2(17, 2 * c), _Conv2(4 * c, 4 * c)
        self.down2, self.down3 = _Conv2(8 * c, 8 * c), _Conv2(16 * c, 16 * c)

        def deconv(cin, cout):
            return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1), nn.PReLU(cout))

        self.up0, self.up1 = deconv(32 * c, 8 * c), deconv(16 * c, 4 * c)
        self.up2, self.up3 = deconv(8 * c, 2 * c), deconv(4 * c, c)
        self.conv = nn.Conv2d(c, 3, 3, 1, 1)

    def forward(self, img0, img1, w0, w1, mask, flow, c0, c1):
        s0 = self.down0(torch.cat((img0, img1, w0, w1, mask, flow), 1))
        s1 = self.down1(torch.cat((s0, c0[0], c1[0]), 1))
        s2 = self.down2(torch.cat((s1, c0[1], c1[1]), 1))
        s3 = self.down3(torch.cat((s2, c0[2], c1[2]), 1))
        x = self.up0(torch.cat((s3, c0[3], c1[3]), 1))
        x = self.up1(torch.cat((x, s2), 1))
        x = self.up2(torch.cat((x, s1), 1))
        x = self.up3(torch.cat((x, s0), 1))
        return torch.sigmoid(self.conv(x))


# ----------------------------------------------------------------------------- network
# Largest stacked copy of both frames worth making on the CPU: glibc maps every block over 32 MiB fresh
# and page-faults it in on each use, so from about 1280x720 warping each side on its own is as fast
# (1280x720 ratio 0.996, 1920x1080 0.973; 960x540 1.052, 448x256 1.077) and the run's peak RSS is about
# 100 MB lower (bench/results/levers.md).
STACK_LIMIT = 32 * 1024 * 1024
# The same way (lean), the last block's input at the frame's resolution (28 channels: 110 MB at
# 1280x768) is made and convolved a band of rows of about this size at a time (IFBlock.forward_banded).
BAND_BYTES = 8 * 1024 * 1024


def stacks(frame_bytes: int) -> bool:
    """Whether a CPU forward of packed frames of this many bytes each warps both sides in one call
    over a stacked copy (under STACK_LIMIT), rather than each side on its own (lean)."""
    return 2 * frame_bytes <= STACK_LIMIT


class IFNet(nn.Module):
    def __init__(self, cfg: IFNetConfig):
        super().__init__()
        self.cfg = cfg
        for i, (cin, c) in enumerate(zip(cfg.in_channels, cfg.widths)):
            self.add_module(f"block{i}", IFBlock(cin, c, cfg.out_channels, cfg.legacy))
        if cfg.encoder == "head":
            (_, _, hidden, _), *_ = cfg.encoder_layers
            self.encode = Head(hidden, cfg.feat_ch)
        elif cfg.encoder == "seq":
            self.encode = _seq_encoder(cfg.encoder_layers)
        if cfg.refine:
            self.contextnet = ContextNet()
            self.unet = UNet()

    @property
    def blocks(self):
        return [getattr(self, f"block{i}") for i in range(len(self.cfg.widths))]

    def pack(self) -> "IFNet":
        """Prepare loaded weights for inference: fold ResConv betas, drop the last block's unread
        output channels, and reorder each block's first conv input channels so a frame's image and features travel as one packed tensor
        ([img, feat] per frame) and block inputs can be concatenated after downscaling.
        Call once after load_state_dict; the maths is unchanged."""
        if getattr(self, "packed", False):
            return self
        for m in self.modules():
            if isinstance(m, ResConv):
                m.fold()
        fc, pt = self.cfg.feat_ch, self.cfg.passthrough
        # checkpoint order -> packed order
        first = [*range(0, 3), *range(6, 6 + fc), *range(3, 6), *range(6 + fc, 6 + 2 * fc), 6 + 2 * fc]
        n = 6 + 2 * fc
        later = [*range(0, 3), *range(6, 6 + fc), *range(3, 6), *range(6 + fc, n), *range(n, n + 2 + pt + 4)]
        for i, blk in enumerate(self.blocks):
            conv = blk.conv0[0][0]
            perm = first if i == 0 else later
            assert len(perm) == conv.weight.shape[1], (len(perm), conv.weight.shape)
            conv.weight.data = conv.weight.data[:, perm].contiguous()
        last = self.blocks[-1].lastconv
        if isinstance(last, nn.Sequential) and last[0].out_channels > 20:
            # the last block's passthrough features have no reader: keep the convolution outputs that
            # become flow and mask after the pixel shuffle (channels 0..19 -> 0..4)
            last[0].weight.data = last[0].weight.data[:, :20].contiguous()
            last[0].bias.data = last[0].bias.data[:20].contiguous()
            last[0].out_channels = 20
        self.packed = True
        return self

    def set_layout(self, channels_last: bool) -> "IFNet":
        """Run the blocks' convolutions in channels-last layout (weights and activations): measured
        about 7% faster per frame on the project's 2-core CPU (bench/results/levers.md), the same maths;
        there the non-legacy blocks' convolutions also go through _onednn_conv when this torch has it."""
        self.pack()  # the fused convolutions take the folded ResConv weights
        fused = channels_last and onednn_available()
        for blk in self.blocks:
            if blk.channels_last != channels_last:
                blk.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
                blk.channels_last = channels_last
            blk.onednn = fused and not blk.legacy
        if isinstance(getattr(self, "encode", None), Head):
            self.encode.onednn = fused
        if not fused:
            for m in self.modules():
                m.__dict__.pop("_onednn", None)  # the reordered weights of a layout no longer used
        return self

    def features(self, img: torch.Tensor) -> torch.Tensor | None:
        """Per-frame encoder features (None for families without an encoder)."""
        if self.cfg.encoder is None:
            return None
        return self.encode(img.clamp(0, 1) if self.cfg.clamp_input else img)

    def pack_frame(self, img: torch.Tensor) -> torch.Tensor:
        """[img, features] of one or more frames: what the runner caches per source frame."""
        if self.cfg.clamp_input:
            img = img.clamp(0, 1)
        f = self.features(img)
        return img if f is None else torch.cat((img, f), 1)

    def forward_packed(self, x0, x1, t, scale: float = 1.0, ensemble: bool = False, refine: bool = False,
                       lean: bool = False):
        """x0/x1 from pack_frame(); t [B] or float. lean: less memory, the same frames: warp each side
        on its own instead of one call over a stacked copy of both frames, and (without ensemble) make
        the frame-resolution input of the last block a band of rows at a time (IFBlock.forward_banded)
        and the halved warps of the block before it too. On the CPU slower for small frames, and the
        way every frame goes whose stacked copy would be over STACK_LIMIT."""
        self.pack()
        cfg = self.cfg
        lean = lean or (x0.device.type == "cpu" and not stacks(x0.numel() * x0.element_size()))
        if ensemble and not cfg.supports_ensemble:
            raise ValueError(f"RIFE {cfg.family} does not support ensemble")
        b = x0.shape[0]
        if not torch.is_tensor(t):
            t = torch.full((b,), float(t))
        t = t.to(x0.device, x0.dtype).view(-1, 1, 1, 1)
        scales = [s / scale for s in cfg.scale_list]
        out, need_rescale = self._run(x0, x1, t, scales, ensemble, refine, lean=lean)
        if need_rescale is not None and bool(need_rescale.any()):
            # 4.0-4.3: a pair whose second-block flow exceeds 32 px on both sides is redone at
            # doubled scales (per sample here, so batching never changes a result).
            idx = need_rescale.nonzero().flatten()
            redo, _ = self._run(x0[idx], x1[idx], t[idx], [s * 2 for s in scales], ensemble, refine, check=False,
                                lean=lean)
            out = out.index_copy(0, idx, redo)
        return out

    @staticmethod
    def _block(blk, parts, flow, s, ensemble, swap_parts, band=None):
        """parts: block inputs at its resolution, t as [B, 1, 1, 1] (a constant plane, made here);
        flow at the frame's resolution. Without ensemble the list is emptied (the block frees what
        only it held once it has concatenated it). band (instead of parts, at the frame's resolution,
        no ensemble): band(a, z) makes the parts for rows [a, z). Returns the flow delta at the frame's
        resolution, the rest of the output (mask, passthrough features) at 1/up of it, and up."""
        b = flow.shape[0] if flow is not None else parts[0].shape[0]

        def inputs(ps, fl):
            size = ps[0].shape[-2:]
            xs = [p.expand(b, 1, *size) if p.shape[-1] == 1 else p for p in ps]
            return xs if fl is None else xs + [fl]

        if band is not None:
            h, w = flow.shape[-2:]
            tmp, up = blk.forward_banded(lambda a, z: inputs(band(a, z), flow[:, :, a:z]), h, w, s)
        else:
            flow_lo = None if flow is None else flow if s == 1 else _resize(flow, 1.0 / s) / s
            xs = inputs(parts, flow_lo)
            if not ensemble:
                parts.clear()
                flow_lo = None
            tmp, up = blk(xs, s)
        if ensemble:  # (both passes' flows, frames swapped back) / 2 and (mask - swapped mask) / 2
            flow_sw = None if flow_lo is None else torch.cat((flow_lo[:, 2:4], flow_lo[:, :2]), 1)
            tmp2, _ = blk(inputs(swap_parts, flow_sw), s)
            tmp = torch.cat(((tmp[:, :4] + torch.cat((tmp2[:, 2:4], tmp2[:, :2]), 1)) / 2,
                             (tmp[:, 4:5] - tmp2[:, 4:5]) / 2, tmp[:, 5:]), 1)
        delta = tmp[:, :4] if up == 1 else _resize(tmp[:, :4] * up, up)  # (scaled where it is small)
        return delta, tmp[:, 4:], up

    def _run(self, x0, x1, t, scales, ensemble, refine, check=True, lean=False):
        cfg = self.cfg
        b, _, h, w = x0.shape
        x01 = None if lean else torch.cat((x0, x1), 0)  # both frames stacked: one grid_sample for both sides
        # lean, without ensemble: the last block, at the frame's resolution, warps and takes its
        # inputs a band of rows at a time (IFBlock.forward_banded)
        banded = lean and not ensemble and len(self.blocks) > 1 and scales[-1] == 1 and h % 2 == 0
        flow = mask = feat = None
        w0 = w1 = None  # warped packed frames ([img, feat]) at the next block's resolution
        need_rescale = None
        blocks = self.blocks
        # a mask that is not summed across blocks goes to the next block at that block's resolution
        # (with the passthrough features), never resized to the frame's and back
        low = not cfg.accumulate_mask
        rest_rows = None  # banded: rows [a, z) of the last block's mask and features
        for i, blk in enumerate(blocks):
            s = scales[i]
            last = i == len(blocks) - 1
            nxt = None if last else scales[i + 1]
            down = (lambda x: x) if low else (lambda x: _resize(x, 1.0 / s))  # noqa: E731
            if flow is None:
                a0, a1 = _resize(x0, 1.0 / s), _resize(x1, 1.0 / s)
                swap = [a1, a0, 1 - t] if ensemble else None
                flow, rest, up = self._block(blk, [a0, a1, t], None, s, ensemble, swap)
                fd = None
            elif banded and last:
                if rest_rows is None:
                    ml, fl = down(mask), down(feat) if cfg.passthrough else None
                    rest_rows = lambda a, z: [ml[:, :, a:z]] + ([] if fl is None else [fl[:, :, a:z]])  # noqa: E731

                def band(a, z, flow=flow):
                    r = slice(a, z)
                    return [warp(x0, flow[:, :2], r), warp(x1, flow[:, 2:4], r), t] + rest_rows(a, z)

                fd, rest, up = self._block(blk, None, flow, s, False, None, band=band)
                del band
                rest_rows = ml = fl = None
            else:
                ml = down(mask)
                parts = [w0, w1, t, ml] + ([down(feat)] if cfg.passthrough else [])
                swap = [w1, w0, 1 - t, -ml] if ensemble else None
                w0 = w1 = ml = feat = None  # parts holds them: the block frees them once it has read them
                fd, rest, up = self._block(blk, parts, flow, s, ensemble, swap)
                if check and cfg.legacy and i == 1:
                    need_rescale = (fd[:, :2].abs().amax(dim=(1, 2, 3)) > 32) & (fd[:, 2:4].abs().amax(dim=(1, 2, 3)) > 32)
            if fd is not None:
                flow = flow.add_(fd)  # (flow is this loop's own: the first block's delta, then these sums)
                fd = None
            feeds_banded = banded and i == len(blocks) - 2
            if feeds_banded and low:  # the last block upsamples them a band at a time
                rest = rest[:, :1 + cfg.passthrough].clone()  # (not a view that keeps the block's whole output)
                rest_rows = lambda a, z, rest=rest, up=up: [_rows_resized(rest, up, a, z)]  # noqa: E731
                mask = feat = None
            else:  # the mask and features at the next block's resolution when low, else the frame's
                rest = _resize(rest, up) if not low or last else _up_down(rest, up, nxt)
                m, feat = rest[:, :1], rest[:, 1:]
                mask = m if mask is None or not cfg.accumulate_mask else mask + m
                if last:  # only the mask is read from here on: the rest of the block's output is freed
                    mask, rest, m, feat = mask.clone() if low else mask, None, None, None  # (low: a view of it)
            if feeds_banded:
                continue  # the last block warps its inputs itself
            sub = nxt is not None and sub_sampled(nxt, h, w)

            def wp(img, fl):
                if sub:
                    return warp_down(img, fl, nxt)
                if lean and nxt == 2 and h % 2 == 0:
                    return _warp_halved(img, fl)
                y = warp(img, fl)
                return y if last else _resize(y, 1.0 / nxt)

            if lean:
                w0 = wp(x0[:, :3] if last else x0, flow[:, :2])
                w1 = wp(x1[:, :3] if last else x1, flow[:, 2:4])
            else:
                # [B, 4, H, W] -> [2B, 2, H, W] as x01 stacks the sides (a view for batch 1, else a copy)
                fh, fw = flow.shape[-2:]
                warped = wp(x01[:, :3] if last else x01,
                            flow.reshape(b, 2, 2, fh, fw).transpose(0, 1).reshape(2 * b, 2, fh, fw))
                w0, w1 = warped[:b], warped[b:]
        m = torch.sigmoid(mask)
        if not (refine and cfg.refine):  # the warped frames have no other reader: blended in place
            mask = None
            return torch.lerp(w1, w0, m, out=w1), need_rescale  # w0 * m + w1 * (1 - m)
        out = w0 * m + w1 * (1 - m)
        img0, img1 = x0[:, :3], x1[:, :3]
        c0 = self.contextnet(img0, flow[:, :2])
        c1 = self.contextnet(img1, flow[:, 2:4])
        res = self.unet(img0, img1, w0, w1, mask, flow, c0, c1)[:, :3] * 2 - 1  # raw mask, as trained
        return torch.clamp(out + res, 0, 1), need_rescale
