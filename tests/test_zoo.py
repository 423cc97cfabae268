"""Family detection from shapes, every checkpoint format, and safe loading."""
import os
import pickle

import pytest
import torch
from safetensors.torch import save_file

from engine.film import FilmConfig, FilmNet
from engine.ifnet import IFNet, IFNetConfig
from engine.methods import FilmMethod, RifeMethod, load_method
from engine.zoo import (CheckpointError, build_film, build_ifnet, detect_config, detect_film_config, family_name,
                        load_net, normalize_keys, read_state_dict)

SEQ2 = ((0, 3, 16, False), (1, 16, 4, True))
SEQ4 = ((0, 3, 32, False), (2, 32, 32, False), (4, 32, 32, False), (6, 32, 8, True))


def head(hidden, out):
    return ((0, 3, hidden, False), (1, hidden, hidden, False), (2, hidden, hidden, False), (3, hidden, out, True))


def cfg(family, widths, out, enc=None, layers=(), legacy=False, refine=False):
    feat = layers[-1][2] if layers else 0
    pt = out - 5 if out > 6 else 0
    cins = (7 + 2 * feat,) + (12 + 2 * feat + pt,) * (len(widths) - 1)
    return IFNetConfig(family=family, widths=widths, in_channels=cins, out_channels=out, legacy=legacy,
                       encoder=enc, encoder_layers=layers, feat_ch=feat, refine=refine)


FAMILIES = [
    cfg("4.0-4.3 (HDv3)", (192, 128, 96, 64), 5, legacy=True, refine=True),
    cfg("4.0-4.3 (HDv3)", (192, 128, 96, 64), 5, legacy=True),
    cfg("4.5", (192, 128, 96, 64), 5),
    cfg("4.6", (192, 128, 96, 64), 6),
    cfg("4.7-4.9", (192, 128, 96, 64), 6, "seq", SEQ2),
    cfg("4.10-4.12", (192, 128, 96, 64), 6, "seq", SEQ4),
    cfg("4.13-4.21", (192, 128, 96, 64), 6, "head", head(32, 8)),
    cfg("4.13-4.21 lite", (128, 96, 64, 32), 6, "head", head(32, 8)),
    cfg("4.22", (256, 192, 96, 48), 13, "head", head(32, 8)),
    cfg("4.22 lite", (192, 128, 64, 32), 13, "head", head(32, 8)),
    cfg("4.25/4.26", (192, 128, 96, 64, 32), 13, "head", head(16, 4)),
    cfg("4.25 lite", (192, 128, 96, 64, 24), 13, "head", head(16, 4)),
    cfg("4.25 heavy", (384, 256, 192, 128, 64), 13, "head", head(16, 4)),
    cfg("4.26 heavy", (192, 128, 96, 64, 32), 13, "head", head(16, 16)),
]
IDS = [f"{c.family}{'+refine' if c.refine else ''}" for c in FAMILIES]


def raw_training_dict(net):
    """As in an official flownet.pkl: DataParallel prefix, teacher block, caltime."""
    sd = {f"module.{k}": v for k, v in net.state_dict().items()}
    sd["module.block_tea.conv0.0.0.weight"] = torch.zeros(8, 3, 3, 3)
    sd["module.teacher.block0.conv0.0.0.weight"] = torch.zeros(8, 3, 3, 3)
    sd["module.caltime.0.weight"] = torch.zeros(4, 4)
    return sd


def core_safetensors_dict(net):
    """ComfyUI core's naming: blocks.N. instead of blockN."""
    import re
    return {re.sub(r"^block(\d+)\.", r"blocks.\1.", k): v.contiguous() for k, v in net.state_dict().items()}


FORMATS = ["raw.pkl", "stripped.pth", "core.safetensors", "core_fp16.safetensors"]


