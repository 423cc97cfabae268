"""The CPU speed paths of RIFE's IFNet give the plain modules' results (issue 13).

- oneDNN convolutions (weights reordered once per input shape, LeakyReLU / residual add fused):
  the same frames as the nn.Module path, for every family, and the kept weights follow any change
  to the module's weights.
- A block's mask and features go to the next block at its resolution (_up_down): the same values as
  resizing them to the frame's resolution and back.
"""
import pytest
import torch

from engine import ifnet
from engine.ifnet import IFNet, _resize, _up_down
from engine.methods import RifeMethod
from engine.zoo import build_ifnet
from test_zoo import FAMILIES, IDS


def _method(c, seed=1):
    torch.manual_seed(seed)
    net = build_ifnet(IFNet(c).state_dict())
    for p in net.parameters():  # keep activations tame
        p.data.mul_(0.2)
    return RifeMethod(net, "synthetic").to("cpu", torch.float32)


def _frames(method, n=3, seed=2):
    m = method.pad_multiple(0.5)  # a size every flow scale tested here runs at
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, m * 2, m * 3, generator=g)


def _run(method, x, scale=1.0, ensemble=False):
    with torch.inference_mode():
        s = [method.prepare(x[i:i + 1]) for i in range(len(x))]
        return method.interpolate(s[:-1], s[1:], torch.linspace(0.3, 0.6, len(x) - 1), scale=scale,
                                  ensemble=ensemble)


def _set_onednn(method, on: bool):
    if on:
        method.net.set_layout(True)  # what RifeMethod.to does on the CPU
        return
    for m in method.net.modules():
        if hasattr(m, "onednn"):
            m.onednn = False


def _packed_convs(net):
    return [m for m in net.modules() if "_onednn" in m.__dict__]


def test_this_torch_has_the_onednn_path():
    assert ifnet.onednn_available()  # the CPU wheel CI installs: else every test below checks nothing


@pytest.mark.parametrize("c", FAMILIES, ids=IDS)
def test_onednn_convolutions_give_the_modules_results(c):
    method = _method(c)
    net = method.net
    x = _frames(method)
    fused_blocks = [b.onednn for b in net.blocks]
    assert fused_blocks == [not c.legacy] * len(net.blocks)  # PReLU blocks (4.0-4.3) keep their modules
    scales = (0.5, 1.0, 2.0)
    fast = {s: _run(method, x, s) for s in scales}
    if not c.legacy:
        assert _packed_convs(net)  # the fused path ran (it keeps its reordered weights on the convs)
    _set_onednn(method, False)
    for s in scales:
        plain = _run(method, x, s)
        assert plain.shape == fast[s].shape
        assert (plain - fast[s]).abs().max() < 1e-4, s
    if c.supports_ensemble:
        plain = _run(method, x[:2], ensemble=True)
        _set_onednn(method, True)
        assert (_run(method, x[:2], ensemble=True) - plain).abs().max() < 1e-4


def test_kept_weights_follow_changes_to_the_module_weights():
    method = _method(FAMILIES[10])
    x = _frames(method)
    before = _run(method, x)
    with torch.no_grad():  # in place (load_state_dict copies in place too) and by assignment
        method.net.block2.convblock[3].conv.weight.mul_(-1.5)
        method.net.block4.conv0[0][0].weight = torch.nn.Parameter(method.net.block4.conv0[0][0].weight * 0.5)
        method.net.encode.cnn1.weight.add_(0.05)
        method.net.block0.lastconv[0].weight.mul_(2)
    after = _run(method, x)
    _set_onednn(method, False)
    plain = _run(method, x)
    assert (after - before).abs().max() > 1e-3  # the change shows
    assert (after - plain).abs().max() < 1e-4


def test_a_new_frame_size_or_batch_reorders_again():
    method = _method(FAMILIES[10])
    x = _frames(method, n=4)
    m = method.pad_multiple()
    small = _run(method, x[:, :, :m, :m * 2].contiguous())
    both = _run(method, x[:3])
    one = _run(method, x[:2])[:1]
    _set_onednn(method, False)
    assert (_run(method, x[:, :, :m, :m * 2].contiguous()) - small).abs().max() < 1e-4
    assert (both[:1] - one).abs().max() < 1e-4


def test_switching_off_torchs_onednn_switches_off_the_fused_path(monkeypatch):
    method = _method(FAMILIES[10])
    x = _frames(method, n=2)
    fast = _run(method, x)
    for m in method.net.modules():
        m.__dict__.pop("_onednn", None)
    monkeypatch.setattr(torch.backends.mkldnn, "enabled", False)
    plain = _run(method, x)
    assert not _packed_convs(method.net)
    assert (plain - fast).abs().max() < 1e-4


def test_calibration_counts_memory_with_the_onednn_path():
    """The guard's live-memory count skips oneDNN's reordered weights (they have no storage)."""
    from engine.guard import measure_peak_bytes

    method = _method(FAMILIES[10])
    x = _frames(method, n=2)
    assert measure_peak_bytes(lambda: _run(method, x), "cpu") > 0
    assert _packed_convs(method.net)


@pytest.mark.parametrize("up,nxt", [(16, 8), (8, 4), (4, 2), (2, 1), (32, 16), (1, 0.5), (2, 0.5), (4, 4)])
@pytest.mark.parametrize("shape", [(1, 9, 4, 7), (2, 1, 3, 5), (1, 8, 16, 28)])
def test_up_down_is_resizing_to_the_frame_and_back(up, nxt, shape):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(3)) * 10
    want = _resize(_resize(x, up), 1.0 / nxt)
    got = _up_down(x, up, nxt)
    assert got.shape == want.shape
    assert (got - want).abs().max() < 1e-4


def test_frames_too_big_to_stack_are_warped_side_by_side(monkeypatch):
    """On the CPU a pair whose stacked copy would pass STACK_LIMIT is warped one side at a time
    (twice the grid_sample calls, one frame's worth each), with the same frames as stacked."""
    method = _method(FAMILIES[10])
    calls = []
    sample = ifnet._sample
    monkeypatch.setattr(ifnet, "_sample", lambda img, *a: calls.append(img.shape[0]) or sample(img, *a))
    x = _frames(method, n=2)
    per_frame = method.prepare(x[:1]).numel() * 4
    stacked = _run(method, x)
    assert calls == [2] * 5 and 2 * per_frame <= ifnet.STACK_LIMIT  # 5 blocks: 5 warps of both sides
    calls.clear()
    monkeypatch.setattr(ifnet, "STACK_LIMIT", per_frame)  # the same frames now count as too big to stack
    assert (_run(method, x) - stacked).abs().max() < 1e-6
    assert calls == [1] * 10
