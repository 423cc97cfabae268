"""PerformanceGuard: measured memory model, plans per strategy, RAM pre-flight, adaptive batch."""
import json

import pytest
import torch

from engine import guard, resources
from engine.errors import InputError
from engine.guard import STRATEGIES, AdaptiveBatch, Calibration, calibrate, measure_peak_bytes, plan
from engine.ifnet import IFNet
from engine.methods import BlendMethod, FlowMethod, RifeMethod
from engine.pipeline import format_report, interpolate
from engine.runner import Settings
from engine.zoo import build_ifnet
from test_zoo import FAMILIES


def rife(i=10):
    torch.manual_seed(0)
    return RifeMethod(build_ifnet({k: v * 0.2 for k, v in IFNet(FAMILIES[i]).state_dict().items()}), f"syn{i}")


def test_measure_peak_counts_live_tensors():
    def fn():
        a = torch.empty(1_000_000, dtype=torch.float32)  # 4 MB
        b = torch.empty(500_000, dtype=torch.float32)  # 2 MB, both alive: 6 MB
        del a
        c = torch.empty(250_000, dtype=torch.float32)  # a freed: 3 MB live
        return b, c
    peak = measure_peak_bytes(fn, "cpu")
    assert 6_000_000 <= peak < 6_100_000


def test_memory_model_predicts_a_bigger_frame():
    """Calibrated at 128x128, the model predicts the measured peak at 256x384 within 25%."""
    method = rife()
    s = Settings(batch_size=1)
    cal = calibrate(method, s, probe=128)
    assert cal.bytes_per_item_px > 0 and cal.seconds_per_item_px > 0

    def run(batch):
        with torch.inference_mode():
            imgs = torch.rand(batch + 1, 3, 256, 384)
            st = [method.prepare(imgs[i:i + 1]) for i in range(batch + 1)]
            return method.interpolate(st[:batch], st[1:], torch.full((batch,), 0.5))
    for batch in (1, 3):
        measured = measure_peak_bytes(lambda: run(batch), "cpu")
        predicted = cal.peak(batch, 256 * 384)
        assert abs(predicted - measured) / measured < 0.25, (batch, predicted, measured)


def test_plan_fits_the_batch_to_free_memory(monkeypatch):
    method = rife()
    cal = calibrate(method, Settings())
    px = 1088 * 1920
    monkeypatch.setattr(guard, "resolve_device", lambda device, m: "cuda")  # plan as for a GPU
    monkeypatch.setattr(guard, "calibrate", lambda m, s: cal)
    for free_items in (1, 3, 6, 40):
        free = int((cal.peak(free_items, px) + 1) / STRATEGIES["balanced"].headroom)
        monkeypatch.setattr(guard, "free_memory_bytes", lambda d, f=free: f)
        p = plan(method, (1080, 1920), 100, strategy="balanced")
        assert p.settings.batch_size == min(free_items, 8)
        assert p.predicted_peak_bytes <= free
    p = plan(method, (1080, 1920), 100, strategy="memory_efficient")
    assert p.settings.batch_size == 1 and p.settings.dtype == torch.float16
    p = plan(method, (1080, 1920), 100, strategy="speed_first")
    assert p.settings.flow_scale == 0.5 and p.settings.batch_size == 16
    p = plan(method, (1080, 1920), 100, strategy="balanced")
    assert p.settings.flow_scale == 1.0 and p.settings.dtype == torch.float16
    p = plan(method, (1080, 1920), 100, strategy="quality_first")
    assert p.settings.ensemble and p.settings.dtype == torch.float32 and p.settings.flow_scale == 1.0
    p = plan(method, (1080, 1920), 100, strategy="balanced", batch_size=3, precision="bf16")
    assert p.settings.batch_size == 3 and p.settings.dtype == torch.bfloat16


def test_strategies_are_distinct_documented_choices():
    rows = {(s.max_batch_cuda, s.batch_cpu, s.precision_cuda, s.precision_cpu, s.headroom, tuple(s.flow_scale_from.items()),
             s.ensemble, s.refine, s.adaptive) for s in STRATEGIES.values()}
    assert len(rows) == len(STRATEGIES) == 5
    for name in STRATEGIES:
        assert name in guard.__doc__


