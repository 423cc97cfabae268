"""Frame schedule: which source pair and which t each output frame comes from.

All arithmetic is on integers and exact rationals, so 23.976 -> 59.94 fps never drifts:
output frame n sits at source position n * (src_fps / dst_fps); its pair is (floor, floor + 1)
and t is the fractional part. Where t == 0 the output *is* that source frame (copied bit-exactly).

How many frames:
  - an integer multiplier m inserts m - 1 frames between neighbours: N + (m - 1)(N - 1) frames,
    the first and the last are the first and the last source frame;
  - a target fps retimes: the output lasts as long as the input (N / src_fps seconds, within one
    output frame), so it has ceil(N * dst_fps / src_fps) frames. Source frame i is on screen from
    i / src_fps to (i + 1) / src_fps, so the outputs whose time falls after the last source position
    (at most one source frame's time) show the last source frame; it is never lost, and the audio
    of a video does not outlast the picture.

Scene cuts: a pair (i, i + 1) marked as a cut is never morphed; its in-between outputs repeat
frame i ("hold") or take the nearer of the two ("nearest").

Variable frame rate (a phone that drops its rate in low light): TimedSchedule places output n at
n / dst_fps seconds after the first frame on the source frames' real timestamps (FrameTimes), so
the output has a constant rate and stays in sync with the audio however the source's rate varied.
"""
from __future__ import annotations

import bisect
import dataclasses
import functools
import math
import numbers
import statistics
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Iterator, Sequence

