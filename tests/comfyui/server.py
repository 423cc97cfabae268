"""The shared, session-wide ComfyUI servers for tests (a pytest plugin).

Both tests/comfyui/conftest.py and tests/browser/conftest.py register this module as a plugin
(once per pytest run, under the name ``ve-comfyui-server``), so its ``comfy`` fixture is defined
exactly once. The fixture is parametrised by ComfyUI version: every test that uses it runs once
against ComfyUI 0.3.75 and once against 0.25.0 (test ids ``[comfyui-0.3.75]``,
``[comfyui-0.25.0]``). pytest groups the tests by version, so one server runs at a time.

Each server is started with ``tools/comfyui.sh up --version V --port <free port> --root <ROOT>``:
  ROOT = $VE_COMFY_ROOT (0.3.75) and $VE_COMFY_ROOT-0.25.0, else the script's defaults
  (~/.cache/video-engine/comfyui[-0.25.0]), so a second run reuses the installs. The first run
  installs (a few minutes per version). 0.25.0 is installed from its source tarball
  (../shared/comfyui/ComfyUI-0.25.0-0a92ed16.tar.gz, or $VE_COMFY_TARBALL); where it is missing the
  0.25.0 tier is skipped with that reason, except in CI ($CI set), where it is a failure.
Environment knobs:
  VE_COMFY_VERSIONS=0.3.75,0.25.0 the versions to test (default: both)
  VE_COMFY_URL=http://host:port   use an already running server instead (nothing started/stopped;
                                  its version is read from /system_stats)
  VE_COMFY_INSTALL_TIMEOUT=S      limit for install + start (default 1800 s)
Tests adapt to the server they talk to through ``comfy.version`` (a tuple, e.g. (0, 25, 0)).
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
VERSIONS = ("0.3.75", "0.25.0")
DEFAULT_VERSION = "0.3.75"  # what tools/comfyui.sh installs without --version (PyPI alone)
TARBALL_NAME = "ComfyUI-0.25.0-0a92ed16.tar.gz"


def register(config: pytest.Config) -> None:
    """Register this module as a pytest plugin unless already done (call from pytest_configure)."""
    pm = config.pluginmanager
    if pm.get_plugin(PLUGIN_NAME) is None and not pm.is_registered(sys.modules[__name__]):
        pm.register(sys.modules[__name__], PLUGIN_NAME)


def default_root(version: str = DEFAULT_VERSION) -> Path:
    """The install root tools/comfyui.sh uses for `version` (the same rule as the script)."""
    env = os.environ.get("VE_COMFY_ROOT")
    if env:
        root = Path(env)
    else:
        cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = Path(cache) / "video-engine" / "comfyui"
    return root if version == DEFAULT_VERSION else root.with_name(f"{root.name}-{version}")


def tarball() -> Path:
    env = os.environ.get("VE_COMFY_TARBALL")
    return Path(env) if env else REPO.parent / "shared" / "comfyui" / TARBALL_NAME


def selected_versions() -> list[str]:
    if os.environ.get("VE_COMFY_URL"):
        return ["url"]  # one server, whatever version it is
    raw = os.environ.get("VE_COMFY_VERSIONS", "")
    wanted = [v.strip() for v in raw.split(",") if v.strip()] or list(VERSIONS)
    bad = [v for v in wanted if v not in VERSIONS]
    if bad:
        raise pytest.UsageError(f"VE_COMFY_VERSIONS: unknown version(s) {bad}; known: {', '.join(VERSIONS)}")
    return wanted


def example_workflow(name: str, version: tuple, api: bool = False) -> Path:
    """The example workflow file `name` written for ComfyUI `version` (see tools/make_examples.py)."""
    from tools.make_examples import example_name

    folder = REPO / "example_workflows" / ("api" if api else "")
    return folder / f"{example_name(name, '.'.join(map(str, version)))}.json"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("+")[0].split(".") if p.isdigit())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ComfyServer:
    """A server started (and stopped) through tools/comfyui.sh."""

    def __init__(self, root: Path, port: int, version: str = DEFAULT_VERSION):
        self.root, self.port, self.version = root, port, version
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = root / "logs" / f"comfyui-{port}.log"
        self.comfy_dir = root / "ComfyUI"
        self.started = False

    def _script(self, action: str, *extra: str, timeout: float = 120) -> subprocess.CompletedProcess:
        cmd = ["bash", str(SCRIPT), action, "--version", self.version, "--port", str(self.port),
               "--root", str(self.root), *extra]
        if self.version != DEFAULT_VERSION:
            cmd += ["--tarball", str(tarball())]
        return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)

    def start(self) -> None:
        limit = float(os.environ.get("VE_COMFY_INSTALL_TIMEOUT", "1800"))
        try:
            proc = self._script("up", "--timeout", "900", timeout=limit)  # 0.25 starts slowly on a busy machine
        except subprocess.TimeoutExpired as e:
            self.stop()
            raise RuntimeError(f"tools/comfyui.sh up (ComfyUI {self.version}) did not finish within {limit:.0f}s\n"
                               f"{_text(e.stdout)}{_text(e.stderr)}") from None
        if proc.returncode != 0:
            raise RuntimeError(f"tools/comfyui.sh up (ComfyUI {self.version}) failed (exit {proc.returncode}):\n"
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


def pytest_generate_tests(metafunc):
    """Parametrise every test that (directly or through other fixtures) uses `comfy` by version."""
    if "comfy" in metafunc.fixturenames:
        metafunc.parametrize("comfy", selected_versions(), indirect=True, scope="session",
                             ids=lambda v: "comfyui-" + v)


@pytest.fixture(scope="session")
def comfy(request: pytest.FixtureRequest):
    """A ComfyClient connected to a real ComfyUI (the version of the test's parameter) with this
    pack linked into custom_nodes. Extra attributes: ``server`` (ComfyServer, or None with
    VE_COMFY_URL) and ``version`` (a tuple, e.g. (0, 3, 75))."""
    global _SERVER
    version = getattr(request, "param", DEFAULT_VERSION)
    url = os.environ.get("VE_COMFY_URL")
    if url:
        client = ComfyClient(url)
        client.server = None
        if not client.is_up():
            pytest.fail(f"VE_COMFY_URL={url} does not answer")
        client.version = version_tuple(client.system_stats()["system"]["comfyui_version"])
        yield client
        return
    if not SCRIPT.is_file():
        pytest.fail(f"{SCRIPT} is missing")
    if version != DEFAULT_VERSION and not tarball().is_file():
        why = (f"ComfyUI {version} tier skipped: its source tarball {TARBALL_NAME} is not at {tarball()} "
               "(put it there or set VE_COMFY_TARBALL)")
        if in_ci():
            pytest.fail(why.replace("tier skipped", "tier cannot run") + "; in CI the tarball is required",
                        pytrace=False)
        pytest.skip(why)
    server = ComfyServer(default_root(version), free_port(), version)
    try:
        server.start()
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    _SERVER = server
    client = ComfyClient(server.url, comfy_dir=server.comfy_dir)
    client.server = server
    client.version = version_tuple(version)
    try:
        yield client
    finally:
        failed = request.session.testsfailed
        tail = server.log_tail() if failed else ""
        server.stop()
        _SERVER = None
        if failed:
            _print_uncaptured(request.config, f"ComfyUI {version} server log, last {LOG_TAIL_LINES} lines "
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
