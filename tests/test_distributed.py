"""Scale-out on Ray (engine.distributed): chunked output identical to one process, worker deaths, batches.

The chunk plan is checked without Ray (hypothesis over schedules); everything else runs on a real
local Ray (2 CPUs) started once for the module. Output comparisons use the lossless ffv1 codec, so
"identical" means every decoded frame is equal to the one-process run's, byte for byte.
"""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import cli, distributed
from engine.errors import Cancelled, InputError
from engine.options import Options
from engine.schedule import make_schedule
from engine.samples import synthetic_frame
from engine.video_io import VideoReader, VideoWriter, probe

W, H = 160, 96
LOSSLESS = dict(codec="ffv1")


# ---------------------------------------------------------------------------------------- the plan
@settings(max_examples=300, deadline=None)
@given(n_in=st.integers(1, 200), chunk=st.integers(2, 64),
       rate=st.one_of(st.integers(1, 16).map(lambda m: (m, None)),
                      st.tuples(st.integers(1, 120), st.integers(1, 240)).map(lambda t: (None, t))))
def test_chunks_partition_the_outputs_and_stay_in_their_source_range(n_in, chunk, rate):
    m, fps = rate
    sched = make_schedule(n_in, m) if fps is None else make_schedule(n_in, None, src_fps=fps[0], dst_fps=fps[1])
    chunks = distributed.plan_chunks(sched, chunk)
    assert chunks[0].out_lo == 0 and chunks[-1].out_hi == sched.n_out
    for a, b in zip(chunks, chunks[1:]):
        assert a.out_hi == b.out_lo  # contiguous: no output lost or made twice at a boundary
    for c in chunks:
        assert c.frames > 0
        for n in range(c.out_lo, c.out_hi):
            e = sched.entry(n)
            assert c.src_lo <= e.i0 and max(e.i0, e.i1) <= c.src_hi  # what the worker decodes suffices
            # the pair's right frame is at most one past the chunk's own source frames
            assert c.src_hi - c.src_lo <= chunk


def test_chunk_frames_must_be_a_whole_number_of_at_least_two():
    sched = make_schedule(10, 2)
    for bad in (0, 1, -3, 2.5, "8", True, None):
        with pytest.raises(InputError, match="--chunk-frames must be a whole number >= 2"):
            distributed.plan_chunks(sched, bad)


# ---------------------------------------------------------------------------------------- on Ray
@pytest.fixture(scope="module")
def ray_local():
    if os.environ.get("CI"):
        import ray  # noqa: F401 - in CI a missing Ray is a failure, not a skip
    ray = pytest.importorskip("ray")
    with distributed.connect("local"):
        yield ray


