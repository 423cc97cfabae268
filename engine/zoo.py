"""Model zoo: read RIFE and FILM checkpoints safely, detect the family from tensor shapes, build the net.

A state dict with FILM's feature extractor (`extract.extract_sublevels.convs.0.0.conv.weight`, ComfyUI
core's film_net naming, fp16 or fp32) is FILM; its sizes are read from the shapes (engine.film).
Otherwise it must be a RIFE IFNet. Accepted formats: raw training `.pkl`/`.pth` state dicts (with or
without the DataParallel `module.` prefix; teacher `block_tea`/`teacher.` and `caltime.` keys
dropped), the stripped `.pth` files other ComfyUI packs ship, and safetensors in ComfyUI core's
naming (`blocks.N.`).
Nothing is ever unpickled as code: safetensors, or torch.load(weights_only=True).
The file name is never used to decide the architecture.
"""
from __future__ import annotations

import contextlib
import inspect
import logging
import os
import pickle
import re
import warnings
from pathlib import Path

import torch

from .errors import InputError
from .fetch import pinned_mismatch
from .film import FilmConfig, FilmNet
from .ifnet import IFNet, IFNetConfig, passthrough_channels

log = logging.getLogger(__name__)

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pkl", ".pt", ".ckpt", ".bin")
_DROP_PREFIXES = ("teacher.", "block_tea.", "caltime.")


class CheckpointError(InputError):
    """A weights file that cannot be used: unsafe, corrupt, or not a supported RIFE family or FILM."""


# ----------------------------------------------------------------------------- reading
def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"model file not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"model file {path} is empty (0 bytes); download it again")
    damaged = pinned_mismatch(path)  # weights `models fetch` writes have a known sha256
    if damaged:
        raise CheckpointError(damaged)
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        try:
            sd = load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(_not_a_model(path, torch_file=False) or f"{path.name} is not a readable safetensors file (truncated or "
                                  f"corrupt: {e}); download it again") from None
    else:
        sd = _torch_load_safe(path)
    return _find_tensor_dict(sd, path)


_HTML_MARKERS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<?xml")
_PICKLE_GLOBALS = ("unsupported global", "unsupported operand 149", "unsupported operand 99")  # GLOBAL opcodes


def _head(path: Path, n: int = 1024) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)


def _is_torch_container(head: bytes) -> bool:
    """A zip archive (torch.save) or a binary pickle (protocol 2-5: legacy torch.save, raw pickles)."""
    return head.startswith(b"PK\x03\x04") or (len(head) > 1 and head[0] == 0x80 and 2 <= head[1] <= 5)


def _not_a_model(path: Path, torch_file: bool = True) -> str | None:
    """What a file that cannot be loaded really is, when its first bytes say so (else None).

    torch_file: the file should be a torch.save archive or a pickle, so anything else is "not a checkpoint".
    """
    head = _head(path)
    size = path.stat().st_size
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    redo = "Delete it and download it again (`python -m engine.cli models fetch` gets pinned RIFE weights)"
    if any(m in text[:200].lower() for m in _HTML_MARKERS):
        return (f"{path.name} is an HTML page ({size} bytes), not a model: a download saved an error or login page "
                f"in place of the weights. {redo}; use a direct link to the file.")
    if text.startswith(b"version https://git-lfs"):
        return (f"{path.name} is a Git LFS pointer ({size} bytes), not the weights: the repository was cloned "
                "without git-lfs. Run `git lfs pull` there, or download it again as a file.")
    try:
        snippet = text[:60].decode("utf-8")
    except UnicodeDecodeError:
        snippet = None
    if snippet is not None and text and all(c.isprintable() or c in "\r\n\t" for c in snippet):
        return (f"{path.name} is a text file ({size} bytes, it starts with {snippet.splitlines()[0][:40]!r}), not a "
                f"model. {redo}.")
    if torch_file and not _is_torch_container(head):
        return (f"{path.name} is not a PyTorch checkpoint: it is neither a zip archive (torch.save) nor a pickle "
                f"(its first bytes are {head[:8].hex(' ')}), so it is not a model file or it is badly damaged. {redo}.")
    return None


