// Video Engine: live status of a VideoInterpolate run, drawn on the node.
//
// The node sends `video_engine.status` over ComfyUI's websocket (nodes/status.py):
//   { node, phase: "start"|"progress"|"fallback"|"done"|"error", device, precision, batch,
//     method, path: [rung, ...], done, total, eta_s, events: [{at, kind, error, rung}, ...],
//     report (on "done"), error (on "error"), prompt_id }
// Every field may be missing; nothing here throws on a partial payload.
//
// The status is a read-only widget named "ve_status" at the bottom of every VideoInterpolate and
// VideoInterpolateStream node,
// drawn on the canvas (colored lines, a progress bar; fallbacks in amber, errors in red). Its
// `value` is the same text without colors, so tests and other extensions can read it. It is never
// saved in the workflow nor sent with the prompt, and is hidden until the first event arrives.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const EVENT = "video_engine.status";
const NODE_CLASSES = new Set(["VideoInterpolate", "VideoInterpolateStream"]);
const WIDGET = "ve_status";

const FONT = "12px ui-monospace, 'DejaVu Sans Mono', Menlo, Consolas, monospace";
const LINE_H = 16;
const PAD = 8; // inside the box
const MARGIN = 10; // box to node edge
const BAR_H = 8;
const MIN_BOX_WIDTH = 200;
const MAX_LINE_CHARS = 400; // longer lines (e.g. huge error messages) are cut

const COLOR = {
  text: "#dddddd",
  dim: "#9a9a9a",
  title: "#ffffff",
  amber: "#f5a524",
  red: "#ff6b6b",
  green: "#7bd88f",
  blue: "#5aa9ff",
  bg: "rgba(10, 10, 10, 0.55)",
  bar_bg: "#333333",
};

const PHASE_LABEL = {
  start: ["starting", COLOR.blue],
  progress: ["running", COLOR.blue],
  fallback: ["fallback", COLOR.amber],
  done: ["done", COLOR.green],
  error: ["error", COLOR.red],
};

// ------------------------------------------------------------------ formatting (pure functions)

function str(v, fallback = "?") {
  if (v === null || v === undefined || v === "") return fallback;
  const s = typeof v === "string" ? v : typeof v === "object" ? safeJSON(v) : String(v);
  return s.length > MAX_LINE_CHARS ? s.slice(0, MAX_LINE_CHARS - 1) + "…" : s;
}

function safeJSON(v) {
  try {
    return JSON.stringify(v);
  } catch {
    return String(v);
  }
}

function num(v) {
  const n = typeof v === "number" ? v : typeof v === "string" && v.trim() !== "" ? Number(v) : NaN;
  return Number.isFinite(n) ? n : null;
}

/** Seconds -> "mm:ss" ("h:mm:ss" from one hour on); "--:--" when unknown. */
export function formatEta(seconds) {
  const s = num(seconds);
  if (s === null || s < 0) return "--:--";
  const t = Math.round(s);
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const sec = t % 60;
  const pad = (x) => String(x).padStart(2, "0");
  return h > 0 ? `${h}:${pad(m)}:${pad(sec)}` : `${pad(m)}:${pad(sec)}`;
}

function formatEvent(ev) {
  if (!ev || typeof ev !== "object") return `⚠ fallback: ${str(ev)}`;
  const at = ev.at !== undefined && ev.at !== null ? ` at frame ${str(ev.at)}` : "";
  const kind = str(ev.kind, "failure");
  const err = ev.error ? ` (${str(ev.error)})` : "";
  const rung = ev.rung ? ` → ${str(ev.rung)}` : "";
  return `⚠ fallback${at}: ${kind}${err}${rung}`;
}

/**
 * The status as lines: [{text, color}] plus one {bar: fraction} row for the progress bar.
 * `st` is the merged state of one node (see update()).
 */
