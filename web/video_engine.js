// Video Engine: live status of a VideoInterpolate run, drawn on the node.
//
// The node sends `video_engine.status` over ComfyUI's websocket (nodes/status.py):
//   { node, phase: "start"|"progress"|"fallback"|"done"|"error"|"cancelled", device, precision,
//     batch, method, path: [rung, ...], done, total, eta_s, events: [{at, kind, error, rung}, ...],
//     report (on "done"), error (on "error"/"cancelled"), prompt_id }
// Every field may be missing; nothing here throws on a partial payload.
//
// The status is a read-only widget named "ve_status" at the bottom of every VideoInterpolate and
// VideoInterpolateStream node:
// a box of a fixed number of one-line rows (phase, progress bar, device, path, last event), drawn
// on the canvas. Its room is part of the node from the start, so a run never changes the node's
// size (nothing to cover the nodes below, nothing new saved in the workflow); rows are cut to the
// node's width and the box is clipped to the node. Everything else (every fallback, the error, the
// report) is on demand: the node's context menu "Video Engine: run details". The widget's `value`
// is that full text, so tests and other extensions can read it; it is never saved in the workflow
// nor sent with the prompt.
//
// A node inside a subgraph reports as "outer:inner"; the outer subgraph node(s) then
// show a one-line badge above their title.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const EVENT = "video_engine.status";
const NODE_CLASSES = new Set(["VideoInterpolate", "VideoInterpolateStream"]);
const WIDGET = "ve_status";
const MENU_LABEL = "Video Engine: run details";

const FONT = "12px ui-monospace, 'DejaVu Sans Mono', Menlo, Consolas, monospace";
const LINE_H = 16;
const PAD = 6; // inside the box
const MARGIN = 10; // box to node edge
const BAR_H = 8;
const ROWS = 7; // the box never has more (nor fewer) rows
const BOX_H = ROWS * LINE_H + 2 * PAD;
const MIN_BOX_WIDTH = 160;
const MAX_LINE_CHARS = 400; // longer texts (e.g. huge error messages) are cut

const COLOR = {
  text: "#dddddd",
  dim: "#9a9a9a",
  amber: "#f5a524",
  red: "#ff6b6b",
  green: "#7bd88f",
  blue: "#5aa9ff",
  grey: "#c8c8c8",
  bg: "rgba(10, 10, 10, 0.55)",
  bar_bg: "#333333",
};

const PHASE_LABEL = {
  idle: ["no run yet", COLOR.dim],
  start: ["starting", COLOR.blue],
  progress: ["running", COLOR.blue],
  fallback: ["fallback", COLOR.amber],
  done: ["done", COLOR.green],
  error: ["error", COLOR.red],
  cancelled: ["cancelled", COLOR.grey],
};
const FINISHED = new Set(["done", "error", "cancelled"]);

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
  if (!ev || typeof ev !== "object") return `fallback: ${str(ev)}`;
  const at = ev.at !== undefined && ev.at !== null ? ` at frame ${str(ev.at)}` : "";
  const kind = str(ev.kind, "failure");
  const err = ev.error ? ` (${str(ev.error)})` : "";
  const rung = ev.rung ? ` → ${str(ev.rung)}` : "";
  return `fallback${at}: ${kind}${err}${rung}`;
}

function eventsOf(st) {
  return Array.isArray(st.events) ? st.events : [];
}

function pathOf(st) {
  return Array.isArray(st.path) ? st.path.map((r) => str(r)) : st.path ? [str(st.path)] : [];
}

function progressText(st) {
  const done = num(st.done);
  const total = num(st.total);
  let prog = `frames ${done ?? "?"}/${total ?? "?"}`;
  if (done !== null && total) prog += ` (${Math.min(100, Math.floor((100 * done) / total))}%)`;
  if (!FINISHED.has(st.phase)) prog += ` · ETA ${formatEta(st.eta_s)}`;
  return prog;
}

/**
 * The box: exactly ROWS rows, each [{text, color, bold}] or {bar: fraction}. Long texts are cut
 * when drawn; whatever does not fit is in detailsText().
 */
