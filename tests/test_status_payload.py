"""nodes/status.py alone (it imports nothing from ComfyUI): the video_engine.status contract the
frontend (web/) is written against: keys, phases, throttling, ETA and the fallback path."""
import importlib.util
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "nodes" / "status.py"
_spec = importlib.util.spec_from_file_location("ve_node_status", _PATH)
status = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(status)

KEYS = {"node", "phase", "device", "precision", "batch", "method", "path", "done", "total", "eta_s", "events"}


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def make(min_interval=0.2):
    sent = []
    clock = Clock()
    rep = status.StatusReporter(7, lambda ev, p: sent.append((ev, p)), prompt_id="p1", min_interval=min_interval,
                                clock=clock)
    return rep, sent, clock


PLAN = {"plan": {"settings": {"device": "cuda:0", "dtype": "float16", "batch_size": 4}, "eta_s": 12.5},
        "method": "RIFE 4.25 (x.pkl)", "frames_out": 21}


def test_start_progress_done():
    rep, sent, clock = make()
    rep.start(PLAN)
    for done in range(1, 21):
        clock.t += 0.05
        rep.progress(done, 21)
    clock.t += 0.05
    rep.progress(21, 21)
    rep.finish({"final_settings": {"device": "cuda:0", "dtype": "float16", "batch_size": 4}, "path": [],
                "frames_out": 21, "method": "RIFE 4.25 (x.pkl)"}, "the report")
    assert all(ev == status.EVENT for ev, _ in sent)
    payloads = [p for _, p in sent]
    assert all(KEYS <= set(p) for p in payloads)
    phases = [p["phase"] for p in payloads]
    assert phases[0] == "start" and phases[-1] == "done" and set(phases[1:-1]) == {"progress"}
    # throttled: 1.05 s of updates every 50 ms -> about 5 progress messages, the last one at 21/21
    assert 3 <= phases.count("progress") <= 7
    start = payloads[0]
    assert start == {**start, "node": "7", "device": "cuda:0", "precision": "fp16", "batch": 4,
                     "method": "RIFE 4.25 (x.pkl)", "done": 0, "total": 21, "eta_s": 12.5, "path": [],
                     "events": [], "prompt_id": "p1"}
    prog = [p for p in payloads if p["phase"] == "progress"]
    assert [p["done"] for p in prog] == sorted(p["done"] for p in prog) and prog[-1]["done"] == 21
    assert prog[-1]["eta_s"] == 0
    mid = [p for p in prog if 0 < p["done"] < 21]
    assert mid and all(p["eta_s"] is not None and p["eta_s"] > 0 for p in mid)
    assert payloads[-1]["report"] == "the report" and payloads[-1]["eta_s"] == 0


def test_eta_from_timestamps():
    rep, sent, clock = make(min_interval=0)
    rep.start(PLAN)
    rep.progress(1, 21)  # first point: the ETA is still the guard's estimate
    assert sent[-1][1]["eta_s"] == 12.5
    clock.t += 2.0
    rep.progress(5, 21)  # 4 frames in 2 s -> 16 frames left take 8 s
    assert sent[-1][1]["eta_s"] == pytest.approx(8.0)


def test_fallback_always_sent_and_tracks_path():
    rep, sent, clock = make(min_interval=10)
    rep.start(PLAN)
    ev1 = {"at": 3, "kind": "oom", "error": "CUDA out of memory", "rung": "retry",
           "next_settings": {"device": "cuda:0", "dtype": "float16", "batch_size": 4}, "next_method": "RIFE 4.25 (x.pkl)"}
    ev2 = dict(ev1, rung="cpu", next_settings={"device": "cpu", "dtype": "float32", "batch_size": 2})
    rep.fallback(ev1)
    rep.fallback(ev2)
    rep.fallback(dict(ev1, rung="exhausted"))
    fb = [p for _, p in sent if p["phase"] == "fallback"]
    assert [p["path"] for p in fb] == [["retry"], ["retry", "cpu"], ["retry", "cpu"]]
    assert [len(p["events"]) for p in fb] == [1, 2, 3]
    assert (fb[1]["device"], fb[1]["precision"], fb[1]["batch"]) == ("cpu", "fp32", 2)


def test_error_and_a_failing_sender():
    def boom(ev, p):
        raise RuntimeError("socket gone")

    rep = status.StatusReporter("3", boom)
    rep.start(PLAN)  # must not raise
    rep.error("interrupted")
    assert rep.sent[-1]["phase"] == "error" and rep.sent[-1]["error"] == "interrupted"
    assert "prompt_id" not in rep.sent[-1]
