"""The CPU speed paths of RIFE's IFNet give the plain modules' results (issue 13).

- oneDNN convolutions (weights reordered once per input shape, LeakyReLU / residual add fused):
  the same frames as the nn.Module path, for every family, and the kept weights follow any change
  to the module's weights.
- A block's mask and features go to the next block at its resolution (_up_down): the same values as
  resizing them to the frame's resolution and back.
- lean: the last block's frame-resolution input is made a band of rows at a time and the warps before
  it are halved in bands (IFBlock.forward_banded, _rows_resized, _warp_halved): the same frames.
- The guard's live-memory count does not import torch's compiler (first-call time and RSS).
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
    assert (_run(method, x) - stacked).abs().max() < 1e-4
    assert set(calls) == {1} and len(calls) >= 10  # one side at a time (the last block's a band at a time)


def _lean(method, x, scale=1.0):
    with torch.inference_mode():
        s = [method.prepare(x[i:i + 1]) for i in range(len(x))]
        return torch.cat([method.net.forward_packed(a, b, 0.4, scale=scale, lean=True) for a, b in zip(s, s[1:])])


@pytest.mark.parametrize("c", FAMILIES, ids=IDS)
def test_the_last_block_made_a_band_of_rows_at_a_time_gives_the_same_frames(c, monkeypatch):
    """lean: the last block's input (at the frame's resolution) is warped, made and convolved a band
    of rows at a time (IFBlock.forward_banded): the same frames as one band and as the stacked path,
    with bands of 1 output row (every band edge a halo case), a few rows, and the whole frame."""
    method = _method(c)
    x = _frames(method, n=3)
    with torch.inference_mode():
        s = [method.prepare(x[i:i + 1]) for i in range(3)]
        stacked = torch.cat([method.net.forward_packed(a, b, 0.4) for a, b in zip(s, s[1:])])
    bands = []
    first = ifnet.IFBlock._first
    monkeypatch.setattr(ifnet.IFBlock, "_first",
                        lambda blk, x, padding=(1, 1): bands.append(padding) or first(blk, x, padding))
    got = {}
    for nbytes in (1, 40_000, 1 << 40):
        monkeypatch.setattr(ifnet, "BAND_BYTES", nbytes)
        bands.clear()
        got[nbytes] = _lean(method, x)
        assert (got[nbytes] - stacked).abs().max() < 1e-4, nbytes
        if nbytes == 1:  # one output row per band: every band after the first reads no padding above
            assert bands.count((0, 1)) == 2 * (x.shape[2] // 2 - 1)
    assert (got[1] - got[1 << 40]).abs().max() < 1e-5


@pytest.mark.parametrize("c", [FAMILIES[0], FAMILIES[10]], ids=[IDS[0], IDS[10]])
def test_the_banded_path_without_onednn_gives_the_same_frames(c, monkeypatch):
    """bf16 (the memory_efficient strategy on the CPU, lean) runs the plain convolutions banded."""
    method = _method(c).to("cpu", torch.bfloat16)
    x = _frames(method, n=2)
    with torch.inference_mode():
        s = [method.prepare(x[i:i + 1]) for i in range(2)]
        whole = method.net.forward_packed(s[0], s[1], 0.5)
        monkeypatch.setattr(ifnet, "BAND_BYTES", 20_000)
        banded = method.net.forward_packed(s[0], s[1], 0.5, lean=True)
    assert banded.dtype == torch.bfloat16 and (banded.float() - whole.float()).abs().max() < 1e-2


def test_banding_is_used_only_where_it_applies(monkeypatch):
    """Not with ensemble (two passes share the inputs), not when the last block is not at the frame's
    resolution (flow scale != 1), and not for the stacked path."""
    method = _method(FAMILIES[10])
    x = _frames(method, n=2)
    calls = []
    banded = ifnet.IFBlock.forward_banded
    monkeypatch.setattr(ifnet.IFBlock, "forward_banded", lambda *a: calls.append(1) or banded(*a))
    _lean(method, x)
    assert calls == [1]
    calls.clear()
    _lean(method, x, scale=0.5)
    _run(method, x)
    ens = _method(FAMILIES[2])  # 4.5: a family with ensemble
    assert ens.cfg.supports_ensemble
    x = _frames(ens, n=2)
    with torch.inference_mode():
        s = [ens.prepare(x[i:i + 1]) for i in range(2)]
        ens.net.forward_packed(s[0], s[1], 0.5, ensemble=True, lean=True)
        assert calls == []
        ens.net.forward_packed(s[0], s[1], 0.5, lean=True)
    assert calls == [1]


@pytest.mark.parametrize("f", [1, 2, 4, 8, 16])
def test_rows_of_a_resize_are_the_rows_of_the_whole_resize(f):
    x = torch.randn(2, 9, 11, 6, generator=torch.Generator().manual_seed(4))
    whole = _resize(x, f)
    n = whole.shape[2]
    for a, z in [(0, n), (0, 1), (n - 1, n), (1, 2), (3, n - 2), (f, 3 * f), (f - 1, f + 1), (0, 2 * f + 1)]:
        a, z = max(0, min(a, n - 1)), max(1, min(z, n))
        got = ifnet._rows_resized(x, f, a, z)
        assert got.shape == whole[:, :, a:z].shape and (got - whole[:, :, a:z]).abs().max() < 1e-5, (a, z)


def test_a_warp_of_some_rows_is_those_rows_of_the_warp():
    g = torch.Generator().manual_seed(5)
    img, flow = torch.rand(2, 7, 20, 13, generator=g), torch.randn(2, 2, 20, 13, generator=g) * 6
    whole = ifnet.warp(img, flow)
    for r in (slice(0, 1), slice(5, 9), slice(19, 20), slice(0, 20)):
        assert torch.equal(ifnet.warp(img, flow, r), whole[:, :, r])


@pytest.mark.parametrize("w", [13, 16])
def test_a_halved_warp_made_in_bands_is_the_halved_warp(w, monkeypatch):
    g = torch.Generator().manual_seed(6)
    img, flow = torch.rand(1, 7, 24, w, generator=g), torch.randn(1, 2, 24, w, generator=g) * 4
    want = _resize(ifnet.warp(img, flow), 0.5)
    for nbytes in (1, 3000, 1 << 40):
        monkeypatch.setattr(ifnet, "BAND_BYTES", nbytes)
        got = ifnet._warp_halved(img, flow)
        assert got.shape == want.shape and (got - want).abs().max() < 1e-5


def test_band_heights_keep_their_weights_across_forwards(monkeypatch):
    """The banded convolution sees 2-3 input heights in every forward: each keeps its reordered
    weights, so a second forward re-orders nothing (one kept shape per conv re-ordered them each time)."""
    method = _method(FAMILIES[10])
    x = _frames(method, n=3)
    monkeypatch.setattr(ifnet, "BAND_BYTES", 40_000)
    reorders = []
    real = torch._C._nn.mkldnn_reorder_conv2d_weight
    monkeypatch.setattr(torch._C._nn, "mkldnn_reorder_conv2d_weight", lambda *a: reorders.append(1) or real(*a))
    _lean(method, x[:2])
    assert reorders
    kept = method.net.blocks[-1].conv0[0][0].__dict__["_onednn"][1]
    assert len(kept) >= 2  # the first band's height (padding above) and the others'
    reorders.clear()
    _lean(method, x[1:])
    assert reorders == []
    _lean(method, x[:, :, : x.shape[2] // 2].contiguous())  # another frame size: re-ordered for it
    assert reorders


def test_the_calibration_mode_does_not_import_the_compiler():
    """The guard's live-memory count (a TorchDispatchMode) does not make torch import torch._dynamo
    (and with it sympy and much of torch.distributed) on first use: 1.3 s and 66 MB of RSS here."""
    import subprocess
    import sys
    code = ("import sys, torch\nfrom engine.guard import measure_peak_bytes\n"
            "assert measure_peak_bytes(lambda: torch.ones(1000) + 1, 'cpu') >= 4000\n"
            "print(sorted(m for m in ('torch._dynamo', 'sympy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(__import__("pathlib").Path(__file__).resolve().parents[1]))
    assert out.stdout.strip().splitlines()[-1] == "[]"


# ----------------------------------------------------------------------------- concurrent batch items
@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("i", [0, 10, 13], ids=[IDS[0], IDS[10], IDS[13]])
def test_concurrent_items_give_the_frames_of_one_item_at_a_time(i, two_threads):
    """A CPU batch of small frames runs as two streams of single forwards side by side: the same
    frames, in the batch's order, as each item on its own."""
    method = _method(FAMILIES[i])
    x = _frames(method, 6)
    t = torch.tensor([0.2, 0.5, 0.7, 0.4, 0.9])
    with torch.inference_mode():
        s = [method.prepare(x[j:j + 1]) for j in range(6)]
        many = method.prepare_many([lambda j=j: x[j:j + 1] for j in range(6)], x.shape[-2:])  # (side by side)
        assert all(torch.allclose(a, b, rtol=0, atol=1e-5) for a, b in zip(many, s, strict=True))
        assert method.concurrent_items(5, "cpu", torch.float32, s[0].shape[-2:]) == 2
        got = method.interpolate(s[:-1], s[1:], t)
        assert torch.get_num_threads() == 2
        want = torch.cat([method.interpolate([s[j]], [s[j + 1]], t[j:j + 1]) for j in range(5)])  # (2 threads each)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-4)  # (one thread or two: the same sums up to rounding)


