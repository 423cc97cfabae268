"""Resource monitoring (CPU, RAM, NVML GPU stats) and pre-flight memory arithmetic.

Nothing here requires a GPU: without NVML the GPU fields are simply absent.
"""
from __future__ import annotations

import logging
import os
import threading
import time

import numpy as np
import psutil
import torch

from .errors import InputError

try:  # optional; without it there are no GPU stats
    import pynvml
except ImportError:  # pragma: no cover - depends on the environment
    pynvml = None

logger = logging.getLogger(__name__)

GIB = 1024 ** 3
OUTPUT_CHANNELS = 3
OUTPUT_BYTES_PER_VALUE = 4  # float32, as ComfyUI IMAGE tensors are

_nvml_lock = threading.Lock()
_nvml_tried = False
_nvml_error: str | None = None  # why NVML can't be used; remembered after the first try
_logged_gpu_errors: set[str] = set()

psutil.cpu_percent(None)  # prime: the first non-blocking call always returns 0.0


# --------------------------------------------------------------------------- snapshot

def _nvml_init_error() -> str | None:
    """Initialise NVML once; return why it is unusable, or None when it works."""
    global _nvml_tried, _nvml_error
    with _nvml_lock:
        if not _nvml_tried:
            _nvml_tried = True
            if pynvml is None:
                _nvml_error = "pynvml not installed"
            else:
                try:
                    pynvml.nvmlInit()
                except Exception as e:  # NVMLError_LibraryNotFound, DriverNotLoaded, OSError...
                    _nvml_error = f"NVML unavailable: {e}"
        return _nvml_error