def save_in_format(net, fmt, tmp_path, raw_dict, core_dict):
    """Write net's weights in one of FORMATS; the file name says nothing about the family."""
    path = tmp_path / f"weights_{fmt.split('.')[0]}.{fmt.split('.')[1]}"
    if fmt == "raw.pkl":
        torch.save(raw_dict(net), path)
    elif fmt == "stripped.pth":
        torch.save(net.state_dict(), path)
    else:
        dt = torch.float16 if "fp16" in fmt else torch.float32
        save_file({k: v.to(dt) for k, v in core_dict(net).items()}, str(path))
    return path


def as_stored(v, fmt):
    return v.half().float() if "fp16" in fmt else v


@pytest.mark.parametrize("c", FAMILIES, ids=IDS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_family_in_every_format(c, fmt, tmp_path):
    torch.manual_seed(0)
    net = IFNet(c)
    path = save_in_format(net, fmt, tmp_path, raw_training_dict, core_safetensors_dict)
    loaded = load_net(path)
    assert isinstance(loaded, IFNet) and family_name(loaded) == f"RIFE {c.family}"
    assert isinstance(load_method(path), RifeMethod)
    got = loaded.cfg
    assert (got.family, got.widths, got.in_channels, got.out_channels, got.encoder, got.feat_ch, got.refine) == \
        (c.family, c.widths, c.in_channels, c.out_channels, c.encoder, c.feat_ch, c.refine)
    assert got.scale_list == ((32, 16, 8, 4, 1) if c.family == "4.25 lite" else
                              (16, 8, 4, 2, 1) if len(c.widths) == 5 else (8, 4, 2, 1))
    assert got.pad_multiple == (128 if c.family in ("4.25 lite", "4.0-4.3 (HDv3)") else 64 if len(c.widths) == 5 else 32)
    for k, v in net.state_dict().items():  # every tensor arrived unchanged
        assert torch.equal(loaded.state_dict()[k], as_stored(v, fmt)), k


# FILM: core's film_net sizes, and others read from the shapes (widths, depths, estimator layout)
FILMS = [
    FilmConfig(filters=4, flow_filters=(4, 4, 8, 8), fusion_filters=(4, 8, 8, 8)),
    FilmConfig(filters=2, sub_levels=3, flow_convs=(1, 2, 3), flow_filters=(4, 6, 8), fusion_filters=(2, 4, 6)),
    FilmConfig(filters=3, sub_levels=4, flow_convs=(2, 1, 1, 2, 3), flow_filters=(2, 4, 4, 6, 6),
               fusion_filters=(3, 6, 9, 9, 9)),
]


def film_raw_dict(net):
    return {f"module.{k}": v for k, v in net.state_dict().items()}  # a DataParallel training dump


@pytest.mark.parametrize("i", range(len(FILMS)))
@pytest.mark.parametrize("fmt", FORMATS)
def test_film_in_every_format(i, fmt, tmp_path):
    torch.manual_seed(0)
    net = FilmNet(FILMS[i])
    path = save_in_format(net, fmt, tmp_path, film_raw_dict, lambda n: n.state_dict())
    loaded = load_net(path)
    assert isinstance(loaded, FilmNet) and loaded.cfg == FILMS[i] and family_name(loaded) == "FILM"
    for k, v in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], as_stored(v, fmt)), k
    method = load_method(path)
    assert isinstance(method, FilmMethod) and method.describe() == f"FILM ({path.name})"


def test_core_film_net_sizes_are_detected():
    assert detect_film_config(FilmNet().state_dict()) == FilmConfig()  # 7 levels, 64 filters, 4 sub-levels


def _film_sd():
    return FilmNet(FILMS[0]).state_dict()