def _torch_load_safe(path: Path):
    try:
        with warnings.catch_warnings():  # a TorchScript archive is refused below, with our own message
            warnings.filterwarnings("ignore", message=".*looks like a TorchScript archive")
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        msg = str(e)
        what = _not_a_model(path)
        if what:
            raise CheckpointError(what) from None
        if "Weights only load failed" in msg and any(g in msg.lower() for g in _PICKLE_GLOBALS):
            raise CheckpointError(
                f"{path.name} needs arbitrary code to be unpickled, which Video Engine refuses for safety "
                "(torch.load weights_only=True rejected it). Use a plain state-dict checkpoint or convert it to "
                ".safetensors in an environment you trust.") from None
        detail = next((ln.strip() for ln in msg.splitlines()[1:] if ln.strip().lower().startswith("unsupported")),
                      msg.splitlines()[0])
        raise CheckpointError(f"{path.name} is truncated or corrupt ({detail[:160]}); download it again") from None
    except Exception as e:  # noqa: BLE001 - junk bytes make the unpickler fail in many ways (KeyError, ...)
        if "TorchScript archive" in str(e):
            raise CheckpointError(
                f"{path.name} is a TorchScript archive (a saved program, as some packs ship film_net_fp32.pt), and "
                "Video Engine never runs code from a model file. Use a plain state dict: ComfyUI core's FILM or "
                "RIFE .safetensors, or a .pth/.pkl of tensors.") from None
        what = _not_a_model(path)
        if what:
            raise CheckpointError(what) from None
        first = (str(e).splitlines() or [""])[0][:160] or type(e).__name__
        raise CheckpointError(f"{path.name} is truncated or corrupt ({type(e).__name__}: {first}); "
                              "download it again") from None


def _find_tensor_dict(obj, path: Path) -> dict[str, torch.Tensor]:
    """The state dict inside what was loaded (some files nest it under 'state_dict' / 'model')."""
    for _ in range(3):
        if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj
        if isinstance(obj, dict):
            nested = [v for k, v in obj.items() if k in ("state_dict", "model", "params", "flownet") and isinstance(v, dict)]
            if len(nested) == 1:
                obj = nested[0]
                continue
            tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
            if tensors:
                return tensors
        break
    raise CheckpointError(f"{path.name} holds no tensor state dict (found {type(obj).__name__}); "
                          "expected a RIFE flownet or FILM state dict")


