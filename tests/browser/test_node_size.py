"""The VideoInterpolate node keeps its size through real runs (issue 15, case 19), and what a run
says is still all there, on demand.

* test_node_size_is_stable_through_runs: a graph built in the page (EmptyImage -> PerformanceGuard
  batch 4 -> VideoInterpolate -> PreviewImage) runs three times from the page's own client: no
  fallback, 2 fallbacks, 5 fallbacks (injected out-of-memory errors, the drill of
  nodes/interpolate_node.py). After each run the node's height and the size saved in the workflow
  are the ones it had before the first run; the box's drawing stays inside the node; the details
  (the widget's value, the context-menu dialog) list each fallback once. The heights are written
  to artifacts/node_size.json (the figures of the issue's closing note).
* test_box_stays_inside_a_narrowed_node: synthetic events with long texts, then the node made as
  narrow and as short as the canvas allows: every drawing call of the box stays inside the node.
"""
from __future__ import annotations

import json

import pytest

from ui import API, WIDGET, dispatch, focus_node, open_ui, status_text

# Records the box's drawing calls (rects and text extents) on a real 2D context.
DRAW_EXTENTS = """([id, name]) => {
    const n = window.app.graph.getNodeById(id);
    const w = n.widgets.find(w => w.name === name);
    const canvas = document.createElement('canvas');
    canvas.width = 2000; canvas.height = 2000;
    const real = canvas.getContext('2d');
    const boxes = [];
    const ctx = new Proxy(real, {
        get(t, k) {
            const v = t[k];
            if (typeof v !== 'function') return v;
            if (['fillRect', 'rect', 'roundRect', 'strokeRect'].includes(k))
                return (x, y, ww, hh, ...r) => { boxes.push([x, y, x + ww, y + hh]); return v.call(t, x, y, ww, hh, ...r); };
            if (k === 'fillText')
                return (s, x, y, ...r) => { const m = t.measureText(s);
                    boxes.push([x, y - 8, x + m.width, y + 8]); return v.call(t, s, x, y, ...r); };
            return v.bind(t);
        },
        set(t, k, v) { t[k] = v; return true; },
    });
    const y = (w.last_y ?? w.y ?? 0) || (n.size[1] - w.computeSize(n.size[0])[1]);
    w.draw(ctx, n, n.size[0], y, n.size[1]);
    const xs = boxes.flatMap(b => [b[0], b[2]]), ys = boxes.flatMap(b => [b[1], b[3]]);
    return {size: [n.size[0], n.size[1]], y, calls: boxes.length,
            minX: Math.min(...xs), maxX: Math.max(...xs), minY: Math.min(...ys), maxY: Math.max(...ys)};
}"""


def build_graph(page) -> dict:
    return page.evaluate(
        """() => {
            const app = window.app, LG = window.LiteGraph;
            app.graph.clear();
            const img = LG.createNode('EmptyImage'); img.pos = [20, 100]; app.graph.add(img);
            const guard = LG.createNode('PerformanceGuard'); guard.pos = [20, 400]; app.graph.add(guard);
            const vi = LG.createNode('VideoInterpolate'); vi.pos = [380, 100]; app.graph.add(vi);
            const prev = LG.createNode('PreviewImage'); prev.pos = [800, 100]; app.graph.add(prev);
            const set = (n, name, v) => { n.widgets.find(w => w.name === name).value = v; };
            set(img, 'width', 64); set(img, 'height', 64); set(img, 'batch_size', 6);
            set(guard, 'batch_size', 4);
            set(vi, 'model', 'builtin-flow'); set(vi, 'scene_cut_threshold', 0);
            img.connect(0, vi, vi.inputs.findIndex(i => i.name === 'images'));
            guard.connect(0, vi, vi.inputs.findIndex(i => i.name === 'guard'));
            vi.connect(0, prev, 0);
            app.graph.setDirtyCanvas(true, true);
            return {vi: vi.id, img: img.id};
        }""")


def saved_size(page, node_id) -> list:
    """The size the workflow would save for the node (what 'Save' writes)."""
    return page.evaluate(
        """(id) => { const wf = window.app.graph.serialize();
                     return wf.nodes.find(n => n.id === id).size; }""", node_id)