@pytest.mark.parametrize("hurt, message", [
    (lambda sd: sd.pop("predict_flow._predictor._convs.0.conv.weight"), "shared flow estimator"),
    (lambda sd: sd.pop("fuse.output_conv.bias"), "missing .*fuse.output_conv.bias"),
    (lambda sd: sd.__setitem__("fuse.extra.weight", torch.zeros(1, 1, 1, 1)), "unexpected .*fuse.extra.weight"),
    (lambda sd: sd.__setitem__("fuse.convs.1.1.conv.weight", torch.zeros(8, 7, 3, 3)),
     r"fuse.convs.1.1.conv.weight has shape \(8, 7, 3, 3\)"),
    (lambda sd: sd.__setitem__("predict_flow._predictors.0._convs.0.conv.weight", torch.zeros(8, 5, 3, 3)),
     "has shape"),
    (lambda sd: [sd.pop(k) for k in list(sd) if k.startswith("predict_flow._predictors.")], "unsupported layout"),
    (lambda sd: sd.update(IFNet(FAMILIES[10]).state_dict()), "unexpected .*block0"),  # FILM + RIFE mixed
    (lambda sd: sd.__setitem__("extract.extract_sublevels.convs.0.0.conv.weight", torch.tensor(1.0)),
     "expected a 4-D convolution weight"),
    (lambda sd: sd.__setitem__("fuse.convs.0.0.conv.weight", torch.zeros(8)), "expected a 4-D convolution weight"),
])
def test_damaged_film_dicts_say_what_is_wrong(hurt, message):
    sd = _film_sd()
    hurt(sd)
    with pytest.raises(CheckpointError, match=message):
        build_film(sd)


@pytest.mark.parametrize("c", FAMILIES, ids=IDS)
def test_random_net_runs_and_batching_is_invariant(c):
    torch.manual_seed(1)
    net = build_ifnet(IFNet(c).state_dict())  # the config detection gives (scale list, padding)
    for p in net.parameters():  # keep activations tame
        p.data.mul_(0.2)
    method = RifeMethod(net, "synthetic").to("cpu", torch.float32)
    m = method.pad_multiple()
    x = torch.rand(3, 3, m * 2, m * 2)
    s = [method.prepare(x[i:i + 1]) for i in range(3)]
    t = torch.tensor([0.3, 0.5, 0.9])
    with torch.inference_mode():
        both = method.interpolate(s[:2], s[1:], t[:2])
        one = torch.cat([method.interpolate([s[i]], [s[i + 1]], t[i:i + 1]) for i in range(2)])
        assert both.shape == (2, 3, m * 2, m * 2)
        assert torch.isfinite(both).all()
        assert (both - one).abs().max() < 1e-4
        method.lean = True  # warping each side on its own gives the same frames
        assert (method.interpolate(s[:2], s[1:], t[:2]) - both).abs().max() < 1e-5
        method.lean = False
        if c.supports_ensemble:
            ens = method.interpolate(s[:1], s[1:2], t[:1], ensemble=True)
            assert ens.shape == (1, 3, m * 2, m * 2) and not torch.equal(ens, both[:1])


def test_pad_rule_follows_flow_scale():
    method = RifeMethod(build_ifnet(IFNet(FAMILIES[10]).state_dict()), "x")  # 5-block: multiple 64
    assert [method.pad_multiple(s) for s in (0.25, 0.5, 1, 2, 4)] == [256, 128, 64, 64, 64]
    method = RifeMethod(build_ifnet(IFNet(FAMILIES[2]).state_dict()), "x")  # 4-block: multiple 32
    assert [method.pad_multiple(s) for s in (0.25, 0.5, 1, 2)] == [128, 64, 32, 32]


def test_key_normalisation():
    sd = {"module.block0.x": 1, "flownet.blocks.3.y": 2, "module.teacher.z": 3, "caltime.w": 4, "encode.cnn0.weight": 5}
    assert normalize_keys(sd) == {"block0.x": 1, "block3.y": 2, "encode.cnn0.weight": 5}


def test_nested_state_dict_is_found(tmp_path):
    net = IFNet(FAMILIES[10])
    torch.save({"state_dict": net.state_dict(), "epoch": 3}, tmp_path / "nested.pth")
    assert load_net(tmp_path / "nested.pth").cfg.family == "4.25/4.26"


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/ve_pwned_marker",))


