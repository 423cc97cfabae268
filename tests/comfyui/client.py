"""A small client for a real ComfyUI server: HTTP through urllib, events through websocket-client.

    c = ComfyClient("http://127.0.0.1:8199")
    info = c.object_info("LoadVideo")          # the node's schema, or None when not registered
    up = c.upload_file("clip.mp4")            # -> {"name": ..., "subfolder": ..., "type": "input"}
    res = c.run(prompt, timeout=120)          # queue + collect every websocket message for it
    res.status, res.error, res.progress, res.outputs, res.messages

``run`` opens the websocket before queueing, so no event of the prompt is missed. Every text
message is kept unless it names another prompt's ``prompt_id``, so custom events a node sends
with ``PromptServer.instance.send_sync("<event>", data)`` show up in ``messages`` too. Binary
frames (latent/image previews) are skipped.
"""
from __future__ import annotations

import json
import mimetypes
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import websocket  # the websocket-client package

__all__ = ["ComfyClient", "ComfyHTTPError", "PromptRejected", "RunResult", "RunTimeout"]

DONE_EVENTS = ("execution_success", "execution_error", "execution_interrupted")


class ComfyHTTPError(RuntimeError):
    """A non-2xx answer. ``body`` is the decoded JSON when the server sent JSON, else the text."""

    def __init__(self, method: str, url: str, status: int, body: Any):
        self.method, self.url, self.status, self.body = method, url, status, body
        text = body if isinstance(body, str) else json.dumps(body)[:2000]
        super().__init__(f"{method} {url} -> HTTP {status}: {text}")


class PromptRejected(ComfyHTTPError):
    """POST /prompt refused the graph (validation). ``error`` and ``node_errors`` come from the body."""

    @property
    def error(self) -> dict:
        return self.body.get("error", {}) if isinstance(self.body, dict) else {}

    @property
    def node_errors(self) -> dict:
        return self.body.get("node_errors", {}) if isinstance(self.body, dict) else {}


class RunTimeout(TimeoutError):
    """``run`` gave up waiting; ``result`` holds what was received (status "timeout")."""

    def __init__(self, message: str, result: "RunResult"):
        super().__init__(message)
        self.result = result


@dataclass
class RunResult:
    prompt_id: str
    status: str = "pending"  # "success" | "error" | "interrupted" | "timeout"
    messages: list[tuple[str, Any]] = field(default_factory=list)
    progress: list[tuple[int, int, str | None]] = field(default_factory=list)
    error: dict | None = None
    outputs: dict = field(default_factory=dict)
    history: dict | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "success"

    def of_type(self, msg_type: str) -> list[Any]:
        """The data of every kept message of one type, in arrival order."""
        return [data for t, data in self.messages if t == msg_type]

    @property
    def types(self) -> list[str]:
        return [t for t, _ in self.messages]

    @property
    def executed_nodes(self) -> list[str]:
        return [d.get("node") for d in self.of_type("executing") if isinstance(d, dict) and d.get("node")]

    def files(self, kind: str | None = None) -> list[dict]:
        """File entries ({filename, subfolder, type}) of every output, optionally one kind
        ("images", "gifs", "video", ...)."""
        found = []
        for node_out in self.outputs.values():
            for key, items in node_out.items():
                if kind is not None and key != kind:
                    continue
                for item in items if isinstance(items, list) else []:
                    if isinstance(item, dict) and "filename" in item:
                        found.append(item)
        return found

    def raise_for_status(self) -> "RunResult":
        if self.status != "success":
            detail = self.error or {}
            raise AssertionError(
                f"prompt {self.prompt_id} ended with status {self.status!r}: "
                f"{detail.get('node_type')} #{detail.get('node_id')}: "
                f"{detail.get('exception_type')}: {detail.get('exception_message')}\n"
                + "".join(detail.get("traceback") or [])
            )
        return self


