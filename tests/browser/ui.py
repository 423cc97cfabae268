"""Helpers shared by the browser tests: open the UI, read a node's status widget, send status events."""
from __future__ import annotations

WIDGET = "ve_status"

# The frontend's api object (scripts/api.js re-exports window.comfyAPI.api.api).
API = "window.comfyAPI.api.api"


def open_ui(comfy, page):
    errors = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.console_errors = errors
    page.goto(comfy.base_url, wait_until="domcontentloaded")
    page.wait_for_function(
        "() => !!(window.app && window.app.graph && window.app.canvas && window.LiteGraph"
        " && window.comfyAPI && window.comfyAPI.api)", timeout=90_000)
    page.wait_for_function(
        "() => !!window.LiteGraph.registered_node_types['VideoInterpolate']", timeout=30_000)
    # our extension has run its setup()
    page.wait_for_function("() => !!window.VideoEngineStatus", timeout=30_000)


def status_text(page, node_id) -> str | None:
    return page.evaluate(
        """([id, name]) => {
            const n = window.app.graph.getNodeById(id);
            const w = n && n.widgets && n.widgets.find(w => w.name === name);
            return w ? w.value : null;
        }""", [node_id, WIDGET])


def widget_state(page, node_id) -> dict:
    return page.evaluate(
        """([id, name]) => {
            const n = window.app.graph.getNodeById(id);
            const w = n.widgets.find(w => w.name === name);
            return {hidden: !!w.hidden, value: w.value, size: [n.size[0], n.size[1]],
                    need: n.computeSize(),
                    lines: (w._lines || []).map(l => l.bar !== undefined ? {bar: l.bar} : {text: l.text, color: l.color})};
        }""", [node_id, WIDGET])


def dispatch(page, payload: dict) -> None:
    page.evaluate(f"(p) => {API}.dispatchCustomEvent('video_engine.status', p)", payload)


def focus_node(page, node_id, max_scale=1.6) -> None:
    """Zoom and pan the canvas so the whole node (title included) is centred and legible."""
    page.evaluate(
        """([id, maxScale]) => {
            const app = window.app, c = app.canvas, n = app.graph.getNodeById(id);
            const title = window.LiteGraph.NODE_TITLE_HEIGHT || 30;
            const el = c.canvas, cw = el.clientWidth || el.width, ch = el.clientHeight || el.height;
            // The canvas spans the window; the menu bars cover its top and left edges.
            const left = 70, top = 140, right = 20, bottom = 20;
            const vw = cw - left - right, vh = ch - top - bottom;
            const w = n.size[0], h = n.size[1] + title;
            const scale = Math.min(maxScale, 0.95 * vw / w, 0.95 * vh / h);
            c.ds.scale = scale;
            c.ds.offset[0] = (left + vw / 2) / scale - (n.pos[0] + w / 2);
            c.ds.offset[1] = (top + vh / 2) / scale - (n.pos[1] - title + h / 2);
            c.deselectAll && c.deselectAll();
            c.setDirty(true, true);
        }""", [node_id, max_scale])
    page.wait_for_timeout(600)  # a few frames
