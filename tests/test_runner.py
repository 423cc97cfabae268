"""Runner behaviour: preallocated output, progress, cancel, resume, methods."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from engine.errors import Cancelled, InputError
from engine.ifnet import IFNet
from engine.methods import BLEND, BUILTIN_FLOW, BlendMethod, FlowMethod, RifeMethod, load_method, resolve_dtype
from engine.runner import BatchFailed, Runner, Settings, allocate_output, validate_frames
from engine.schedule import make_schedule
from engine.zoo import build_ifnet
from test_zoo import FAMILIES


def small_rife(family_index=10):
    torch.manual_seed(0)
    net = build_ifnet(IFNet(FAMILIES[family_index]).state_dict())
    for p in net.parameters():
        p.data.mul_(0.2)
    return RifeMethod(net, "synthetic")


def test_output_is_preallocated_comfy_layout():
    frames = torch.rand(4, 40, 52, 3)
    s = make_schedule(4, 3)
    out = allocate_output(s.n_out, 40, 52)
    ptr = out.data_ptr()
    Runner(small_rife(), Settings(batch_size=2)).run(frames, s, out)
    assert out.data_ptr() == ptr and out.shape == (10, 40, 52, 3)
    assert out.dtype == torch.float32 and out.device.type == "cpu"
    assert float(out.min()) >= 0 and float(out.max()) <= 1


def test_progress_once_per_batch_and_cancel_between_batches():
    frames = torch.rand(6, 32, 32, 3)
    s = make_schedule(6, 4)  # 15 tasks -> 5 batches of 3
    calls, checks = [], []

    def cancel():
        checks.append(len(calls))
        return len(calls) >= 2

    out = allocate_output(s.n_out, 32, 32).fill_(-1)
    with pytest.raises(Cancelled):
        Runner(BlendMethod(), Settings(batch_size=3), progress=lambda d, t: calls.append(d), cancel=cancel).run(frames, s, out)
    assert len(calls) == 2 and calls == sorted(calls)
    assert (out[:calls[-1]] >= 0).all() and (out[calls[-1]:] == -1).all(), "stopped right after the 2nd batch"


def test_failure_reports_resume_point_and_resume_matches_full_run():
    frames = torch.rand(5, 32, 32, 3)
    s = make_schedule(5, 3)
    full = allocate_output(s.n_out, 32, 32)
    Runner(small_rife(), Settings(batch_size=2)).run(frames, s, full)

    def boom(ns, settings):
        if ns[0] >= 4:  # batches start at outputs 1, 4, 7, ...
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    out = allocate_output(s.n_out, 32, 32).fill_(-1)
    with pytest.raises(BatchFailed) as info:
        Runner(small_rife(), Settings(batch_size=2), before_batch=boom).run(frames, s, out)
    at = info.value.at
    assert at == 4 and (out[:at] >= 0).all() and (out[at:] == -1).all()
    Runner(small_rife(), Settings(batch_size=1)).run(frames, s, out, start=at)
    assert (out - full).abs().max() < 1e-4


def test_input_errors_are_not_wrapped():
    with pytest.raises(InputError, match="IMAGE batch"):
        validate_frames(torch.rand(3, 8, 8))
    with pytest.raises(InputError, match="float"):
        validate_frames(torch.zeros(3, 8, 8, 3, dtype=torch.uint8))


def test_reduced_resolution_rung_keeps_output_size():
    frames = torch.rand(3, 48, 64, 3)
    s = make_schedule(3, 2)
    out = allocate_output(s.n_out, 48, 64)
    Runner(small_rife(), Settings(res_scale=0.5)).run(frames, s, out)
    assert out.shape == (5, 48, 64, 3) and torch.equal(out[0], frames[0])


def test_builtin_flow_recovers_motion():
    """A textured image shifted by 6 px: the built-in flow method lands near the true middle."""
    rng = np.random.default_rng(0)
    import cv2
    tex = cv2.GaussianBlur(rng.random((80, 120, 3)).astype(np.float32), (0, 0), 2.0)
    tex = (tex - tex.min()) / (tex.max() - tex.min())
    a, mid, b = (np.ascontiguousarray(tex[10:70, 20 + k:100 + k]) for k in (0, 3, 6))
    frames = torch.from_numpy(np.stack([a, b]))
    s = make_schedule(2, 2)
    out = {}
    for name in (BUILTIN_FLOW, BLEND):
        o = allocate_output(3, 60, 80)
        Runner(load_method(name), Settings()).run(frames, s, o)
        out[name] = o[1].numpy()

    def psnr(x):
        return 10 * np.log10(1 / np.mean((x[8:-8, 8:-8] - mid[8:-8, 8:-8]) ** 2))
    assert psnr(out[BUILTIN_FLOW]) > psnr(out[BLEND]) + 8
    assert psnr(out[BUILTIN_FLOW]) > 30


def test_flow_method_computes_flows_once_per_pair(monkeypatch):
    m = FlowMethod()
    calls = []
    m._dis = [type("D", (), {"calc": lambda self, a, b, o, d=d: calls.append(1) or d.calc(a, b, o)})() for d in m._dis]
    frames = torch.rand(3, 24, 24, 3)
    s = make_schedule(3, 5)  # 4 timesteps per pair
    Runner(m, Settings(batch_size=3)).run(frames, s, allocate_output(s.n_out, 24, 24))
    assert len(calls) == 8  # 2 pairs x 2 directions x 2 DIS fields


def test_precision_names():
    assert resolve_dtype("auto", "cpu") == torch.float32
    assert resolve_dtype("auto", "cuda") == torch.float16
    assert resolve_dtype("bf16", "cpu") == torch.bfloat16
    with pytest.raises(InputError):
        resolve_dtype("int8", "cpu")


def test_bf16_on_cpu_runs_close_to_fp32():
    frames = torch.rand(2, 32, 32, 3)
    s = make_schedule(2, 2)
    outs = []
    for dt in (torch.float32, torch.bfloat16):
        o = allocate_output(3, 32, 32)
        Runner(small_rife(), Settings(dtype=dt)).run(frames, s, o)
        outs.append(o)
    assert outs[1].dtype == torch.float32 and (outs[0] - outs[1]).abs().mean() < 0.02


def _textured(h, w, seed=0):
    import cv2
    rng = np.random.default_rng(seed)
    tex = cv2.GaussianBlur(rng.random((h, w + 8, 3)).astype(np.float32), (0, 0), 1.5)
    return (tex - tex.min()) / (tex.max() - tex.min() + 1e-6)


@settings(max_examples=60, deadline=None)
@given(h=st.integers(2, 40), w=st.integers(2, 40))
def test_builtin_flow_runs_on_every_size_validate_frames_accepts(h, w):
    """validate_frames promises 2x2: the built-in method works on every size from there (issue 15, case 11)."""
    tex = _textured(h, w)
    frames = torch.from_numpy(np.stack([tex[:, :w], tex[:, 3:w + 3]]).copy())
    validate_frames(frames)
    out = allocate_output(3, h, w)
    Runner(FlowMethod(), Settings()).run(frames, make_schedule(2, 2), out)
    assert torch.isfinite(out).all()
    lo, hi = float(frames.min()), float(frames.max())
    assert lo - 1e-5 <= float(out[1].min()) and float(out[1].max()) <= hi + 1e-5  # a warp of the inputs


@pytest.mark.parametrize("h,w", [(8, 3840), (3840, 8), (9, 100), (11, 11), (2, 2), (15, 1000)])
def test_builtin_flow_on_thin_and_tiny_frames_through_the_api(h, w):
    """The cases OpenCV's DIS rejects (cv2.error) or crashes on, through pipeline.interpolate (issue 15, case 11)."""
    from engine.pipeline import interpolate
    tex = _textured(h, w, seed=h + w)
    frames = torch.from_numpy(np.stack([tex[:, :w], tex[:, 4:w + 4]]).copy())
    res = interpolate(frames, BUILTIN_FLOW, multiplier=2, cut_threshold=0)
    assert res.frames.shape == (3, h, w, 3) and torch.isfinite(res.frames).all()
    assert res.report["path"] == [] and "built-in optical flow" in res.report["method"]  # no fallback needed
    if w >= 32:  # room for the 4 px horizontal motion: flow lands nearer the true middle than a blend
        mid = torch.from_numpy(np.ascontiguousarray(tex[:, 2:w + 2]))
        blend = frames.mean(0)
        inner = (slice(2, -2) if h > 8 else slice(None), slice(6, -6) if w > 16 else slice(None))
        assert (res.frames[1] - mid)[inner].abs().mean() < (blend - mid)[inner].abs().mean()