export function buildLines(st) {
  const lines = [];
  const [label, color] = PHASE_LABEL[st.phase] || [str(st.phase, "status"), COLOR.text];
  lines.push({ text: `Video Engine: ${label}`, color, bold: true });

  const dev = [`device ${str(st.device)}`, str(st.precision, "precision ?"), `batch ${str(st.batch)}`];
  lines.push({ text: dev.join(" · "), color: COLOR.text });
  lines.push({ text: `method ${str(st.method)}`, color: COLOR.text });

  const path = Array.isArray(st.path) ? st.path.map((r) => str(r)) : st.path ? [str(st.path)] : [];
  lines.push({
    text: `path ${path.length ? path.join(" → ") : "as planned (no fallback)"}`,
    color: path.length ? COLOR.amber : COLOR.dim,
  });

  const done = num(st.done);
  const total = num(st.total);
  let prog = `frames ${done ?? "?"}/${total ?? "?"}`;
  if (done !== null && total) prog += ` (${Math.min(100, Math.floor((100 * done) / total))}%)`;
  if (st.phase !== "done" && st.phase !== "error") prog += ` · ETA ${formatEta(st.eta_s)}`;
  lines.push({ text: prog, color: COLOR.text });
  if (done !== null && total) lines.push({ bar: Math.max(0, Math.min(1, done / total)), color });

  const events = Array.isArray(st.events) ? st.events : [];
  for (const ev of events) lines.push({ text: formatEvent(ev), color: COLOR.amber });

  if (st.phase === "error" || st.error) {
    lines.push({ text: `error: ${str(st.error, "the run failed")}`, color: COLOR.red });
  }
  if (typeof st.report === "string" && st.report.trim()) {
    lines.push({ text: "report:", color: COLOR.dim });
    for (const raw of st.report.split(/\r?\n/)) {
      const t = str(raw, "");
      const warn = /^\s*(fallback|warning)/i.test(t);
      lines.push({ text: "  " + t, color: warn ? COLOR.amber : COLOR.green });
    }
  }
  return lines;
}

export function linesToText(lines) {
  return lines.filter((l) => !l.bar).map((l) => l.text).join("\n");
}

// ------------------------------------------------------------------ text layout

let measureCtx = null;
function measurer() {
  if (!measureCtx) measureCtx = document.createElement("canvas").getContext("2d");
  measureCtx.font = FONT;
  return measureCtx;
}

/** Break one line into pieces no wider than maxWidth (at spaces when possible). */
function wrap(ctx, text, maxWidth) {
  if (maxWidth <= 20 || ctx.measureText(text).width <= maxWidth) return [text];
  const out = [];
  const indent = (text.match(/^\s*/) || [""])[0] + "  ";
  let rest = text;
  let first = true;
  while (rest.length) {
    const prefix = first ? "" : indent;
    if (ctx.measureText(prefix + rest).width <= maxWidth) {
      out.push(prefix + rest);
      break;
    }
    // longest prefix that fits (binary search on characters)
    let lo = 1;
    let hi = rest.length;
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if (ctx.measureText(prefix + rest.slice(0, mid)).width <= maxWidth) lo = mid;
      else hi = mid - 1;
    }
    let cut = lo;
    const space = rest.lastIndexOf(" ", lo);
    if (space > lo * 0.5) cut = space + 1;
    out.push(prefix + rest.slice(0, cut).trimEnd());
    rest = rest.slice(cut).trimStart();
    first = false;
    if (out.length > 200) break; // pathological input
  }
  return out;
}

/** Rows to draw for a given box width; cached per (lines, width). */
function layout(widget, boxWidth) {
  const key = boxWidth;
  if (widget._rows && widget._rowsKey === key && widget._rowsFor === widget._lines) return widget._rows;
  const ctx = measurer();
  const rows = [];
  for (const line of widget._lines || []) {
    if (line.bar !== undefined) rows.push(line);
    else for (const piece of wrap(ctx, line.text, boxWidth - 2 * PAD)) rows.push({ ...line, text: piece });
  }
  widget._rows = rows;
  widget._rowsKey = key;
  widget._rowsFor = widget._lines;
  return rows;
}

// ------------------------------------------------------------------ the widget

function makeWidget(node) {
  const widget = {
    name: WIDGET,
    type: "ve_status",
    value: "",
    hidden: true, // until the first event for this node
    // Read-only: `disabled` makes the canvas skip it for clicks, so the node can be dragged by it.
    disabled: true,
    serialize: false, // not in the workflow's widgets_values
    options: { serialize: false }, // not in the prompt
    _lines: [],
    _phaseColor: COLOR.dim,
    computeSize(width) {
      // Hidden / empty: take no room (-4 cancels the gap the canvas adds after each widget).
      if (this.hidden || !this._lines.length) return [0, -4];
      // Lines wrap to the node's width (the node is never widened: it would cover its neighbours).
      const w = (node.size && node.size[0]) || width || MIN_BOX_WIDTH;
      const rows = layout(this, w - 2 * MARGIN);
      return [MIN_BOX_WIDTH, rows.length * LINE_H + 2 * PAD];
    },
    draw(ctx, n, widgetWidth, y, _H, lowQuality) {
      if (!this._lines.length) return;
      const w = widgetWidth - 2 * MARGIN;
      const rows = layout(this, w);
      const h = rows.length * LINE_H + 2 * PAD;
      ctx.save();
      // The canvas draws disabled widgets at half opacity; this one is only "disabled" to let
      // clicks through, so undo that.
      if (this.computedDisabled) ctx.globalAlpha = Math.min(1, ctx.globalAlpha * 2);
      ctx.fillStyle = COLOR.bg;
      ctx.strokeStyle = this._phaseColor;
      ctx.lineWidth = 1;
      ctx.beginPath();
      if (ctx.roundRect) ctx.roundRect(MARGIN, y, w, h, 6);
      else ctx.rect(MARGIN, y, w, h);
      ctx.fill();
      ctx.stroke();
      if (lowQuality) {
        ctx.restore();
        return;
      }
      ctx.font = FONT;
      ctx.textAlign = "left";
      ctx.textBaseline = "middle";
      let cy = y + PAD;
      for (const row of rows) {
        if (row.bar !== undefined) {
          const bx = MARGIN + PAD;
          const bw = w - 2 * PAD;
          const by = cy + (LINE_H - BAR_H) / 2;
          ctx.fillStyle = COLOR.bar_bg;
          ctx.fillRect(bx, by, bw, BAR_H);
          ctx.fillStyle = row.color || COLOR.blue;
          ctx.fillRect(bx, by, Math.round(bw * row.bar), BAR_H);
        } else {
          ctx.fillStyle = row.color || COLOR.text;
          ctx.font = row.bold ? "bold " + FONT : FONT;
          ctx.fillText(row.text, MARGIN + PAD, cy + LINE_H / 2);
        }
        cy += LINE_H;
      }
      ctx.restore();
    },
  };
  return widget;
}

