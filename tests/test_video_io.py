"""Tests for engine.video_io (PyAV-based streaming video I/O)."""

from __future__ import annotations

import os
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import engine.video_io as video_io  # noqa: E402
from engine.video_io import (  # noqa: E402
    VIDEO_CODEC_PREFERENCE,
    VideoIOError,
    VideoReader,
    VideoWriter,
    as_fps,
    best_codec,
    probe,
)
from engine.audio import write_audio  # noqa: E402
from engine.samples import make_sample_clip, make_sample_tone, synthetic_frame  # noqa: E402

W, H = 96, 64


def _write(path, n, fps=Fraction(24), size=(W, H), **kw) -> list[np.ndarray]:
    frames = [synthetic_frame(i, size[0], size[1], n) for i in range(n)]
    with VideoWriter(path, fps, size[0], size[1], preset="veryfast", **kw) as w:
        w.write(np.stack(frames))
    return frames


def _read_all(path) -> list[np.ndarray]:
    with VideoReader(path) as r:
        return list(r)


def _span(path, kind: str) -> tuple[float, float] | None:
    """(first start, last end) in seconds of the packets of the first ``kind`` stream, or None."""
    with av.open(str(path)) as c:
        streams = [s for s in c.streams if s.type == kind]
        if not streams:
            return None
        first, last = None, 0.0
        for pkt in c.demux(streams[0]):
            if pkt.size == 0:
                continue
            t = float(pkt.pts * pkt.time_base)
            first = t if first is None else min(first, t)
            last = max(last, t + float((pkt.duration or 0) * pkt.time_base))
        return first, last


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))  # hidden temporary files


# --------------------------------------------------------------------------- codecs and fps


def test_best_codec_is_a_working_encoder():
    name = best_codec()
    assert name in VIDEO_CODEC_PREFERENCE
    assert av.codec.Codec(name, "w").type == "video"


@pytest.mark.parametrize(
    "value, expected",
    [
        (24, Fraction(24)),
        ("30000/1001", Fraction(30000, 1001)),
        (29.97, Fraction(30000, 1001)),
        (23.976, Fraction(24000, 1001)),
        (59.94, Fraction(60000, 1001)),
        (12.5, Fraction(25, 2)),
        (Fraction(50), Fraction(50)),
    ],
)
def test_as_fps_gives_exact_fractions(value, expected):
    assert as_fps(value) == expected


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("fps", [Fraction(24), Fraction(30000, 1001), Fraction(60000, 1001)])
def test_round_trip_exact_count_size_fps(tmp_path, fps):
    out = tmp_path / "rt.mp4"
    n = 13
    _write(out, n, fps=fps)
    info = probe(out)
    assert (info.width, info.height) == (W, H)
    assert info.fps == fps  # exact Fraction, not a float approximation
    assert info.frame_count == n and info.frame_count_exact
    assert info.duration == pytest.approx(float(n / fps), abs=1e-3)
    frames = _read_all(out)
    assert len(frames) == n
    assert all(f.shape == (H, W, 3) and f.dtype == np.uint8 for f in frames)


@pytest.mark.parametrize("codec", [None, "mpeg4"])
def test_decoded_frames_match_written_ones_in_order(tmp_path, codec):
    out = tmp_path / "q.mp4"
    written = _write(out, 12, fps=Fraction(30000, 1001), codec=codec)
    decoded = _read_all(out)
    assert len(decoded) == len(written)
    for i, (a, b) in enumerate(zip(written, decoded)):
        err = np.abs(a.astype(np.int16) - b.astype(np.int16)).mean()
        assert err < 6, f"frame {i}: mean abs error {err:.2f}"
        if i + 1 < len(written):  # closer to its own source than to the next one: order is right
            err_next = np.abs(written[i + 1].astype(np.int16) - b.astype(np.int16)).mean()
            assert err < err_next


