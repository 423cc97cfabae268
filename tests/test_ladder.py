"""Recovery ladder under injected faults (hypothesis over random fault sequences)."""
import gc
import os

import psutil
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

from engine.errors import Cancelled, InputError
from engine.ifnet import IFNet
from engine.ladder import QUALITY_COST, RUNGS, Fault, FaultInjector, LadderExhausted, Policy, run
from engine.methods import BlendMethod, FlowMethod, RifeMethod
from engine.runner import Runner, Settings, allocate_output
from engine.schedule import make_schedule
from engine.zoo import build_ifnet
from test_zoo import FAMILIES

N, H, W = 5, 24, 32
_NET_SD = IFNet(FAMILIES[6]).state_dict()  # a 4-block family with an encoder


def rife():
    torch.manual_seed(0)
    net = build_ifnet({k: v * 0.2 for k, v in _NET_SD.items()})
    return RifeMethod(net, "synthetic")


FRAMES = torch.rand(N, H, W, 3, generator=torch.Generator().manual_seed(3))


def fault_free(method_name, seg_settings, sched):
    """What the same rung produces with no fault at all."""
    s = Settings(**{**seg_settings, "dtype": getattr(torch, seg_settings["dtype"])})
    method = {"RIFE": rife, "built-in": FlowMethod, "linear": BlendMethod}[method_name.split()[0]]()
    out = allocate_output(sched.n_out, H, W)
    Runner(method, s).run(FRAMES, sched, out)
    return out


FAULT = st.builds(Fault, task=st.integers(0, 12), kind=st.sampled_from(["oom", "cpu_oom", "driver"]),
                  attempt=st.sampled_from([0, 0, 1, None]), device=st.sampled_from([None, "cpu"]))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(faults=st.lists(FAULT, max_size=5), m=st.integers(2, 4), bs=st.integers(1, 4),
       floor=st.sampled_from(RUNGS), exhausted=st.sampled_from(["raise", "passthrough"]),
       rungs=st.lists(st.sampled_from(RUNGS), min_size=1, max_size=7, unique=True))
def test_random_fault_sequences(faults, m, bs, floor, exhausted, rungs):
    sched = make_schedule(N, m)
    out = allocate_output(sched.n_out, H, W).fill_(float("nan"))
    policy = Policy(rungs=tuple(rungs), quality_floor=floor, on_exhausted=exhausted, max_attempts=8)
    injector = FaultInjector(faults)
    seen, events = [], []
    try:
        res = run(FRAMES, sched, rife(), Settings(batch_size=bs), out, policy=policy,
                  progress=lambda d, t: seen.append((d, t)), on_event=events.append, faults=injector)
    except LadderExhausted as e:
        assert exhausted == "raise"
        assert len(e.events) == len(injector.raised)  # every fault is in the history
        assert e.events[-1]["rung"] == "exhausted"
        return
    # exact count, every frame written, source frames bit-exact
    assert out.shape[0] == sched.n_out and not torch.isnan(out).any()
    for e in sched:
        if e.is_source:
            assert torch.equal(out[e.n], FRAMES[e.i0])
    # progress monotonic, ends at total
    done = [d for d, _ in seen]
    assert done == sorted(done) and done[-1] == sched.n_out
    # the report lists every fault, and no rung below the floor was used
    assert len(res.events) == len(injector.raised) == len(events)
    for ev in res.events:
        assert ev["rung"] == "exhausted" or QUALITY_COST[ev["rung"]] <= QUALITY_COST[floor]
        assert ev["rung"] == "exhausted" or ev["rung"] in rungs
    # each segment's frames equal a fault-free run on the same rung
    covered = 0
    for seg in res.segments:
        ref = fault_free(seg["method"], seg["settings"], sched)
        sl = slice(seg["start"], seg["stop"])
        assert (out[sl] - ref[sl]).abs().max() <= 1e-4, seg
        covered += seg["stop"] - seg["start"]
    if res.passthrough_frames == 0:
        assert covered == sched.n_out


def test_driver_error_moves_to_cpu_and_resumes_at_failed_task(monkeypatch):
    # pretend the run started on a GPU (the fault fires before any tensor would move there): a driver
    # error skips retry/halving/flow-scale/resolution and sends the rest of the run to the CPU
    sched = make_schedule(N, 2)
    out = allocate_output(sched.n_out, H, W)
    method = rife()
    monkeypatch.setattr(method, "to", lambda device, dtype: method)  # no real CUDA here
    res = run(FRAMES, sched, method, Settings(device="cuda", batch_size=2), out,
              faults=[Fault(task=1, kind="driver", device="cuda", attempt=None)])
    assert res.path == ["cpu"]
    ev = res.events[0]
    assert ev["kind"] == "driver" and ev["at"] == 1 and ev["next_settings"]["device"] == "cpu"
    assert res.segments[-1]["start"] == 1 and res.segments[-1]["settings"]["device"] == "cpu"
    assert torch.equal(out[0], FRAMES[0])