function statusWidget(node) {
  if (!node.widgets) node.widgets = [];
  let w = node.widgets.find((x) => x && x.name === WIDGET);
  if (!w) {
    w = node.addCustomWidget ? node.addCustomWidget(makeWidget(node)) : null;
    if (!w) {
      w = makeWidget(node);
      node.widgets.push(w);
    }
  }
  return w;
}

// ------------------------------------------------------------------ state per node id

/** node id (string) -> merged status state. Exposed for tests/debugging as window.VideoEngineStatus. */
const states = new Map();

function isTarget(node) {
  return !!node && (NODE_CLASSES.has(node.comfyClass) || NODE_CLASSES.has(node.type));
}

function lookup(graph, id) {
  if (!graph || typeof graph.getNodeById !== "function") return null;
  return graph.getNodeById(id) ?? (/^\d+$/.test(id) ? graph.getNodeById(Number(id)) : null) ?? null;
}

/** The node of an execution id: "12", or "7:12" for a node inside subgraph node 7. */
function findNode(id) {
  const root = app.graph;
  const direct = lookup(root, id) || lookup(app.canvas?.graph, id);
  if (direct) return direct;
  const parts = id.split(":");
  if (parts.length < 2) return null;
  let graph = root;
  let node = null;
  for (const part of parts) {
    node = lookup(graph, part);
    if (!node) return null;
    graph = node.subgraph;
  }
  return node;
}

function render(node, st) {
  const widget = statusWidget(node);
  const lines = buildLines(st);
  widget._lines = lines;
  widget._phaseColor = (PHASE_LABEL[st.phase] || [null, COLOR.dim])[1];
  widget.value = linesToText(lines);
  widget.hidden = false;
  node.veStatus = st;

  // Make the node tall enough for every line (its width stays); on a new run, shrink back.
  try {
    const need = node.computeSize();
    const height = st.phase === "start" ? need[1] : Math.max(node.size[1], need[1]);
    const size = [Math.max(node.size[0], need[0]), height];
    if (typeof node.setSize === "function") node.setSize(size);
    else node.size = size;
  } catch (e) {
    console.debug("[video-engine] resize failed", e);
  }
  app.graph?.setDirtyCanvas?.(true, true);
  app.canvas?.setDirty?.(true, true);
}

function onStatus(event) {
  const p = event?.detail;
  if (!p || typeof p !== "object" || p.node === undefined || p.node === null) return;
  const id = String(p.node);
  const prev = p.phase === "start" ? null : states.get(id);
  // Keep what earlier events said when a later one leaves a field out.
  const st = { ...(prev || {}) };
  for (const [k, v] of Object.entries(p)) if (v !== undefined && v !== null) st[k] = v;
  if (p.phase === "start") {
    delete st.report;
    delete st.error;
  }
  if (p.eta_s === null) st.eta_s = null;
  st.updated = Date.now();
  states.set(id, st);

  const node = findNode(id);
  if (node && isTarget(node)) render(node, st);
}

app.registerExtension({
  name: "VideoEngine.Status",

  async setup() {
    api.addEventListener(EVENT, (e) => {
      try {
        onStatus(e);
      } catch (err) {
        console.warn("[video-engine] could not show the status", err);
      }
    });
    window.VideoEngineStatus = { states, formatEta, buildLines, linesToText, findNode, widget: WIDGET };
  },

  async nodeCreated(node) {
    if (!isTarget(node)) return;
    statusWidget(node);
  },
});
