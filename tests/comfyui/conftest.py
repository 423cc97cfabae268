"""Tests against a real ComfyUI server (marker ``comfyui``).

The session-wide ``comfy`` fixture lives in server.py beside this file, registered as a plugin so
that tests/browser shares the same server. Run:  .venv/bin/python -m pytest -m comfyui tests/comfyui
Deselect with ``-m "not comfyui"`` on machines that cannot install ComfyUI.
"""
import sys
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import server as comfy_server  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "comfyui: needs a real ComfyUI server (tools/comfyui.sh installs one on first use)")
    comfy_server.register(config)


def pytest_collection_modifyitems(config, items):
    here = Path(_HERE)
    for item in items:
        if here in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.comfyui)