def run_from_page(page, img_id, color, faults) -> dict:
    """Queue the graph from the page's own client (so its status events reach this page), with
    the drill's faults in extra_pnginfo; wait for the end of that prompt."""
    return page.evaluate(
        f"""async ([imgId, color, faults]) => {{
            const app = window.app, api = {API};
            app.graph.getNodeById(imgId).widgets.find(w => w.name === 'color').value = color;  // uncached
            const p = await app.graphToPrompt();
            const end = new Promise((resolve) => {{
                for (const t of ['execution_success', 'execution_error', 'execution_interrupted'])
                    api.addEventListener(t, (e) => resolve({{type: t, detail: e.detail}}));
            }});
            const res = await api.fetchApi('/prompt', {{method: 'POST', headers: {{'Content-Type': 'application/json'}},
                body: JSON.stringify({{prompt: p.output, client_id: api.clientId,
                    extra_data: {{extra_pnginfo: {{workflow: p.workflow, video_engine_faults: faults}}}}}})}});
            if (res.status !== 200) return {{type: 'rejected', detail: await res.text()}};
            return await end;
        }}""", [img_id, color, faults])


def test_node_size_is_stable_through_runs(comfy, page, artifacts_dir):
    open_ui(comfy, page)
    ids = build_graph(page)
    vi = ids["vi"]
    height = lambda: page.evaluate("(id) => window.app.graph.getNodeById(id).size[1]", vi)  # noqa: E731
    h0, saved0 = height(), saved_size(page, vi)
    figures = {"before any run": h0}
    oom = lambda attempts: [{"task": 3, "kind": "oom", "attempt": a} for a in attempts]  # noqa: E731
    runs = [("no fallback", 0, []), ("2 fallbacks", 2, oom([0, 1])), ("5 fallbacks", 5, oom(range(5)))]
    checks = []
    for i, (label, n_fb, faults) in enumerate(runs):
        end = run_from_page(page, ids["img"], 0x101010 * (i + 1), faults)
        assert end["type"] == "execution_success", json.dumps(end)[:2000]
        page.wait_for_function("(id) => (window.app.graph.getNodeById(id).veStatus || {}).phase === 'done'",
                               arg=vi, timeout=30_000)
        st = page.evaluate("(id) => window.app.graph.getNodeById(id).veStatus", vi)
        assert len(st["path"]) == n_fb, st["path"]
        page.evaluate("() => window.app.canvas.draw(true, true)")
        figures[f"after a run with {label}"] = height()
        box = page.evaluate("""([id, name]) => (window.app.graph.getNodeById(id).widgets
                                 .find(w => w.name === name)._lines || []).map(l => l.text || '')""", [vi, WIDGET])
        checks.append((n_fb, saved_size(page, vi), page.evaluate(DRAW_EXTENTS, [vi, WIDGET]),
                       status_text(page, vi), box))
    (artifacts_dir / "node_size.json").write_text(json.dumps(figures, indent=2))
    print("VideoInterpolate node height (px):", json.dumps(figures))
    assert set(figures.values()) == {h0}, figures
    for n_fb, saved, ext, text, box in checks:
        assert saved == saved0, (saved, saved0)
        assert ext["calls"] and ext["minX"] >= 0 and ext["maxX"] <= ext["size"][0] and ext["maxY"] <= ext["size"][1], ext
        # Each fallback once in the details; the box says how many there were.
        assert text.count("fallback at frame ") == n_fb, text
        if n_fb:
            assert any(f"{n_fb} fallbacks" in t for t in box), box

    # Details on demand: the node's context menu opens the whole text.
    labels = page.evaluate(
        """(id) => { const n = window.app.graph.getNodeById(id); const opts = [];
                     n.getExtraMenuOptions && n.getExtraMenuOptions(window.app.canvas, opts);
                     return opts.filter(Boolean).map(o => o.content); }""", vi)
    assert "Video Engine: run details" in labels, labels
    page.evaluate(
        """(id) => { const n = window.app.graph.getNodeById(id); const opts = [];
                     n.getExtraMenuOptions(window.app.canvas, opts);
                     opts.filter(Boolean).find(o => o.content === 'Video Engine: run details').callback(); }""", vi)
    dialog = page.locator("#ve-status-details")
    dialog.wait_for(timeout=5_000)
    assert dialog.inner_text().count("fallback at frame ") == 5
    focus_node(page, vi)
    page.screenshot(path=str(artifacts_dir / "node_size_details.png"))
    page.locator("#ve-status-details button").click()
    assert page.locator("#ve-status-details").count() == 0
    focus_node(page, vi)
    page.screenshot(path=str(artifacts_dir / "node_size.png"))
    assert not page.page_errors, page.page_errors