def test_cpu_plans_and_builtin_methods():
    assert plan(FlowMethod(), (100, 100), 10).settings.device == "cpu"
    p = plan(rife(), (144, 176), 19, strategy="balanced", device="cpu")
    assert p.settings.device == "cpu" and p.settings.dtype == torch.float32 and p.eta_s > 0
    p = plan(rife(), (144, 176), 19, strategy="memory_efficient", device="cpu")
    assert p.settings.dtype == torch.bfloat16 and p.settings.batch_size == 1
    with pytest.raises(InputError, match="strategy"):
        plan(rife(), (10, 10), 3, strategy="fastest")
    with pytest.raises(InputError, match="cuda"):
        plan(rife(), (10, 10), 3, device="cuda")  # no CUDA in this torch
    with pytest.raises(InputError, match="batch"):
        plan(rife(), (10, 10), 3, batch_size=0)


def test_output_that_cannot_fit_fails_before_any_work(monkeypatch):
    monkeypatch.setattr(resources, "available_ram_bytes", lambda: 10 * 2**20)  # 10 MB "free"; the output needs 35 MB
    frames = torch.rand(20, 120, 160, 3)
    called = []
    with pytest.raises(InputError) as info:
        interpolate(frames, None, multiplier=8, progress=lambda d, t: called.append(d))
    msg = str(info.value)
    assert "enough for about 38 frames" in msg  # 8.5 MiB usable / (120 * 160 * 3 * 4 bytes)
    assert "multiplier" in msg and "engine.cli" in msg
    assert called == []  # no frame was processed


def test_adaptive_batch_grows_then_backs_off_when_memory_drops(monkeypatch):
    cal = Calibration(fixed_bytes=0, bytes_per_item_px=100.0, seconds_per_item_px=1e-6, probe=(64, 64))
    px = 10_000  # 1 MB per item
    free = {"v": 100 * 2**20}
    monkeypatch.setattr(guard, "free_memory_bytes", lambda d: free["v"])
    ad = AdaptiveBatch(cal, px, "cuda", 0.8, 8)
    s = Settings(batch_size=2)
    assert ad(2, 0.2, s) == 3  # memory allows: try a bigger batch
    s = s.but(batch_size=3)
    assert ad(3, 0.2, s) == 4
    s = s.but(batch_size=4)
    free["v"] = int(2.6 * 2**20)  # memory suddenly low: two items fit in 80% of it
    assert ad(4, 0.2, s) == 2
    assert ad.changes == [(2, 3), (3, 4), (4, 2)]


def test_adaptive_batch_steps_back_when_bigger_is_slower(monkeypatch):
    cal = Calibration(fixed_bytes=0, bytes_per_item_px=1.0, seconds_per_item_px=1e-6, probe=(64, 64))
    monkeypatch.setattr(guard, "free_memory_bytes", lambda d: 2**40)  # memory is never the limit
    ad = AdaptiveBatch(cal, 1000, "cpu", 0.8, 8)
    assert ad(1, 0.10, Settings(batch_size=1)) == 2  # 10 frames/s at batch 1: try 2
    assert ad(2, 0.30, Settings(batch_size=2)) == 1  # 6.7 frames/s: slower, back to 1
    for _ in range(3):
        assert ad(1, 0.10, Settings(batch_size=1)) is None  # and it stays at 1
    assert ad.changes == [(1, 2), (2, 1)]


def test_adaptive_batch_never_grows_back_to_a_size_that_ran_out_of_memory(monkeypatch):
    cal = Calibration(fixed_bytes=0, bytes_per_item_px=1.0, seconds_per_item_px=1e-6, probe=(64, 64))
    monkeypatch.setattr(guard, "free_memory_bytes", lambda d: 2**40)  # the model says everything fits
    ad = AdaptiveBatch(cal, 1000, "cpu", 0.8, 8)
    assert ad(3, 0.3, Settings(batch_size=3)) == 4
    ad.after_recovery(Settings(batch_size=4), "oom")  # ... but batch 4 ran out of memory
    assert ad.rate == {}, "throughput measured under the old settings is forgotten"
    assert ad(2, 0.2, Settings(batch_size=2)) == 3
    for _ in range(3):
        assert ad(3, 0.25, Settings(batch_size=3)) is None  # faster, but 4 is what failed: stay at 3
    assert ad(4, 0.2, Settings(batch_size=4)) == 3  # handed the failed size (a retry): back below it
    ad.after_recovery(Settings(batch_size=3), "driver")  # not a memory error: the ceiling stays
    assert ad.ceiling == 3


