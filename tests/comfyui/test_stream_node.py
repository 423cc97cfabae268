"""VideoInterpolateStream (VIDEO in, VIDEO out, streamed) inside a real ComfyUI server.

The example workflow (LoadVideo -> Video Interpolate (stream) -> SaveVideo) runs unmodified on a
12-frame clip of real footage with an audio track; output frame counts and frame rates are read
back with PyAV. Also: 24 -> 60 fps, a hard cut held, a VIDEO made in memory by CreateVideo, the
drilled recovery ladder, ComfyUI's cache and our temp files, save_output, Cancel mid-run and then
a good run, and corrupt inputs. Clips are 176x144 and the method is the built-in flow (seconds each).
"""
from __future__ import annotations

import os
import uuid
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from test_nodes import (CLIP_FPS, CLIP_FRAMES, CLIP_NAME, check_cancelled, check_progress,  # noqa: F401
                        check_status_stream, core_model, load_api, model_dir, node_id_of, preview_text, real_frames,
                        statuses)

pytestmark = pytest.mark.comfyui

NODE = "VideoInterpolateStream"
TEMP_SUB = "video_engine"
CUT_AT = 5  # the hard-cut clip: frames 0..5 one scene, 6..11 another
LONG_FRAMES = 48  # the clip that is cancelled mid-run