def test_writer_accepts_single_frames_lists_and_float_frames(tmp_path):
    out = tmp_path / "mixed.mp4"
    f = [synthetic_frame(i, W, H, 6) for i in range(6)]
    with VideoWriter(out, 24, W, H, preset="veryfast") as w:
        w.write(f[0])  # one frame [H, W, 3]
        w.write([f[1], f[2]])  # list of frames
        w.write(np.stack(f[3:5]))  # batch [B, H, W, 3]
        w.write(f[5].astype(np.float32) / 255.0)  # float in [0, 1]
        assert w.frames_written == 6
    decoded = _read_all(out)
    assert len(decoded) == 6
    assert np.abs(decoded[5].astype(np.int16) - f[5].astype(np.int16)).mean() < 6


def test_mkv_frame_count_can_be_counted_exactly(tmp_path):
    out = tmp_path / "c.mkv"
    _write(out, 11)
    info = probe(out, count_frames=True)
    assert info.frame_count == 11 and info.frame_count_exact
    assert info.fps == 24


@pytest.mark.parametrize("odd_size, expected", [("pad", (34, 18)), ("crop", (32, 16))])
def test_odd_sizes_are_padded_or_cropped(tmp_path, odd_size, expected):
    out = tmp_path / "odd.mp4"
    written = _write(out, 5, size=(33, 17), odd_size=odd_size)
    info = probe(out)
    assert (info.width, info.height) == expected
    decoded = _read_all(out)
    assert len(decoded) == 5
    w, h = min(33, expected[0]), min(17, expected[1])
    err = np.abs(decoded[2][:h, :w].astype(np.int16) - written[2][:h, :w].astype(np.int16)).mean()
    assert err < 8


def test_make_sample_clip_defaults(tmp_path):
    clip = make_sample_clip(tmp_path / "demo.mp4", audio=True)
    info = probe(clip)
    assert (info.width, info.height, info.fps, info.frame_count) == (320, 192, 24, 48)
    assert info.has_audio
    assert not [p for p in tmp_path.iterdir() if p.name != "demo.mp4"]  # helper files cleaned up


@pytest.mark.parametrize("codec", [None, "mpeg4"])
def test_quality_setting_changes_output_size(tmp_path, codec):
    sizes = []
    for crf in (12, 40):
        out = tmp_path / f"crf{crf}.mp4"
        _write(out, 8, size=(160, 96), codec=codec, crf=crf)
        sizes.append(out.stat().st_size)
    assert sizes[0] > sizes[1] * 1.3


def test_damaged_stream_raises_or_is_skipped(tmp_path):
    good = tmp_path / "good.mp4"
    _write(good, 24)
    data = bytearray(good.read_bytes())
    rng = np.random.default_rng(0)
    for off in range(len(data) // 4, len(data) * 3 // 4, 211):  # garble the middle of the frame data
        data[off : off + 20] = rng.integers(0, 256, 20, dtype=np.uint8).tobytes()
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data))
    with pytest.raises(VideoIOError, match="damaged"):
        _read_all(bad)
    with VideoReader(bad, errors="skip") as r:
        n = sum(1 for _ in r)
        assert r.decode_errors > 0
    assert 0 < n < 24


def _raw_decode(path) -> tuple[int, int, int]:
    """(frames, packets that failed, frames flagged corrupt) of a plain single-threaded PyAV decode."""
    n = failed = corrupt = 0
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.thread_type = "NONE"
        for packet in c.demux(s):
            try:
                for frame in packet.decode():
                    n, corrupt = n + 1, corrupt + frame.is_corrupt
            except av.error.InvalidDataError:
                failed += 1
    return n, failed, corrupt