def normalize_keys(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip `module.`/`flownet.` prefixes, map `blocks.N.` to `blockN.`, drop teacher/caltime keys."""
    out = {}
    for k, v in sd.items():
        for prefix in ("module.", "flownet."):
            while k.startswith(prefix):
                k = k[len(prefix):]
        if k.startswith(_DROP_PREFIXES):
            continue
        k = re.sub(r"^blocks\.(\d+)\.", r"block\1.", k)
        out[k] = v
    return out


# ----------------------------------------------------------------------------- detection
FILM_KEY = "extract.extract_sublevels.convs.0.0.conv.weight"


def is_film(sd: dict[str, torch.Tensor]) -> bool:
    """FILM's feature extractor is there (keys already normalized)."""
    return FILM_KEY in sd


def _count(sd, fmt: str) -> int:
    n = 0
    while fmt.format(n) in sd:
        n += 1
    return n


def detect_film_config(sd: dict[str, torch.Tensor]) -> FilmConfig:
    """FILM's sizes from the shapes: extractor width and depth, each flow estimator's depth and
    width, the decoder's widths. (The pyramid depth, 7, is not in the weights.)"""
    flat = next((k for k, v in sd.items() if k.endswith(".weight") and v.ndim != 4), None)
    if flat is not None:
        raise CheckpointError(f"FILM checkpoint: tensor {flat} has shape {tuple(sd[flat].shape)}, expected a 4-D "
                              "convolution weight (the file is damaged or not FILM)")
    conv = "{}.conv.weight"
    sub = _count(sd, "extract.extract_sublevels.convs.{}.0.conv.weight")
    filters = int(sd[FILM_KEY].shape[0])
    n_spec = _count(sd, "predict_flow._predictors.{}._convs.0.conv.weight")
    heads = [f"predict_flow._predictors.{n_spec - 1 - i}" for i in range(n_spec)] + ["predict_flow._predictor"]
    if f"{heads[-1]}._convs.0.conv.weight" not in sd:
        raise CheckpointError("FILM checkpoint without its shared flow estimator "
                              "(predict_flow._predictor._convs.0.conv.weight)")
    flow_convs = tuple(_count(sd, h + "._convs.{}.conv.weight") - 2 for h in heads)
    flow_filters = tuple(int(sd[conv.format(h + "._convs.0")].shape[0]) for h in heads)
    n_fuse = _count(sd, "fuse.convs.{}.0.conv.weight")
    fusion = tuple(int(sd[f"fuse.convs.{n_fuse - 1 - i}.0.conv.weight"].shape[0]) for i in range(n_fuse))
    if min(flow_convs, default=0) < 1 or not fusion or n_spec < sub - 1 or n_fuse + 1 > 7:
        raise CheckpointError(f"FILM checkpoint with an unsupported layout: {sub} extractor levels, flow estimators "
                              f"with {list(flow_convs)} convs, {n_fuse} fusion levels")
    return FilmConfig(filters=filters, sub_levels=sub, flow_convs=flow_convs, flow_filters=flow_filters,
                      fusion_filters=fusion)


def _conv_shape(sd: dict[str, torch.Tensor], key: str) -> torch.Size:
    """The shape of a convolution weight, which must be 4-D (a scalar or flat tensor is not a RIFE file)."""
    shape = sd[key].shape
    if len(shape) != 4:
        raise CheckpointError(f"tensor {key} has shape {tuple(shape)}, expected a 4-D convolution weight: "
                              "this is not a RIFE checkpoint, or it is damaged")
    return shape


def detect_config(sd: dict[str, torch.Tensor]) -> IFNetConfig:
    """Family and sizes from the (normalized) state dict's shapes."""
    n = 0
    while f"block{n}.conv0.0.0.weight" in sd:
        n += 1
    if n not in (4, 5):
        blocks = sorted({m.group(0) for k in sd for m in [re.match(r"block\d+", k)] if m})
        raise CheckpointError(
            f"neither FILM (no '{FILM_KEY}') nor a supported RIFE IFNet state dict: "
            "expected 4 blocks (v4.0-4.24) or 5 blocks (v4.25/4.26) "
            f"with keys like 'block0.conv0.0.0.weight'; found {n} such blocks ({blocks[:6] or 'none'}) "
            f"among {len(sd)} keys, e.g. {sorted(sd)[:4]}")
    widths = tuple(int(_conv_shape(sd, f"block{i}.conv0.1.0.weight")[0]) for i in range(n))
    cins = tuple(int(_conv_shape(sd, f"block{i}.conv0.0.0.weight")[1]) for i in range(n))
    legacy = "block0.lastconv.weight" in sd
    if legacy:
        out_ch = int(_conv_shape(sd, "block0.lastconv.weight")[1])
        if "block0.conv0.0.1.weight" not in sd:
            raise CheckpointError("RIFE 4.0-style blocks without PReLU weights (block0.conv0.0.1.weight) are not supported")
    elif "block0.lastconv.0.weight" in sd:
        out_ch = int(_conv_shape(sd, "block0.lastconv.0.weight")[1]) // 4
    else:
        raise CheckpointError("RIFE block without a 'lastconv' layer: expected block0.lastconv.weight (v4.0-4.3) "
                              "or block0.lastconv.0.weight (v4.5+)")
    encoder, layers, feat = None, (), 0
    if "encode.cnn0.weight" in sd:
        encoder = "head"
        hidden = int(_conv_shape(sd, "encode.cnn0.weight")[0])
        feat = int(_conv_shape(sd, "encode.cnn3.weight")[1])
        layers = ((0, 3, hidden, False), (1, hidden, hidden, False), (2, hidden, hidden, False), (3, hidden, feat, True))
    else:
        idx = sorted(int(m.group(1)) for k in sd for m in [re.fullmatch(r"encode\.(\d+)\.weight", k)] if m)
        if idx:
            encoder = "seq"
            ls = []
            for i in idx:
                w = _conv_shape(sd, f"encode.{i}.weight")
                transposed = w[-1] == 4
                cin, cout = (w[0], w[1]) if transposed else (w[1], w[0])
                ls.append((i, int(cin), int(cout), transposed))
            layers, feat = tuple(ls), ls[-1][2]
    passthrough = passthrough_channels(out_ch)
    want0 = 7 + 2 * feat
    want = 12 + 2 * feat + passthrough
    if cins[0] != want0 or any(c != want for c in cins[1:]):
        raise CheckpointError(
            f"RIFE block input channels do not match any known family: found {list(cins)}, expected "
            f"[{want0}, {want}, ...] for {n} blocks with {feat}-channel frame features and a {out_ch}-channel block output")
    if n == 5:
        lite = widths[-1] < 32
        scale_list, pad = ((32, 16, 8, 4, 1), 128) if lite else ((16, 8, 4, 2, 1), 64)
        name = "4.25 lite" if lite else ("4.26 heavy" if feat > 4 else ("4.25 heavy" if widths[0] > 192 else "4.25/4.26"))
    else:
        scale_list, pad = (8, 4, 2, 1), 32
        if legacy:
            name = "4.0-4.3 (HDv3)"
            pad = 128  # what this family's own inference code pads to; its reference scores assume it
        elif encoder is None:
            name = "4.5" if out_ch == 5 else "4.6"
        elif encoder == "seq":
            name = "4.7-4.9" if feat == 4 else "4.10-4.12"
        elif passthrough:
            name = "4.22" if widths[0] > 192 else "4.22 lite"
        else:
            name = "4.13-4.21" + (" lite" if widths[0] < 192 else "")
    return IFNetConfig(family=name, widths=widths, in_channels=cins, out_channels=out_ch, legacy=legacy,
                       encoder=encoder, encoder_layers=layers, feat_ch=feat, scale_list=scale_list,
                       pad_multiple=pad, refine="contextnet.conv1.conv1.0.weight" in sd, clamp_input=n == 5)


# torch >= 2.1: a net built on the meta device takes the checkpoint's tensors as its weights
_ASSIGN = "assign" in inspect.signature(torch.nn.Module.load_state_dict).parameters


def _load_checked(make, sd: dict[str, torch.Tensor], what: str):
    """make() -> the net, built on the meta device (no weights allocated or initialised); sd's
    tensors become its weights (in fp32) after checking it has exactly the net's tensors and shapes.
    (An older torch builds it on the CPU and copies them in.)"""
    with torch.device("meta") if _ASSIGN else contextlib.nullcontext():
        net = make()
    own = net.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    if missing or unexpected:
        raise CheckpointError(f"{what} checkpoint does not match the architecture its shapes imply: "
                              f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                              f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}")
    bad = [k for k in own if own[k].shape != sd[k].shape]
    if bad:
        k = bad[0]
        raise CheckpointError(f"{what}: tensor {k} has shape {tuple(sd[k].shape)}, expected {tuple(own[k].shape)}")
    broken = [k for k in own if sd[k].is_floating_point() and not torch.isfinite(sd[k]).all()]
    if broken:
        k = broken[0]
        n_bad = int((~torch.isfinite(sd[k])).sum())
        raise CheckpointError(f"{len(broken)} tensor(s) hold NaN or infinite values (e.g. {k}: {n_bad} of "
                              f"{sd[k].numel()}), which would make every in-between frame NaN or black: the file "
                              "is damaged (or saved from a diverged training run); download it again")
    net.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True, **({"assign": True} if _ASSIGN else {}))
    return net.eval().requires_grad_(False)