def test_box_stays_inside_a_narrowed_node(comfy, page):
    open_ui(comfy, page)
    vi = page.evaluate(
        """() => { const app = window.app; app.graph.clear();
                   const n = window.LiteGraph.createNode('VideoInterpolate'); n.pos = [100, 100];
                   app.graph.add(n); return n.id; }""")
    h0 = page.evaluate("(id) => window.app.graph.getNodeById(id).size[1]", vi)
    long = "CUDA out of memory. " * 30
    ev = dict(at=8, kind="oom", error=long, rung="halve_batch")
    dispatch(page, dict(node=str(vi), phase="fallback", device="cuda:0", precision="fp16", batch=2,
                        method="RIFE 4.25 (rife-4.25-with-a-very-long-file-name-indeed.safetensors)",
                        path=["retry", "halve_batch"] * 5, done=8, total=20, events=[ev] * 10))
    dispatch(page, dict(node=str(vi), phase="error", error="RuntimeError: " + long))
    assert page.evaluate("(id) => window.app.graph.getNodeById(id).size[1]", vi) == h0
    # As narrow and short as the canvas lets a user resize it (the node's computeSize), then narrower.
    for width in ("min", 120):
        page.evaluate(
            """([id, width]) => { const n = window.app.graph.getNodeById(id); const min = n.computeSize();
                                 n.setSize([width === 'min' ? min[0] : width, min[1]]);
                                 window.app.canvas.draw(true, true); }""", [vi, width])
        ext = page.evaluate(DRAW_EXTENTS, [vi, WIDGET])
        assert ext["calls"] and ext["minX"] >= 0 and ext["maxX"] <= ext["size"][0], ext
        assert ext["minY"] >= ext["y"] and ext["maxY"] <= ext["size"][1], ext
    assert not page.page_errors, page.page_errors


def test_status_shows_on_the_outer_node_of_a_subgraph(comfy, page):
    """A VideoInterpolate inside a subgraph reports as "outer:inner": the subgraph node on the canvas
    shows a one-line badge (issue 15, case 20), the inner node its usual box."""
    open_ui(comfy, page)
    if not page.evaluate("() => typeof window.app.graph.convertToSubgraph === 'function'"):
        pytest.skip("this frontend has no subgraphs")
    ids = build_graph(page)
    outer = page.evaluate(
        """(id) => { const g = window.app.graph; const vi = g.getNodeById(id);
                     const {node} = g.convertToSubgraph(new Set([vi]));
                     window.app.canvas.setDirty(true, true); return node.id; }""", ids["vi"])
    prompt = page.evaluate("async () => Object.keys((await window.app.graphToPrompt()).output)")
    inner = next(k for k in prompt if k.startswith(f"{outer}:"))
    end = run_from_page(page, ids["img"], 0x202020, [])
    assert end["type"] == "execution_success", json.dumps(end)[:2000]
    page.wait_for_function("(id) => !!window.VideoEngineStatus.states.get(id)"
                           " && window.VideoEngineStatus.states.get(id).phase === 'done'", arg=inner, timeout=30_000)
    badge = page.evaluate("(id) => (window.app.graph.getNodeById(id).veBadge || {}).text || null", outer)
    assert badge and badge.startswith("Video Engine: done 11/11"), badge
    # drawn by the node's own foreground pass
    drawn = page.evaluate(
        """(id) => { const n = window.app.graph.getNodeById(id); const texts = [];
                     const c = document.createElement('canvas').getContext('2d');
                     const ctx = new Proxy(c, {get(t, k) { const v = t[k];
                         if (k === 'fillText') return (s, ...r) => { texts.push(s); return v.call(t, s, ...r); };
                         return typeof v === 'function' ? v.bind(t) : v; },
                         set(t, k, v) { t[k] = v; return true; }});
                     n.onDrawForeground && n.onDrawForeground(ctx, window.app.canvas, window.app.canvas.canvas);
                     return texts; }""", outer)
    assert any(t.startswith("Video Engine: done") for t in drawn), drawn
    inner_node = page.evaluate(
        """([o, i]) => { const n = window.VideoEngineStatus.findNode(i);
                         return n ? {phase: (n.veStatus || {}).phase, h: n.size[1]} : null; }""", [outer, inner])
    assert inner_node and inner_node["phase"] == "done", inner_node
    assert not page.page_errors, page.page_errors
