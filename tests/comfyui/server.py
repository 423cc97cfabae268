"""The shared, session-wide ComfyUI server for tests (a pytest plugin).

Both tests/comfyui/conftest.py and tests/browser/conftest.py register this module as a plugin
(once per pytest run, under the name ``ve-comfyui-server``), so its ``comfy`` fixture is defined
exactly once and one server serves every test of the session, whichever folders are collected.

The server is started with ``tools/comfyui.sh up --port <free port> --root <ROOT>``:
  ROOT = $VE_COMFY_ROOT, else the script's default (~/.cache/video-engine/comfyui), so a second
  run reuses the install. The first run installs (a few minutes).
Environment knobs:
  VE_COMFY_URL=http://host:port   use an already running server instead (nothing started/stopped)
  VE_COMFY_INSTALL_TIMEOUT=S      limit for install + start (default 1800 s)
"""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections import deque
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from client import ComfyClient  # noqa: E402

REPO = HERE.parents[1]
SCRIPT = REPO / "tools" / "comfyui.sh"
PLUGIN_NAME = "ve-comfyui-server"
LOG_TAIL_LINES = 60


def register(config: pytest.Config) -> None:
    """Register this module as a pytest plugin unless already done (call from pytest_configure)."""
    pm = config.pluginmanager
    if pm.get_plugin(PLUGIN_NAME) is None and not pm.is_registered(sys.modules[__name__]):
        pm.register(sys.modules[__name__], PLUGIN_NAME)


def default_root() -> Path:
    env = os.environ.get("VE_COMFY_ROOT")
    if env:
        return Path(env)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "video-engine" / "comfyui"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ComfyServer:
    """A server started (and stopped) through tools/comfyui.sh."""

    def __init__(self, root: Path, port: int):
        self.root, self.port = root, port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = root / "logs" / f"comfyui-{port}.log"
        self.comfy_dir = root / "ComfyUI"
        self.started = False

    def _script(self, action: str, *extra: str, timeout: float = 120) -> subprocess.CompletedProcess:
        cmd = ["bash", str(SCRIPT), action, "--port", str(self.port), "--root", str(self.root), *extra]
        return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)

    def start(self) -> None:
        limit = float(os.environ.get("VE_COMFY_INSTALL_TIMEOUT", "1800"))
        try:
            proc = self._script("up", "--timeout", "300", timeout=limit)
        except subprocess.TimeoutExpired as e:
            self.stop()
            raise RuntimeError(f"tools/comfyui.sh up did not finish within {limit:.0f}s\n"
                               f"{_text(e.stdout)}{_text(e.stderr)}") from None
        if proc.returncode != 0:
            raise RuntimeError(f"tools/comfyui.sh up failed (exit {proc.returncode}):\n"
                               f"{proc.stdout}{proc.stderr}\n--- server log tail ---\n{self.log_tail()}")
        self.started = True
        self.start_output = proc.stderr

    def stop(self) -> None:
        try:
            self._script("stop", timeout=60)
        finally:
            self.started = False

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return "".join(deque(f, maxlen=lines))
        except OSError as e:
            return f"(no server log: {e})"


def _text(x) -> str:
    return x.decode(errors="replace") if isinstance(x, bytes) else (x or "")


_SERVER: ComfyServer | None = None


@pytest.fixture(scope="session")
def comfy(request: pytest.FixtureRequest):
    """A ComfyClient connected to a real ComfyUI 0.3.75 with this pack linked into custom_nodes.
    Extra attributes: ``server`` (ComfyServer, or None with VE_COMFY_URL)."""
    global _SERVER
    url = os.environ.get("VE_COMFY_URL")
    if url:
        client = ComfyClient(url)
        client.server = None
        if not client.is_up():
            pytest.fail(f"VE_COMFY_URL={url} does not answer")
        yield client
        return
    if not SCRIPT.is_file():
        pytest.fail(f"{SCRIPT} is missing")
    server = ComfyServer(default_root(), free_port())
    try:
        server.start()
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    _SERVER = server
    client = ComfyClient(server.url, comfy_dir=server.comfy_dir)
    client.server = server
    try:
        yield client
    finally:
        failed = request.session.testsfailed
        tail = server.log_tail() if failed else ""
        server.stop()
        _SERVER = None
        if failed:
            _print_uncaptured(request.config, f"ComfyUI server log, last {LOG_TAIL_LINES} lines "
                                              f"({server.log_path})", tail)


def _print_uncaptured(config: pytest.Config, title: str, text: str) -> None:
    """Write to the terminal even while pytest captures output (session teardown runs inside
    the last test's teardown, whose captured output is not shown when that test passed)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capman = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return
    ctx = capman.global_and_fixture_disabled() if capman is not None else contextlib.nullcontext()
    with ctx:
        reporter.write_line("")
        reporter.write_sep("-", title)
        reporter.write(text if text.endswith("\n") else text + "\n")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the server log tail to the report of a failing test that used the server."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and _SERVER is not None and "comfy" in getattr(item, "fixturenames", ()):
        report.sections.append(("ComfyUI server log (tail)", _SERVER.log_tail(30)))