def test_concurrent_items_only_where_they_apply(two_threads, monkeypatch):
    from engine.guard import measure_peak_bytes

    method = _method(FAMILIES[10])
    def items(n=8, device="cpu", dtype=torch.float32, size=(64, 96)):
        return method.concurrent_items(n, device, dtype, size)

    assert items() == 2 and items(n=1) == 1
    assert items(device="meta") == 1 and items(dtype=torch.bfloat16) == 1
    seen = []
    measure_peak_bytes(lambda: seen.append(items()), "cpu")
    assert seen == [1], "under the guard's memory count (a dispatch mode of its thread) the batch runs as one forward"
    from engine.methods import one_item_at_a_time

    with one_item_at_a_time():
        assert items() == 1
    assert items() == 2
    side = int((ifnet.STACK_LIMIT // 2 // (4 * (3 + method.cfg.feat_ch))) ** 0.5) + 1  # a packed frame over half the limit
    assert items(size=(side, side)) == 1, "frames too big for the stacked path go one at a time"
    assert items(size=(side - 2, side - 2)) == 2
    torch.set_num_threads(1)
    assert items() == 1, "one torch thread: nothing to share"


def test_concurrent_streams_finish_and_restore_the_threads_before_an_error(two_threads):
    import threading
    import time

    from engine import methods

    done, threads, started, failing = [], [], threading.Event(), threading.Event()

    def item(i):
        threads.append(torch.get_num_threads())
        if i == 0:
            started.wait(5)  # item 1 is under way on the other stream
            failing.set()
            raise RuntimeError("item 0 failed")
        started.set()
        failing.wait(5)
        time.sleep(0.2)  # (the failure is recorded meanwhile)
        done.append(i)
        return i

    with pytest.raises(RuntimeError, match="item 0 failed"):
        methods._concurrently(item, 6, 2)
    assert done == [1], "the other stream finished its item before the error reached the caller, and took no more"
    assert torch.get_num_threads() == 2
    assert threads == [1, 1], "each stream on one of the two threads"
    out = methods._concurrently(lambda i: i * 10, 5, 2)
    assert out == [0, 10, 20, 30, 40] and torch.get_num_threads() == 2