class ComfyClient:
    def __init__(self, base_url: str, client_id: str | None = None, timeout: float = 30.0,
                 comfy_dir: str | Path | None = None):
        self.base_url = base_url.rstrip("/")
        parts = urllib.parse.urlsplit(self.base_url)
        self.ws_base = ("wss" if parts.scheme == "https" else "ws") + "://" + parts.netloc
        self.client_id = client_id or uuid.uuid4().hex
        self.timeout = timeout
        # The ComfyUI folder when the server runs on this machine (input/, output/, user/).
        self.comfy_dir = Path(comfy_dir) if comfy_dir else None
        self.last_node_errors: dict = {}

    def __repr__(self) -> str:
        return f"ComfyClient({self.base_url!r})"

    # ------------------------------------------------------------------ HTTP plumbing
    def request(self, method: str, path: str, data: bytes | None = None,
                headers: dict | None = None, timeout: float | None = None) -> tuple[int, bytes, str]:
        url = self.base_url + path
        req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout or self.timeout) as r:
                return r.status, r.read(), r.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:
            raw = e.read()
            ctype = e.headers.get("Content-Type", "") if e.headers else ""
            exc = PromptRejected if (method == "POST" and path == "/prompt") else ComfyHTTPError
            raise exc(method, url, e.code, _decode(raw, ctype)) from None

    def get_json(self, path: str, **kw) -> Any:
        _, raw, ctype = self.request("GET", path, **kw)
        return _decode(raw, ctype or "application/json")

    def post_json(self, path: str, payload: Any = None, **kw) -> Any:
        data = json.dumps(payload if payload is not None else {}).encode()
        _, raw, ctype = self.request("POST", path, data, {"Content-Type": "application/json"}, **kw)
        return _decode(raw, ctype) if raw else None

    # ------------------------------------------------------------------ API
    def is_up(self) -> bool:
        try:
            return self.request("GET", "/", timeout=3)[0] == 200
        except (OSError, ComfyHTTPError):
            return False

    def system_stats(self) -> dict:
        return self.get_json("/system_stats")

    def object_info(self, node: str | None = None) -> dict | None:
        """All node schemas ({class: schema}), or one node's schema (None when not registered)."""
        if node is None:
            return self.get_json("/object_info", timeout=max(self.timeout, 60))
        data = self.get_json("/object_info/" + urllib.parse.quote(node, safe=""))
        return data.get(node) if isinstance(data, dict) else None

    def upload_file(self, path: str | Path, subfolder: str = "", overwrite: bool = True,
                    name: str | None = None, type: str = "input") -> dict:
        """POST /upload/image (multipart). Any file type works (.png, .mp4, ...); it lands in
        ComfyUI's input/ (or output/, temp/ with type=...). Returns {"name", "subfolder", "type"}.
        Use the returned name (plus "subfolder/" when set) as the value of a Load* node input."""
        path = Path(path)
        fields = {"type": type, "subfolder": subfolder, "overwrite": "true" if overwrite else "false"}
        body, ctype = _multipart(fields, "image", name or path.name, path.read_bytes())
        _, raw, rtype = self.request("POST", "/upload/image", body, {"Content-Type": ctype},
                                     timeout=max(self.timeout, 120))
        return _decode(raw, rtype or "application/json")

    def queue(self, prompt: dict, extra_data: dict | None = None, front: bool = False) -> str:
        """POST /prompt; returns the prompt_id. Raises PromptRejected when validation fails."""
        payload: dict[str, Any] = {"prompt": prompt, "client_id": self.client_id}
        if extra_data:
            payload["extra_data"] = extra_data
        if front:
            payload["front"] = True
        resp = self.post_json("/prompt", payload)
        if resp.get("node_errors"):
            # ComfyUI queues a graph whose broken parts are not needed by any output, but reports them.
            self.last_node_errors = resp["node_errors"]
        return resp["prompt_id"]

    def interrupt(self, prompt_id: str | None = None) -> None:
        self.post_json("/interrupt", {"prompt_id": prompt_id} if prompt_id else {})

    def queue_state(self) -> dict:
        return self.get_json("/queue")

    def history(self, prompt_id: str | None = None) -> dict | None:
        """One prompt's history entry (None while absent), or the whole history when no id."""
        if prompt_id is None:
            return self.get_json("/history")
        return self.get_json("/history/" + urllib.parse.quote(prompt_id, safe="")).get(prompt_id)

    def view(self, filename: str, subfolder: str = "", type: str = "output") -> bytes:
        q = urllib.parse.urlencode({"filename": filename, "subfolder": subfolder, "type": type})
        return self.request("GET", "/view?" + q, timeout=max(self.timeout, 120))[1]

    def file_path(self, entry: dict) -> Path:
        """Local path of an output/input file entry (needs comfy_dir)."""
        if self.comfy_dir is None:
            raise RuntimeError("comfy_dir unknown: this client talks to a remote server; use view()")
        return self.comfy_dir / entry.get("type", "output") / entry.get("subfolder", "") / entry["filename"]

    # ------------------------------------------------------------------ websocket
    def connect_ws(self, timeout: float | None = None) -> websocket.WebSocket:
        url = f"{self.ws_base}/ws?clientId={urllib.parse.quote(self.client_id)}"
        return websocket.create_connection(url, timeout=timeout or self.timeout)

    def iter_messages(self, ws: websocket.WebSocket, deadline: float) -> Iterable[tuple[str, Any]]:
        """Yield (type, data) of text messages until the deadline (then raise socket timeout)."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise websocket.WebSocketTimeoutException("deadline reached")
            ws.settimeout(left)
            opcode, payload = ws.recv_data()
            if opcode != websocket.ABNF.OPCODE_TEXT:
                continue  # binary previews, pings, ...
            try:
                msg = json.loads(payload.decode("utf-8") if isinstance(payload, bytes) else payload)
            except ValueError:
                continue
            if isinstance(msg, dict) and "type" in msg:
                yield msg["type"], msg.get("data")

    def run(self, prompt: dict, timeout: float = 300.0, extra_data: dict | None = None,
            on_message: Callable[[str, Any], None] | None = None,
            interrupt_on_timeout: bool = True) -> RunResult:
        """Queue a prompt and collect its websocket messages until it succeeds, fails or is
        interrupted; then read its outputs from /history. Raises PromptRejected when the graph
        does not validate, RunTimeout (with the partial result) after ``timeout`` seconds."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        ws = self.connect_ws()
        try:
            pid = self.queue(prompt, extra_data)
            result = RunResult(prompt_id=pid)
            try:
                for mtype, data in self.iter_messages(ws, deadline):
                    other = data.get("prompt_id") if isinstance(data, dict) else None
                    if other is not None and other != pid:
                        continue
                    result.messages.append((mtype, data))
                    if on_message is not None:
                        on_message(mtype, data)
                    if mtype == "progress" and isinstance(data, dict):
                        result.progress.append((data.get("value"), data.get("max"), data.get("node")))
                    if other == pid and mtype in DONE_EVENTS:
                        result.status = {"execution_success": "success", "execution_error": "error",
                                         "execution_interrupted": "interrupted"}[mtype]
                        if mtype == "execution_error":
                            result.error = data
                        break
            except (websocket.WebSocketTimeoutException, TimeoutError):
                result.status = "timeout"
                result.seconds = time.monotonic() - t0
                if interrupt_on_timeout:
                    try:
                        self.interrupt(pid)
                    except (OSError, ComfyHTTPError):
                        pass
                raise RunTimeout(f"prompt {pid} not finished after {timeout:.0f}s "
                                 f"(last events: {result.types[-8:]})", result) from None
        finally:
            ws.close()
        result.seconds = time.monotonic() - t0
        # The history entry is written just after the final event: poll briefly for it.
        for _ in range(100):
            entry = self.history(pid)
            if entry is not None:
                result.history = entry
                result.outputs = entry.get("outputs", {}) or {}
                break
            time.sleep(0.05)
        return result

    def run_interrupted(self, prompt: dict, node: str, timeout: float = 300.0) -> RunResult:
        """Run a prompt and interrupt it (a user's Cancel) at the first progress message of `node` that is
        neither its start nor its end; asserts that it came and that the run ended interrupted."""
        sent = []

        def on_message(mtype, data):
            if mtype == "progress" and str(data.get("node")) == str(node) and 0 < data["value"] < data["max"] \
                    and not sent:
                sent.append(data["value"])
                self.interrupt(data.get("prompt_id"))

        result = self.run(prompt, timeout=timeout, on_message=on_message)
        assert sent, "the run ended before it could be interrupted"
        assert result.status == "interrupted", (result.status, result.error)
        return result


# ---------------------------------------------------------------------- helpers
def _decode(raw: bytes, ctype: str) -> Any:
    text = raw.decode("utf-8", errors="replace")
    if "json" in ctype or text[:1] in "{[":
        try:
            return json.loads(text)
        except ValueError:
            pass
    return text


def _multipart(fields: dict[str, str], file_field: str, filename: str, content: bytes) -> tuple[bytes, str]:
    boundary = "----ve" + uuid.uuid4().hex
    ctype = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    out = bytearray()
    for k, v in fields.items():
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n").encode()
    safe_name = filename.replace('"', "_").replace("\r", "_").replace("\n", "_")
    out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{file_field}\"; "
            f"filename=\"{safe_name}\"\r\nContent-Type: {ctype}\r\n\r\n").encode()
    out += content + f"\r\n--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"