import numpy as np
import torch

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
    keep_duration: bool = False  # a target fps: outputs cover the input's whole duration (see the module doc)

    @functools.cached_property  # (frozen: computed once per schedule)
    def n_out(self) -> int:
        if self.keep_duration:
            # every output time before the end of the last source frame: n * step < n_in
            return math.ceil(self.n_in / self.step)
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
        hi = min(hi, math.ceil((self.n_in - 1) / self.step))  # from the last source position on: copies of it
        if hi <= lo:
            return 0
        q = Fraction(self.step).denominator  # n * step is a whole source index exactly when q divides n
        return (hi - lo) - ((hi - 1) // q - (lo - 1) // q)

    def position(self, n: int) -> Fraction:
        """Where output n sits, in source frames (i + t)."""
        return n * self.step

    def needs(self, k: int) -> bool:
        """Does any output use source frame k? Output n uses floor(position) and, between two frames,
        the next one too (also for cut scoring and the 'nearest' fill), so k is needed iff some
        position lies in (k - 1, k + 1). Only a down-conversion skips frames."""
        n_out = self.n_out
        if n_out <= 0 or k < 0 or k >= self.n_in:
            return False
        if k == 0:
            return True
        n = math.floor(Fraction(k - 1) / self.step) + 1  # smallest n with n * step > k - 1
        return n < n_out and n * self.step < k + 1

    def entry(self, n: int) -> Entry:
        if not 0 <= n < self.n_out:
            raise IndexError(f"output frame {n} out of range 0..{self.n_out - 1}")
        pos = self.position(n)
        i0 = pos.numerator // pos.denominator
        if i0 >= self.n_in - 1:  # at or past the last source frame: it is on screen until the end
            return Entry(n, self.n_in - 1, Fraction(0))
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
        return dataclasses.replace(self, cuts=frozenset(int(c) for c in cuts))

    def first(self, k: int) -> "Schedule":
        """The same schedule for only the first k source frames (a source that ended early)."""
        return dataclasses.replace(self, n_in=int(k))


@dataclass(frozen=True)
class FrameTimes:
    """A variable-frame-rate video's frame times: frame i is shown from pts[i] * tick seconds, the last
    one until end * tick."""

    pts: tuple[int, ...]
    tick: Fraction
    end: int

    @classmethod
    def detect(cls, pts: Sequence[int], tick, last_duration: int | None = None) -> "FrameTimes | None":
        """FrameTimes for presentation timestamps whose gaps vary; None for a constant rate (gaps equal
        within one tick, or 1% of a frame, which is the rounding of a coarse time base)."""
        pts = sorted(int(x) for x in pts)
        if len(pts) < 3:
            return None
        gaps = [b - a for a, b in zip(pts, pts[1:])]
        if min(gaps) <= 0 or max(gaps) - min(gaps) <= max(1, statistics.median(gaps) / 100):
            return None  # constant rate (or duplicate timestamps: then the rate is all there is to go by)
        return cls(tuple(pts), Fraction(tick), pts[-1] + (int(last_duration) if last_duration else gaps[-1]))

    def __len__(self) -> int:
        return len(self.pts)

    @property
    def duration(self) -> Fraction:
        return (self.end - self.pts[0]) * self.tick

    def gap_range(self) -> tuple[Fraction, Fraction]:
        """The shortest and the longest frame duration, in seconds."""
        gaps = [b - a for a, b in zip(self.pts, (*self.pts[1:], self.end))]
        return min(gaps) * self.tick, max(gaps) * self.tick

    def first(self, k: int) -> "FrameTimes":
        return FrameTimes(self.pts[:k], self.tick, self.pts[k] if k < len(self.pts) else self.end)


@dataclass(frozen=True)
class TimedSchedule(Schedule):
    """A schedule from the source frames' real times (FrameTimes) to a constant dst_fps.

    Output n sits at n / dst_fps seconds after the first frame: between the two source frames around
    that time, at the fraction of their gap it has reached; from the last frame's time on, on the last
    frame. There are as many outputs as the input's duration (its last frame's included) holds, so the
    output lasts as long as the input, within one output frame. `step` is the average step.
    """

    times: FrameTimes | None = None

    @functools.cached_property
    def n_out(self) -> int:
        if self.n_in < 2:
            return self.n_in
        return max(1, round(self.times.duration * self.dst_fps))

    def position(self, n: int) -> Fraction:
        pts = self.times.pts
        u = pts[0] + Fraction(n) / (self.dst_fps * self.times.tick)  # output n's time, in ticks
        i = bisect.bisect_right(pts, u, hi=self.n_in) - 1
        if i >= self.n_in - 1:
            return Fraction(self.n_in - 1)
        return i + (u - pts[i]) / (pts[i + 1] - pts[i])

    def needs(self, k: int) -> bool:
        n_out = self.n_out
        if n_out <= 0 or k < 0 or k >= self.n_in:
            return False
        n = bisect.bisect_right(range(n_out), k - 1, key=self.position)  # first n placed after k - 1
        return n < n_out and self.position(n) < k + 1

    def tasks_in(self, lo: int, hi: int) -> int:
        lo, hi = max(0, lo), min(hi, self.n_out)
        return sum(1 for n in range(lo, hi) if not self.entry(n).is_source) if self.n_in > 1 else 0

    def first(self, k: int) -> "TimedSchedule":
        return dataclasses.replace(self, n_in=int(k), times=self.times.first(k))


def make_schedule(n_in: int, multiplier: int | None = None, *, src_fps=None, dst_fps=None,
                  cuts: Sequence[int] = (), cut_fill: str = "hold", times: FrameTimes | None = None) -> Schedule:
    """Schedule for n_in source frames by an integer multiplier, or from src_fps to dst_fps.

    With `times` (a variable-frame-rate source; src_fps is then its average rate) a TimedSchedule to
    dst_fps, or to multiplier * src_fps."""
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
        step, keep_duration = src / dst, True
    else:
        m = 2 if multiplier is None else multiplier
        if isinstance(m, float) and m.is_integer():
            m = int(m)
        if not isinstance(m, (int, np.integer)) or isinstance(m, bool) or m < 1:
            raise InputError(f"multiplier must be a whole number >= 1, got {multiplier!r}; "
                             "for a non-integer ratio give a target fps instead")
        step, keep_duration = Fraction(1, int(m)), False
        src = as_fraction(src_fps, "source fps") if src_fps is not None else None
        dst = src * int(m) if src is not None else None
    bad = [c for c in cuts if not 0 <= c < max(n_in - 1, 0)]
    if bad:
        raise InputError(f"cut indices {bad} are outside the {n_in - 1} frame pairs")
    if times is not None:
        if len(times) != n_in or dst is None:
            raise InputError(f"frame times for {len(times)} frames, but {n_in} frames" if dst is not None
                             else "a variable-frame-rate schedule needs the source fps")
        return TimedSchedule(int(n_in), step, frozenset(int(c) for c in cuts), cut_fill, src, dst, times=times)
    return Schedule(int(n_in), step, frozenset(int(c) for c in cuts), cut_fill, src, dst, keep_duration)


# ----------------------------------------------------------------------------- scene cuts
THUMB = 64  # scene-cut features are computed on a THUMB x THUMB thumbnail
_SAME_STRUCTURE, _NEW_STRUCTURE = 0.75, 0.35  # structure correlation: at or above = same picture, at or below = new


def _features(frame):
    """(thumbnail float [64, 64, 3], colour histogram [512], structure map [64, 64]) of one frame.

    The histogram is of joint colours (8 levels per channel: 512 bins): two different scenes rarely
    share it even where their per-channel histograms agree.

    The structure map is the locally contrast-normalised log-luminance, scaled to zero mean and unit
    variance: a gain, a gamma, a tint or a slow gradient of light leave it (nearly) unchanged; a new
    picture does not. A flat frame (no structure) gives an all-zero map.
    """
    import cv2

    f = frame.detach().to("cpu", torch.float32).numpy() if isinstance(frame, torch.Tensor) else np.asarray(frame)
    f8 = f if f.dtype == np.uint8 else np.clip(np.rint(f.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
    th8 = cv2.resize(np.ascontiguousarray(f8), (THUMB, THUMB), interpolation=cv2.INTER_AREA)
    th = th8.astype(np.float32) / 255.0
    q = (th8 >> 5).astype(np.int32)
    hist = np.bincount(((q[..., 0] << 6) | (q[..., 1] << 3) | q[..., 2]).ravel(), minlength=512).astype(np.float32)
    lum = np.log(th @ np.array([0.299, 0.587, 0.114], np.float32) + 1 / 64)
    detail = lum - cv2.GaussianBlur(lum, (0, 0), 4)
    local = detail / np.sqrt(cv2.GaussianBlur(detail * detail, (0, 0), 4) + 0.05 ** 2)
    local -= local.mean()
    sd = float(local.std())
    return th, hist / hist.sum(), local / sd if sd > 1e-3 else np.zeros_like(local)


def _pair_score(a, b) -> float:
    (ta, ha, sa), (tb, hb, sb) = a, b
    tv = 0.5 * float(np.abs(ha - hb).sum())
    mad = float(np.abs(ta - tb).mean())
    corr = float((sa * sb).mean())
    new_structure = min(1.0, max(0.0, (_SAME_STRUCTURE - corr) / (_SAME_STRUCTURE - _NEW_STRUCTURE)))
    return tv * min(1.0, mad / 0.1) * new_structure


def cut_scores(frames) -> np.ndarray:
    """Per pair (i, i+1): a scene-change score in [0, 1].

    Three things must all change for a high score: the colours (total-variation distance of the
    two joint colour histograms, 512 bins on a 64x64 thumbnail), the pixels (mean absolute
    difference of the thumbnails / 0.1, capped at 1: a fade scores low) and the structure
    (correlation of the two structure maps, see _features: 1 at or below 0.35, 0 at or above 0.75),
    so a change of light on the same picture (a sunrise, a lamp switched on) is not a cut.
    `frames` is [N, H, W, 3] float in [0, 1] (torch of any float dtype, or numpy) or uint8; each
    score depends only on its two frames (the streamed path scores pair by pair).
    """
    n = len(frames)
    if n < 2:
        return np.zeros(0, np.float32)
    feats = [_features(frames[i]) for i in range(n)]
    return np.array([_pair_score(feats[i], feats[i + 1]) for i in range(n - 1)], np.float32)


def cuts_enabled(threshold: float | None) -> bool:
    """Scene-cut detection is on for a threshold strictly between 0 and 1 (no score exceeds 1)."""
    return threshold is not None and 0 < threshold < 1


def detect_cuts(frames, threshold: float = 0.3) -> list[int]:
    """Pair indices whose scene-change score exceeds threshold (none unless cuts_enabled(threshold))."""
    if not cuts_enabled(threshold):
        return []
    return [int(i) for i in np.nonzero(cut_scores(frames) > threshold)[0]]