def build_ifnet(sd: dict[str, torch.Tensor]) -> IFNet:
    sd = normalize_keys(sd)
    cfg = detect_config(sd)
    return _load_checked(lambda: IFNet(cfg), sd, f"RIFE {cfg.family}")


def build_film(sd: dict[str, torch.Tensor]) -> FilmNet:
    sd = normalize_keys(sd)
    cfg = detect_film_config(sd)
    return _load_checked(lambda: FilmNet(cfg), sd, "FILM")


def build_net(sd: dict[str, torch.Tensor]) -> IFNet | FilmNet:
    """The network a state dict holds: FILM or a RIFE family, from its keys and shapes."""
    return build_film(sd) if is_film(normalize_keys(sd)) else build_ifnet(sd)


def family_name(net: IFNet | FilmNet) -> str:
    """'FILM' or 'RIFE <family>', as `models list` and the logs show it."""
    return net.cfg.family if isinstance(net, FilmNet) else f"RIFE {net.cfg.family}"


def load_net(path: str | os.PathLike) -> IFNet | FilmNet:
    try:
        net = build_net(read_state_dict(path))
    except CheckpointError as e:  # name the file in what the shapes or values said
        name = Path(path).name
        if str(e).startswith(name):
            raise
        raise CheckpointError(f"{name}: {e}") from None
    log.info("loaded %s from %s", family_name(net), Path(path).name)
    return net


def core_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A 5-block RIFE (4.25/4.26) state dict in ComfyUI core's key naming, the one its
    FrameInterpolationModelLoader reads: no `module.` prefix, `blocks.N.`, no teacher/caltime keys."""
    sd = normalize_keys(sd)
    cfg = detect_config(sd)
    if len(cfg.widths) != 5:
        raise CheckpointError(f"ComfyUI core reads only 5-block RIFE (4.25/4.26); this checkpoint is RIFE {cfg.family} "
                              f"({len(cfg.widths)} blocks)")
    return {re.sub(r"^block(\d+)\.", r"blocks.\1.", k): v.contiguous() for k, v in sd.items()}


def export_core(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Write `src` (any checkpoint the zoo reads) as a .safetensors file in core's naming. An
    existing `dst` is never replaced; the file appears only when complete."""
    from safetensors.torch import save_file

    dst = Path(dst)
    if dst.suffix != ".safetensors":
        raise InputError(f"the converted file must end in .safetensors, got {dst.name}")
    if dst.exists():
        raise InputError(f"{dst} already exists; choose another name or remove it first")
    sd = core_state_dict(read_state_dict(src))
    part = dst.with_name(f".{dst.name}.part")
    try:
        save_file(sd, str(part), metadata={"converted_from": Path(src).name})
        os.replace(part, dst)
    finally:
        part.unlink(missing_ok=True)
    return dst
