import json
import logging
import time
from types import SimpleNamespace

import cv2
import numpy as np
import psutil
import pytest
import torch

from engine import resources
from engine.errors import ErrorKind, InputError, classify
from engine.resources import (
    MARKER_COLOR,
    SERIES_COLORS,
    ResourceMonitor,
    available_ram_bytes,
    check_output_fits,
    frames_that_fit,
    output_ram_bytes,
    render_timeline_png,
    snapshot,
)

CPU_RAM_KEYS = {"cpu_percent", "rss_bytes", "ram_available_bytes", "ram_total_bytes", "swap_used_bytes"}
MiB = 2 ** 20


@pytest.fixture
def fresh_nvml(monkeypatch):
    """Forget any earlier NVML init attempt so the test controls it."""
    monkeypatch.setattr(resources, "_nvml_tried", False)
    monkeypatch.setattr(resources, "_nvml_error", None)
    monkeypatch.setattr(resources, "_logged_gpu_errors", set())


@pytest.fixture
def nvml_broken(monkeypatch, fresh_nvml):
    calls = []

    def boom():
        calls.append(1)
        raise RuntimeError("driver went away")

    monkeypatch.setattr(resources.pynvml, "nvmlInit", boom)
    return calls


@pytest.fixture
def fake_nvml(monkeypatch, fresh_nvml):
    """Two fake GPUs; power is 'not supported', like on MIG slices."""
    nv = resources.pynvml
    used = {0: 1 * 2 ** 30, 1: 5 * 2 ** 30}

    def power(h):
        raise nv.NVMLError(nv.NVML_ERROR_NOT_SUPPORTED)

    monkeypatch.setattr(nv, "nvmlInit", lambda: None)
    monkeypatch.setattr(nv, "nvmlDeviceGetCount", lambda: 2)
    monkeypatch.setattr(nv, "nvmlDeviceGetHandleByIndex", lambda i: i)
    monkeypatch.setattr(nv, "nvmlDeviceGetMemoryInfo",
                        lambda h: SimpleNamespace(used=used[h], total=8 * 2 ** 30, free=0))
    monkeypatch.setattr(nv, "nvmlDeviceGetUtilizationRates", lambda h: SimpleNamespace(gpu=40 + h, memory=0))
    monkeypatch.setattr(nv, "nvmlDeviceGetTemperature", lambda h, sensor: 60 + h)
    monkeypatch.setattr(nv, "nvmlDeviceGetPowerUsage", power)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return used


# --------------------------------------------------------------------------- snapshot

def test_snapshot_has_cpu_and_ram_figures():
    snap = snapshot()
    assert CPU_RAM_KEYS <= snap.keys()
    assert snap["rss_bytes"] > 0
    assert 0 < snap["ram_available_bytes"] <= snap["ram_total_bytes"]
    assert 0.0 <= snap["cpu_percent"] <= 100.0
    # exactly one of: GPU stats, or the reason there are none
    assert ("gpus" in snap) != ("gpu_error" in snap)
    json.dumps(snap)


def test_snapshot_survives_nvml_init_failure_and_remembers_it(nvml_broken, caplog):
    with caplog.at_level(logging.DEBUG, logger="engine.resources"):
        first, second = snapshot(), snapshot()
    for snap in (first, second):
        assert CPU_RAM_KEYS <= snap.keys()
        assert "gpus" not in snap
        assert "driver went away" in snap["gpu_error"]
    assert len(nvml_broken) == 1  # nvmlInit tried once, failure remembered
    assert sum("driver went away" in r.getMessage() for r in caplog.records) == 1  # logged once


def test_snapshot_reads_fake_gpus(fake_nvml):
    snap = snapshot()
    assert "gpu_error" not in snap
    assert [g["vram_used_bytes"] for g in snap["gpus"]] == [fake_nvml[0], fake_nvml[1]]
    g1 = snap["gpus"][1]
    assert (g1["vram_total_bytes"], g1["util_percent"], g1["temp_c"]) == (8 * 2 ** 30, 41.0, 61.0)
    assert g1["power_w"] is None  # not supported -> field empty, GPU still reported


