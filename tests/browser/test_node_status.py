"""The live status that web/video_engine.js draws on VideoInterpolate nodes.

* test_status_widget_renders_synthetic_events: a VideoInterpolate node on an empty graph gets
  hand-made ``video_engine.status`` events (dispatched through the frontend's api object, as the
  websocket would); checks the text, the merge of partial payloads, the reset on "start", that
  the widget is neither saved in the workflow nor sent in the prompt, and that nothing throws.
* test_status_of_a_real_run: loads the server version's video_interpolate example, points its LoadVideo
  at a small uploaded clip, queues it from the page and follows the node's status to the final
  report. Saves artifacts/node_status.png with the canvas centred on the node.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from ui import API, WIDGET, dispatch, focus_node, open_ui, status_text, widget_state

from server import example_workflow

REPO = Path(__file__).resolve().parents[2]
CLIP_FRAMES = 10


def write_clip(path: Path, frames: int = CLIP_FRAMES) -> Path:
    """~10 frames of real footage (the shared bench's bigbuckbunny clip), else a synthetic clip."""
    from engine import samples, video_io

    shared = [Path(p) for p in (os.environ.get("VE_SHARED"), REPO.parent / "shared") if p]
    npz = next((p / "bench" / "data" / "bigbuckbunny.npz" for p in shared
                if (p / "bench" / "data" / "bigbuckbunny.npz").is_file()), None)
    if npz is None:
        return samples.make_sample_clip(path, n_frames=frames, size=(320, 192), fps=24)
    with np.load(npz) as z:
        clip = np.ascontiguousarray(z["frames"][:frames])
    h, w = clip.shape[1:3]
    with video_io.VideoWriter(path, 24, w, h, preset="veryfast") as writer:
        writer.write(clip)
    return path


# ----------------------------------------------------------------------------- synthetic events
def test_status_widget_renders_synthetic_events(comfy, page, artifacts_dir):
    open_ui(comfy, page)
    node_id = page.evaluate(
        """() => {
            const app = window.app;
            app.graph.clear();
            const n = window.LiteGraph.createNode('VideoInterpolate');
            n.pos = [100, 100];
            app.graph.add(n);
            return n.id;
        }""")
    sid = str(node_id)

    # Before any event: the widget exists, says so, and its room is already part of the node.
    st = widget_state(page, node_id)
    assert st["value"] == "" and st["lines"][0]["text"] == "Video Engine: no run yet"
    before = st["size"]
    assert before[1] >= st["need"][1]

    # Never saved in the workflow, never sent in the prompt.
    saved, others = page.evaluate(
        """([id, name]) => { const n = window.app.graph.getNodeById(id);
                            return [n.serialize().widgets_values, n.widgets.filter(w => w.name !== name).length]; }""",
        [node_id, WIDGET])
    assert WIDGET not in json.dumps(saved)
    assert len(saved) == others  # only the node's own widgets (model, multiplier, ...)
    prompt = page.evaluate("async () => (await window.app.graphToPrompt()).output")
    assert WIDGET not in prompt[sid]["inputs"]

    errors_before = list(page.console_errors)
    base = dict(node=sid, device="cpu", precision="fp32", batch=4, method="builtin-flow",
                path=[], done=0, total=20, eta_s=65.4, events=[])
    dispatch(page, dict(base, phase="start"))
    text = status_text(page, node_id)
    assert "Video Engine: starting" in text
    assert "device cpu · fp32 · batch 4" in text
    assert "method builtin-flow" in text
    assert "frames 0/20 (0%)" in text and "ETA 01:05" in text
    assert "as planned" in text
    assert widget_state(page, node_id)["size"] == before  # the node's size never follows the status

    dispatch(page, dict(base, phase="progress", done=5, eta_s=3725))
    text = status_text(page, node_id)
    assert "running" in text and "frames 5/20 (25%)" in text and "ETA 1:02:05" in text

    ev = dict(at=8, kind="oom", error="CUDA out of memory. Tried to allocate 2.00 GiB", rung="halve_batch")
    dispatch(page, dict(base, phase="fallback", done=8, batch=2, eta_s=None,
                        path=["retry", "halve_batch"], events=[dict(ev, rung="retry"), ev]))
    text = status_text(page, node_id)
    assert "Video Engine: fallback" in text and "batch 2" in text
    assert "path retry → halve_batch" in text
    assert "fallback at frame 8: oom (CUDA out of memory. Tried to allocate 2.00 GiB) → halve_batch" in text
    assert "ETA --:--" in text
    amber = [ln for ln in widget_state(page, node_id)["lines"] if ln.get("text", "").startswith(("⚠", "last "))]
    assert [ln["text"] for ln in amber] == ["⚠ 2 fallbacks: retry → halve_batch", "last fallback at frame 8: oom "
                                            "(CUDA out of memory. Tried to allocate 2.00 GiB) → halve_batch"]
    assert all(ln["color"] == "#f5a524" for ln in amber)

    # A partial payload keeps what earlier events said and does not throw.
    dispatch(page, {"node": sid, "phase": "progress", "done": 12})
    text = status_text(page, node_id)
    assert "frames 12/20 (60%)" in text and "batch 2" in text and "halve_batch" in text
    # Odd payloads are ignored or shown without errors.
    for odd in ({}, {"phase": "progress"}, {"node": sid}, {"node": sid, "path": "retry", "events": "x",
                                                           "done": "n/a", "total": None, "eta_s": "soon"},
                {"node": "99999", "phase": "start"}):
        dispatch(page, odd)
    page.evaluate(f"() => {API}.dispatchCustomEvent('video_engine.status')")  # no detail at all

    report = ("10 -> 19 frames at 448x256, 24.0 -> 48.0 fps\nmethod: builtin-flow\n"
              "path: retry -> halve_batch\nfallback at frame 8: oom (CUDA out of memory) -> halve_batch")
    dispatch(page, dict(base, phase="done", done=20, eta_s=0.0, batch=2, path=["retry", "halve_batch"],
                        events=[ev], report=report))
    text = status_text(page, node_id)
    assert "Video Engine: done" in text and "frames 20/20 (100%)" in text and "ETA" not in text
    assert "report:" in text and "10 -> 19 frames at 448x256" in text
    assert text.count("fallback at frame 8") == 1  # once: the report lists it, the events are not repeated
    assert widget_state(page, node_id)["size"] == before
    # Clicking the status area must not throw (the widget is read-only; clicks fall through).
    focus_node(page, node_id)
    x, y = page.evaluate(
        """([id, name]) => {
            const c = window.app.canvas, n = window.app.graph.getNodeById(id);
            const w = n.widgets.find(w => w.name === name);
            const [ox, oy] = c.ds.convertCanvasToOffset([n.pos[0] + n.size[0] / 2, n.pos[1] + w.y + 24]);
            const r = c.canvas.getBoundingClientRect();
            return [r.left + ox, r.top + oy];
        }""", [node_id, WIDGET])
    page.mouse.click(x, y)
    page.screenshot(path=str(artifacts_dir / "node_status_synthetic.png"))

    # An error run shows the message; a new "start" clears report, events and error.
    dispatch(page, dict(base, phase="error", error="RuntimeError: boom"))
    text = status_text(page, node_id)
    assert "Video Engine: error" in text and "error: RuntimeError: boom" in text
    # A user's Cancel is not an error.
    dispatch(page, dict(base, phase="cancelled", done=5, error="cancelled by the user"))
    text = status_text(page, node_id)
    assert "Video Engine: cancelled" in text and "error" not in text
    box = widget_state(page, node_id)["lines"]
    assert box[0]["color"] != "#ff6b6b" and any(ln.get("text") == "cancelled at frame 5 of 20" for ln in box)
    dispatch(page, dict(base, phase="start", total=7))
    text = status_text(page, node_id)
    assert "report:" not in text and "fallback at" not in text and "boom" not in text and "frames 0/7" in text
    assert widget_state(page, node_id)["size"] == before

    assert not page.page_errors, page.page_errors
    # (the offline front end of ComfyUI 0.25 fails to reach remote resources: not errors of the pack)
    new_errors = [e for e in page.console_errors[len(errors_before):] if "ERR_NAME_NOT_RESOLVED" not in e]
    assert not new_errors, new_errors


# ----------------------------------------------------------------------------- real run
def test_status_of_a_real_run(comfy, page, artifacts_dir, tmp_path):
    workflow_file = example_workflow("video_interpolate", comfy.version)
    if comfy.object_info("VideoInterpolate") is None:
        pytest.fail("the pack's VideoInterpolate node is not registered on the server", pytrace=False)

    clip = write_clip(tmp_path / "ve_status_clip.mp4")  # same name each run: overwritten, not piled up
    up = comfy.upload_file(clip)
    clip_name = (up["subfolder"] + "/" if up.get("subfolder") else "") + up["name"]

    open_ui(comfy, page)
    workflow = json.loads(workflow_file.read_text())
    ids = page.evaluate(
        """async ([wf, clipName]) => {
            const app = window.app;
            await app.loadGraphData(wf);
            const nodes = app.graph._nodes;
            const load = nodes.find(n => n.type === 'LoadVideo');
            const vi = nodes.find(n => n.type === 'VideoInterpolate');
            const file = load.widgets.find(w => w.name === 'file');
            if (!file.options.values.includes(clipName)) file.options.values.push(clipName);
            file.value = clipName;
            file.callback && file.callback(clipName);
            const val = (name) => vi.widgets.find(w => w.name === name).value;
            return {load: load.id, vi: vi.id, multiplier: val('multiplier'), target_fps: val('target_fps')};
        }""", [workflow, clip_name])
    vi = ids["vi"]
    assert status_text(page, vi) == ""  # loaded, no run yet

    # Record every status payload and the widget text right after it (our listener runs after
    # the extension's, which registered first).
    page.evaluate(
        f"""([id, name]) => {{
            const api = {API};
            window.__ve = {{events: [], texts: [], end: null}};
            api.addEventListener('video_engine.status', (e) => {{
                const n = window.app.graph.getNodeById(id);
                const w = n && n.widgets.find(w => w.name === name);
                window.__ve.events.push(e.detail);
                window.__ve.texts.push(w ? w.value : null);
            }});
            for (const t of ['execution_success', 'execution_error', 'execution_interrupted'])
                api.addEventListener(t, (e) => {{ window.__ve.end = {{type: t, detail: e.detail}}; }});
        }}""", [vi, WIDGET])

    page.evaluate("async () => { await window.app.queuePrompt(0, 1); }")
    # The status shows progress first, then the report.
    page.wait_for_function(
        "() => window.__ve.end || window.__ve.events.some(e => e.phase === 'progress' || e.phase === 'done')",
        timeout=300_000)
    page.wait_for_function("() => !!window.__ve.end", timeout=300_000)
    rec = page.evaluate("() => window.__ve")
    end = rec["end"]
    assert end["type"] == "execution_success", json.dumps(end)[:3000]
    phases = [e.get("phase") for e in rec["events"]]
    assert phases[0] == "start" and phases[-1] == "done", phases
    assert "progress" in phases, phases
    assert all(str(e.get("node")) == str(vi) for e in rec["events"])

    done_evt = rec["events"][-1]
    total = done_evt["total"]
    if not ids["target_fps"]:
        m = ids["multiplier"]
        assert total == CLIP_FRAMES + (m - 1) * (CLIP_FRAMES - 1)  # N frames -> N + (m-1)(N-1)

    # While running, the node showed the device and a frame count.
    progress_texts = [t for e, t in zip(rec["events"], rec["texts"]) if e.get("phase") == "progress"]
    assert progress_texts and all(t and "device cpu" in t for t in progress_texts)
    assert any(f"/{total}" in t for t in progress_texts)
    assert all(re.search(r"ETA (\d+:)?\d\d:\d\d|ETA --:--", t) for t in progress_texts), progress_texts

    text = status_text(page, vi)
    assert "Video Engine: done" in text
    assert "device cpu" in text
    assert f"frames {total}/{total} (100%)" in text
    assert "report:" in text
    assert f"{CLIP_FRAMES} -> {total} frames" in text  # the report's first line
    for line in done_evt["report"].splitlines():
        assert line.strip()[:40] in text  # every report line is shown (wrapped lines start the same)

    focus_node(page, vi)
    shot = artifacts_dir / "node_status.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 20_000
    assert not page.page_errors, page.page_errors
    # The offline front end logs its own errors (404 user.css, api.comfy.org); none may be ours.
    ours = [e for e in page.console_errors if re.search(r"video[-_ ]?engine|ve_status", e, re.I)]
    assert not ours, ours
