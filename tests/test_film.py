"""FILM: equal to ComfyUI core's own implementation, and wired into the engine like RIFE.

Core's film_net.py is imported from the 0.25 tarball at test time (tests/core_film.py), built with
random weights (fixed seed), saved as safetensors in core's naming (fp32 and fp16) and loaded
through our zoo. The comparisons run on real frames (the shared bench's carphone clip, 176x144:
not a multiple of 64, and core pads FILM to nothing).
"""
import pytest
import torch
from safetensors.torch import save_file

import core_film
from engine import guard, pipeline
from engine.errors import Cancelled
from engine.film import FilmConfig, FilmNet, warp
from engine.ladder import Fault, FaultInjector, Policy, run as ladder_run
from engine.methods import FilmMethod, load_method
from engine.runner import Runner, Settings, allocate_output
from engine.schedule import make_schedule
from shared import load_bench_clip

SMALL = FilmConfig(filters=4, flow_filters=(4, 4, 8, 8), fusion_filters=(4, 8, 8, 8))


@pytest.fixture(scope="module")
def core(tmp_path_factory):
    mod = core_film.load(tmp_path_factory.mktemp("core_film"))
    if mod is None:
        pytest.skip("../shared/comfyui/ComfyUI-0.25.*.tar.gz not found")
    return mod


@pytest.fixture(scope="module")
def carphone():
    frames = load_bench_clip("carphone")
    if frames is None:
        pytest.skip("../shared/bench/data not found (set VE_SHARED)")
    return torch.from_numpy(frames[10:13]).float().div(255)  # 3 consecutive real frames, 144x176


@pytest.fixture(scope="module")
def core_net(core):
    torch.manual_seed(0)
    return core.FILMNet().eval().requires_grad_(False)


def bchw(frame):
    return frame.permute(2, 0, 1)[None].contiguous()


