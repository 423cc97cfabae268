"""The options of a run, validated once: every rule and every message about them lives here.

    opts = Options(multiplier=4)                          # or Options(src_fps=24, dst_fps=60)
    opts = Options.of(None, cut_threshold=0, strategy="speed_first")

The in-memory entry point (engine.pipeline.interpolate), the streamed one (engine.stream), the
command line and the ComfyUI nodes all build an Options before they read a file or load a model,
so the same bad value gets the same InputError, with the same message, on every path.
The object is frozen; `replace` gives a re-validated copy (the command line adds the source fps
once the video has been probed).
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from fractions import Fraction

from .errors import InputError
from .schedule import CUT_FILL_MODES, FrameTimes, Schedule, as_fraction, cuts_enabled, fps_text, make_schedule

MAX_MULTIPLIER = 16
MAX_FPS_RATIO = 16  # a target fps may be at most this many times the source fps
MAX_BATCH = 256
FLOW_SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)  # the flow resolutions RIFE's networks are built for
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
DEVICES = ("auto", "cpu", "cuda")  # and cuda:N


def _is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def check_multiplier(v) -> int | None:
    if v is None:
        return None
    ok = _is_number(v) and math.isfinite(v) and v == int(v) and 1 <= v <= MAX_MULTIPLIER
    if not ok:
        raise InputError(f"multiplier must be a whole number from 1 to {MAX_MULTIPLIER}, got {v!r}; "
                         "for a non-integer ratio give a target fps instead")
    return int(v)


def check_fps(v, what: str, example: str) -> Fraction | None:
    if v is None:
        return None
    try:
        return as_fraction(v, what)
    except InputError:
        raise InputError(f"{what} must be a positive number such as {example}, got {v!r}") from None


def check_src_fps(v) -> Fraction | None:
    return check_fps(v, "source fps", "24, 29.97 or 30000/1001")


def check_dst_fps(v) -> Fraction | None:
    return check_fps(v, "target fps", "60, 59.94 or 60000/1001")


def check_cut_threshold(v) -> float | None:
    if v is None:
        return None
    if not (_is_number(v) and math.isfinite(v) and 0 <= v <= 1):
        raise InputError(f"scene threshold must be a number from 0 (detection off) to 1, got {v!r}")
    return float(v)


def check_choice(v, what: str, allowed) -> str:
    if not isinstance(v, str) or v not in allowed:
        raise InputError(f"{what} must be one of {', '.join(allowed)}, got {v!r}")
    return v


def check_strategy(v) -> str:
    from .guard import STRATEGIES  # the strategies themselves live with the guard (it imports this module)

    return check_choice(v, "strategy", tuple(STRATEGIES))


def check_cut_fill(v) -> str:
    return check_choice(v, "cut fill", CUT_FILL_MODES)


def check_precision(v) -> str:
    return check_choice(v, "precision", PRECISIONS)


def check_device(v) -> str:
    t = v.strip().lower() if isinstance(v, str) else None
    if t in DEVICES or (t is not None and t.startswith("cuda:") and t[5:].isdigit()):
        return t
    raise InputError(f"device must be auto, cpu, cuda or cuda:N, got {v!r}")


def check_batch_size(v) -> int | None:
    if v is None:
        return None
    if not (_is_number(v) and math.isfinite(v) and v == int(v) and 1 <= v <= MAX_BATCH):
        raise InputError(f"batch size must be a whole number from 1 to {MAX_BATCH} (or none: the strategy "
                         f"decides), got {v!r}")
    return int(v)


def check_flow_scale(v) -> float | None:
    """RIFE's flow resolutions are powers of two: between them its pyramid of downscales does not
    come back to the frame's size (a 0.7 failed inside the network at most frame sizes)."""
    if v is None:
        return None
    if not (_is_number(v) and v in FLOW_SCALES):
        raise InputError(f"flow scale must be one of {', '.join(f'{s:g}' for s in FLOW_SCALES)} (or none: the "
                         f"strategy decides), got {v!r}")
    return float(v)