def test_oom_ladder_order_and_quality_floor():
    sched = make_schedule(N, 2)
    out = allocate_output(sched.n_out, H, W)
    faults = [Fault(task=3, kind="oom", attempt=k) for k in range(8)]  # the first 8 tries at task 3 fail
    res = run(FRAMES, sched, rife(), Settings(batch_size=4), out,
              policy=Policy(quality_floor="builtin_flow"), faults=faults)
    assert res.path == ["retry", "halve_batch", "halve_batch", "flow_scale", "flow_scale", "reduce_resolution",
                        "reduce_resolution", "builtin_flow"]
    assert res.method_description.startswith("built-in")
    # resumed at the first task of the failed batch: tasks 1,3,5,7 (batch 4), 1,3 (batch 2), then 3 alone
    assert [e["at"] for e in res.events] == [1, 1, 1, 3, 3, 3, 3, 3]
    with pytest.raises(LadderExhausted, match="Frames 0..2 were done"):
        run(FRAMES, sched, rife(), Settings(batch_size=1), allocate_output(sched.n_out, H, W),
            policy=Policy(rungs=("retry", "flow_scale"), quality_floor="halve_batch"), faults=faults)


def test_passthrough_when_exhausted():
    sched = make_schedule(N, 3)
    out = allocate_output(sched.n_out, H, W)
    res = run(FRAMES, sched, rife(), Settings(batch_size=1), out, policy=Policy(rungs=("retry",), on_exhausted="passthrough"),
              faults=[Fault(task=4, kind="oom", attempt=None)])
    assert res.path == ["retry", "passthrough"] and res.passthrough_frames > 0
    assert torch.equal(out[4], FRAMES[1]) and torch.equal(out[5], FRAMES[2])  # duplicates, nearest source


@pytest.mark.parametrize("kind, exc", [("input", InputError), ("interrupt", Cancelled), ("other", ZeroDivisionError)])
def test_input_errors_interrupts_and_bugs_are_never_retried(kind, exc):
    sched = make_schedule(N, 2)
    injector = FaultInjector([Fault(task=3, kind=kind)])
    with pytest.raises(exc):
        run(FRAMES, sched, rife(), Settings(batch_size=1), allocate_output(sched.n_out, H, W), faults=injector)
    assert injector.tries[3] == 1  # one try, no retry


def test_a_genuine_bug_keeps_its_own_traceback():
    """Not retried, and raised with the traceback of where it happened (not stripped, not wrapped)."""
    import traceback

    class Buggy(BlendMethod):
        def interpolate(self, s0, s1, t, scale=1.0, ensemble=False):
            return self._compute_the_frame(s0)

        def _compute_the_frame(self, s0):
            return {}["missing key"]

    sched = make_schedule(N, 2)
    with pytest.raises(KeyError) as e:
        run(FRAMES, sched, Buggy(), Settings(batch_size=1), allocate_output(sched.n_out, H, W))
    frames = [f.name for f in traceback.extract_tb(e.value.__traceback__)]
    assert frames[-1] == "_compute_the_frame" and "interpolate" in frames, frames
    assert e.value.__suppress_context__, "shown without the runner's BatchFailed wrapper"


def test_comfy_interrupt_is_reraised_at_once():
    class InterruptProcessingException(Exception):
        pass
    sched = make_schedule(N, 2)
    calls = []

    def cancel():
        calls.append(1)
        if len(calls) == 2:
            raise InterruptProcessingException()
    with pytest.raises(InterruptProcessingException):
        run(FRAMES, sched, rife(), Settings(batch_size=1), allocate_output(sched.n_out, H, W), cancel=cancel)
    assert len(calls) == 2


def test_fault_specs_parse_or_say_what_is_wrong():
    from engine.ladder import parse_faults

    assert parse_faults([{"task": 3}, {"task": 5, "kind": "driver", "attempt": None, "device": "cuda"}]) == [
        Fault(3, "oom", 0), Fault(5, "driver", None, "cuda")]
    for bad in ([{"task": "3"}], [{"task": 1, "kind": "meteor"}], ["oom"]):
        with pytest.raises(InputError, match="bad faults entry"):
            parse_faults(bad)


def test_policy_describes_itself():
    text = Policy(rungs=("retry", "cpu", "blend"), quality_floor="cpu", max_attempts=3).describe()
    assert "1. retry: retry the failed batch once" in text and "2. cpu: move to the CPU" in text
    assert "switched off: halve_batch, flow_scale, reduce_resolution, builtin_flow" in text
    assert "below the quality floor 'cpu', never used: blend" in text and "at most 3 recovery attempt(s)" in text


