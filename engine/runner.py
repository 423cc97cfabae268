"""The runner: fills a preallocated output, in output order, batch by batch.

Output frame n is either a source frame (copied bit-exactly) or a task (pair i0, i0 + 1 at t).
The next `batch_size` tasks form a batch (pairs and timesteps mixed, across source frames), each
source frame is prepared once (uploaded, padded, encoder features computed) and kept only while a
later task still needs it. Between batches the runner reports progress (frames written, total)
and checks for cancellation.

A failing batch raises BatchFailed(at=n) with the first output index not yet written: every
frame before it is final, so a caller (the recovery ladder) can resume from there with other
settings, never from frame 0.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, replace
from typing import Callable

import torch
import torch.nn.functional as F

from .errors import Cancelled, InputError, is_interrupt
from .methods import Method, padded
from .schedule import Schedule

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settings:
    """Everything a recovery rung may change."""

    device: str = "cpu"
    dtype: torch.dtype = torch.float32
    batch_size: int = 4
    flow_scale: float = 1.0  # RIFE flow resolution (0.25 .. 4); lower = less memory, coarser flow
    res_scale: float = 1.0  # process frames at this fraction of their size; output is resized back
    ensemble: bool = False

    def but(self, **kw) -> "Settings":
        return replace(self, **kw)

    def as_dict(self) -> dict:
        return dict(device=str(self.device), dtype=str(self.dtype).replace("torch.", ""), batch_size=self.batch_size,
                    flow_scale=self.flow_scale, res_scale=self.res_scale, ensemble=self.ensemble)


class NonFiniteOutput(RuntimeError):
    """A method made NaN/inf from finite frames. Not retried: the same frames would fail again."""


class BatchFailed(Exception):
    """A batch raised; outputs [start, at) are written, `at` is where to resume."""

    def __init__(self, at: int, cause: BaseException, settings: Settings):
        super().__init__(f"batch starting at output frame {at} failed: {type(cause).__name__}: {cause}")
        self.at = at
        self.cause = cause
        self.settings = settings


def validate_frames(frames: torch.Tensor) -> None:
    """The IMAGE batch's type, layout and size (cheap: the values are check_frame_values')."""
    if not torch.is_tensor(frames):
        hint = " (torch.from_numpy(array) makes one)" if hasattr(frames, "__array__") else ""
        raise InputError(f"frames must be a torch tensor [N, H, W, 3] (a ComfyUI IMAGE), got "
                         f"{type(frames).__name__}{hint}")
    shape = tuple(frames.shape)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        if frames.ndim == 4 and frames.shape[1] == 3:
            hint = "; it looks channels first [N, 3, H, W]: use frames.permute(0, 2, 3, 1)"
        elif frames.ndim == 4 and frames.shape[-1] in (1, 4):
            hint = ("; it has 4 channels (RGBA): drop the alpha with frames[..., :3]" if frames.shape[-1] == 4
                    else "; it is greyscale: use frames.expand(-1, -1, -1, 3)")
        elif frames.ndim == 3 and frames.shape[-1] == 3:
            hint = "; one frame [H, W, 3] is frames.unsqueeze(0)"
        else:
            hint = ""
        raise InputError(f"frames must be an IMAGE batch [N, H, W, 3], got shape {shape}{hint}")
    if frames.shape[0] < 1:
        raise InputError(f"no frames to interpolate: the batch is empty (shape {shape})")
    if frames.shape[1] < 2 or frames.shape[2] < 2:
        raise InputError(f"frames must be at least 2x2 pixels, got {frames.shape[2]}x{frames.shape[1]} (shape {shape})")
    if not frames.is_floating_point():
        hint = "; for 8-bit pixels use frames.float() / 255 (divide by 255)" if frames.dtype == torch.uint8 else ""
        raise InputError(f"frames must be float in [0, 1] (ComfyUI IMAGE), got {frames.dtype}{hint}")


FRAME_RANGE = (-0.5, 1.5)  # beyond this the frames are on another scale; within it they are clamped (see below)


def check_frame_values(frames: torch.Tensor) -> None:
    """Every value finite and on the [0, 1] scale, else an InputError naming the frames.

    NaN or inf anywhere would spread into every in-between that uses the frame, and frames on
    the 0-255 or [-1, 1] scale would come out as white or black in-betweens, so both are refused.
    A small overshoot (bicubic resizing gives a little below 0 and above 1) is accepted: source
    frames are copied as they are and in-betweens are made from the frames clamped to [0, 1].
    """
    lo, hi = float("inf"), -float("inf")
    bad: list[tuple[int, int]] = []
    for i, frame in enumerate(frames):
        # one reduction a frame and no temporary: the min and max are NaN or infinite exactly when a value is
        cmin, cmax = (float(v) for v in torch.aminmax(frame))
        if math.isfinite(cmin) and math.isfinite(cmax):
            lo, hi = min(lo, cmin), max(hi, cmax)
        else:
            bad.append((i, int((~torch.isfinite(frame)).sum())))
    if bad:
        f0, c0 = bad[0]
        kinds = []
        x = frames[f0]
        if bool(torch.isnan(x).any()):
            kinds.append("NaN")
        if bool(torch.isinf(x).any()):
            kinds.append("infinite")
        more = f" and {len(bad) - 1} more frame(s)" if len(bad) > 1 else ""
        raise InputError(f"frames hold {' and '.join(kinds)} values: frame {f0} has {c0}{more}. Every in-between "
                         "made from such a frame would be NaN; fix the node that made them, or replace the values "
                         "(e.g. torch.nan_to_num(frames, 0.0, 1.0, 0.0)) before interpolating")
    if hi > FRAME_RANGE[1] and hi <= 255.5 and lo >= -0.5:
        raise InputError(f"frames must be on the [0, 1] scale, but they reach {hi:g}: they look like 0-255 pixel "
                         "values as float; divide them by 255")
    if lo < FRAME_RANGE[0] and lo >= -1.5 and hi <= 1.5:
        raise InputError(f"frames must be on the [0, 1] scale, but they go down to {lo:g}: they look like [-1, 1] "
                         "values (a model's output space); map them with (frames + 1) / 2")
    if lo < FRAME_RANGE[0] or hi > FRAME_RANGE[1]:
        raise InputError(f"frames must be on the [0, 1] scale, but they range from {lo:g} to {hi:g}")


def allocate_output(n_out: int, height: int, width: int) -> torch.Tensor:
    """The whole output, allocated once (no list + torch.cat: no 2x peak)."""
    return torch.empty((n_out, height, width, 3), dtype=torch.float32)


def _to_bchw(frame_hwc: torch.Tensor) -> torch.Tensor:
    return frame_hwc.permute(2, 0, 1).unsqueeze(0)


def _next_batch(schedule: Schedule, n: int, stop: int, bs: int):
    """From output n (a task): the next `bs` tasks with the source frames between them (the window,
    in output order), and the tasks. The window ends on a task: the copies after it go with the next
    batch, so a failure leaves every output from n on unwritten."""
    window, batch = [], []
    m = n
    while m < stop and len(batch) < bs:
        e = schedule.entry(m)
        window.append(e)
        if not e.is_source:
            batch.append(e)
        m += 1
    while window[-1].is_source:
        window.pop()
    return window, batch


class Runner:
    def __init__(self, method: Method, settings: Settings, *, progress: Callable[[int, int], None] | None = None,
                 cancel: Callable[[], bool | None] | None = None, before_batch: Callable | None = None,
                 adapt: Callable | None = None):
        self.method = method
        self.settings = settings
        self.progress = progress
        self.cancel = cancel
        self.before_batch = before_batch  # hook(output indices of the batch, settings): fault injection
        self.adapt = adapt  # hook(batch_len, seconds, settings) -> new batch size or None (adaptive strategy)
        self.method.to(settings.device, settings.dtype)

    # -- per-frame preparation ------------------------------------------------------------
    def _geometry(self, h: int, w: int):
        s = self.settings
        ph, pw = (h, w) if s.res_scale == 1 else (max(8, round(h * s.res_scale)), max(8, round(w * s.res_scale)))
        mult = self.method.pad_multiple(s.flow_scale)
        return ph, pw, padded(ph, mult), padded(pw, mult)

    def _padded(self, frame_hwc: torch.Tensor, geo) -> torch.Tensor:
        """A source frame as the method takes it: [1, 3, H, W] on the device, clamped, scaled, padded."""
        ph, pw, fh, fw = geo
        x = _to_bchw(frame_hwc).to(self.settings.device, torch.float32).clamp(0, 1)
        if (ph, pw) != tuple(x.shape[-2:]):
            x = F.interpolate(x, size=(ph, pw), mode="area")
        if (fh, fw) != (ph, pw):
            mode = self.method.pad_mode
            if mode == "reflect" and (fh - ph >= ph or fw - pw >= pw):
                mode = "replicate"  # reflection needs a frame larger than the padding
            x = F.pad(x, (0, fw - pw, 0, fh - ph), mode=mode)
        return x

    def _finish(self, y: torch.Tensor, geo, h: int, w: int, batch) -> torch.Tensor:
        ph, pw, _, _ = geo
        y = y[:, :, :ph, :pw].float()
        if not all(map(math.isfinite, torch.aminmax(y))):  # never hand on NaN or inf (black, once encoded) in-betweens
            s = self.settings
            raise NonFiniteOutput(
                f"{self.method.describe()} made NaN or infinite values at output frame(s) "
                f"{', '.join(str(e.n) for e in batch)} from finite frames (on {s.device}, "
                f"{str(s.dtype).replace('torch.', '')}): the weights or the precision do not work for these frames; "
                "try precision fp32 or another model")
        if (ph, pw) != (h, w):
            y = F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False)
        return y.clamp_(0, 1).permute(0, 2, 3, 1).to("cpu")

    def _compute(self, frames, batch, cache: dict, geo) -> torch.Tensor:
        """The in-betweens of a batch of tasks; `cache` keeps each source frame's prepared form
        (features included) from the batch before, so a frame shared by two batches is prepared once."""
        lo = batch[0].i0
        for k in [k for k in cache if k < lo]:
            del cache[k]
        new = list(dict.fromkeys(i for e in batch for i in (e.i0, e.i1) if i not in cache))
        src = [frames[i] for i in new]  # read here: a streamed window is not for other threads
        made = self.method.prepare_many([lambda f=f: self._padded(f, geo) for f in src], geo[2:])
        cache.update(zip(new, made))
        t = torch.tensor([float(e.t) for e in batch], dtype=torch.float32)
        return self.method.interpolate([cache[e.i0] for e in batch], [cache[e.i1] for e in batch], t,
                                       scale=self.settings.flow_scale, ensemble=self.settings.ensemble)

    # -- main loop --------------------------------------------------------------------------
    @torch.inference_mode()
    def run(self, frames, schedule: Schedule, out, start: int = 0, stop: int | None = None) -> int:
        """Write outputs [start, stop) of `schedule` into `out`; returns stop.

        `frames[i]` gives source frame i as [H, W, 3] float (a tensor, or a window for streaming);
        `out[n] = frame` stores output n (a preallocated tensor, or a streaming sink).
        """
        stop = schedule.n_out if stop is None else stop
        if start >= stop:
            return stop
        first = frames[0] if start == 0 else frames[schedule.entry(start).i0]
        h, w = int(first.shape[0]), int(first.shape[1])
        geo = self._geometry(h, w)
        bs = max(1, int(self.settings.batch_size))
        cache: dict[int, object] = {}
        n = start
        try:
            while n < stop:
                self._check_cancel()
                # copy source frames up to the next task
                e = schedule.entry(n)
                while e.is_source:
                    out[n] = frames[e.i0]
                    n += 1
                    if n >= stop:
                        break
                    e = schedule.entry(n)
                if n >= stop:
                    break
                window, batch = _next_batch(schedule, n, stop, bs)
                m = n + len(window)
                if self.before_batch is not None:
                    self.before_batch([e2.n for e2 in batch], self.settings)
                tb = time.perf_counter()
                y = self._finish(self._compute(frames, batch, cache, geo), geo, h, w, batch)
                k = 0
                for e2 in window:
                    if e2.is_source:
                        out[e2.n] = frames[e2.i0]
                    else:
                        out[e2.n] = y[k]
                        k += 1
                del y  # not alive while the next batch is computed
                n = m
                if self.progress is not None:
                    self.progress(n, schedule.n_out)
                if self.adapt is not None:
                    new_bs = self.adapt(len(batch), time.perf_counter() - tb, self.settings)
                    if new_bs and new_bs != bs:
                        log.debug("adaptive batch size %d -> %d at output %d", bs, new_bs, n)
                        bs = int(new_bs)
                        self.settings = self.settings.but(batch_size=bs)
        except Exception as exc:  # noqa: BLE001 - the ladder classifies it
            if isinstance(exc, InputError) or is_interrupt(exc):
                raise
            raise BatchFailed(n, exc, self.settings) from exc
        finally:
            cache.clear()
        if self.progress is not None:
            self.progress(stop, schedule.n_out)
        return stop

    def _check_cancel(self):
        if self.cancel is not None and self.cancel():
            raise Cancelled("interpolation cancelled")
