"""PerformanceGuard: strategies, a measured memory model, and the plan for a run.

Before any work the guard calibrates the method on the chosen device: two small probe runs
(batch 1 and 2 at a probe size) whose *measured* peak memory gives a fixed part (weights, grids)
and a part per batch item per pixel. From that it predicts the peak for the real frame size and
picks the batch that fits the strategy's share of free memory. The same probes time the method,
which gives the ETA.

Peak memory is measured, not guessed: on CUDA by the allocator's own peak counter, elsewhere by
counting the bytes of live tensors while the probe runs (a TorchDispatchMode over every op).

Strategies (each a fixed, documented set of choices; see STRATEGIES):
  speed_first       flow scale 0.5 from 720p (the flow network at half resolution; below 720p it costs
                    too much quality), the biggest batch that fits 90% of free memory (CPU: 1),
                    fp16 on CUDA; on the CPU fp32 or bf16, whichever the calibration measures
                    faster; no ensemble. (Figures: bench/results/design_notes.md.)
  quality_first     fp32, flow scale 1, test-time ensemble (frames swapped with t -> 1 - t; flows
                    averaged inside the net where the family allows, outputs averaged otherwise),
                    the 4.0-family refinement network when present; batch within 80% (CPU: 1).
  balanced          flow scale 1 (0.5 from 1440p), fp16 on CUDA, fp32 on CPU, batch within 80% of
                    free memory up to 8 (CPU: 1).
  memory_efficient  batch 1, half-precision activations (fp16 on CUDA, bf16 on CPU: half the peak),
                    frames warped one at a time (no stacked copy of both), at most 50% of free memory;
                    the lowest peak.
  adaptive          starts as balanced, then after every batch raises or lowers the batch from the
                    measured free memory and throughput.
FILM has no flow scale and no ensemble: it takes each strategy's batch and precision only.
On the CPU, RIFE frames under the stacked limit (about 720p) in fp32 get batch CPU_BATCH instead of 1
(not memory_efficient, not adaptive): the batch's items run as two single-threaded streams side by side
(methods.RifeMethod.concurrent_items), 0.85 of the time of one after the other.
"""
from __future__ import annotations

import logging
import time
import weakref
from dataclasses import dataclass, field

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from .errors import InputError
from .methods import Method, one_item_at_a_time, padded, resolve_dtype
from .options import Options
from .resources import GIB, available_ram_bytes
from .runner import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Strategy:
    name: str
    max_batch_cuda: int
    batch_cpu: int
    precision_cuda: str
    headroom: float  # share of free memory a batch may use
    precision_cpu: str = "fp32"
    flow_scale_from: dict = field(default_factory=dict)  # min frame height -> flow scale
    ensemble: bool = False
    refine: bool = False
    adaptive: bool = False
    lean: bool = False  # warp the two frames separately: no stacked copy (less memory, slightly slower)

    def describe(self) -> str:
        """The strategy's choices in words (PerformanceGuard's report)."""
        cpu_prec = "fp32 or bf16, whichever measures faster" if self.precision_cpu == "fastest" else self.precision_cpu
        scales = ", ".join(f"{s:g} from {h}p up" for h, s in sorted(self.flow_scale_from.items()))
        parts = [
            f"batch up to {self.max_batch_cuda} on CUDA, {self.batch_cpu} on the CPU"
            + ("" if self.lean or self.adaptive else f" ({CPU_BATCH} for RIFE frames under about 720p in fp32, run as "
               "two streams side by side)")
            + f", within {self.headroom:.0%} of free memory"
            + (" (re-sized after every batch from measured memory and speed)" if self.adaptive else ""),
            f"{self.precision_cuda} on CUDA, {cpu_prec} on the CPU (RIFE, FILM; the other methods are always fp32)",
            "RIFE flow scale 1" + (f" ({scales})" if scales else ""),
            "test-time ensemble on" if self.ensemble else "no ensemble",
        ]
        if self.refine:
            parts.append("refinement network where the model has one")
        return f"strategy {self.name}: " + "; ".join(parts)

    def flow_scale_for(self, height: int) -> float:
        scale = 1.0
        for min_h, s in sorted(self.flow_scale_from.items()):
            if height >= min_h:
                scale = s
        return scale


ADAPTIVE_MAX_BATCH_CPU = 4  # the adaptive strategy's largest batch on the CPU