def test_malicious_pickle_is_refused(tmp_path):
    marker = "/tmp/ve_pwned_marker"
    if os.path.exists(marker):
        os.remove(marker)
    path = tmp_path / "rife_evil.pkl"
    with open(path, "wb") as f:
        pickle.dump({"block0.conv0.0.0.weight": _Evil()}, f)
    torch.save({"block0.conv0.0.0.weight": torch.zeros(1), "x": _Evil()}, tmp_path / "evil2.pth")
    for p in (path, tmp_path / "evil2.pth"):
        with pytest.raises(CheckpointError, match="arbitrary code"):
            read_state_dict(p)
    assert not os.path.exists(marker), "the pickle's payload ran"


def test_torchscript_archive_is_refused_with_a_clear_error(tmp_path):
    """Some packs ship FILM as a TorchScript program (film_net_fp32.pt): code, never loaded."""
    torch.jit.script(torch.nn.Conv2d(3, 3, 3)).save(str(tmp_path / "film_net_fp32.pt"))
    with pytest.raises(CheckpointError, match="TorchScript archive .* never runs code"):
        load_method(tmp_path / "film_net_fp32.pt")


@pytest.mark.parametrize("suffix", [".pth", ".safetensors", ".pkl"])
def test_truncated_file_gives_clear_error(tmp_path, suffix):
    net = IFNet(FAMILIES[10])
    full = tmp_path / f"full{suffix}"
    if suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(full))
    elif suffix == ".pkl":  # legacy (non-zip) torch serialization
        torch.save(net.state_dict(), full, _use_new_zipfile_serialization=False)
    else:
        torch.save(net.state_dict(), full)
    data = full.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt|not a readable safetensors"):
        read_state_dict(cut)
    (tmp_path / f"empty{suffix}").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        read_state_dict(tmp_path / f"empty{suffix}")


@pytest.mark.parametrize("suffix", [".pth", ".pkl", ".pt", ".ckpt", ".bin", ".safetensors"])
@pytest.mark.parametrize("junk", [b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01K\x01u.garbage", bytes(range(256)) * 40,
                                  b"PK\x03\x04" + b"\x00" * 200, b"\x10\x00\x00\x00\x00\x00\x00\x00{}" + b" " * 6],
                         ids=["pickle", "bytes", "zip", "safetensors-header"])
def test_junk_bytes_give_a_clear_error(tmp_path, junk, suffix):
    path = tmp_path / f"junk{suffix}"
    path.write_bytes(junk)
    with pytest.raises(CheckpointError, match=f"junk{suffix}"):
        load_method(path)


@pytest.mark.parametrize("fmt", FORMATS)
def test_foreign_state_dicts_in_every_format_are_neither_rife_nor_film(fmt, tmp_path):
    """Real tensors, wrong network (a small CNN): a clear error naming both FILM and RIFE."""
    cnn = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Conv2d(8, 8, 3))
    path = save_in_format(cnn, fmt, tmp_path, film_raw_dict, lambda n: n.state_dict())
    with pytest.raises(CheckpointError, match=r"neither FILM .* nor a supported RIFE IFNet state dict"):
        load_method(path)


def test_unknown_state_dict_says_what_was_expected(tmp_path):
    torch.save({"conv1.weight": torch.zeros(3, 3), "fc.bias": torch.zeros(3)}, tmp_path / "resnet.pth")
    with pytest.raises(CheckpointError, match=r"expected 4 blocks .* found 0"):
        load_net(tmp_path / "resnet.pth")


def test_wrong_channel_counts_are_reported():
    sd = IFNet(FAMILIES[10]).state_dict()
    sd["block1.conv0.0.0.weight"] = torch.zeros(64, 27, 3, 3)
    with pytest.raises(CheckpointError, match=r"found \[15, 27, 28, 28, 28\], expected \[15, 28"):
        detect_config(sd)