def test_adaptive_batch_measures_the_device_the_run_is_on(monkeypatch):
    """After the ladder's cpu rung a CUDA-planned run is sized from RAM, with the CPU's batch cap."""
    cal = Calibration(fixed_bytes=0, bytes_per_item_px=1.0, seconds_per_item_px=1e-6, probe=(64, 64))
    asked = []
    monkeypatch.setattr(guard, "free_memory_bytes", lambda d: asked.append(str(d)) or 2**40)
    ad = AdaptiveBatch(cal, 1000, "cuda:0", 0.8, 16)
    assert ad(2, 0.2, Settings(device="cuda:0", batch_size=2)) == 3
    ad.after_recovery(Settings(device="cuda:0", batch_size=3), "driver")
    bs = 2
    for _ in range(6):
        bs = ad(bs, 0.1 * bs, Settings(device="cpu", batch_size=bs)) or bs
    assert asked[0] == "cuda:0" and set(asked[1:]) == {"cpu"}
    assert bs == guard.ADAPTIVE_MAX_BATCH_CPU


def test_ladder_tells_the_adaptive_batch_about_each_recovery_step(monkeypatch):
    from engine.ladder import Fault, run
    from engine.runner import allocate_output
    from engine.schedule import make_schedule

    cal = Calibration(fixed_bytes=0, bytes_per_item_px=1.0, seconds_per_item_px=1e-6, probe=(64, 64))
    monkeypatch.setattr(guard, "free_memory_bytes", lambda d: 2**40)

    class Untimed(AdaptiveBatch):  # sized by memory alone: no throughput comparisons, so no timing noise
        def __call__(self, items, seconds, settings):
            return super().__call__(items, 0.0, settings)

    ad = Untimed(cal, 1000, "cpu", 0.8, 8)
    frames = torch.rand(12, 16, 16, 3, generator=torch.Generator().manual_seed(0))
    sched = make_schedule(12, 2)
    # batches of 1, 2, 3 (tasks 1 | 3 5 | 7 9 11): the batch of 3 holding task 9 runs out of memory twice
    res = run(frames, sched, BlendMethod(), Settings(batch_size=1), allocate_output(sched.n_out, 16, 16),
              adapt=ad, faults=[Fault(9, "cpu_oom", 0), Fault(9, "cpu_oom", 1)])
    assert res.path == ["retry", "halve_batch"]
    assert [e["settings"]["batch_size"] for e in res.events] == [3, 3], "the size that failed, as it ran"
    assert res.events[1]["next_settings"]["batch_size"] == 1, "halved from the size that failed (3 // 2)"
    assert ad.ceiling == 2 and max(b for _, b in ad.changes[2:]) <= 2


def test_pipeline_report_is_json_and_readable():
    frames = torch.rand(4, 40, 48, 3)
    r = interpolate(frames, rife(6), multiplier=3, strategy="adaptive")
    assert r.frames.shape == (10, 40, 48, 3)
    rep = r.report
    json.dumps(rep)
    assert rep["frames_out"] == 10 and rep["plan"]["strategy"] == "adaptive" and rep["resources"]["samples"] >= 2
    txt = format_report(rep)
    assert "4 -> 10 frames" in txt and "RIFE 4.13-4.21" in txt and "peak RAM" in txt
    assert "\nstrategy adaptive: device cpu, float32, batch " in txt  # the report names the strategy (issue 15)