def _scene_b(i: int) -> np.ndarray:
    f = synthetic_frame(i, W, H, 48)
    return np.ascontiguousarray(f[::-1, :, ::-1] // 3)  # another scene: flipped, darker, channels swapped


@pytest.fixture(scope="module")
def clip_with_cut(tmp_path_factory):
    """48 frames at 24 fps with audio; hard cuts between frames 15 and 16 (the pair that spans the
    boundary of chunks of 16 and of 8) and between 22 and 23 (the last pair inside a chunk of 8)."""
    d = tmp_path_factory.mktemp("ray_clips")
    from engine.samples import make_sample_tone

    tone = make_sample_tone(d / "tone.m4a", duration=2.0)
    path = d / "cut.mp4"
    with VideoWriter(path, 24, W, H, audio_from=tone, preset="veryfast") as w:
        for i in range(48):
            w.write(synthetic_frame(i, W, H, 48) if i < 16 or i >= 23 else _scene_b(i))
    return path


def _decode(path) -> np.ndarray:
    with VideoReader(path) as r:
        return np.stack(list(r))


def _one_process(src, out, **opts):
    return cli.interpolate_file(src, out, options=Options(**opts), **LOSSLESS)


def _chunked(src, out, chunk_frames, stop=None, **opts):
    return distributed.interpolate_chunked(src, out, address="local", chunk_frames=chunk_frames,
                                           options=Options(**opts), encode=LOSSLESS, stop=stop)


@pytest.mark.parametrize("opts", [dict(multiplier=2), dict(dst_fps=60)], ids=["x2", "24to60"])
def test_chunked_output_is_frame_for_frame_the_one_process_output(ray_local, clip_with_cut, tmp_path, opts):
    ref = _one_process(clip_with_cut, tmp_path / "ref.mkv", **opts)
    rep = _chunked(clip_with_cut, tmp_path / "out.mkv", 16, **opts)
    a, b = _decode(tmp_path / "ref.mkv"), _decode(tmp_path / "out.mkv")
    assert len(rep["chunks"]) == 3
    assert a.shape == b.shape and np.array_equal(a, b)
    assert rep["cuts"] == ref["cuts"] == [15, 22]  # the boundary pair (15, 16) is found by its owner
    ia, ib = probe(tmp_path / "ref.mkv", count_frames=True), probe(tmp_path / "out.mkv", count_frames=True)
    assert ib.frame_count == ia.frame_count == rep["frames_written"]
    assert ib.fps == ia.fps and ib.has_audio and rep["audio"]["status"] in ("copied", "transcoded")
    assert not list(tmp_path.glob(".*"))  # the pieces' folder and temp files are gone


def _worker_pids() -> list[psutil.Process]:
    procs = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if cmd.startswith("ray::render"):
            procs.append(p)
    return procs


def test_a_worker_killed_mid_chunk_is_retried_and_the_output_is_still_identical(ray_local, clip_with_cut, tmp_path):
    ref = tmp_path / "ref.mkv"
    _one_process(clip_with_cut, ref, multiplier=4)
    killed: list[int] = []
    done = threading.Event()

    def killer():
        while not done.is_set() and not killed:
            for p in _worker_pids():
                try:
                    p.kill()  # SIGKILL, mid-chunk: the task is running when its title says render
                    killed.append(p.pid)
                    break
                except psutil.Error:
                    pass
            time.sleep(0.02)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    try:
        rep = _chunked(clip_with_cut, tmp_path / "out.mkv", 8, multiplier=4)
    finally:
        done.set()
        t.join()
    assert killed, "no worker was caught running a chunk"
    assert np.array_equal(_decode(ref), _decode(tmp_path / "out.mkv"))
    assert rep["frames_written"] == (48 - 1) * 4 + 1


def test_ctrl_c_cancels_the_tasks_and_leaves_no_file(ray_local, clip_with_cut, tmp_path):
    flag = threading.Event()
    threading.Timer(1.0, flag.set).start()
    with pytest.raises(Cancelled):
        _chunked(clip_with_cut, tmp_path / "out.mkv", 4, stop=flag.is_set, multiplier=16)
    assert list(tmp_path.iterdir()) == []


def test_batch_of_three_with_one_corrupt_video(ray_local, clip_with_cut, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    good = [src / "a.mp4", src / "c.mp4"]
    for g in good:
        g.write_bytes(Path(clip_with_cut).read_bytes())
    bad = src / "b.mp4"
    bad.write_bytes(Path(clip_with_cut).read_bytes()[:3000])  # truncated: no frames decodable
    out = tmp_path / "out"
    code = cli.main(["batch", str(good[0]), str(bad), str(good[1]), "--out-dir", str(out), "--ray", "local",
                     "--progress", "none", "--report", str(tmp_path / "batch.json")])
    stdout = capsys.readouterr().out
    assert code == 1  # one failed
    assert sorted(p.name for p in out.iterdir()) == ["a.mp4", "c.mp4"]
    for g in good:
        assert probe(out / g.name, count_frames=True).frame_count == 95
    lines = stdout.splitlines()
    assert any(ln.startswith("failed") and "b.mp4" in ln for ln in lines)
    assert sum(ln.startswith("complete") for ln in lines) == 2
    assert "2 of 3 videos done, 1 failed" in stdout
    videos = json.loads((tmp_path / "batch.json").read_text())["videos"]
    assert [v["status"] for v in videos] == ["complete", "failed", "complete"]


def test_batch_without_ray_runs_in_this_process_and_refuses_name_clashes(clip_with_cut, tmp_path):
    a, b = tmp_path / "x" / "clip.mp4", tmp_path / "y" / "clip.mp4"
    for p in (a, b):
        p.parent.mkdir()
        p.write_bytes(Path(clip_with_cut).read_bytes())
    with pytest.raises(InputError, match="would both be written"):
        distributed.run_batch([a, b], tmp_path / "out", options=Options())
    entries = distributed.run_batch([a], tmp_path / "out", options=Options())
    assert [e["status"] for e in entries] == ["complete"]
    assert (tmp_path / "out" / "clip.mp4").is_file()


def test_chunked_h264_pieces_join_into_one_valid_stream_with_audio(ray_local, clip_with_cut, tmp_path):
    """The default lossy codec: pieces (each starting on a keyframe, B-frames inside) join without
    re-encoding into one stream of the right length, rate and audio; frames differ only by coding noise."""
    cli.interpolate_file(clip_with_cut, tmp_path / "ref.mp4", options=Options(dst_fps=60))
    rep = distributed.interpolate_chunked(clip_with_cut, tmp_path / "out.mp4", address="local", chunk_frames=12,
                                          options=Options(dst_fps=60))
    a, b = _decode(tmp_path / "ref.mp4").astype(np.float64), _decode(tmp_path / "out.mp4").astype(np.float64)
    assert a.shape == b.shape and len(rep["chunks"]) == 4
    psnr = 10 * np.log10(255.0 ** 2 / np.mean((a - b) ** 2, axis=(1, 2, 3)).clip(1e-9))
    assert psnr.min() > 32  # x264 restarting at each chunk: coding noise only
    info = probe(tmp_path / "out.mp4", count_frames=True)
    assert info.frame_count == rep["frames_written"] == 120 and info.fps == 60 and info.has_audio  # 2 s at 60 fps
    assert abs(info.duration - 2.0) < 1 / 60