export function buildLines(st) {
  const [label, color] = PHASE_LABEL[st.phase] || [str(st.phase, "status"), COLOR.text];
  const rows = [{ text: `Video Engine: ${label}`, color, bold: true }];
  if (st.phase === "idle") {
    rows.push({ text: "the status of the next run shows here", color: COLOR.dim });
    while (rows.length < ROWS) rows.push({ text: "", color: COLOR.dim });
    return rows;
  }
  const done = num(st.done);
  const total = num(st.total);
  rows.push({ text: progressText(st), color: COLOR.text });
  rows.push({ bar: done !== null && total ? Math.max(0, Math.min(1, done / total)) : 0, color });
  rows.push({
    text: [`${str(st.device)}`, str(st.precision, "precision ?"), `batch ${str(st.batch)}`, str(st.method)].join(" · "),
    color: COLOR.text,
  });
  const path = pathOf(st);
  const events = eventsOf(st);
  const nfb = Math.max(path.length, events.filter((e) => e && e.rung !== "exhausted").length);
  rows.push(
    nfb
      ? { text: `⚠ ${nfb} fallback${nfb === 1 ? "" : "s"}: ${path.join(" → ")}`, color: COLOR.amber }
      : { text: "path as planned (no fallback)", color: COLOR.dim },
  );
  // The one line that matters most now.
  let last;
  if (st.phase === "error") last = { text: `error: ${str(st.error, "the run failed")}`, color: COLOR.red };
  else if (st.phase === "cancelled") last = { text: `cancelled at frame ${done ?? "?"} of ${total ?? "?"}`, color: COLOR.grey };
  else if (events.length) last = { text: "last " + formatEvent(events[events.length - 1]), color: COLOR.amber };
  else if (st.phase === "done") {
    const first = typeof st.report === "string" ? st.report.split(/\r?\n/)[0] : "";
    last = { text: first || "finished", color: COLOR.green };
  } else last = { text: "", color: COLOR.dim };
  rows.push(last);
  rows.push({ text: "right-click the node: run details", color: COLOR.dim });
  return rows.slice(0, ROWS);
}

/** Everything about the run, each fact once (the report, when there is one, lists the fallbacks). */
export function detailsText(st) {
  const [label] = PHASE_LABEL[st.phase] || [str(st.phase, "status")];
  const lines = [`Video Engine: ${label}`];
  if (st.phase === "idle") return lines.join("\n");
  lines.push(`device ${str(st.device)} · ${str(st.precision, "precision ?")} · batch ${str(st.batch)}`);
  lines.push(`method ${str(st.method)}`);
  const path = pathOf(st);
  lines.push(`path ${path.length ? path.join(" → ") : "as planned (no fallback)"}`);
  lines.push(progressText(st));
  const report = typeof st.report === "string" && st.report.trim() ? st.report : null;
  if (!report) for (const ev of eventsOf(st)) lines.push(formatEvent(ev));
  if (st.phase === "error") lines.push(`error: ${str(st.error, "the run failed")}`);
  if (st.phase === "cancelled") lines.push(str(st.error, "cancelled by the user"));
  if (report) {
    lines.push("report:");
    for (const raw of report.split(/\r?\n/)) lines.push("  " + str(raw, ""));
  }
  return lines.join("\n");
}

/** One line for the outer node of a subgraph. */
export function badgeText(st) {
  const [label] = PHASE_LABEL[st.phase] || [str(st.phase, "status")];
  const done = num(st.done);
  const total = num(st.total);
  let t = `Video Engine: ${label}`;
  if (done !== null && total) t += ` ${done}/${total}`;
  if (!FINISHED.has(st.phase)) t += ` · ETA ${formatEta(st.eta_s)}`;
  const n = pathOf(st).length;
  if (n) t += ` · ⚠ ${n} fallback${n === 1 ? "" : "s"}`;
  if (st.phase === "error") t += ` · ${str(st.error, "")}`;
  return t;
}

// ------------------------------------------------------------------ drawing

let measureCtx = null;
function measurer() {
  if (!measureCtx) measureCtx = document.createElement("canvas").getContext("2d");
  return measureCtx;
}

/** The longest start of `text` (with "…") no wider than maxWidth. */
function fit(ctx, text, maxWidth) {
  if (!text || ctx.measureText(text).width <= maxWidth) return text;
  if (maxWidth <= ctx.measureText("…").width) return "";
  let lo = 0;
  let hi = text.length;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (ctx.measureText(text.slice(0, mid) + "…").width <= maxWidth) lo = mid;
    else hi = mid - 1;
  }
  return text.slice(0, lo).trimEnd() + "…";
}

function drawBox(ctx, rows, x, y, w, h, border, alpha) {
  ctx.save();
  ctx.globalAlpha = alpha;
  ctx.beginPath();
  ctx.rect(x, y, w, h);
  ctx.clip(); // belt and braces: nothing leaves the box
  ctx.fillStyle = COLOR.bg;
  ctx.strokeStyle = border;
  ctx.lineWidth = 1;
  ctx.beginPath();
  if (ctx.roundRect) ctx.roundRect(x + 0.5, y + 0.5, w - 1, h - 1, 6);
  else ctx.rect(x + 0.5, y + 0.5, w - 1, h - 1);
  ctx.fill();
  ctx.stroke();
  ctx.textAlign = "left";
  ctx.textBaseline = "middle";
  const inner = w - 2 * PAD;
  let cy = y + PAD;
  for (const row of rows) {
    if (cy + LINE_H > y + h - PAD + 0.5) break; // a node made shorter than the box: show what fits
    if (row.bar !== undefined) {
      const by = cy + (LINE_H - BAR_H) / 2;
      ctx.fillStyle = COLOR.bar_bg;
      ctx.fillRect(x + PAD, by, inner, BAR_H);
      ctx.fillStyle = row.color || COLOR.blue;
      ctx.fillRect(x + PAD, by, Math.round(inner * row.bar), BAR_H);
    } else if (row.text) {
      ctx.font = row.bold ? "bold " + FONT : FONT;
      ctx.fillStyle = row.color || COLOR.text;
      ctx.fillText(fit(ctx, row.text, inner), x + PAD, cy + LINE_H / 2);
    }
    cy += LINE_H;
  }
  ctx.restore();
}

// ------------------------------------------------------------------ the widget

function makeWidget(node) {
  return {
    name: WIDGET,
    type: "ve_status",
    value: "",
    // Read-only: `disabled` makes the canvas skip it for clicks, so the node can be dragged by it.
    disabled: true,
    serialize: false, // not in the workflow's widgets_values
    options: { serialize: false }, // not in the prompt
    _lines: buildLines({ phase: "idle" }),
    _phaseColor: COLOR.dim,
    computeSize() {
      // Always the same: the node's size does not depend on what a run says.
      return [MIN_BOX_WIDTH, BOX_H];
    },
    draw(ctx, n, widgetWidth, y) {
      const nodeW = (n && n.size && n.size[0]) || widgetWidth;
      const nodeH = n && n.size ? n.size[1] : y + BOX_H;
      const w = Math.min(widgetWidth, nodeW) - 2 * MARGIN;
      const h = Math.min(BOX_H, nodeH - y - 2);
      if (w < 2 * PAD + 10 || h < LINE_H) return;
      // The canvas draws disabled widgets at half opacity; this one is only "disabled" to let
      // clicks through, so undo that.
      const alpha = this.computedDisabled ? Math.min(1, ctx.globalAlpha * 2) : ctx.globalAlpha;
      drawBox(ctx, this._lines, MARGIN, y, w, h, this._phaseColor, alpha);
    },
  };
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

// ------------------------------------------------------------------ details on demand

function showDetails(node) {
  const st = node.veStatus || { phase: "idle" };
  const old = document.getElementById("ve-status-details");
  if (old) old.remove();
  const box = document.createElement("div");
  box.id = "ve-status-details";
  box.setAttribute("role", "dialog");
  box.setAttribute("aria-label", MENU_LABEL);
  Object.assign(box.style, {
    position: "fixed", left: "50%", top: "12%", transform: "translateX(-50%)", zIndex: 10000,
    maxWidth: "min(900px, 90vw)", maxHeight: "70vh", overflow: "auto", padding: "12px 16px",
    background: "#1e1e1e", color: COLOR.text, border: "1px solid #555", borderRadius: "8px",
    boxShadow: "0 8px 30px rgba(0,0,0,.5)", font: FONT,
  });
  const head = document.createElement("div");
  Object.assign(head.style, { display: "flex", justifyContent: "space-between", gap: "16px", marginBottom: "8px" });
  const title = document.createElement("b");
  title.textContent = `${node.title || node.type} #${node.id}`;
  const close = document.createElement("button");
  close.textContent = "Close";
  close.onclick = () => box.remove();
  head.append(title, close);
  const pre = document.createElement("pre");
  pre.style.margin = "0";
  pre.style.whiteSpace = "pre-wrap";
  pre.textContent = detailsText(st);
  box.append(head, pre);
  box.addEventListener("keydown", (e) => e.key === "Escape" && box.remove());
  document.body.append(box);
  close.focus();
  return box;
}

// ------------------------------------------------------------------ subgraph badge

function drawBadge(ctx, node) {
  const b = node.veBadge;
  if (!b || !b.text) return;
  const title = (globalThis.LiteGraph && globalThis.LiteGraph.NODE_TITLE_HEIGHT) || 30;
  ctx.save();
  ctx.font = FONT;
  // As wide as the text (up to 420 px), never narrower than the node: it sits above the title.
  const w = Math.max(node.size[0], Math.min(420, ctx.measureText(b.text).width + 8));
  const y = -title - LINE_H - 6;
  ctx.beginPath();
  ctx.rect(0, y, w, LINE_H + 4);
  ctx.clip();
  ctx.fillStyle = COLOR.bg;
  ctx.fillRect(0, y, w, LINE_H + 4);
  ctx.fillStyle = b.color;
  ctx.textAlign = "left";
  ctx.textBaseline = "middle";
  ctx.fillText(fit(ctx, b.text, w - 8), 4, y + (LINE_H + 4) / 2);
  ctx.restore();
}

function setBadge(node, st) {
  if (!node.__veBadgeHooked) {
    node.__veBadgeHooked = true;
    const orig = node.onDrawForeground;
    node.onDrawForeground = function (ctx, ...rest) {
      const r = orig ? orig.call(this, ctx, ...rest) : undefined;
      try {
        drawBadge(ctx, this);
      } catch (e) {
        console.debug("[video-engine] badge", e);
      }
      return r;
    };
  }
  node.veBadge = { text: badgeText(st), color: (PHASE_LABEL[st.phase] || [null, COLOR.text])[1] };
}

// ------------------------------------------------------------------ state per node id

/** execution id (string) -> merged status state. Exposed for tests/debugging as window.VideoEngineStatus. */
const states = new Map();

function isTarget(node) {
  return !!node && (NODE_CLASSES.has(node.comfyClass) || NODE_CLASSES.has(node.type));
}

function lookup(graph, id) {
  if (!graph || typeof graph.getNodeById !== "function") return null;
  return graph.getNodeById(id) ?? (/^\d+$/.test(id) ? graph.getNodeById(Number(id)) : null) ?? null;
}

/**
 * The node of an execution id and the subgraph nodes around it: "12", or "7:12" for node 12
 * inside subgraph node 7 (outer = [node 7]).
 */
function resolve(id) {
  const root = app.graph;
  const parts = id.split(":");
  if (parts.length > 1) {
    let graph = root;
    const chain = [];
    for (const part of parts) {
      const node = lookup(graph, part);
      if (!node) break;
      chain.push(node);
      graph = node.subgraph;
    }
    if (chain.length === parts.length) return { node: chain[chain.length - 1], outer: chain.slice(0, -1) };
    return { node: null, outer: chain.filter((n) => n.subgraph) };
  }
  return { node: lookup(root, id) || lookup(app.canvas?.graph, id), outer: [] };
}

function findNode(id) {
  return resolve(String(id)).node;
}

function render(node, st) {
  const widget = statusWidget(node);
  widget._lines = buildLines(st);
  widget._phaseColor = (PHASE_LABEL[st.phase] || [null, COLOR.dim])[1];
  widget.value = detailsText(st);
  node.veStatus = st;
  // The node's size is left alone: the box's room is already part of it.
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

  const { node, outer } = resolve(id);
  if (node && isTarget(node)) render(node, st);
  for (const o of outer) setBadge(o, st);
  app.graph?.setDirtyCanvas?.(true, true);
  app.canvas?.setDirty?.(true, true);
}

function addMenuItem(node, options) {
  if (!isTarget(node)) return;
  options.push({ content: MENU_LABEL, callback: () => showDetails(node) });
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
    window.VideoEngineStatus = {
      states, formatEta, buildLines, detailsText, badgeText, findNode, showDetails,
      widget: WIDGET, menuLabel: MENU_LABEL, rows: ROWS, boxHeight: BOX_H,
    };
  },

  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!NODE_CLASSES.has(nodeData?.name)) return;
    const orig = nodeType.prototype.getExtraMenuOptions;
    nodeType.prototype.getExtraMenuOptions = function (canvas, options) {
      const r = orig ? orig.apply(this, arguments) : undefined;
      try {
        addMenuItem(this, options);
      } catch (e) {
        console.debug("[video-engine] menu", e);
      }
      return r;
    };
  },

  async nodeCreated(node) {
    if (!isTarget(node)) return;
    statusWidget(node);
    // The box's room is part of the node from the start (a created node is sized before
    // nodeCreated runs; a loaded one is sized to computeSize() by the app after loading).
    try {
      const need = node.computeSize();
      if (node.size[1] < need[1]) node.setSize([Math.max(node.size[0], need[0]), need[1]]);
    } catch (e) {
      console.debug("[video-engine] size", e);
    }
  },
});