@dataclass(frozen=True)
class Options:
    """What to make (multiplier or fps, scene cuts) and how (strategy, device, precision, batch, flow scale).

    multiplier: frames per source frame, 1..16; None = 2, or unused when dst_fps is given (giving both
    is an error). src_fps / dst_fps: frame rates (int, float, Fraction or "num/den"); dst_fps needs
    src_fps by the time the schedule is built and may be at most 16 times it. cut_threshold: a pair
    whose scene-change score is above it is a cut and never morphed; 0 or None switches detection
    off (so does 1: no score exceeds it). batch_size / flow_scale: None = the strategy decides.
    """

    multiplier: int | None = None
    src_fps: Fraction | None = None
    dst_fps: Fraction | None = None
    cut_threshold: float | None = 0.3
    cut_fill: str = "hold"
    strategy: str = "balanced"
    device: str = "auto"
    precision: str = "auto"
    batch_size: int | None = None
    flow_scale: float | None = None

    def __post_init__(self):
        fix = dict(
            multiplier=check_multiplier(self.multiplier),
            src_fps=check_src_fps(self.src_fps),
            dst_fps=check_dst_fps(self.dst_fps),
            cut_threshold=check_cut_threshold(self.cut_threshold),
            cut_fill=check_cut_fill(self.cut_fill),
            strategy=check_strategy(self.strategy),
            device=check_device(self.device),
            precision=check_precision(self.precision),
            batch_size=check_batch_size(self.batch_size),
            flow_scale=check_flow_scale(self.flow_scale),
        )
        for k, v in fix.items():
            object.__setattr__(self, k, v)
        if self.dst_fps is not None and self.multiplier is not None:
            raise InputError(f"a multiplier (here {self.multiplier}) is not allowed with a target fps (here "
                             f"{fps_text(self.dst_fps)}): give one or the other")
        if self.dst_fps is not None and self.src_fps is not None:
            ratio = self.dst_fps / self.src_fps
            if ratio > MAX_FPS_RATIO:
                raise InputError(f"target fps {fps_text(self.dst_fps)} is more than {MAX_FPS_RATIO} times the "
                                 f"source's {fps_text(self.src_fps)} fps; at most {MAX_FPS_RATIO} times "
                                 f"({fps_text(MAX_FPS_RATIO * self.src_fps)} fps) is supported")

    @classmethod
    def of(cls, options: "Options | None" = None, **values) -> "Options":
        """`options` (or the defaults) with `values` replacing fields; an unknown name is an InputError."""
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise InputError(f"unknown option(s) {', '.join(unknown)}; known: "
                             f"{', '.join(f.name for f in dataclasses.fields(cls))}")
        return dataclasses.replace(options, **values) if options is not None else cls(**values)

    def replace(self, **values) -> "Options":
        return Options.of(self, **values)

    @property
    def effective_multiplier(self) -> int | None:
        """The multiplier the run uses (None when it converts to a target fps)."""
        return None if self.dst_fps is not None else (self.multiplier or 2)

    @property
    def detects_cuts(self) -> bool:
        return cuts_enabled(self.cut_threshold)

    def schedule(self, n_in: int, times: FrameTimes | None = None) -> Schedule:
        """The output schedule for n_in source frames (no cuts yet); with `times` (variable frame rate:
        src_fps is their average rate) retimed from them to a constant rate."""
        if self.dst_fps is not None and self.src_fps is None:
            raise InputError("a target fps needs the source fps too (wire it from the video's fps)")
        if self.dst_fps is not None:
            return make_schedule(n_in, None, src_fps=self.src_fps, dst_fps=self.dst_fps, cut_fill=self.cut_fill,
                                 times=times)
        return make_schedule(n_in, self.effective_multiplier, src_fps=self.src_fps, cut_fill=self.cut_fill,
                             times=times)

    def as_dict(self) -> dict:
        return {f.name: (str(v) if isinstance(v, Fraction) else v)
                for f in dataclasses.fields(self) for v in [getattr(self, f.name)]}