def test_missing_tensor_is_reported():
    sd = IFNet(FAMILIES[6]).state_dict()
    del sd["block2.convblock.3.beta"]
    with pytest.raises(CheckpointError, match="missing"):
        build_ifnet(sd)


def test_missing_file():
    with pytest.raises(CheckpointError, match="not found"):
        read_state_dict("/nonexistent/rife.pth")


# ----------------------------------------------------------------------------- issue 15: junk and damaged files
HTML_404 = (b"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8><title>404 Not Found</title></head>\n"
            b"<body><h1>Not Found</h1><p>The requested URL was not found on this server.</p></body></html>\n")


@pytest.mark.parametrize("name,data,what", [
    ("rife47.pth", HTML_404, "HTML page"),
    ("rife47.pkl", b"\xef\xbb\xbf  \n<html><body>Access denied</body></html>", "HTML page"),
    ("rife_v4.25.safetensors", HTML_404, "HTML page"),
    ("flownet.pkl", os.urandom(4096), "not a PyTorch checkpoint"),
    ("flownet.pth", b"\x00\x01\x02" * 500, "not a PyTorch checkpoint"),
    ("rife426.pth", b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"ab" * 32 + b"\nsize 21000000\n",
     "Git LFS pointer"),
    ("rife49.pth", b'{"error": "not found", "status": 404}\n', "text file"),
])
def test_junk_file_is_named_for_what_it_is(tmp_path, name, data, what):
    """A file that is not a model is never called a pickle that "needs arbitrary code" (issue 15, case 17)."""
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(CheckpointError) as err:
        load_net(path)
    msg = str(err.value)
    assert name in msg and what in msg, msg
    assert "arbitrary code" not in msg and "environment you trust" not in msg, msg
    assert "download it again" in msg, msg  # what to do


def test_scalar_tensors_are_a_checkpoint_error(tmp_path):
    """Right key names, wrong shapes (scalars): a CheckpointError, not an IndexError (issue 15, case 13)."""
    keys = IFNet(FAMILIES[10]).state_dict()
    save_file({k: torch.tensor(1.0) for k in keys}, str(tmp_path / "scalars.safetensors"))
    with pytest.raises(CheckpointError, match=r"scalars\.safetensors.*block0\.conv0\.\d\.0\.weight has shape \(\)"):
        load_net(tmp_path / "scalars.safetensors")
    sd = dict(IFNet(FAMILIES[6]).state_dict())  # one 4-block family tensor flattened to 1-D
    sd["encode.cnn3.weight"] = sd["encode.cnn3.weight"].flatten()
    with pytest.raises(CheckpointError, match=r"encode\.cnn3\.weight.*4-D"):
        detect_config(sd)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_weights_are_refused(tmp_path, bad):
    """NaN/inf weights would give NaN or black in-betweens: refused when loaded (issue 15, case 6)."""
    sd = IFNet(FAMILIES[10]).state_dict()
    sd["block2.conv0.1.0.weight"][0, 0] = bad
    torch.save(sd, tmp_path / "diverged.pth")
    with pytest.raises(CheckpointError, match=r"diverged\.pth.*(NaN|infinite)"):
        load_net(tmp_path / "diverged.pth")


@pytest.mark.parametrize("assign", [True, False])
def test_a_built_net_holds_the_checkpoints_weights(assign, monkeypatch):
    """Built on the meta device and given the checkpoint's tensors (torch >= 2.1), or built on the CPU
    and copied into (older torch): every tensor real, on the CPU, equal to the checkpoint's."""
    import engine.zoo as zoo

    monkeypatch.setattr(zoo, "_ASSIGN", assign)
    torch.manual_seed(0)
    sd = {k: v.clone() for k, v in IFNet(FAMILIES[10]).state_dict().items()}
    net = build_ifnet(dict(sd))
    got = net.state_dict()
    assert set(got) == set(sd)
    for k, v in got.items():
        assert v.device.type == "cpu" and not v.is_meta and torch.equal(v, sd[k]), k