def test_policy_validation():
    with pytest.raises(InputError):
        Policy(rungs=("retry", "pray"))
    with pytest.raises(InputError):
        Policy(quality_floor="best")
    with pytest.raises(InputError):
        Policy(on_exhausted="ignore")


def test_repeated_runs_do_not_leak_rss():
    """20 runs in one process (with faults and fallbacks): RSS grows by at most 50 MB."""
    from engine.pipeline import interpolate
    frames = torch.rand(6, 96, 128, 3)
    method = rife()
    proc = psutil.Process(os.getpid())

    def once():
        r = interpolate(frames, method, multiplier=3, faults=[Fault(task=4, kind="oom")], monitor_interval=0.05)
        assert r.frames.shape[0] == 16 and r.report["path"] == ["retry"]
    for _ in range(3):  # warm-up: allocator pools, grids, calibration
        once()
    gc.collect()
    before = proc.memory_info().rss
    for _ in range(20):
        once()
    gc.collect()
    grown = (proc.memory_info().rss - before) / 2**20
    assert grown <= 50, f"RSS grew by {grown:.1f} MB over 20 runs"


# ----------------------------------------------------------------------------- messages (issue 15, case 18)
def exhausted(policy, faults, batch_size=4):
    sched = make_schedule(N, 2)
    with pytest.raises(LadderExhausted) as e:
        run(FRAMES, sched, rife(), Settings(batch_size=batch_size), allocate_output(sched.n_out, H, W),
            policy=policy, faults=faults)
    return str(e.value)


def test_exhausted_message_names_the_attempt_limit():
    msg = exhausted(Policy(max_attempts=1), [Fault(task=3, kind="oom", attempt=k) for k in range(2)])
    assert "limit of 1 recovery attempt(s)" in msg and "max_attempts" in msg, msg
    assert "Tried: retry; not tried: halve_batch, flow_scale, reduce_resolution, cpu, builtin_flow, blend." in msg
    assert "every allowed recovery step" not in msg and "Raise max_attempts" in msg


def test_exhausted_message_when_no_step_is_allowed():
    faults = [Fault(task=3, kind="oom")]
    msg = exhausted(Policy(rungs=()), faults)
    assert "(policy: )" not in msg and "no recovery step is allowed: every recovery step is switched off" in msg, msg
    msg = exhausted(Policy(rungs=("blend", "builtin_flow"), quality_floor="cpu"), faults)
    assert "(builtin_flow, blend) are all below the quality floor 'cpu'" in msg, msg
    msg = exhausted(Policy(max_attempts=0), faults)
    assert "recovery is off: FallbackSwitch's max_attempts is 0" in msg, msg
    # every allowed step tried: says which ones did nothing here (the CPU rung on the CPU)
    msg = exhausted(Policy(rungs=("retry", "cpu")), [Fault(task=3, kind="oom", attempt=None)], batch_size=1)
    assert "every allowed recovery step was tried. Tried: retry; allowed but of no use here: cpu." in msg, msg
    assert "Frames 0..2 were done" in msg and "oom: CUDA out of memory" in msg


def test_passthrough_report_says_what_made_the_frames():
    """After passthrough the report names what interpolated frames and what was passed through,
    never the rung that failed (blend) nor the planned settings when nothing ran with them."""
    from engine.pipeline import format_report, interpolate
    policy = Policy(rungs=("reduce_resolution", "blend"), on_exhausted="passthrough")
    every_try = dict(kind="oom", attempt=None)
    r = interpolate(FRAMES, rife(), multiplier=2, cut_threshold=0, policy=policy, faults=[Fault(task=1, **every_try)])
    text = format_report(r.report)
    assert r.report["path"] == ["reduce_resolution", "reduce_resolution", "blend", "passthrough"]
    assert "linear blend" not in text and "method: none, no frame was interpolated; frames 1..8 passed through" in text
    assert "strategy balanced: settings: none worked" in text, text

    r = interpolate(FRAMES, rife(), multiplier=2, cut_threshold=0, policy=policy, faults=[Fault(task=5, **every_try)],
                    batch_size=1)  # (tasks 0..4 in batches of their own)
    text = format_report(r.report)
    lines = text.splitlines()
    assert lines[1] == "method: RIFE 4.13-4.21 (synthetic); frames 5..8 passed through (copies of source frames)"
    planned = r.report["plan"]["settings"]
    assert r.report["final_settings"] == r.report["segments"][-1]["settings"] == planned  # frames 0..4 ran as planned
    assert lines[2].startswith(f"strategy balanced: device {planned['device']}") and "resolution" not in lines[2]