def test_snapshot_honours_cuda_visible_devices(fake_nvml, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    gpus = snapshot()["gpus"]
    assert len(gpus) == 1
    assert gpus[0]["vram_used_bytes"] == fake_nvml[1]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    snap = snapshot()
    assert "gpus" not in snap and snap["gpu_error"] == "no visible GPU"


def test_snapshot_survives_nvml_query_failure(fake_nvml, monkeypatch):
    nv = resources.pynvml

    def lost(h):
        raise nv.NVMLError(nv.NVML_ERROR_GPU_IS_LOST)

    monkeypatch.setattr(nv, "nvmlDeviceGetMemoryInfo", lost)
    snap = snapshot()
    assert "gpus" not in snap
    assert "GPU is lost" in snap["gpu_error"]


# --------------------------------------------------------------------------- monitor

def _wait_for(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.01)
    return cond()


def _running(mon: ResourceMonitor) -> bool:
    """Whether the monitor's sampling thread is alive."""
    return mon._thread is not None and mon._thread.is_alive()


def test_monitor_samples_on_its_thread_and_stops(nvml_broken):
    with ResourceMonitor(interval=0.02) as mon:
        assert _wait_for(lambda: mon.summary()["samples"] >= 3)  # more than start + stop
        assert _running(mon)
    summary = mon.summary()
    assert not _running(mon)
    assert summary["gpu_available"] is False and "driver went away" in summary["gpu_error"]
    assert summary["peak_vram_used_bytes"] is None
    json.dumps(summary)
    n = summary["samples"]
    time.sleep(0.1)  # several intervals: a live thread would add samples
    assert mon.summary()["samples"] == n
    times = [t for t, _ in mon.timeline]
    assert len(times) == n and times == sorted(times) and times[0] < times[-1]


def test_monitor_short_block_has_start_and_end_samples_and_peak_rss():
    baseline = psutil.Process().memory_info().rss
    with ResourceMonitor(interval=60) as mon:  # the thread never gets to sample
        block = np.ones(200 * MiB // 8)  # writes every page, so it is resident
    del block
    summary = mon.summary()
    assert summary["samples"] == 2
    assert summary["peak_rss_bytes"] >= baseline + 150 * MiB  # caught by the exit sample
    assert not _running(mon)  # exit woke the 60 s wait instead of waiting it out


def test_monitor_reports_vram_peak_from_nvml(fake_nvml):
    with ResourceMonitor(interval=0.05) as mon:
        pass
    s = mon.summary()
    assert s["gpu_available"] is True
    assert s["peak_vram_used_bytes"] == max(fake_nvml.values())  # fullest GPU
    assert "gpu_error" not in s


def test_monitor_reports_torch_cuda_peaks_when_cuda_is_in_use(monkeypatch):
    resets = []
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda *a: resets.append(a))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda *a: 123)
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda *a: 456)
    with ResourceMonitor(interval=60) as mon:
        assert len(resets) == 1  # peaks reset on entry, so they belong to this block
    s = mon.summary()
    assert (s["torch_peak_allocated_bytes"], s["torch_peak_reserved_bytes"]) == (123, 456)


def test_monitor_never_initialises_cuda_for_torch_peaks():
    if torch.cuda.is_initialized():
        pytest.skip("CUDA already initialised by an earlier test")
    with ResourceMonitor(interval=60) as mon:
        pass
    assert mon.summary()["torch_peak_allocated_bytes"] is None  # CPU-only / CUDA unused here
    assert not torch.cuda.is_initialized()


def test_monitor_survives_failing_samples(monkeypatch):
    real, calls = resources.snapshot, []

    def flaky():
        calls.append(1)
        if len(calls) % 2 == 0:
            raise RuntimeError("sensor glitch")
        return real()

    monkeypatch.setattr(resources, "snapshot", flaky)
    with ResourceMonitor(interval=0.01) as mon:
        assert _wait_for(lambda: mon.summary()["failed_samples"] >= 2 and mon.summary()["samples"] >= 2)
        assert _running(mon)  # the thread is still alive after failures


def test_monitor_timeline_is_capped_evenly_and_spans_the_run(monkeypatch):
    counter = iter(range(10 ** 9))  # each fake snapshot carries its sample number as rss
    monkeypatch.setattr(resources, "snapshot", lambda: {"cpu_percent": 0.0, "rss_bytes": next(counter)})
    with ResourceMonitor(interval=0.001, max_samples=8) as mon:
        assert _wait_for(lambda: mon.summary()["samples"] >= 60)
    kept = [snap["rss_bytes"] for _, snap in mon.timeline]
    n = mon.summary()["samples"]
    assert len(kept) <= 8 < n
    assert kept[0] == 0 and kept[-1] == n - 1  # first and final samples kept
    steps = np.diff(kept[:-1])
    assert len(set(steps.tolist())) == 1 and steps[0] > 1  # evenly thinned
    assert mon.summary()["peak_rss_bytes"] == n - 1  # peaks use every sample


def test_monitor_rejects_bad_arguments():
    with pytest.raises(ValueError):
        ResourceMonitor(interval=0)
    with pytest.raises(ValueError):
        ResourceMonitor(max_samples=1)


# --------------------------------------------------------------------------- memory arithmetic

def test_output_ram_bytes():
    assert output_ram_bytes(2, 1080, 1920) == 2 * 1080 * 1920 * 3 * 4
    assert output_ram_bytes(5, 10, 20, channels=1, bytes_per=2) == 5 * 10 * 20 * 2


def test_available_ram_bytes_matches_psutil_scale():
    avail = available_ram_bytes()
    assert isinstance(avail, int)
    assert 0 < avail <= psutil.virtual_memory().total


def test_frames_that_fit_arithmetic():
    per_frame = 100 * 100 * 3 * 4  # 120_000
    assert frames_that_fit(100, 100, available=10 * per_frame, headroom=1.0) == 10
    assert frames_that_fit(100, 100, available=10 * per_frame) == 8  # 0.85 * 10 frames
    assert frames_that_fit(100, 100, available=per_frame - 1, headroom=1.0) == 0
    with pytest.raises(InputError):
        frames_that_fit(0, 100, available=10 * per_frame)