def test_concealed_damage_is_not_passed_off_as_a_good_frame(tmp_path):
    """A few garbled bytes that every packet still decodes over: the decoder conceals the damage and
    flags the frame corrupt. Reading it must fail (or skip it), not return a complete-looking video."""
    good = tmp_path / "good.mp4"
    _write(good, 24)
    base = good.read_bytes()
    bad = tmp_path / "bad.mp4"
    rng = np.random.default_rng(1)
    for _ in range(60):  # garble 4 bytes in the middle until only the corrupt flag tells (PyAV is the oracle)
        data = bytearray(base)
        off = int(rng.integers(len(base) // 3, len(base) * 2 // 3))
        data[off : off + 4] = rng.integers(0, 256, 4, dtype=np.uint8).tobytes()
        bad.write_bytes(bytes(data))
        n, failed, corrupt = _raw_decode(bad)
        if n == 24 and failed == 0 and corrupt > 0:
            break
    else:
        pytest.skip("no garbling among 60 gave a concealed-only error with this FFmpeg")
    with pytest.raises(VideoIOError, match="damaged: frame .* decoded from damaged data"):
        _read_all(bad)
    with VideoReader(bad, errors="skip") as r:
        n = sum(1 for _ in r)
        assert r.decode_errors > 0
    assert n < 24


def test_packets_lost_from_the_middle_of_a_transport_stream_are_damage(tmp_path):
    """An MPEG-TS file missing three 188-byte transport packets at 30%: the demuxer flags the packet
    they belonged to incomplete and the decoder may still decode it, one frame fewer and no error
    from FFmpeg. The read must fail, not return 47 of 48 frames as if that were the video."""
    src = tmp_path / "a.ts"
    with av.open(str(src), "w", format="mpegts") as c:
        s = c.add_stream("libx264", rate=24)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        for i in range(48):
            f = av.VideoFrame.from_ndarray(synthetic_frame(i, W, H, 48), format="rgb24")
            f.pts = i
            c.mux(s.encode(f))
        c.mux(s.encode(None))
    data = src.read_bytes()
    k = len(data) // 188 * 3 // 10
    bad = tmp_path / "b.ts"
    bad.write_bytes(data[: k * 188] + data[(k + 3) * 188 :])
    assert len(_read_all(src)) == 48
    with pytest.raises(VideoIOError, match="damaged: data is missing after frame"):
        _read_all(bad)
    with VideoReader(bad, errors="skip") as r:
        n = sum(1 for _ in r)
        assert r.decode_errors == 1
    assert 40 < n < 48


# --------------------------------------------------------------------------- audio


def test_audio_is_copied_from_source(tmp_path):
    src = make_sample_clip(tmp_path / "src.mp4", n_frames=24, size=(W, H), audio=True)
    out = tmp_path / "out.mp4"
    with VideoReader(src) as r, VideoWriter(out, r.fps * 2, W, H, audio_from=src, preset="veryfast") as w:
        for frame in r:  # "interpolate" by duplicating: same duration at twice the rate
            w.write(frame)
            w.write(frame)
    assert w.audio_status == "copied"
    assert probe(out).has_audio and probe(out).frame_count == 48
    src_first, src_end = _span(src, "audio")
    first, end = _span(out, "audio")
    assert first == pytest.approx(src_first, abs=0.03)
    assert end == pytest.approx(src_end, abs=0.1)


@pytest.mark.parametrize("channels,layout", [(1, "mono"), (2, "stereo"), (3, "stereo")])
def test_in_memory_audio_is_written_and_carried(tmp_path, channels, layout):
    rate = 44100
    t = np.arange(int(1.5 * rate)) / rate
    samples = np.stack([0.25 * np.sin(2 * np.pi * (300 + 100 * c) * t) for c in range(channels)])
    audio = write_audio(tmp_path / "a.m4a", samples, rate)
    with av.open(str(audio)) as c:
        s = c.streams.audio[0]
        assert (s.codec_context.name, s.rate, s.codec_context.layout.name) == ("aac", rate, layout)
        decoded = np.concatenate([f.to_ndarray() for f in c.decode(s)], axis=1)
    assert abs(decoded.shape[1] - samples.shape[1]) <= 2048  # AAC priming/padding only
    rms = float(np.sqrt((decoded.astype(np.float64) ** 2).mean()))
    assert 0.14 < rms < 0.21, rms  # the signal (a 0.25 sine: rms 0.177), not silence or noise
    _write(tmp_path / "v.mp4", 36, audio_from=audio)
    assert probe(tmp_path / "v.mp4").has_audio


@pytest.mark.parametrize("bad", [np.zeros((2, 0)), np.zeros(100), np.zeros((1, 2, 3))])
def test_in_memory_audio_of_the_wrong_shape_is_refused(tmp_path, bad):
    with pytest.raises(VideoIOError, match=r"\[channels, samples\]"):
        write_audio(tmp_path / "a.m4a", bad, 48000)


def test_audio_is_transcoded_when_copy_is_impossible(tmp_path):
    tone = make_sample_tone(tmp_path / "tone.wav", duration=1.0)  # PCM: mp4 refuses a copy
    out = tmp_path / "out.mp4"
    _write(out, 24, audio_from=tone)
    with av.open(str(out)) as c:
        assert [s.codec_context.name for s in c.streams.audio] == ["aac"]
    _, end = _span(out, "audio")
    assert end == pytest.approx(1.0, abs=0.1)


def test_audio_problems_do_not_stop_the_video(tmp_path):
    silent = tmp_path / "silent.mp4"
    _write(silent, 4)
    out = tmp_path / "a.mp4"
    with VideoWriter(out, 24, W, H, audio_from=silent) as w:
        w.write(synthetic_frame(0, W, H))
    assert w.audio_status == "source-has-no-audio"
    out2 = tmp_path / "b.mp4"
    with VideoWriter(out2, 24, W, H, audio_from=tmp_path / "nope.wav") as w2:
        w2.write(synthetic_frame(0, W, H))
    assert w2.audio_status == "failed" and "not found" in w2.audio_detail
    for p in (out, out2):
        info = probe(p)
        assert info.frame_count == 1 and not info.has_audio


# --------------------------------------------------------------------------- crash safety


def test_output_appears_only_on_successful_close(tmp_path):
    out = tmp_path / "final.mp4"
    w = VideoWriter(out, 24, W, H)
    w.write(synthetic_frame(0, W, H))
    assert not out.exists()
    assert len(_leftovers(tmp_path)) == 1  # the hidden temp file
    assert w.close() == out
    assert out.exists() and _leftovers(tmp_path) == []
    assert not w.truncated


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_output_permissions_follow_umask(tmp_path):
    old = os.umask(0o022)
    try:
        out = tmp_path / "perm.mp4"
        _write(out, 2)
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o644


def test_complete_video_is_kept_when_rename_fails(tmp_path, monkeypatch):
    def refuse(src, dst):
        raise PermissionError(13, "Permission denied")

    out = tmp_path / "locked.mp4"
    w = VideoWriter(out, 24, W, H)
    w.write(np.stack([synthetic_frame(i, W, H) for i in range(3)]))
    monkeypatch.setattr(video_io.os, "replace", refuse)
    with pytest.raises(VideoIOError, match="could not be moved"):
        w.close()
    monkeypatch.undo()
    assert not out.exists()
    assert w.final_path is not None and w.final_path.exists()
    assert probe(w.final_path).frame_count == 3


def test_exception_without_keep_partial_leaves_no_file(tmp_path):
    out = tmp_path / "crash.mp4"
    with pytest.raises(RuntimeError, match="boom"):
        with VideoWriter(out, 24, W, H) as w:
            w.write(np.stack([synthetic_frame(i, W, H) for i in range(5)]))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    assert w.final_path is None and not w.truncated


def test_abort_without_keep_partial_leaves_no_file(tmp_path):
    out = tmp_path / "aborted.mp4"
    w = VideoWriter(out, 24, W, H)
    w.write(synthetic_frame(0, W, H))
    assert w.abort() is None
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(VideoIOError, match="already closed"):
        w.write(synthetic_frame(1, W, H))


def test_keep_partial_leaves_a_valid_shorter_file(tmp_path):
    src = make_sample_clip(tmp_path / "src.mp4", n_frames=24, size=(W, H), audio=True)
    out = tmp_path / "long.mp4"
    with pytest.raises(KeyboardInterrupt):
        with VideoReader(src) as r, VideoWriter(out, r.fps, W, H, audio_from=src, keep_partial=True) as w:
            for i, frame in enumerate(r):
                if i == 10:
                    raise KeyboardInterrupt
                w.write(frame)
    partial = tmp_path / "long.partial.mp4"
    assert not out.exists()
    assert w.truncated and w.final_path == partial and partial.exists()
    info = probe(partial)
    assert info.frame_count == 10
    assert len(_read_all(partial)) == 10
    _, audio_end = _span(partial, "audio")  # audio is cut to the video's length
    assert audio_end == pytest.approx(10 / 24, abs=0.05)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.partial.mp4", "src.mp4"]


def test_close_without_frames_raises_and_leaves_nothing(tmp_path):
    w = VideoWriter(tmp_path / "empty.mp4", 24, W, H)
    with pytest.raises(VideoIOError, match="No frames were written"):
        w.close()
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- errors


def test_missing_input(tmp_path):
    with pytest.raises(VideoIOError, match="not found"):
        probe(tmp_path / "missing.mp4")
    with pytest.raises(VideoIOError, match="not found"):
        VideoReader(tmp_path / "missing.mp4")


def test_corrupt_mp4(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    with pytest.raises(VideoIOError, match="corrupt"):
        probe(bad)
    good = tmp_path / "good.mp4"
    _write(good, 6)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])  # interrupted download
    with pytest.raises(VideoIOError, match="truncated"):
        VideoReader(cut)


def test_empty_file(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(VideoIOError, match="empty"):
        probe(empty)


def test_audio_only_file(tmp_path):
    tone = make_sample_tone(tmp_path / "tone.m4a", duration=0.5)
    with pytest.raises(VideoIOError, match="no video stream.*audio"):
        probe(tone)


@pytest.mark.parametrize("text", ["hello\n" * 50, "hello world\n" * 100])
def test_text_file(tmp_path, text):
    txt = tmp_path / "notes.txt"
    txt.write_text(text)
    with pytest.raises(VideoIOError, match="not a video"):
        VideoReader(txt)


def test_directory_as_input(tmp_path):
    with pytest.raises(VideoIOError, match="is a directory"):
        probe(tmp_path)


def test_output_path_is_a_directory(tmp_path):
    with pytest.raises(VideoIOError, match="is a directory"):
        VideoWriter(tmp_path, 24, W, H)


def test_output_directory_not_writable(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(VideoIOError, match="not a directory"):
        VideoWriter(blocker / "out.mp4", 24, W, H)
    assert blocker.read_text() == "x"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores directory permissions")
def test_output_directory_read_only(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(VideoIOError, match="not writable"):
            VideoWriter(ro / "out.mp4", 24, W, H)
    finally:
        ro.chmod(0o755)


def test_output_directory_without_write_permission(tmp_path, monkeypatch):
    # Simulates a read-only folder even when the tests run as root (root ignores chmod).
    monkeypatch.setattr(video_io.os, "access", lambda path, mode: False)
    with pytest.raises(VideoIOError, match="not writable"):
        VideoWriter(tmp_path / "out.mp4", 24, W, H)
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("settings, match", [({"preset": "bogus"}, "Cannot set up"), ({"crf": 99}, "crf must be")])
def test_bad_encoder_settings(tmp_path, settings, match):
    with pytest.raises(VideoIOError, match=match):
        VideoWriter(tmp_path / "out.mp4", 24, W, H, **settings)
    assert list(tmp_path.iterdir()) == []


def test_output_without_extension_or_unknown_container(tmp_path):
    with pytest.raises(VideoIOError, match="no file extension"):
        VideoWriter(tmp_path / "out", 24, W, H)
    with pytest.raises(VideoIOError, match="no muxer"):
        VideoWriter(tmp_path / "out.qqq", 24, W, H)
    assert list(tmp_path.iterdir()) == []


def test_existing_output_is_kept_when_overwrite_is_false(tmp_path):
    out = tmp_path / "keep.mp4"
    out.write_bytes(b"precious")
    with pytest.raises(VideoIOError, match="already exists"):
        VideoWriter(out, 24, W, H, overwrite=False)
    assert out.read_bytes() == b"precious"


@pytest.mark.parametrize("fps", [0, -24, float("nan"), float("inf"), "abc", "1/0", None])
def test_bad_fps(tmp_path, fps):
    with pytest.raises(VideoIOError, match="Invalid frame rate"):
        VideoWriter(tmp_path / "out.mp4", fps, W, H)
    assert list(tmp_path.iterdir()) == []


def test_wrong_frame_shape(tmp_path):
    with pytest.raises(VideoIOError, match=r"expects \(64, 96, 3\)"):
        with VideoWriter(tmp_path / "out.mp4", 24, W, H) as w:
            w.write(np.zeros((H, W + 2, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []
