"""Live status of a VideoInterpolate run, for the frontend (web/) and any API client.

Event ``video_engine.status`` (PromptServer.send_sync), payload:

    node       the node's unique id (str)
    phase      "start" | "progress" | "fallback" | "done" | "error" | "cancelled" (the user's Cancel)
    device     e.g. "cpu", "cuda:0"          precision  "fp32" | "fp16" | "bf16"
    batch      frames per forward pass       method     what runs (e.g. "RIFE 4.25 (x.pkl)")
    path       recovery rungs taken so far (list of str)
    done, total  output frames written / to write
    eta_s      seconds left (float) or null, from the progress timestamps (the guard's estimate
               until there are two progress points)
    events     the fallback events so far (list of dicts, engine.ladder format)
    report     on "done" only: the readable report (engine.pipeline.format_report)
    error      on "error": the message; on "cancelled": "cancelled by the user"
    prompt_id  the prompt being executed (extra key; clients can filter on it)

"start", "fallback", "done", "error" and "cancelled" are always sent; "progress" at most every
``min_interval`` seconds (and always when done == total). This module does not import ComfyUI:
the sender is injected, so it can be tested alone.
"""
from __future__ import annotations

import logging
import time
from typing import Callable

log = logging.getLogger(__name__)

EVENT = "video_engine.status"

_PRECISION = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}


def precision_name(dtype) -> str | None:
    if dtype is None:
        return None
    s = str(dtype).replace("torch.", "")
    return _PRECISION.get(s, s)


class StatusReporter:
    def __init__(self, node_id, send: Callable[[str, dict], None], *, prompt_id=None, min_interval: float = 0.2,
                 clock: Callable[[], float] = time.monotonic):
        self.node = "" if node_id is None else str(node_id)
        self.prompt_id = prompt_id
        self._send = send
        self.min_interval = float(min_interval)
        self.clock = clock
        self.device = self.precision = self.batch = self.method = None
        self.path: list[str] = []
        self.events: list[dict] = []
        self.done = 0
        self.total = 0
        self.eta_s: float | None = None
        self._first: tuple[float, int] | None = None  # (time, done) of the first progress point
        self._last_sent = float("-inf")
        self.sent: list[dict] = []  # what was sent (kept for the node's own log / tests)

    # -- state updates -----------------------------------------------------------------------
    def _apply_settings(self, settings: dict | None, method: str | None = None) -> None:
        if settings:
            self.device = settings.get("device", self.device)
            if "dtype" in settings:
                self.precision = precision_name(settings["dtype"])
            self.batch = settings.get("batch_size", self.batch)
        if method:
            self.method = method

    def _payload(self, phase: str, **extra) -> dict:
        p = dict(node=self.node, phase=phase, device=self.device, precision=self.precision, batch=self.batch,
                 method=self.method, path=list(self.path), done=int(self.done), total=int(self.total),
                 eta_s=None if self.eta_s is None else round(float(self.eta_s), 2), events=list(self.events))
        if self.prompt_id is not None:
            p["prompt_id"] = self.prompt_id
        p.update(extra)
        return p

    def _emit(self, phase: str, **extra) -> None:
        payload = self._payload(phase, **extra)
        self.sent.append(payload)
        try:
            self._send(EVENT, payload)
        except Exception:  # noqa: BLE001 - a status message must never break the run
            log.debug("could not send %s", EVENT, exc_info=True)

    # -- engine callbacks --------------------------------------------------------------------
    def start(self, info: dict) -> None:
        """engine.pipeline.interpolate's on_plan: the guard's plan is known."""
        plan = info.get("plan") or {}
        self._apply_settings(plan.get("settings"), info.get("method"))
        self.total = int(info.get("frames_out") or 0)
        self.done = 0
        self.eta_s = plan.get("eta_s")
        self._first = None
        self._emit("start")
        self._last_sent = self.clock()

    def progress(self, done: int, total: int) -> None:
        now = self.clock()
        self.done, self.total = int(done), int(total)
        if self._first is None:
            self._first = (now, self.done)
        else:
            t0, d0 = self._first
            if self.done > d0 and now > t0:
                self.eta_s = max(0.0, (self.total - self.done) * (now - t0) / (self.done - d0))
        if self.done >= self.total:
            self.eta_s = 0.0
        if self.done >= self.total or now - self._last_sent >= self.min_interval:
            self._last_sent = now
            self._emit("progress")

    def fallback(self, event: dict) -> None:
        """engine on_event: a recovery rung was taken (or the ladder ran out)."""
        self.events.append(dict(event))
        rung = event.get("rung")
        if rung and rung != "exhausted":
            self.path.append(rung)
        self._apply_settings(event.get("next_settings"), event.get("next_method"))
        self._first = None  # the speed changes with the settings: measure again
        self._emit("fallback")
        self._last_sent = self.clock()

    def finish(self, report: dict, report_text: str) -> None:
        self._apply_settings(report.get("final_settings"), report.get("method"))
        self.path = list(report.get("path") or self.path)
        self.done = self.total = int(report.get("frames_out", self.total))
        self.eta_s = 0.0
        self._emit("done", report=report_text)

    def error(self, message: str) -> None:
        self.eta_s = None
        self._emit("error", error=message)

    def cancelled(self) -> None:
        """The user cancelled the run: not an error."""
        self.eta_s = None
        self._emit("cancelled", error="cancelled by the user")