@pytest.mark.parametrize("bf16_faster", [True, False])
def test_speed_first_on_cpu_takes_the_precision_measured_faster(monkeypatch, bf16_faster):
    def fake(method, settings, probe=128):
        fast = (settings.dtype == torch.bfloat16) == bf16_faster
        return Calibration(0, 10.0, 1e-8 if fast else 2e-8, (128, 128))
    monkeypatch.setattr(guard, "calibrate", fake)
    p = plan(rife(), (256, 448), 10, strategy="speed_first", device="cpu")
    assert p.settings.dtype == (torch.bfloat16 if bf16_faster else torch.float32)
    # below 720p: full flow scale; fp32 items of small frames run side by side on the CPU (bf16: one at a time)
    side_by_side = not bf16_faster and torch.get_num_threads() > 1
    assert p.settings.batch_size == (guard.CPU_BATCH if side_by_side else 1) and p.settings.flow_scale == 1.0
    assert plan(rife(), (720, 1280), 10, strategy="speed_first", device="cpu").settings.flow_scale == 0.5


def test_eta_counts_only_the_frames_that_are_interpolated():
    """Issue 15, case 20: copies of source frames (and held scene-cut frames) cost nothing, so the
    first ETA counts the interpolated frames only (it counted every output frame: 2x too high at x2)."""
    frames = torch.rand(5, 32, 32, 3)
    method = rife(6)
    eta = {}
    for m in (2, 3):
        interpolate(frames, method, multiplier=m, cut_threshold=0,
                    on_plan=lambda info, m=m: eta.__setitem__(m, info["plan"]["eta_s"]))
    # 8 vs 4 interpolated frames (counting outputs, 13 vs 9, gave 1.44x); the plan rounds to 0.01 s
    assert eta[3] == pytest.approx(2 * eta[2], rel=0.02, abs=0.011)


def test_calibration_separates_the_fixed_cost_of_an_item():
    """An item whose cost does not grow with its size (here a method that only sleeps): the estimate for a
    16x larger frame stays near the measured time, where scaling the probe's time per pixel made it 16x
    (the first ETA of RIFE 4.0 on the CPU was 3.5-5x too high, bench/results/eta.json)."""
    import time as _time

    class Sleepy:
        name, kind, supports_scale = "sleepy", "rife", True

        def to(self, device, dtype):
            return self

        def pad_multiple(self, scale):
            return 32

        def prepare(self, x):
            return x

        def interpolate(self, a, b, t, scale=1.0, ensemble=False):
            _time.sleep(0.05)
            return a[0]

        def describe(self):
            return "sleepy"

    cal = calibrate(Sleepy(), Settings(), probe=64)
    px = cal.probe[0] * cal.probe[1]
    measured = cal.seconds(1, px)
    assert cal.seconds(1, 16 * px) < 0.5 * 16 * measured, cal


def test_cpu_plan_batches_small_frames_whose_items_run_side_by_side():
    """On the CPU with 2+ threads, RIFE frames small enough for the stacked path get CPU_BATCH (their
    items run as two streams); 720p (lean), memory_efficient, adaptive and one thread get batch 1."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        method = rife()
        p = plan(method, (256, 448), 20, strategy="balanced", device="cpu")
        assert p.settings.batch_size == guard.CPU_BATCH and "side by side" in p.reason
        assert plan(method, (256, 448), 20, strategy="balanced", device="cpu", batch_size=3).settings.batch_size == 3
        assert plan(method, (720, 1280), 20, strategy="balanced", device="cpu").settings.batch_size == 1
        for strategy in ("memory_efficient", "adaptive"):
            assert plan(method, (256, 448), 20, strategy=strategy, device="cpu").settings.batch_size == 1, strategy
        torch.set_num_threads(1)
        assert plan(method, (256, 448), 20, strategy="balanced", device="cpu").settings.batch_size == 1
    finally:
        torch.set_num_threads(before)


def test_the_calibration_runs_its_probes_one_item_at_a_time(monkeypatch):
    """No item streams in the probes: the memory count sees one thread only, and stream threads would
    keep their malloc arenas' memory in a run that then never uses them (720p RSS +40-50 MB)."""
    from engine import methods

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        monkeypatch.setattr(methods, "_concurrently", lambda *a: pytest.fail("a probe ran items side by side"))
        monkeypatch.setattr(guard, "_CALIBRATIONS", {})
        cal = calibrate(rife(), Settings())
        assert cal.seconds_per_item_px > 0
    finally:
        torch.set_num_threads(before)
