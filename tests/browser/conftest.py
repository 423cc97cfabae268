"""Browser tests of the ComfyUI front end (marker ``browser``), driven by Playwright's sync API
with Debian's Chromium (/usr/bin/chromium; tools/ci_deps.sh installs it). They use the same
session-wide ``comfy`` server as tests/comfyui (plugin in tests/comfyui/server.py).
"""
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

_COMFY_TESTS = str(Path(__file__).resolve().parents[1] / "comfyui")
if _COMFY_TESTS not in sys.path:
    sys.path.insert(0, _COMFY_TESTS)

import server as comfy_server  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts"
CHROMIUM = os.environ.get("VE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: drives the ComfyUI web UI in headless Chromium")
    comfy_server.register(config)


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.comfyui)


def _unavailable(reason: str):
    # In CI a missing browser is a broken setup, not a reason to skip.
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI: run tools/ci_deps.sh)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def playwright_instance():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the 'playwright' Python package is not installed")
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        _unavailable(f"no Chromium at {CHROMIUM}")
    with sync_playwright() as pw:
        yield pw


@pytest.fixture
def browser_context(playwright_instance):
    """Chromium with a fresh temporary profile for each test: the ComfyUI front end keeps the
    open workflow in browser storage, so a shared profile would leak one test's graph into the next."""
    profile = tempfile.mkdtemp(prefix="ve-chromium-")
    try:
        ctx = playwright_instance.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,  # Playwright's switch (adds --hide-scrollbars, --mute-audio); --headless=new wins
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 900},
        )
        try:
            yield ctx
        finally:
            ctx.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(browser_context):
    pg = browser_context.new_page()
    errors = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.page_errors = errors
    try:
        yield pg
    finally:
        pg.close()