def test_check_output_fits_raises_input_error_with_numbers():
    with pytest.raises(InputError) as info:
        check_output_fits(1000, 1080, 1920, available=2 ** 30)
    msg = str(info.value)
    assert "23.17 GiB" in msg  # 1000 x 1080 x 1920 x 3 x 4 bytes needed
    assert "1.00 GiB" in msg  # available
    assert "about 36 frames" in msg  # floor(0.85 GiB / 23.73 MiB)
    assert "python -m engine.cli" in msg and "multiplier" in msg
    assert classify(info.value) is ErrorKind.INPUT


def test_check_output_fits_passes_when_it_fits():
    exact = output_ram_bytes(10, 64, 64)
    assert check_output_fits(10, 64, 64, headroom=1.0, available=exact) is None
    with pytest.raises(InputError):
        check_output_fits(11, 64, 64, headroom=1.0, available=exact)
    assert check_output_fits(1, 64, 64) is None  # real available RAM


# --------------------------------------------------------------------------- plot

def _plot_area(img):
    return img[30:-30, 65:-50]  # inside the axes, away from legend and labels


def _has_color(img, rgb):
    return bool((_plot_area(img) == rgb).all(axis=-1).any())


def _synthetic_timeline(n=40):
    return [
        (i * 0.1, {
            "cpu_percent": 50 + 40 * np.sin(i / 4),
            "rss_bytes": int((1 + i / 20) * 2 ** 30),
            **({"gpus": [{"vram_used_bytes": 3 * 2 ** 30}]} if i >= n // 2 else {}),
        })
        for i in range(n)
    ]


def test_render_timeline_draws_each_series(tmp_path):
    path = tmp_path / "timeline.png"
    img = render_timeline_png(_synthetic_timeline(), path, width=400, height=220)
    assert img.shape == (220, 400, 3) and img.dtype == np.uint8
    for name, rgb in SERIES_COLORS.items():
        assert _has_color(img, rgb), name
    on_disk = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    assert np.array_equal(on_disk, img)  # PNG written, channel order RGB


def test_render_timeline_empty_has_no_series():
    img = render_timeline_png([], None, width=300, height=150)
    assert img.shape == (150, 300, 3)
    assert (img != 255).any()  # axes and "no samples" text
    assert not any(_has_color(img, rgb) for rgb in SERIES_COLORS.values())


def test_render_timeline_from_a_real_monitor(nvml_broken):
    with ResourceMonitor(interval=0.01) as mon:
        _wait_for(lambda: mon.summary()["samples"] >= 5)
    img = render_timeline_png(mon.timeline, None, width=320, height=180)
    assert img.shape == (180, 320, 3)
    assert _has_color(img, SERIES_COLORS["RSS"])
    assert not _has_color(img, SERIES_COLORS["VRAM"])  # no GPU stats, no VRAM line


def test_render_timeline_legend_only_for_series_with_data_and_marks_fallbacks():
    """Issue 15, case 20: no "VRAM" in the legend without VRAM data; a fallback is a marked line."""
    cpu_only = [(t, {k: v for k, v in snap.items() if k != "gpus"}) for t, snap in _synthetic_timeline()]
    img = render_timeline_png(cpu_only, None, width=400, height=220)
    def near(part, rgb):  # the legend's text is anti-aliased: close to its colour, not equal
        return bool((np.abs(part.astype(int) - rgb).max(axis=-1) <= 40).any())

    legend = img[:24]  # above the axes: the legend row
    assert near(legend, SERIES_COLORS["RSS"]) and near(legend, SERIES_COLORS["CPU %"])
    assert not near(legend, SERIES_COLORS["VRAM"]) and not _has_color(img, SERIES_COLORS["VRAM"])
    assert not near(img, MARKER_COLOR)

    marked = render_timeline_png(cpu_only, None, width=400, height=220, markers=[(1.95, "halve_batch")])
    hit = (marked == MARKER_COLOR).all(axis=-1)
    cols = np.flatnonzero(hit[60:190].sum(axis=0) >= 10)  # a dashed vertical line in the plot area
    left, right = 58, 400 - 42
    expect = left + 1.95 / 3.9 * (right - left)  # the timeline spans 0 .. 3.9 s
    assert cols.size and abs(cols.mean() - expect) <= 2, (cols, expect)
    assert near(marked[:24], MARKER_COLOR)  # "fallback" in the legend


def test_report_places_fallbacks_on_the_timeline():
    from engine.ladder import Fault
    from engine.pipeline import interpolate

    r = interpolate(torch.rand(4, 32, 32, 3), "builtin-flow", cut_threshold=0, monitor_interval=0.01,
                    faults=[Fault(task=3, kind="oom")])
    (at, rung), = r.report["timeline_marks"]
    assert rung == "retry" and 0 <= at <= r.report["timeline"][-1][0]