def _visible_gpu_handles() -> list:
    """NVML handles of the GPUs this process may use, in CUDA_VISIBLE_DEVICES order.

    NVML ignores CUDA_VISIBLE_DEVICES, so honour it here (indices or GPU-/MIG- UUIDs;
    like CUDA, stop at the first empty or negative entry). Unset: every GPU, NVML order.
    """
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is None:
        return [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
    handles = []
    for item in (s.strip() for s in env.split(",")):
        if not item or item.startswith("-"):
            break
        if item.isdigit():
            handles.append(pynvml.nvmlDeviceGetHandleByIndex(int(item)))
        else:
            handles.append(pynvml.nvmlDeviceGetHandleByUUID(item))
    return handles


def _optional(fn, *args):
    """NVML fields some GPUs don't report (power on MIG, temperature on vGPU...)."""
    try:
        return fn(*args)
    except pynvml.NVMLError:
        return None


def _gpu_stats(index: int, handle) -> dict:
    mem = pynvml.nvmlDeviceGetMemoryInfo(handle)  # the one field we insist on
    util = _optional(pynvml.nvmlDeviceGetUtilizationRates, handle)
    temp = _optional(pynvml.nvmlDeviceGetTemperature, handle, pynvml.NVML_TEMPERATURE_GPU)
    power_mw = _optional(pynvml.nvmlDeviceGetPowerUsage, handle)
    return {
        "index": index,
        "vram_used_bytes": int(mem.used),
        "vram_total_bytes": int(mem.total),
        "util_percent": None if util is None else float(util.gpu),
        "temp_c": None if temp is None else float(temp),
        "power_w": None if power_mw is None else power_mw / 1000.0,
    }


def snapshot() -> dict:
    """Current CPU / RAM figures, plus ``gpus`` (one dict per visible GPU) when NVML works.

    Never raises for GPU trouble: then there is no ``gpus`` key but a ``gpu_error`` string.
    """
    vm = psutil.virtual_memory()
    snap = {
        "cpu_percent": psutil.cpu_percent(None),  # system-wide, since the previous call
        "rss_bytes": psutil.Process().memory_info().rss,
        "ram_available_bytes": vm.available,
        "ram_total_bytes": vm.total,
        "swap_used_bytes": psutil.swap_memory().used,
    }
    error = _nvml_init_error()
    if error is None:
        try:
            gpus = [_gpu_stats(i, h) for i, h in enumerate(_visible_gpu_handles())]
            if gpus:
                snap["gpus"] = gpus
            else:
                error = "no visible GPU"
        except Exception as e:
            error = f"NVML query failed: {e}"
    if error is not None:
        snap["gpu_error"] = error
        if error not in _logged_gpu_errors:
            _logged_gpu_errors.add(error)
            logger.debug("No GPU stats: %s", error)
    return snap


def _vram_used(snap: dict) -> int | None:
    """VRAM used on the fullest visible GPU (the one that will run out first)."""
    gpus = snap.get("gpus")
    return max(g["vram_used_bytes"] for g in gpus) if gpus else None


# --------------------------------------------------------------------------- monitor

class ResourceMonitor:
    """Samples :func:`snapshot` on a daemon thread while active.

    ``with ResourceMonitor(interval=0.2) as mon: ...`` then ``mon.summary()`` and
    ``mon.timeline`` (list of ``(seconds_since_start, snapshot)``). A sample is taken
    on entry and on exit, so even a short block has two. Past ``max_samples`` the
    timeline is halved (every other sample kept) and then sampled half as often, so
    it always spans the whole run; peaks and means use every sample.

    Entering resets torch's CUDA peak-memory counters if CUDA is already initialised,
    so the torch peaks in the summary belong to this block.
    """

    def __init__(self, interval: float = 0.5, max_samples: int = 2000):
        if interval <= 0 or max_samples < 2:
            raise ValueError("interval must be > 0 and max_samples >= 2")
        self.interval = interval
        self.max_samples = max_samples
        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0
        self.started_at: float | None = None
        self._t_end: float | None = None
        self._timeline: list[tuple[float, dict]] = []
        self._stride = 1
        self._count = 0
        self._failed = 0
        self._cpu_sum = 0.0
        self._rss_sum = 0
        self._rss_peak = 0
        self._vram_sum = 0
        self._vram_count = 0
        self._vram_peak = 0
        self._gpu_error: str | None = None
        self._torch_peaks: tuple[int, int] | None = None

    def __enter__(self) -> "ResourceMonitor":
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def timeline(self) -> list[tuple[float, dict]]:
        with self._lock:
            return list(self._timeline)

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("a ResourceMonitor can only be started once")
        if torch.cuda.is_initialized():
            torch.cuda.reset_peak_memory_stats()
        self._t0 = time.monotonic()
        self.started_at = time.time()  # wall clock of t = 0, to place events (e.g. fallbacks) on the timeline
        self._sample()
        self._thread = threading.Thread(target=self._run, name="ResourceMonitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None or self._stop_event.is_set():
            return
        self._stop_event.set()
        self._thread.join(timeout=5.0)  # wakes at once; only a hung NVML call could delay it
        if self._thread.is_alive():
            logger.debug("ResourceMonitor thread still busy after stop; leaving it (daemon)")
        self._sample(keep=True)
        self._t_end = time.monotonic()
        self._torch_peaks = _torch_cuda_peaks()

    def _run(self) -> None:
        while not self._stop_event.wait(self.interval):
            self._sample()

    def _sample(self, keep: bool = False) -> None:
        try:
            snap = snapshot()
            t = time.monotonic() - self._t0
            with self._lock:
                self._record(t, snap, keep)
        except Exception:
            with self._lock:
                self._failed += 1
                first = self._failed == 1
            if first:
                logger.debug("Resource sample failed (further failures only counted)", exc_info=True)

    def _record(self, t: float, snap: dict, keep: bool) -> None:
        if keep or self._count % self._stride == 0:
            if len(self._timeline) >= self.max_samples:
                self._timeline = self._timeline[::2]
                self._stride *= 2
            self._timeline.append((t, snap))
        self._count += 1
        self._cpu_sum += snap["cpu_percent"]
        self._rss_sum += snap["rss_bytes"]
        self._rss_peak = max(self._rss_peak, snap["rss_bytes"])
        vram = _vram_used(snap)
        if vram is not None:
            self._vram_sum += vram
            self._vram_count += 1
            self._vram_peak = max(self._vram_peak, vram)
        if "gpu_error" in snap:
            self._gpu_error = snap["gpu_error"]

    def summary(self) -> dict:
        """JSON-able peaks and means so far (or for the whole block once stopped)."""
        with self._lock:
            n = self._count
            end = self._t_end if self._t_end is not None else time.monotonic()
            gpu = self._vram_count > 0
            torch_peaks = self._torch_peaks if self._t_end is not None else _torch_cuda_peaks()
            out = {
                "samples": n,
                "failed_samples": self._failed,
                "duration_s": round(end - self._t0, 3) if self._thread is not None else 0.0,
                "interval_s": self.interval,
                "peak_rss_bytes": self._rss_peak if n else None,
                "mean_rss_bytes": int(self._rss_sum / n) if n else None,
                "mean_cpu_percent": round(self._cpu_sum / n, 1) if n else None,
                "gpu_available": gpu,
                "peak_vram_used_bytes": self._vram_peak if gpu else None,
                "mean_vram_used_bytes": int(self._vram_sum / self._vram_count) if gpu else None,
                "torch_peak_allocated_bytes": torch_peaks[0] if torch_peaks else None,
                "torch_peak_reserved_bytes": torch_peaks[1] if torch_peaks else None,
            }
            if not gpu and self._gpu_error:
                out["gpu_error"] = self._gpu_error
            return out


def _torch_cuda_peaks() -> tuple[int, int] | None:
    """(max allocated, max reserved) on the current CUDA device; None unless CUDA is in use."""
    if not torch.cuda.is_initialized():  # never initialise CUDA just to look
        return None
    try:
        return int(torch.cuda.max_memory_allocated()), int(torch.cuda.max_memory_reserved())
    except Exception:
        logger.debug("torch CUDA peak stats unavailable", exc_info=True)
        return None


# --------------------------------------------------------------------------- memory arithmetic

def output_ram_bytes(n_frames: int, height: int, width: int,
                     channels: int = OUTPUT_CHANNELS, bytes_per: int = OUTPUT_BYTES_PER_VALUE) -> int:
    """Bytes needed to hold ``n_frames`` frames of ``height`` x ``width`` x ``channels``."""
    return int(n_frames) * int(height) * int(width) * int(channels) * int(bytes_per)


def available_ram_bytes() -> int:
    return int(psutil.virtual_memory().available)


def frames_that_fit(height: int, width: int, available: int | None = None,
                    headroom: float = 0.85) -> int:
    """How many float32 RGB output frames fit in ``headroom`` x available RAM."""
    if height <= 0 or width <= 0:
        raise InputError(f"frame size must be positive, got {width}x{height}")
    avail = available_ram_bytes() if available is None else available
    return max(0, int(avail * headroom)) // output_ram_bytes(1, height, width)


def _fmt_bytes(n: float) -> str:
    return f"{n / GIB:.2f} GiB" if n >= GIB / 10 else f"{n / 2**20:.1f} MiB"


def check_output_fits(n_out: int, height: int, width: int, *,
                      headroom: float = 0.85, available: int | None = None) -> None:
    """Raise :class:`InputError` up front if the output frames won't fit in RAM."""
    avail = available_ram_bytes() if available is None else available
    fit = frames_that_fit(height, width, avail, headroom)
    if n_out <= fit:
        return
    need = output_ram_bytes(n_out, height, width)
    raise InputError(
        f"Not enough RAM for the output: {n_out} frames at {width}x{height} need "
        f"{_fmt_bytes(need)}, but only {_fmt_bytes(avail)} is available "
        f"({headroom:.0%} usable: {_fmt_bytes(avail * headroom)}), enough for about {fit} frames. "
        "Use a lower multiplier or target fps, a shorter clip, or for long videos the "
        "streaming command line (python -m engine.cli), which writes frames to disk "
        "instead of keeping them all in RAM."
    )


# --------------------------------------------------------------------------- timeline plot

_BG = (255, 255, 255)
_GRID = (225, 225, 225)
_TEXT = (60, 60, 60)
SERIES_COLORS = {"RSS": (31, 119, 180), "VRAM": (44, 160, 44), "CPU %": (255, 127, 14)}  # RGB
MARKER_COLOR = (214, 39, 40)  # RGB: a fallback (recovery rung) taken


def render_timeline_png(timeline, path: str | os.PathLike | None = None, *,
                        width: int = 640, height: int = 320, markers=()) -> np.ndarray:
    """Plot RSS and VRAM (GiB, left scale) and CPU % (0-100, right scale) over time, with a
    vertical line and a label for each ``markers`` entry ``(seconds since the first sample, label)``
    (the fallbacks of a run). The legend lists only the series that have data (no VRAM line or
    legend without GPU stats).

    Returns an RGB uint8 array ``[height, width, 3]``; also writes it as PNG to ``path``
    if given. Drawn with OpenCV, so matplotlib is not needed.
    """
    import cv2  # imported here: only the plot needs it

    if width < 160 or height < 100:
        raise ValueError(f"plot too small: {width}x{height} (min 160x100)")
    img = np.full((height, width, 3), _BG, dtype=np.uint8)
    font, fs = cv2.FONT_HERSHEY_SIMPLEX, 0.4
    left, right, top, bottom = 58, width - 42, 24, height - 22
    cv2.rectangle(img, (left, top), (right, bottom), _TEXT, 1)

    samples = list(timeline)
    shown = []  # series with data, for the legend
    if not samples:
        cv2.putText(img, "no samples", (left + 10, (top + bottom) // 2), font, fs, _TEXT, 1, cv2.LINE_AA)
    else:
        t = np.array([s[0] for s in samples], dtype=np.float64)
        rss = np.array([s[1]["rss_bytes"] for s in samples], dtype=np.float64) / GIB
        vram = np.array([_vram_used(s[1]) for s in samples], dtype=np.float64) / GIB  # None -> nan
        cpu = np.array([s[1]["cpu_percent"] for s in samples], dtype=np.float64)
        span = max(float(t[-1] - t[0]), 1e-9)
        mem_max = max(float(np.nanmax(np.concatenate([rss, vram]))), 1e-3) * 1.1

        for frac in (0.25, 0.5, 0.75):
            y = int(round(bottom - frac * (bottom - top)))
            cv2.line(img, (left + 1, y), (right - 1, y), _GRID, 1)

        x = left + (t - t[0]) / span * (right - left)

        def draw(values, vmax, color):
            ok = ~np.isnan(values)
            y = bottom - np.clip(values[ok] / vmax, 0, 1) * (bottom - top)
            pts = np.stack([x[ok], y], axis=1).round().astype(np.int32)
            if len(pts) == 1:
                pts = np.concatenate([pts, pts + [2, 0]])
            if len(pts):
                cv2.polylines(img, [pts.reshape(-1, 1, 2)], False, color, 2, cv2.LINE_AA)

        for name, values, vmax in (("CPU %", cpu, 100.0), ("VRAM", vram, mem_max), ("RSS", rss, mem_max)):
            if not np.isnan(values).all():
                draw(values, vmax, SERIES_COLORS[name])
                shown.append(name)

        _draw_markers(img, markers, float(t[0]), span, (left, right, top, bottom))

        cv2.putText(img, f"{mem_max:.1f} GiB", (2, top + 4), font, fs, _TEXT, 1, cv2.LINE_AA)
        cv2.putText(img, "0", (left - 12, bottom), font, fs, _TEXT, 1, cv2.LINE_AA)
        cv2.putText(img, "100%", (right + 4, top + 4), font, fs, _TEXT, 1, cv2.LINE_AA)
        cv2.putText(img, "0 s", (left, bottom + 15), font, fs, _TEXT, 1, cv2.LINE_AA)
        cv2.putText(img, f"{span:.1f} s", (right - 40, bottom + 15), font, fs, _TEXT, 1, cv2.LINE_AA)

    legend = [(n, SERIES_COLORS[n]) for n in SERIES_COLORS if n in shown]
    if any(np.isfinite(at) for at, _ in markers) and samples:
        legend.append(("fallback", MARKER_COLOR))
    _draw_legend(img, legend, left, top)

    if path is not None:
        if not cv2.imwrite(os.fspath(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR)):
            raise OSError(f"could not write {path}")
    return img


def _draw_markers(img: np.ndarray, markers, t0: float, span: float, box: tuple[int, int, int, int]) -> None:
    """The fallbacks: a dashed vertical line and the rung's name at each (time, label) of `markers`."""
    import cv2

    left, right, top, bottom = box
    for at, label in markers:
        if not np.isfinite(at):
            continue
        mx = int(round(left + np.clip((at - t0) / span, 0, 1) * (right - left)))
        for y0 in range(top + 1, bottom, 6):
            cv2.line(img, (mx, y0), (mx, min(y0 + 3, bottom - 1)), MARKER_COLOR, 1)
        cv2.putText(img, str(label)[:18], (min(mx + 3, right - 60), top + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                    MARKER_COLOR, 1, cv2.LINE_AA)


def _draw_legend(img: np.ndarray, legend, left: int, top: int) -> None:
    """The (name, colour) entries side by side above the plot, from its left edge."""
    import cv2

    font, fs = cv2.FONT_HERSHEY_SIMPLEX, 0.4
    x = left
    for name, color in legend:
        cv2.putText(img, name, (x, top - 8), font, fs, color, 1, cv2.LINE_AA)
        x += 12 + cv2.getTextSize(name, font, fs, 1)[0][0]


def describe_snapshot(snap: dict) -> str:
    """One line about the machine now (a snapshot() dict): CPU, free RAM, this process, each GPU."""
    line = (f"now: CPU {snap.get('cpu_percent', 0):.0f}%, RAM {snap['ram_available_bytes'] / GIB:.1f} GiB free of "
            f"{snap['ram_total_bytes'] / GIB:.1f} GiB, this process {snap['rss_bytes'] / GIB:.2f} GiB")
    for g in snap.get("gpus", []):
        line += (f"; GPU {g['index']}: {g['vram_used_bytes'] / GIB:.1f} of {g['vram_total_bytes'] / GIB:.1f} GiB VRAM used"
                 + (f", {g['util_percent']:.0f}% busy" if g.get("util_percent") is not None else "")
                 + (f", {g['temp_c']:.0f} C" if g.get("temp_c") is not None else ""))
    if "gpus" not in snap and snap.get("gpu_error"):
        line += f"; no GPU stats ({snap['gpu_error']})"
    return line