@pytest.mark.parametrize("file_dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
def test_equal_to_core_on_real_frames(core, core_net, carphone, file_dtype, tmp_path):
    sd = {k: v.to(file_dtype).contiguous() for k, v in core_net.state_dict().items()}
    path = tmp_path / "weights.safetensors"  # the name says nothing: detection is from keys and shapes
    save_file(sd, str(path))
    method = load_method(path).to("cpu", torch.float32)
    assert isinstance(method, FilmMethod) and method.describe().startswith("FILM")
    assert method.pad_multiple() == 1  # as core: no padding
    oracle = core_net
    if file_dtype != torch.float32:  # core's net with the very weights the file holds
        oracle = core.FILMNet().eval().requires_grad_(False)
        oracle.load_state_dict({k: v.float() for k, v in sd.items()})
    x0, x1 = bchw(carphone[0]), bchw(carphone[2])
    ts = [0.5, 0.25]
    with torch.inference_mode():
        ref = oracle.forward_multi_timestep(x0, x1, ts)  # core's path for every t: flows once, scaled by t
        a, b = method.prepare(x0), method.prepare(x1)
        ours = method.interpolate([a, a], [b, b], torch.tensor(ts))
        fwd, _ = method.net.flows(a, b)
    assert ours.shape == ref.shape == (2, 3, 144, 176)
    assert fwd[0].abs().max() > 2, "random flows should move pixels, else warping is not tested"
    assert ref.std() > 1e-2 and not torch.allclose(ref[0], ref[1], atol=1e-3)  # t matters
    diff = (ours - ref).abs().max().item()
    assert diff <= 1e-4, diff


def test_runner_equals_core_node_loop(core, core_net, carphone, tmp_path):
    """x3 through the runner in batches of 1 (the pair's flows reused by the second batch) equals
    core's own loop: forward_multi_timestep with t = 1/3, 2/3."""
    save_file({k: v.contiguous() for k, v in core_net.state_dict().items()}, str(tmp_path / "f.safetensors"))
    method = load_method(tmp_path / "f.safetensors")
    sched = make_schedule(2, 3)
    out = allocate_output(sched.n_out, 144, 176)
    Runner(method, Settings(batch_size=1)).run(carphone[:2], sched, out)
    with torch.inference_mode():
        ref = core_net.forward_multi_timestep(bchw(carphone[0]), bchw(carphone[1]), [1 / 3, 2 / 3])
    assert (out[1:3] - ref.clamp(0, 1).permute(0, 2, 3, 1)).abs().max() <= 1e-4
    assert torch.equal(out[0], carphone[0]) and torch.equal(out[3], carphone[1])  # source frames bit-exact


# ----------------------------------------------------------------------------- small random FILM
def small_method():
    torch.manual_seed(0)
    return FilmMethod(FilmNet(SMALL).eval().requires_grad_(False), "small")


@pytest.mark.parametrize("multiplier, batch", [(2, 1), (3, 1), (4, 2), (4, 8)])
def test_runner_computes_each_frame_and_pair_once(multiplier, batch):
    """A frame's pyramids once for both pairs it is in; a pair's flows once for all its t, across batches."""
    method = small_method()
    calls = {"frame": 0, "flows": 0}
    frame, flows = method.net.frame, method.net.flows

    def count(name, fn):
        def wrapped(*a):
            calls[name] += 1
            return fn(*a)
        return wrapped

    method.net.frame, method.net.flows = count("frame", frame), count("flows", flows)
    frames = torch.rand(4, 64, 72, 3, generator=torch.Generator().manual_seed(4))
    sched = make_schedule(4, multiplier)
    out = allocate_output(sched.n_out, 64, 72)
    seen = []
    Runner(method, Settings(batch_size=batch), progress=lambda d, t: seen.append(d)).run(frames, sched, out)
    assert calls == {"frame": 4, "flows": 3}
    assert seen[-1] == sched.n_out == 3 * multiplier + 1 and torch.isfinite(out).all()


def test_batching_mixed_pairs_is_invariant():
    method = small_method().to("cpu", torch.float32)
    x = torch.rand(3, 3, 70, 90, generator=torch.Generator().manual_seed(1))
    s = [method.prepare(x[i:i + 1]) for i in range(3)]
    t = torch.tensor([0.2, 0.5, 0.7])
    with torch.inference_mode():
        both = method.interpolate([s[0], s[0], s[1]], [s[1], s[1], s[2]], t)
        one = torch.cat([method.interpolate([a], [b], t[i:i + 1]) for i, (a, b) in
                         enumerate([(s[0], s[1]), (s[0], s[1]), (s[1], s[2])])])
        direct = method.net(x[:1], x[1:2], torch.tensor([0.2]))
    assert both.shape == (3, 3, 70, 90) and torch.isfinite(both).all()
    assert (both - one).abs().max() < 1e-5
    assert (both[:1] - direct).abs().max() < 1e-5


def test_pair_flows_are_freed_with_their_frames():
    method = small_method()
    x = torch.rand(2, 3, 64, 64)
    with torch.inference_mode():
        a, b = method.prepare(x[:1]), method.prepare(x[1:])
        method.interpolate([a], [b], torch.tensor([0.5]))
        assert len(method._pairs) == 1
        del a, b
    assert len(method._pairs) == 0  # nothing outlives the runner's frame cache


@pytest.mark.parametrize("size", [(1, 1), (2, 3), (40, 200), (63, 64), (64, 64), (129, 65)])
def test_any_frame_size(size):
    """No padding needed; frames under 64 px a side are edge-padded to 64 (7 pyramid levels)."""
    h, w = size
    frames = torch.rand(2, max(h, 2), max(w, 2), 3, generator=torch.Generator().manual_seed(h * w))
    method = small_method()
    sched = make_schedule(2, 2)
    out = allocate_output(sched.n_out, *frames.shape[1:3])
    Runner(method, Settings(batch_size=2)).run(frames, sched, out)
    assert torch.isfinite(out).all() and torch.equal(out[0], frames[0]) and torch.equal(out[2], frames[1])


def test_warp_matches_pixel_shift():
    img = torch.arange(6 * 8, dtype=torch.float32).view(1, 1, 6, 8)
    flow = torch.zeros(1, 2, 6, 8)
    flow[:, 0] = 1.0  # sample one pixel to the right
    y = warp(img, flow)
    assert torch.allclose(y[..., :-1], img[..., 1:]) and torch.allclose(y[..., -1], img[..., -1])  # border
    assert torch.equal(warp(img.half(), flow).float(), y.half().float())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_runs_close_to_fp32(dtype, carphone):
    method = small_method()
    x0, x1 = bchw(carphone[0]), bchw(carphone[2])
    with torch.inference_mode():
        method.to("cpu", torch.float32)
        ref = method.interpolate([method.prepare(x0)], [method.prepare(x1)], torch.tensor([0.5]))
        method.to("cpu", dtype)
        a, b = method.prepare(x0), method.prepare(x1)
        assert a.levels[0].dtype == dtype
        fwd, bwd = method.net.flows(a, b)
        assert fwd[0].dtype == bwd[0].dtype == torch.float32  # flows stay fp32
        y = method.interpolate([a], [b], torch.tensor([0.5]))
    assert y.dtype == dtype
    assert (y.float() - ref).abs().max() < 0.05


def _small_file(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "model.safetensors"
    save_file({k: v.half().contiguous() for k, v in FilmNet(SMALL).state_dict().items()}, str(path))
    return path


def test_pipeline_guard_cancel_and_ladder(tmp_path):
    path = _small_file(tmp_path)
    frames = torch.rand(4, 72, 96, 3, generator=torch.Generator().manual_seed(2))
    events = []
    res = pipeline.interpolate(frames, str(path), multiplier=2, cut_threshold=0, strategy="balanced",
                               progress=lambda d, t: events.append(d), monitor_interval=1.0)
    assert res.frames.shape == (7, 72, 96, 3) and res.report["method"].startswith("FILM")
    assert res.report["plan"]["predicted_peak_bytes"] > 0  # the guard calibrated it
    assert events[-1] == 7
    method = load_method(path)
    p = guard.plan(method, (72, 96), 7, strategy="memory_efficient")
    assert p.settings.dtype == torch.bfloat16 and p.settings.flow_scale == 1.0 and not p.settings.ensemble
    assert not guard.plan(method, (72, 96), 7, strategy="quality_first").settings.ensemble
    # cancel: stops at the next batch
    with pytest.raises(Cancelled):
        pipeline.interpolate(frames, str(path), multiplier=2, cut_threshold=0, cancel=lambda: True)
    # recovery ladder: out of memory twice at output 3: a smaller batch, then the built-in flow method
    sched = make_schedule(4, 2)
    out = allocate_output(sched.n_out, 72, 96)
    inj = FaultInjector([Fault(task=3, kind="cpu_oom", attempt=0), Fault(task=3, kind="cpu_oom", attempt=1)])
    run = ladder_run(frames, sched, method, Settings(batch_size=2), out, faults=inj,
                     policy=Policy(rungs=("halve_batch", "builtin_flow")))
    assert run.path == ["halve_batch", "builtin_flow"] and torch.isfinite(out).all()
    assert [s["method"].split()[0] for s in run.segments] == ["FILM", "FILM", "built-in"]