STRATEGIES = {
    "speed_first": Strategy("speed_first", 16, 1, "fp16", 0.90, flow_scale_from={720: 0.5}, precision_cpu="fastest"),
    "quality_first": Strategy("quality_first", 4, 1, "fp32", 0.80, ensemble=True, refine=True),
    "balanced": Strategy("balanced", 8, 1, "fp16", 0.80, flow_scale_from={1440: 0.5}),
    "memory_efficient": Strategy("memory_efficient", 1, 1, "fp16", 0.50, precision_cpu="bf16", lean=True),
    "adaptive": Strategy("adaptive", 16, 1, "fp16", 0.80, flow_scale_from={1440: 0.5}, adaptive=True),
}


# ----------------------------------------------------------------------------- measurement
class _LiveBytes(TorchDispatchMode):
    """Counts bytes of live tensor storages created inside the mode; keeps the peak."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # torch (2.x) otherwise wraps __torch_dispatch__ in torch._dynamo.disable, and the first
        # call imports torch._dynamo (with sympy and more of torch.distributed): 1.3 s and 66 MB of RSS on the
        # first calibration, for nothing here (nothing is compiled inside this mode)
        return False

    def __init__(self):
        super().__init__()
        self.live = 0
        self.peak = 0
        self._refs: dict[int, list] = {}

    def _release(self, key, nbytes):
        entry = self._refs.get(key)
        if entry is not None:
            entry[1] -= 1
            if entry[1] == 0:
                del self._refs[key]
                self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in (out if isinstance(out, (tuple, list)) else (out,)):
            if isinstance(t, torch.Tensor) and not t.is_mkldnn:  # oneDNN's reordered weights have no storage
                st = t.untyped_storage()
                key, nbytes = st.data_ptr(), st.nbytes()
                entry = self._refs.get(key)
                if entry is None:
                    self._refs[key] = [nbytes, 1]
                    self.live += nbytes
                    self.peak = max(self.peak, self.live)
                else:
                    entry[1] += 1
                weakref.finalize(t, self._release, key, nbytes)
        return out


def measure_peak_bytes(fn, device) -> int:
    """Peak memory that fn() needs on device, above what was allocated before."""
    if str(device).startswith("cuda"):
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - before)
    mode = _LiveBytes()
    with one_item_at_a_time(), mode:  # (the mode sees this thread only)
        fn()
    return int(mode.peak)


@dataclass(frozen=True)
class Calibration:
    fixed_bytes: int
    bytes_per_item_px: float
    seconds_per_item_px: float
    probe: tuple
    seconds_per_item: float = 0.0  # the part of an item's time that does not grow with its size

    def peak(self, batch: int, pixels: int) -> int:
        return int(self.fixed_bytes + batch * self.bytes_per_item_px * pixels)

    def seconds(self, items: int, pixels: int) -> float:
        return items * (self.seconds_per_item + self.seconds_per_item_px * pixels)


_CALIBRATIONS: dict = {}


def calibrate(method: Method, settings: Settings, probe: int = 128) -> Calibration:
    """Measure peak memory (batch 1 and 2) and time per item at a probe size on settings.device."""
    key = (getattr(method, "name", ""), getattr(getattr(method, "cfg", None), "family", ""),
           id(getattr(method, "module", None)), str(settings.device),
           settings.dtype, settings.flow_scale, settings.ensemble, getattr(method, "refine", False),
           getattr(method, "lean", False))
    if key in _CALIBRATIONS:
        return _CALIBRATIONS[key]
    with one_item_at_a_time():  # probes in this thread (the ETA of items run side by side comes out a little high)
        cal = _CALIBRATIONS[key] = _calibrate(method, settings, probe)
    return cal


def _calibrate(method: Method, settings: Settings, probe: int) -> Calibration:
    method.to(settings.device, settings.dtype)
    m = method.pad_multiple(settings.flow_scale)
    side = padded(max(probe, m), m)
    px = side * side
    gen = torch.Generator().manual_seed(0)
    imgs = torch.rand(3, 3, side, side, generator=gen).to(settings.device)

    def once(batch, imgs=imgs):
        with torch.inference_mode():
            s = [method.prepare(imgs[i % 3:i % 3 + 1]) for i in range(batch + 1)]
            t = torch.full((batch,), 0.5)
            return method.interpolate(s[:batch], s[1:batch + 1], t, scale=settings.flow_scale, ensemble=settings.ensemble)

    once(1)  # warm-up (kernels, grids)
    p1 = measure_peak_bytes(lambda: once(1), settings.device)
    p2 = measure_peak_bytes(lambda: once(2), settings.device)

    def item_seconds(imgs):
        runs = []
        for _ in range(2):  # the faster of two timed runs
            t0 = time.perf_counter()
            once(2, imgs)
            if str(settings.device).startswith("cuda"):
                torch.cuda.synchronize(settings.device)
            runs.append((time.perf_counter() - t0) / 2)
        return min(runs)

    # Time at two sizes: an item's cost is a fixed part (calls, small coarse levels; large on the CPU)
    # plus a part per pixel. One size alone scaled the fixed part up with the frame (ETA up to 5x high).
    dt = item_seconds(imgs)
    big = torch.nn.functional.interpolate(imgs, scale_factor=2, mode="bilinear")
    once(2, big)  # warm-up at that size and batch (a shape of its own: oneDNN keeps one set of kernels per shape)
    dt2 = item_seconds(big)
    per_px = max((dt2 - dt) / (3 * px), dt / px / 4)  # 4x the pixels; a noisy timing never makes size free
    per_item = max(p2 - p1, p1 // 2, 1)
    cal = Calibration(fixed_bytes=max(p1 - per_item, 0), bytes_per_item_px=per_item / px,
                      seconds_per_item_px=per_px, probe=(side, side), seconds_per_item=max(dt - per_px * px, 0.0))
    log.debug("calibrated %s on %s: fixed %.1f MB, %.1f bytes/px/item, %.3f us/px/item", method.describe(),
              settings.device, cal.fixed_bytes / 1e6, cal.bytes_per_item_px, cal.seconds_per_item_px * 1e6)
    return cal


def free_memory_bytes(device) -> int:
    if str(device).startswith("cuda"):
        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    return available_ram_bytes()


def resolve_device(device: str, method: Method) -> str:
    """The device a method runs on, for a device option engine.options has checked."""
    if method.kind in ("flow", "blend"):
        return "cpu"  # OpenCV / plain tensor maths
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("device 'cuda' was asked for but this torch has no CUDA device; use 'auto' or 'cpu'")
    return device


# ----------------------------------------------------------------------------- planning
@dataclass
class Plan:
    settings: Settings
    strategy: str
    reason: str
    predicted_peak_bytes: int | None = None
    free_bytes: int | None = None
    eta_s: float | None = None
    adapt: object = None

    def as_dict(self) -> dict:
        return dict(strategy=self.strategy, settings=self.settings.as_dict(), reason=self.reason,
                    predicted_peak_bytes=self.predicted_peak_bytes, free_bytes=self.free_bytes,
                    eta_s=None if self.eta_s is None else round(self.eta_s, 2))


CPU_BATCH = 16  # the CPU batch where the method runs a batch's items side by side (RifeMethod.concurrent_items)


def _cpu_batch(method: Method, st: Strategy, dtype, ph: int, pw: int) -> int:
    """The strategy's CPU batch, or CPU_BATCH where the method runs items of a batch side by side for
    frames of this (padded) size: fewer batch ends where a stream waits for the other and fewer
    per-batch steps (whole calls at 448x256, batch 1 = 1: 4 items 0.91, 8 0.91, 12 0.84, 16 0.85;
    forwards alone: 2 items 0.94-0.96, 8 items 0.82-0.88 of one after the other). Only the items in
    flight hold activations; the prepared frames and outputs of a batch: 50 MB at 448x256."""
    items = getattr(method, "concurrent_items", None)
    if items is None or st.lean or st.adaptive:
        return st.batch_cpu
    return CPU_BATCH if items(CPU_BATCH, "cpu", dtype, (ph, pw)) > 1 else st.batch_cpu


def plan(method: Method, size: tuple[int, int], n_out: int, *, strategy: str = "balanced", device: str = "auto",
         precision: str = "auto", batch_size: int | None = None, flow_scale: float | None = None,
         n_tasks: int | None = None) -> Plan:
    """Settings for interpolating frames of `size` (h, w) into n_out outputs with `strategy`."""
    opts = Options(strategy=strategy, device=device, precision=precision, batch_size=batch_size,
                   flow_scale=flow_scale)  # engine.options' rules (callers have usually checked already)
    strategy, precision, batch_size, flow_scale = opts.strategy, opts.precision, opts.batch_size, opts.flow_scale
    st = STRATEGIES[strategy]
    dev = resolve_device(opts.device, method)
    on_cuda = dev.startswith("cuda")
    prec = precision if precision and precision != "auto" else (st.precision_cuda if on_cuda else st.precision_cpu)
    if prec == "fastest":
        prec = _fastest_cpu_precision(method, st.flow_scale_for(size[0]) if flow_scale is None else float(flow_scale))
    dtype = resolve_dtype(prec, dev) if method.network else torch.float32
    h, w = size
    fs = float(flow_scale) if flow_scale is not None else st.flow_scale_for(h)
    if hasattr(method, "refine"):
        method.refine = bool(st.refine and method.cfg.refine)
        method.lean = st.lean
    ensemble = bool(st.ensemble and method.supports_ensemble)
    base = Settings(device=dev, dtype=dtype, batch_size=1, flow_scale=fs if method.supports_scale else 1.0,
                    ensemble=ensemble)
    tasks = n_tasks if n_tasks is not None else n_out
    if not method.network:
        bs = int(batch_size or st.batch_cpu)
        return Plan(base.but(batch_size=bs), strategy, f"{method.describe()} runs on the CPU")
    cal = calibrate(method, base)
    mult = method.pad_multiple(base.flow_scale)
    px = padded(h, mult) * padded(w, mult)
    free = free_memory_bytes(dev)
    budget = free * st.headroom
    if batch_size is not None:
        bs, why = int(batch_size), "batch size set by hand"
    else:
        cap = st.max_batch_cuda if on_cuda else _cpu_batch(method, st, dtype, padded(h, mult), padded(w, mult))
        bs = cap
        while bs > 1 and cal.peak(bs, px) > budget:
            bs -= 1
        why = (f"largest batch <= {cap} whose predicted peak fits {st.headroom:.0%} of "
               f"{free / GIB:.1f} GiB free" if on_cuda else f"{strategy} uses batch {cap} on the CPU"
               + (" (its items run side by side, two streams on the threads)" if cap > st.batch_cpu else ""))
        if cal.peak(bs, px) > budget:
            why += f"; even batch 1 is predicted at {cal.peak(1, px) / GIB:.2f} GiB, the recovery ladder will step in"
    settings = base.but(batch_size=bs)
    eta = cal.seconds(tasks, px) * (2 if ensemble else 1)
    adapt = (AdaptiveBatch(cal, px, dev, st.headroom, st.max_batch_cuda if on_cuda else ADAPTIVE_MAX_BATCH_CPU)
             if st.adaptive else None)
    return Plan(settings, strategy, why, cal.peak(bs, px), free, eta, adapt)


def _fastest_cpu_precision(method: Method, flow_scale: float) -> str:
    """fp32 or bf16, whichever this processor runs faster (bf16 is fast only where the CPU has it)."""
    if not method.network:
        return "fp32"
    times = {p: calibrate(method, Settings(dtype=resolve_dtype(p, "cpu"), flow_scale=flow_scale)).seconds_per_item_px
             for p in ("fp32", "bf16")}
    return min(times, key=times.get)


class AdaptiveBatch:
    """The batch size while an adaptive run goes on (the runner asks after every batch, the ladder
    reports every recovery step): grow the batch while throughput improves and memory allows,
    shrink it when measured free memory runs low. Returns the new batch size (or None to keep it).

    Free memory is measured on the device the run is on now (after the ladder's `cpu` rung: RAM,
    not the GPU it planned for). After a recovery step the throughput measured under the old
    settings is forgotten, and after an out-of-memory error the batch never grows back to the size
    that failed.
    """

    def __init__(self, cal: Calibration, px: int, device: str, headroom: float, max_batch: int):
        self.cal, self.px, self.device, self.headroom, self.max_batch = cal, px, device, headroom, max_batch
        self.rate: dict[int, float] = {}
        self.changes: list[tuple[int, int]] = []
        self.ceiling = max_batch  # lowered below every batch size that ran out of memory

    def _cap(self, device) -> int:
        same_kind = str(device).startswith("cuda") == str(self.device).startswith("cuda")
        return min(self.ceiling, self.max_batch if same_kind else ADAPTIVE_MAX_BATCH_CPU)

    def after_recovery(self, failed: Settings, kind: str) -> None:
        """The ladder's report: the batch with `failed` settings raised `kind` and a rung was taken."""
        self.rate.clear()
        if kind == "oom":
            self.ceiling = max(1, min(self.ceiling, failed.batch_size - 1))

    def __call__(self, items: int, seconds: float, settings: Settings):
        bs = settings.batch_size
        if items == bs and seconds > 0:
            self.rate[bs] = items / seconds
        free = free_memory_bytes(settings.device)  # measured now, between batches, where the run is
        cap = self._cap(settings.device)
        fits = lambda b: self.cal.peak(b, self.px) <= free * self.headroom and b <= cap  # noqa: E731
        new = bs
        if not fits(bs) and bs > 1:
            new = max([b for b in range(1, bs) if fits(b)] or [1])
        elif bs - 1 in self.rate and self.rate.get(bs, 0) < self.rate[bs - 1] * 0.97:
            new = bs - 1  # the bigger batch was slower: step back, and stay there
        elif bs < cap and fits(bs + 1) and (bs + 1) not in self.rate:
            new = bs + 1  # try one bigger
        if new != bs:
            self.changes.append((bs, new))
            return new
        return None