# ----------------------------------------------------------------------------- helpers
def probe_out(path: Path) -> dict:
    """Decoded frame count, exact frame rate, size and audio streams of a file, with PyAV."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames, times = [], []
        for f in c.decode(v):
            frames.append(f.to_ndarray(format="rgb24"))
            times.append(f.pts * v.time_base)
        audio = [s.codec_context.name for s in c.streams.audio]
        return dict(n=len(frames), fps=Fraction(v.average_rate), size=(v.codec_context.width, v.codec_context.height),
                    audio=audio, frames=frames, times=times)


def saved_video(comfy, result) -> Path:
    files = [f for f in result.files() if f["type"] == "output" and f["filename"].endswith(".mp4")]
    assert len(files) == 1, result.outputs
    path = comfy.file_path(files[0])
    assert path.is_file(), path
    return path


def our_preview(comfy, result, node: str) -> Path:
    """The file the node itself shows (its VIDEO output's file)."""
    items = result.outputs[node]["images"]
    assert len(items) == 1, items
    return comfy.file_path(items[0])


def temp_files(comfy) -> set[str]:
    d = Path(comfy.comfy_dir) / "temp" / TEMP_SUB
    return {p.name for p in d.iterdir()} if d.is_dir() else set()


def output_files(comfy) -> set[str]:
    d = Path(comfy.comfy_dir) / "output"
    return {str(p.relative_to(d)) for p in d.rglob("*") if p.is_file()} if d.is_dir() else set()


def write_clip(path: Path, frames: np.ndarray, fps=CLIP_FPS, audio=True) -> Path:
    from engine.samples import make_sample_tone
    from engine.video_io import VideoWriter

    tone = None
    if audio:
        tone = make_sample_tone(path.with_name(path.stem + "_tone.m4a"), duration=len(frames) / fps + 0.2)
    h, w = frames.shape[1:3]
    with VideoWriter(path, Fraction(fps), w, h, audio_from=tone) as wr:
        for f in frames:
            wr.write(f)
    return path


def stream_prompt(comfy, file: str, **inputs) -> dict:
    prompt = load_api(comfy, "stream_video")
    prompt[node_id_of(prompt, "LoadVideo")]["inputs"]["file"] = file
    prompt[node_id_of(prompt, NODE)]["inputs"].update(inputs)
    return prompt


def run_ok(comfy, prompt, timeout=240.0, **kw):
    result = comfy.run(prompt, timeout=timeout, **kw)
    result.raise_for_status()
    return result


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return real_frames(LONG_FRAMES)


@pytest.fixture(scope="module")
def clip(comfy, frames, tmp_path_factory) -> str:
    """The file the example loads: 12 real frames at 24 fps with a stereo AAC tone."""
    path = write_clip(tmp_path_factory.mktemp("sclip") / CLIP_NAME, frames[:CLIP_FRAMES])
    info = probe_out(path)
    assert (info["n"], info["fps"], info["audio"]) == (CLIP_FRAMES, CLIP_FPS, ["aac"])
    assert comfy.upload_file(path, name=CLIP_NAME)["name"] == CLIP_NAME
    return CLIP_NAME


@pytest.fixture(scope="module")
def cut_clip(comfy, frames, tmp_path_factory) -> str:
    """Frames 0..5 of the footage, then six frames of a different scene (the footage flipped and inverted)."""
    other = 255 - frames[CLIP_FRAMES:CLIP_FRAMES + CLIP_FRAMES - CUT_AT - 1, ::-1, ::-1]
    clip = np.concatenate([frames[:CUT_AT + 1], other])
    name = f"ve_stream_cut_{uuid.uuid4().hex[:6]}.mp4"
    path = write_clip(tmp_path_factory.mktemp("cut") / name, clip, audio=False)
    return comfy.upload_file(path, name=name)["name"]


@pytest.fixture(scope="module")
def long_clip(comfy, frames, tmp_path_factory) -> str:
    name = f"ve_stream_long_{uuid.uuid4().hex[:6]}.mp4"
    path = write_clip(tmp_path_factory.mktemp("long") / name, frames)
    return comfy.upload_file(path, name=name)["name"]


# ----------------------------------------------------------------------------- schema and example
def test_schema(comfy):
    info = comfy.object_info(NODE)
    assert info is not None, f"{NODE} is not registered (see the server log)"
    assert info["display_name"] == "Video Interpolate (stream)" and info["category"] == "Video Engine"
    assert info["input_order"]["required"] == ["video", "model", "multiplier", "target_fps", "scene_cut_threshold",
                                               "precision", "save_output", "filename_prefix"]
    core_fi = comfy.object_info("FrameInterpolationModelLoader") is not None
    assert info["input_order"]["optional"] == ["guard", "fallback"] + (["interp_model"] if core_fi else [])
    req = info["input"]["required"]
    assert req["video"][0] == "VIDEO"
    models = req["model"][1]["options"]
    assert models == comfy.object_info("VideoInterpolate")["input"]["required"]["model"][1]["options"]
    assert info["output"] == ["VIDEO", "FLOAT", "STRING"]
    assert info["output_name"] == ["video", "fps", "report"]
    assert info["output_node"] is True


def test_example_workflow_runs(comfy, clip):
    """The example unmodified: x2, exact frame count and fps, audio kept, progress and live status."""
    prompt = load_api(comfy, "stream_video")
    assert prompt[node_id_of(prompt, "LoadVideo")]["inputs"]["file"] == clip
    node = node_id_of(prompt, NODE)
    result = run_ok(comfy, prompt)
    n_out = CLIP_FRAMES * 2 - 1
    check_progress(result, node, n_out)
    st = check_status_stream(result, node, n_out)
    assert st[0]["device"] == "cpu" and "optical flow" in st[0]["method"]
    assert any(s["phase"] == "progress" and s["eta_s"] is not None for s in st), st
    for path in (saved_video(comfy, result), our_preview(comfy, result, node)):
        out = probe_out(path)
        assert (out["n"], out["fps"], out["size"]) == (n_out, CLIP_FPS * 2, (176, 144)), path
        assert out["audio"] == ["aac"], path
    assert our_preview(comfy, result, node).parent.name == TEMP_SUB
    report = preview_text(result, prompt, "Report")
    assert report == st[-1]["report"] and f"{CLIP_FRAMES} -> {n_out} frames at 176x144" in report


def test_24_to_60_with_guard_and_drilled_fallback(comfy, clip):
    """Target fps (exact 60), a PerformanceGuard and a FallbackSwitch wired in, and two injected
    out-of-memory errors: the ladder resumes inside the stream and every frame arrives."""
    prompt = stream_prompt(comfy, clip, target_fps=60.0)
    node = node_id_of(prompt, NODE)
    prompt["20"] = {"class_type": "PerformanceGuard", "inputs": dict(strategy="balanced", device="auto", batch_size=4,
                                                                      flow_scale=0.0, monitor_interval=0.25)}
    prompt["21"] = {"class_type": "FallbackSwitch", "inputs": dict(
        retry=True, halve_batch=True, flow_scale=True, reduce_resolution=True, cpu=True, builtin_flow=True, blend=True,
        max_attempts=12, quality_floor="blend", on_exhausted="raise", min_res_scale=0.5)}
    prompt[node]["inputs"].update(guard=["20", 0], fallback=["21", 0])
    faults = [{"task": 3, "kind": "oom", "attempt": 0}, {"task": 3, "kind": "oom", "attempt": 1}]
    result = run_ok(comfy, prompt, extra_data={"extra_pnginfo": {"video_engine_faults": faults}})
    n_out = -(-CLIP_FRAMES * 60 // 24)  # ceil: a target fps keeps the input's duration
    check_progress(result, node, n_out)
    st = check_status_stream(result, node, n_out)
    assert st[0]["batch"] == 4
    assert [s["path"] for s in st if s["phase"] == "fallback"] == [["retry"], ["retry", "halve_batch"]]
    assert "24 -> 60 fps" in st[-1]["report"] and "fallback at frame" in st[-1]["report"]
    out = probe_out(saved_video(comfy, result))
    assert (out["n"], out["fps"], out["audio"]) == (n_out, 60, ["aac"])
    assert out["times"] == [Fraction(i, 60) for i in range(n_out)]  # every timestamp exact


def test_hard_cut_is_held(comfy, cut_clip):
    prompt = stream_prompt(comfy, cut_clip)
    node = node_id_of(prompt, NODE)
    result = run_ok(comfy, prompt)
    assert f"scene cuts: [{CUT_AT}]" in statuses(result, node)[-1]["report"]
    out = probe_out(saved_video(comfy, result))
    assert out["n"] == CLIP_FRAMES * 2 - 1 and out["audio"] == []
    f = [x.astype(np.float32) for x in out["frames"]]
    before, middle, after = f[2 * CUT_AT], f[2 * CUT_AT + 1], f[2 * CUT_AT + 2]
    held = float(np.abs(middle - before).mean())
    assert held < 2.0, held  # the in-between frame at the cut repeats the last frame before it (codec noise only)
    assert float(np.abs(middle - after).mean()) > 40 * max(held, 0.5)
    # away from the cut frames are really interpolated (not held): the middle differs from both neighbours
    m, a, b = f[1], f[0], f[2]
    assert float(np.abs(m - a).mean()) > 0.5 and float(np.abs(m - b).mean()) > 0.5


def test_video_from_components(comfy, clip):
    """A VIDEO built in memory (GetVideoComponents -> CreateVideo with audio) streams from its tensor."""
    prompt = stream_prompt(comfy, clip, multiplier=3)
    node = node_id_of(prompt, NODE)
    prompt.update({
        "11": {"class_type": "GetVideoComponents", "inputs": {"video": [node_id_of(prompt, "LoadVideo"), 0]}},
        "12": {"class_type": "CreateVideo", "inputs": {"images": ["11", 0], "fps": 24.0, "audio": ["11", 1]}},
    })
    prompt[node]["inputs"]["video"] = ["12", 0]
    result = run_ok(comfy, prompt)
    n_out = CLIP_FRAMES * 3 - 2
    check_status_stream(result, node, n_out)
    out = probe_out(saved_video(comfy, result))
    assert (out["n"], out["fps"], out["audio"]) == (n_out, 72, ["aac"])


# ----------------------------------------------------------------------------- cache and files
def test_cache_reuse_and_temp_files(comfy, clip):
    """Same inputs: the node does not run again. Other inputs: a new file, and the node keeps at most
    two temp files (A -> B -> A gives A back without recomputing it). save_output writes a numbered
    file in output/ that later runs never delete."""
    node = node_id_of(load_api(comfy, "stream_video"), NODE)
    first = run_ok(comfy, stream_prompt(comfy, clip, multiplier=5))
    a = our_preview(comfy, first, node)
    a_mtime = a.stat().st_mtime_ns
    again = run_ok(comfy, stream_prompt(comfy, clip, multiplier=5))
    cached = [n for d in again.of_type("execution_cached") for n in d.get("nodes", [])]
    assert node in cached and node not in again.executed_nodes
    assert not statuses(again, node)

    b = our_preview(comfy, run_ok(comfy, stream_prompt(comfy, clip, multiplier=6)), node)
    c_run = run_ok(comfy, stream_prompt(comfy, clip, multiplier=7))
    c = our_preview(comfy, c_run, node)
    assert len({a, b, c}) == 3
    mine = {n for n in temp_files(comfy) if n.startswith(f"stream_{node}_")}
    assert mine == {b.name, c.name}, mine  # the oldest (a) was removed
    assert not [n for n in temp_files(comfy) if n.startswith(".")], temp_files(comfy)

    # B again, no recomputation either way: ComfyUI's cache still has it (0.25's RAM-pressure cache), or
    # it was dropped (0.3.75's classic cache keeps one result per node) and the node reuses B's file
    back = run_ok(comfy, stream_prompt(comfy, clip, multiplier=6))
    assert our_preview(comfy, back, node) == b
    st = statuses(back, node)
    cached = node in [n for d in back.of_type("execution_cached") for n in d.get("nodes", [])]
    assert (cached and st == []) or [s["phase"] for s in st] == ["done"], (cached, st)
    assert probe_out(saved_video(comfy, back))["n"] == CLIP_FRAMES * 6 - 5

    before = output_files(comfy)
    prefix = f"video/ve_stream_{uuid.uuid4().hex[:6]}"
    saved = run_ok(comfy, stream_prompt(comfy, clip, multiplier=2, save_output=True, filename_prefix=prefix))
    item = saved.outputs[node]["images"][0]
    assert item["type"] == "output" and item["filename"].startswith(prefix.split("/")[1])
    mine_out = comfy.file_path(item)
    assert probe_out(mine_out)["n"] == CLIP_FRAMES * 2 - 1
    for m in (3, 4, 8):
        run_ok(comfy, stream_prompt(comfy, clip, multiplier=m, save_output=True, filename_prefix=prefix))
    assert mine_out.is_file()
    new = output_files(comfy) - before
    assert len([n for n in new if n.startswith(prefix)]) == 4, new
    assert a_mtime and not a.exists()


# ----------------------------------------------------------------------------- cancel and errors
def test_cancel_mid_run_leaves_nothing_then_a_good_run(comfy, long_clip, clip):
    node = node_id_of(load_api(comfy, "stream_video"), NODE)
    prompt = stream_prompt(comfy, long_clip, multiplier=16)
    temp_before, out_before = temp_files(comfy), output_files(comfy)
    check_cancelled(comfy.run_interrupted(prompt, node, timeout=300), node)
    assert temp_files(comfy) - temp_before == set()  # no result, no hidden partial
    assert output_files(comfy) == out_before  # SaveVideo never ran

    good = run_ok(comfy, stream_prompt(comfy, clip, multiplier=4))
    out = probe_out(saved_video(comfy, good))
    assert (out["n"], out["fps"]) == (CLIP_FRAMES * 4 - 3, CLIP_FPS * 4)


@pytest.mark.parametrize("kind", ["garbage", "truncated", "audio_only", "empty"])
def test_corrupt_input_names_the_file(comfy, tmp_path, frames, kind):
    from engine.samples import make_sample_tone

    name = f"ve_corrupt_{kind}_{uuid.uuid4().hex[:6]}.mp4"
    path = tmp_path / name
    if kind == "garbage":
        path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(4000))
    elif kind == "audio_only":
        make_sample_tone(path, duration=1.0)
    elif kind == "empty":
        path.write_bytes(b"")
    else:
        good = write_clip(tmp_path / "good.mp4", frames[:CLIP_FRAMES])
        data = good.read_bytes()
        path.write_bytes(data[: len(data) // 2])  # an interrupted download
    comfy.upload_file(path, name=name)
    temp_before, out_before = temp_files(comfy), output_files(comfy)
    prompt = stream_prompt(comfy, name)
    node = node_id_of(prompt, NODE)
    result = comfy.run(prompt, timeout=120)
    assert result.status == "error", result.status
    assert result.error["node_id"] == node
    msg = result.error["exception_message"]
    assert name in msg and "Video Engine" in msg, msg
    assert "Traceback" not in msg and len(msg) < 800, msg
    assert statuses(result, node)[-1]["phase"] == "error"
    assert temp_files(comfy) - temp_before == set() and output_files(comfy) == out_before


def test_failure_mid_run_leaves_nothing_that_looks_complete(comfy, long_clip):
    """A non-recoverable error after frames were already encoded (a drill: bad input at output 41):
    the half-written file is removed, SaveVideo never runs, the status says what failed."""
    prompt = stream_prompt(comfy, long_clip, multiplier=4)
    node = node_id_of(prompt, NODE)
    temp_before, out_before = temp_files(comfy), output_files(comfy)
    faults = [{"task": 41, "kind": "input", "attempt": None}]
    result = comfy.run(prompt, timeout=240, extra_data={"extra_pnginfo": {"video_engine_faults": faults}})
    assert result.status == "error" and result.error["node_id"] == node, result.status
    assert "bad input (injected fault)" in result.error["exception_message"]
    st = statuses(result, node)
    assert st[-1]["phase"] == "error" and 0 < st[-1]["done"] < st[-1]["total"], st[-1]
    assert temp_files(comfy) - temp_before == set() and output_files(comfy) == out_before


def test_target_fps_out_of_range_is_refused_clearly(comfy, clip):
    prompt = stream_prompt(comfy, clip, target_fps=999.0)  # 41.6 times 24 fps; at most 16 times
    node = node_id_of(prompt, NODE)
    temp_before = temp_files(comfy)
    result = comfy.run(prompt, timeout=120)
    assert result.status == "error" and result.error["node_id"] == node
    msg = result.error["exception_message"]
    assert "999" in msg and "16 times" in msg, msg
    assert temp_files(comfy) - temp_before == set()


def test_core_model_streams(comfy, clip, core_model):
    """Core's INTERP_MODEL (0.20+: Load Frame Interpolation Model, real RIFE 4.25 weights) through the
    stream: exact frames and fps, audio kept, core's network named in the status."""
    prompt = stream_prompt(comfy, clip)
    node = node_id_of(prompt, NODE)
    prompt["30"] = {"class_type": "FrameInterpolationModelLoader", "inputs": {"model_name": core_model}}
    prompt[node]["inputs"]["interp_model"] = ["30", 0]
    result = run_ok(comfy, prompt, timeout=600)
    n_out = CLIP_FRAMES * 2 - 1
    check_progress(result, node, n_out)
    st = check_status_stream(result, node, n_out)
    assert st[0]["method"].startswith("RIFE 4.25/4.26 (ComfyUI core's IFNet"), st[0]["method"]
    out = probe_out(saved_video(comfy, result))
    assert (out["n"], out["fps"], out["audio"]) == (n_out, CLIP_FPS * 2, ["aac"])
