"""Frame schedule: which source pair and which t each output frame comes from.

All arithmetic is on integers and exact rationals, so 23.976 -> 59.94 fps never drifts:
output frame n sits at source position n * (src_fps / dst_fps); its pair is (floor, floor + 1)
and t is the fractional part. Where t == 0 the output *is* that source frame (copied bit-exactly).
An integer multiplier m is the same rule with dst = m * src, giving N + (m - 1)(N - 1) frames.

Scene cuts: a pair (i, i + 1) marked as a cut is never morphed; its in-between outputs repeat
frame i ("hold") or take the nearer of the two ("nearest").
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Iterator, Sequence

import numpy as np

from .errors import InputError

CUT_FILL_MODES = ("hold", "nearest")


def as_fraction(value, what: str = "frame rate") -> Fraction:
    """An exact, positive Fraction from an int, Fraction, 'num/den' or decimal string, or a float.

    Non-integer floats (and decimal strings) within 0.05% of an NTSC rate become it exactly
    (23.976 -> 24000/1001, 59.94 -> 60000/1001); other floats the nearest fraction with a
    denominator up to 10000. Anything not finite and > 0 is an InputError naming `what`.
    """
    hint = "give a positive number such as 24, 29.97 or 30000/1001"
    if isinstance(value, bool) or value is None:
        raise InputError(f"Invalid {what} {value!r}: {hint}")
    try:
        if isinstance(value, Fraction):
            out = value
        elif isinstance(value, numbers.Integral):
            out = Fraction(int(value))
        elif isinstance(value, numbers.Rational):
            out = Fraction(int(value.numerator), int(value.denominator))
        elif isinstance(value, str) and "/" in value:
            num, den = value.strip().split("/", 1)
            out = Fraction(int(num), int(den))
        else:
            out = _float_rate(float(value))
    except (ValueError, ZeroDivisionError, TypeError, OverflowError) as exc:
        raise InputError(f"Invalid {what} {value!r} ({exc}): {hint}") from None
    if out <= 0:
        raise InputError(f"Invalid {what} {value!r}: it must be greater than 0; {hint}")
    return out


def fps_text(fps: Fraction | None) -> str:
    """24, or 30000/1001 (~29.970): how a frame rate is shown to users."""
    if fps is None:
        return "?"
    return str(fps.numerator) if fps.denominator == 1 else f"{fps.numerator}/{fps.denominator} (~{float(fps):.3f})"


def _float_rate(value: float) -> Fraction:
    if not math.isfinite(value):
        raise ValueError("not finite")
    if value <= 0:
        return Fraction(0)
    if value != round(value):
        ntsc = Fraction(round(value * 1.001) * 1000, 1001)
        if abs(float(ntsc) - value) < 5e-4 * max(1.0, value / 30):
            return ntsc
    return Fraction(value).limit_denominator(10000)


@dataclass(frozen=True)
class Entry:
    """Output frame n = source frame i0 (t == 0), or the frame between i0 and i0 + 1 at t."""

    n: int
    i0: int
    t: Fraction

    @property
    def i1(self) -> int:
        return self.i0 + 1 if self.t else self.i0

    @property
    def is_source(self) -> bool:
        return self.t == 0


@dataclass(frozen=True)
class Schedule:
    n_in: int
    step: Fraction  # source frames advanced per output frame (src_fps / dst_fps)
    cuts: frozenset = field(default_factory=frozenset)  # pair indices i: cut between i and i + 1
    cut_fill: str = "hold"
    src_fps: Fraction | None = None
    dst_fps: Fraction | None = None

    @property
    def n_out(self) -> int:
        if self.n_in < 2:
            return self.n_in
        # last output sits at or before the last source frame: n * step <= n_in - 1
        return int((self.n_in - 1) / self.step) + 1

    @property
    def n_tasks(self) -> int:
        """Output frames that are interpolated; the others are copies of source frames."""
        return self.tasks_in(0, self.n_out)

    def tasks_in(self, lo: int, hi: int) -> int:
        """How many of the outputs lo..hi-1 are interpolated (not copies of a source frame)."""
        lo, hi = max(0, lo), min(hi, self.n_out)
        if hi <= lo or self.n_in < 2:
            return 0
        if self.cuts:
            return sum(1 for n in range(lo, hi) if not self.entry(n).is_source)
        q = Fraction(self.step).denominator  # n * step is a whole source index exactly when q divides n
        return (hi - lo) - ((hi - 1) // q - (lo - 1) // q)

    def entry(self, n: int) -> Entry:
        if not 0 <= n < self.n_out:
            raise IndexError(f"output frame {n} out of range 0..{self.n_out - 1}")
        pos = n * self.step
        i0 = pos.numerator // pos.denominator
        t = pos - i0
        if t and i0 in self.cuts:
            if self.cut_fill == "nearest" and t >= Fraction(1, 2):
                return Entry(n, i0 + 1, Fraction(0))
            return Entry(n, i0, Fraction(0))
        return Entry(n, i0, t)

    def __iter__(self) -> Iterator[Entry]:
        return (self.entry(n) for n in range(self.n_out))

    def __len__(self) -> int:
        return self.n_out

    def with_cuts(self, cuts: Sequence[int]) -> "Schedule":
        return Schedule(self.n_in, self.step, frozenset(int(c) for c in cuts), self.cut_fill, self.src_fps, self.dst_fps)


def make_schedule(n_in: int, multiplier: int | None = None, *, src_fps=None, dst_fps=None,
                  cuts: Sequence[int] = (), cut_fill: str = "hold") -> Schedule:
    """Schedule for n_in source frames by an integer multiplier, or from src_fps to dst_fps."""
    if not isinstance(n_in, (int, np.integer)) or n_in < 0:
        raise InputError(f"frame count must be a non-negative integer, got {n_in!r}")
    if cut_fill not in CUT_FILL_MODES:
        raise InputError(f"cut_fill must be one of {CUT_FILL_MODES}, got {cut_fill!r}")
    if dst_fps is not None:
        if multiplier not in (None, 1):
            raise InputError("give either a multiplier or a target fps, not both")
        if src_fps is None:
            raise InputError("a target fps needs the source fps too (wire it from the video's fps)")
        src, dst = as_fraction(src_fps, "source fps"), as_fraction(dst_fps, "target fps")
        step = src / dst
    else:
        m = 2 if multiplier is None else multiplier
        if isinstance(m, float) and m.is_integer():
            m = int(m)
        if not isinstance(m, (int, np.integer)) or isinstance(m, bool) or m < 1:
            raise InputError(f"multiplier must be a whole number >= 1, got {multiplier!r}; "
                             "for a non-integer ratio give a target fps instead")
        step = Fraction(1, int(m))
        src = as_fraction(src_fps, "source fps") if src_fps is not None else None
        dst = src * int(m) if src is not None else None
    bad = [c for c in cuts if not 0 <= c < max(n_in - 1, 0)]
    if bad:
        raise InputError(f"cut indices {bad} are outside the {n_in - 1} frame pairs")
    return Schedule(int(n_in), step, frozenset(int(c) for c in cuts), cut_fill, src, dst)


# ----------------------------------------------------------------------------- scene cuts
def cut_scores(frames) -> np.ndarray:
    """Per pair (i, i+1): a scene-change score in [0, 1].

    The score is the total-variation distance between the two frames' colour histograms
    (32 bins per channel, on a 64x64 thumbnail), scaled by how different the thumbnails are
    (mean absolute difference / 0.1, capped at 1) so that a large histogram shift with
    unchanged pixels (a fade of brightness) still scores lower than a hard cut.
    `frames` is [N, H, W, 3] float in [0, 1] (torch or numpy) or uint8.
    """
    import cv2

    arr = frames.detach().cpu().numpy() if hasattr(frames, "detach") else np.asarray(frames)
    n = len(arr)
    if n < 2:
        return np.zeros(0, np.float32)
    thumbs, hists = [], []
    for f in arr:
        f8 = f if f.dtype == np.uint8 else np.clip(np.rint(f * 255.0), 0, 255).astype(np.uint8)
        th = cv2.resize(np.ascontiguousarray(f8), (64, 64), interpolation=cv2.INTER_AREA)
        thumbs.append(th.astype(np.float32) / 255.0)
        h = np.stack([np.bincount(th[..., c].ravel() >> 3, minlength=32) for c in range(3)]).astype(np.float32)
        hists.append(h / h.sum(axis=1, keepdims=True))
    scores = np.empty(n - 1, np.float32)
    for i in range(n - 1):
        tv = 0.5 * np.abs(hists[i] - hists[i + 1]).sum(axis=1).mean()
        mad = float(np.abs(thumbs[i] - thumbs[i + 1]).mean())
        scores[i] = tv * min(1.0, mad / 0.1)
    return scores


def cuts_enabled(threshold: float | None) -> bool:
    """Scene-cut detection is on for a threshold strictly between 0 and 1 (no score exceeds 1)."""
    return threshold is not None and 0 < threshold < 1


def detect_cuts(frames, threshold: float = 0.3) -> list[int]:
    """Pair indices whose scene-change score exceeds threshold (none unless cuts_enabled(threshold))."""
    if not cuts_enabled(threshold):
        return []
    return [int(i) for i in np.nonzero(cut_scores(frames) > threshold)[0]]
