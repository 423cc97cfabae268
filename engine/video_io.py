"""Streaming video input/output on top of PyAV (FFmpeg).

Everything here works one frame (or one small chunk) at a time, so memory use
stays flat however long the video is:

* :func:`probe` reads a file's metadata into a :class:`VideoInfo`.
* :class:`VideoReader` decodes frames as ``uint8`` RGB arrays ``[H, W, 3]``.
* :class:`VideoWriter` encodes such frames, optionally carrying over the audio
  track of another file, and is crash safe: it writes to a hidden temporary
  file next to the target and only renames it into place on a successful
  :meth:`VideoWriter.close`.
* :func:`make_sample_clip` / :func:`make_sample_tone` synthesise small,
  deterministic test media without any downloads.

Problems the user can fix (missing or corrupt input, unwritable output, bad
frame rate, ...) raise :class:`VideoIOError`, whose message says what is wrong
and what to do about it.

This module is plain Python + numpy + PyAV: frames are numpy arrays, no torch code runs here
(torch is imported only through engine.errors), and it never imports ComfyUI.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import secrets
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace, Interpolation, VideoReformatter

from .errors import InputError
from .schedule import as_fraction, fps_text

logger = logging.getLogger(__name__)

__all__ = [
    "VideoIOError",
    "VideoInfo",
    "VideoReader",
    "VideoWriter",
    "as_fps",
    "best_codec",
    "codec_available",
    "probe",
    "synthetic_frame",
    "make_sample_clip",
    "make_sample_tone",
    "write_audio",
]

#: Video encoders in order of preference (first one PyAV's FFmpeg has wins).
VIDEO_CODEC_PREFERENCE = ("libx264", "libopenh264", "mpeg4")
#: Default constant-rate-factor for libx264 (visually near lossless).
DEFAULT_CRF = 18
#: Default libx264 preset.
DEFAULT_PRESET = "medium"

# FFmpeg's "tty" demuxer happily opens any .txt/.nfo/.ans file as ANSI art;
# such "videos" are never what the user meant.
_TEXT_FORMATS = {"tty"}
_TEXT_CODECS = {"ansi", "bintext", "xbin", "idf"}

# AVCOL_* values (libavutil/pixfmt.h) used to tag encoded streams as BT.709.
_AVCOL_BT709 = 1
_AVCOL_SPC_UNSPECIFIED = 2

# Sample rates the native AAC encoder accepts.
_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)

_FFMPEG_ERRORS = (av.error.FFmpegError,)


class VideoIOError(ValueError):
    """A video file could not be read or written; the message says why and what to do."""


# --------------------------------------------------------------------------- helpers


def codec_available(name: str, mode: str = "w") -> bool:
    """True if PyAV's FFmpeg build has an encoder (``mode="w"``) or decoder (``"r"``) ``name``."""
    return _codec_available(str(name), mode)


@functools.lru_cache(maxsize=None)
def _codec_available(name: str, mode: str) -> bool:
    try:
        av.codec.Codec(name, mode)
    except Exception:  # UnknownCodecError, ValueError, ...
        return False
    return True


def best_codec() -> str:
    """Name of the best video encoder available: libx264, else libopenh264, else mpeg4."""
    for name in VIDEO_CODEC_PREFERENCE:
        if codec_available(name):
            return name
    raise VideoIOError(
        "PyAV's FFmpeg build has none of the video encoders "
        f"{', '.join(VIDEO_CODEC_PREFERENCE)}. Reinstall PyAV from the official wheels "
        "(pip install --force-reinstall av)."
    )


def as_fps(fps) -> Fraction:
    """A frame rate (Fraction, int, float, or a string like ``"30000/1001"``) as an exact Fraction
    (engine.schedule.as_fraction: NTSC floats snap to N*1000/1001); VideoIOError when it is not a
    finite rate > 0."""
    try:
        return as_fraction(fps, "frame rate")
    except InputError as exc:
        raise VideoIOError(str(exc)) from None


def _is_attached_pic(stream) -> bool:
    try:
        return bool(stream.disposition & av.stream.Disposition.attached_pic)
    except Exception:
        return False


def _stream_desc(stream) -> str:
    try:
        name = stream.codec_context.name if stream.codec_context is not None else "unknown codec"
    except Exception:
        name = "unknown codec"
    kind = "cover image" if stream.type == "video" and _is_attached_pic(stream) else stream.type
    return f"{kind} ({name})"


def _check_input_path(path, what: str = "Input video") -> Path:
    p = Path(os.fspath(path))
    if not p.exists():
        raise VideoIOError(
            f"{what} not found: '{p}' (working directory: '{Path.cwd()}'). "
            "Check the file name and path."
        )
    if p.is_dir():
        raise VideoIOError(f"{what} '{p}' is a directory, not a file. Give the path of a media file, e.g. clip.mp4.")
    if not os.access(p, os.R_OK):
        raise VideoIOError(f"{what} '{p}' is not readable (permission denied). Fix the file permissions.")
    if p.stat().st_size == 0:
        raise VideoIOError(
            f"{what} '{p}' is empty (0 bytes); it was probably not written completely. "
            "Re-export or re-download it."
        )
    return p


def _open_input(path):
    """Open ``path`` for reading; returns ``(Path, container)``. Errors become VideoIOError."""
    p = _check_input_path(path)
    try:
        container = av.open(str(p), "r")
    except av.error.PermissionError:
        raise VideoIOError(
            f"Input video '{p}' is not readable (permission denied). "
            "Fix the file permissions."
        ) from None
    except (av.error.FFmpegError, OSError, ValueError, UnicodeError) as exc:
        raise VideoIOError(
            f"Cannot read '{p}': FFmpeg could not open it as a video ({exc}). The file is corrupt, "
            "truncated (e.g. an interrupted download or recording) or not a video at all. "
            "Try playing it in a media player or re-encoding it, e.g. `ffmpeg -i in.mp4 -c:v libx264 fixed.mp4`."
        ) from exc
    return p, container


def _pick_video_stream(p: Path, container):
    fmt = getattr(container.format, "name", "") or ""
    candidates = [s for s in container.streams.video if not _is_attached_pic(s)]
    if fmt in _TEXT_FORMATS or any(
        (s.codec_context is not None and s.codec_context.name in _TEXT_CODECS) for s in candidates
    ):
        raise VideoIOError(
            f"'{p}' is a text file, not a video (FFmpeg only recognised it as ANSI text art). "
            "Give a video file such as .mp4, .mkv, .mov or .webm."
        )
    if not candidates:
        found = ", ".join(_stream_desc(s) for s in container.streams) or "no streams at all"
        raise VideoIOError(
            f"'{p}' has no video stream (it contains: {found}). Video Engine needs a file with a video track; "
            "to add this file's audio to a video, pass it as the writer's audio source (audio_from) instead."
        )
    return candidates[0]


def _stream_fps(p: Path, stream) -> Fraction:
    for attr in ("average_rate", "guessed_rate", "base_rate"):
        try:
            rate = getattr(stream, attr)
        except Exception:
            rate = None
        if rate is not None and rate.denominator != 0 and rate > 0:
            return Fraction(rate.numerator, rate.denominator)
    raise VideoIOError(
        f"Cannot determine the frame rate of '{p}' (the file stores none). Re-encode it with an explicit rate, "
        "e.g. `ffmpeg -i in -r 30 out.mp4`."
    )


def _stream_duration(stream, container) -> float | None:
    try:
        if stream.duration and stream.time_base:
            return float(stream.duration * stream.time_base)
    except Exception:
        pass
    if container.duration:
        return container.duration / av.time_base
    return None


# --------------------------------------------------------------------------- probe


@dataclass(frozen=True)
class VideoInfo:
    """Metadata of a video file's first video stream."""

    path: str
    width: int
    height: int
    fps: Fraction
    #: Number of frames; ``None`` if neither the container nor the duration tells.
    frame_count: int | None
    #: False when ``frame_count`` is an estimate (duration * fps).
    frame_count_exact: bool
    #: Duration in seconds (``None`` if unknown).
    duration: float | None
    has_audio: bool
    codec: str
    pix_fmt: str | None
    audio_codec: str | None = None
    container_format: str = ""


def _info_from(p: Path, container, stream, count_frames: bool) -> VideoInfo:
    cc = stream.codec_context
    width, height = int(cc.width), int(cc.height)
    if width <= 0 or height <= 0:
        raise VideoIOError(
            f"'{p}' has a video stream without a valid frame size ({width}x{height}); "
            "the file is probably corrupt."
        )
    fps = _stream_fps(p, stream)
    duration = _stream_duration(stream, container)
    frames = int(stream.frames or 0)
    exact = frames > 0
    if not exact:
        frames = int(round(duration * fps)) if duration else None
    audio = [s for s in container.streams.audio]
    info = VideoInfo(
        path=str(p),
        width=width,
        height=height,
        fps=fps,
        frame_count=frames,
        frame_count_exact=exact,
        duration=duration,
        has_audio=bool(audio),
        codec=cc.name,
        pix_fmt=cc.pix_fmt,
        audio_codec=(audio[0].codec_context.name if audio and audio[0].codec_context is not None else None),
        container_format=getattr(container.format, "name", "") or "",
    )
    if count_frames and not exact:
        try:
            n = sum(1 for pkt in container.demux(stream) if pkt.size > 0)
        except _FFMPEG_ERRORS as exc:
            raise VideoIOError(
                f"Cannot count the frames of '{p}': reading failed ({exc}). "
                "The file is probably corrupt."
            ) from exc
        info = replace(info, frame_count=n, frame_count_exact=True)
    return info


def probe(path, count_frames: bool = False) -> VideoInfo:
    """Read the metadata of ``path``'s first video stream.

    ``frame_count`` comes from the container when it stores one; otherwise it
    is estimated from the duration (``frame_count_exact=False``), unless
    ``count_frames=True``, which counts the video packets (reads the whole
    file, but decodes nothing).
    """
    p, container = _open_input(path)
    try:
        stream = _pick_video_stream(p, container)
        return _info_from(p, container, stream, count_frames)
    finally:
        container.close()


# --------------------------------------------------------------------------- reading


class VideoReader:
    """Decode a video one frame at a time as ``uint8`` RGB arrays ``[H, W, 3]``.

    Use as a context manager; iterate it for single frames or call
    :meth:`read_chunks` for arrays of up to ``n`` frames. Frames come in
    presentation order, as the decoder outputs them. Only the video stream is
    demuxed and decoded; memory use does not grow with the video's length.

    ``errors="raise"`` (default) turns a decoding error into :class:`VideoIOError`;
    ``errors="skip"`` logs it and drops the damaged packet instead.

    ``start=k`` begins at source frame k (presentation order, counted from 0): the
    reader seeks to the keyframe before it and decodes forward, dropping the frames
    before k without converting them, so a range of a long video costs about what
    reading that range does. Frame k is found by its timestamp among all the
    stream's packet timestamps; where the stream has none, frames are counted from
    the start instead. Either way the frames equal those a reader from 0 gives.
    """

    def __init__(self, path, errors: str = "raise", start: int = 0):
        if errors not in ("raise", "skip"):
            raise ValueError("errors must be 'raise' or 'skip'")
        if isinstance(start, bool) or not isinstance(start, int) or start < 0:
            raise ValueError(f"start must be a frame index >= 0, got {start!r}")
        self.start = start
        self.path, self._container = _open_input(path)
        try:
            self._stream = _pick_video_stream(self.path, self._container)
            self.info = _info_from(self.path, self._container, self._stream, count_frames=False)
            try:
                self._stream.thread_type = "AUTO"
            except Exception:  # pragma: no cover - depends on FFmpeg build
                logger.debug("could not enable threaded decoding for %s", self.path)
        except BaseException:
            self._container.close()
            raise
        self.errors = errors
        self.frames_read = 0
        self.decode_errors = 0
        #: Display rotation (degrees) found on the first decoded frame; frames are not rotated.
        self.rotation = 0
        self._reformatter = VideoReformatter()
        self._iter: Iterator[np.ndarray] | None = None
        self._closed = False
        # Untagged HD video is BT.709 in practice (players assume so, too).
        self._assume_709 = self.info.height >= 720 or self.info.width >= 1280
        logger.debug(
            "opened %s: %dx%d @ %s fps, codec %s, ~%s frames",
            self.path, self.width, self.height, fps_text(self.fps), self.info.codec, self.info.frame_count,
        )

    # convenience mirrors of info
    width = property(lambda self: self.info.width)
    height = property(lambda self: self.info.height)
    fps = property(lambda self: self.info.fps)
    frame_count = property(lambda self: self.info.frame_count)

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._iter is not None:
                self._iter.close()
            self._container.close()

    def __iter__(self) -> "VideoReader":
        return self

    def __next__(self) -> np.ndarray:
        if self._closed:
            raise StopIteration
        if self._iter is None:
            self._iter = self._decode()
        return next(self._iter)

    def read_chunks(self, n: int) -> Iterator[np.ndarray]:
        """Yield arrays ``[k, H, W, 3]`` (uint8) of ``k <= n`` consecutive frames; only the last may be short."""
        n = int(n)
        if n < 1:
            raise ValueError("chunk size must be >= 1")
        while True:
            buf = None
            k = 0
            for frame in self:
                if buf is None:
                    buf = np.empty((n, *frame.shape), dtype=np.uint8)
                buf[k] = frame
                k += 1
                if k == n:
                    break
            if k == 0:
                return
            yield buf[:k]
            if k < n:
                return

    def _start_pts(self) -> int | None:
        """The timestamp of frame ``self.start`` (None: count frames instead), after seeking before it."""
        stream = self._stream
        with av.open(str(self.path), "r") as c:
            pts = sorted(pk.pts for pk in c.demux(c.streams[stream.index]) if pk.size > 0 and pk.pts is not None)
        if self.start >= len(pts):
            if pts:
                raise VideoIOError(f"'{self.path}' has {len(pts)} frames; cannot start at frame {self.start}")
            return None
        if len(set(pts)) != len(pts):
            return None
        self._container.seek(pts[self.start], stream=stream, backward=True, any_frame=False)
        return pts[self.start]

    def _decode(self) -> Iterator[np.ndarray]:
        stream = self._stream
        target = self._start_pts() if self.start else None
        skip = self.start if self.start and target is None else 0
        try:
            for packet in self._container.demux(stream):
                try:
                    frames = packet.decode()
                except av.error.InvalidDataError as exc:
                    self.decode_errors += 1
                    if self.errors == "raise":
                        raise VideoIOError(
                            f"'{self.path}' is damaged: decoding failed after {self.frames_read} frames ({exc}). "
                            "Re-encode it (for example: ffmpeg -i damaged.mp4 -c:v libx264 fixed.mp4) and try again."
                        ) from exc
                    logger.warning("%s: skipping damaged data after frame %d (%s)", self.path, self.frames_read, exc)
                    continue
                for frame in frames:
                    if target is not None:
                        if frame.pts is None or frame.pts < target:
                            continue
                        if frame.pts != target:
                            raise VideoIOError(f"seeking '{self.path}' to frame {self.start} landed past it "
                                               f"(timestamp {frame.pts}, wanted {target})")
                        target = None
                    if skip:
                        skip -= 1
                        continue
                    if self.frames_read == 0:
                        self._check_rotation(frame)
                    arr = self._to_rgb(frame)
                    self.frames_read += 1
                    yield arr
        except VideoIOError:
            raise
        except _FFMPEG_ERRORS as exc:
            raise VideoIOError(
                f"Reading '{self.path}' failed after {self.frames_read} frames ({exc}). The file is probably "
                "truncated or corrupt; re-encode or re-download it."
            ) from exc

    def _check_rotation(self, frame) -> None:
        try:
            self.rotation = int(frame.rotation or 0)
        except Exception:
            self.rotation = 0
        if self.rotation:
            logger.warning(
                "%s carries a %d degree display rotation; frames are returned as stored (not rotated) "
                "and the output will not carry the rotation", self.path, self.rotation,
            )

    def _to_rgb(self, frame) -> np.ndarray:
        src_cs = None
        if self._assume_709 and frame.colorspace == _AVCOL_SPC_UNSPECIFIED:
            src_cs = Colorspace.ITU709
        rgb = self._reformatter.reformat(
            frame,
            self.info.width,
            self.info.height,
            "rgb24",
            src_colorspace=src_cs,
            interpolation=Interpolation.BICUBIC | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT,
        )
        return np.ascontiguousarray(rgb.to_ndarray())


# --------------------------------------------------------------------------- audio carry-over


class _AudioCarry:
    """Streams the audio of ``src`` into an output container, copying packets if possible.

    Audio is muxed incrementally (:meth:`pump`) so it interleaves with the video
    and nothing is buffered in memory. Times are shifted so that the source's
    first video frame (if it has video) lines up with output time 0.
    """

    def __init__(self, src: Path, out_container, mode: str):
        self.src = src
        self.mode = "copy"
        self.failed: str | None = None
        self._out = out_container
        self._in = av.open(str(src), "r")
        try:
            audio = list(self._in.streams.audio)
            if not audio:
                raise _NoAudio(", ".join(_stream_desc(s) for s in self._in.streams) or "no streams")
            self._in_stream = audio[0]
            video = [s for s in self._in.streams.video if not _is_attached_pic(s)]
            self._offset = Fraction(0)
            if video and video[0].start_time is not None and video[0].time_base:
                self._offset = Fraction(video[0].start_time) * video[0].time_base
            want_copy = mode in ("auto", "copy")
            if want_copy and self._copy_works():
                self._out_stream = out_container.add_stream_from_template(self._in_stream)
                self.mode = "copy"
            elif mode == "copy":
                raise VideoIOError(
                    f"The audio codec '{self._in_stream.codec_context.name}' of '{src}' cannot be stored in "
                    f"a '{out_container.format.name}' file without re-encoding."
                )
            else:
                codec = "aac" if mode in ("auto", "transcode") else mode
                self._setup_transcode(codec)
            self._packets = self._in.demux(self._in_stream)
            self._pending = None  # packet or frame held back for a later pump()
            self._decoded: list = []
            self._next_pts = None
            self.muxed_until = 0.0
        except BaseException:
            self._in.close()
            raise

    # -- setup

    def _copy_works(self) -> bool:
        """Trial-mux a few packets into an in-memory container of the same format."""
        fmt = self._out.format.name.split(",")[0]
        try:
            with av.open(str(self.src), "r") as probe_in:
                s_in = probe_in.streams.audio[0]
                buf = io.BytesIO()
                with av.open(buf, "w", format=fmt) as trial:
                    s_out = trial.add_stream_from_template(s_in)
                    n = 0
                    for pkt in probe_in.demux(s_in):
                        if pkt.size == 0 or pkt.dts is None:
                            continue
                        pkt.stream = s_out
                        trial.mux(pkt)
                        n += 1
                        if n >= 4:
                            break
            return True
        except Exception as exc:
            logger.info(
                "audio of %s (%s) cannot be stream-copied into %s (%s); re-encoding it",
                self.src, self._in_stream.codec_context.name, fmt, exc,
            )
            return False

    def _transcode_plan(self, codec: str) -> tuple[int, str]:
        """Pick sample rate and channel layout for re-encoding, verified by a trial encode."""
        in_cc = self._in_stream.codec_context
        rate = int(in_cc.sample_rate or 48000)
        if codec == "aac" and rate not in _AAC_RATES:
            rate = 48000
        n = in_cc.layout.nb_channels
        layouts = ["mono"] if n == 1 else ["stereo"] if n == 2 else [in_cc.layout.name, "stereo"]
        last: Exception | None = None
        for layout in layouts:
            try:
                self._trial_transcode(codec, rate, layout)
                return rate, layout
            except Exception as exc:  # try the next, simpler layout
                last = exc
        raise VideoIOError(f"re-encoding the audio to {codec} failed ({last})")

    def _trial_transcode(self, codec: str, rate: int, layout: str) -> None:
        fmt = self._out.format.name.split(",")[0]
        with av.open(str(self.src), "r") as probe_in, av.open(io.BytesIO(), "w", format=fmt) as trial:
            s_in = probe_in.streams.audio[0]
            s_out = self._add_audio_stream(trial, codec, rate, layout)
            n = pts = 0
            for frame in probe_in.decode(s_in):
                frame.pts = pts
                frame.time_base = Fraction(1, frame.sample_rate)
                pts += frame.samples
                trial.mux(s_out.encode(frame))
                n += 1
                if n >= 3:
                    break
            trial.mux(s_out.encode(None))

    @staticmethod
    def _add_audio_stream(container, codec: str, rate: int, layout: str):
        out = container.add_stream(codec, rate=rate)
        cc = out.codec_context
        cc.layout = layout
        cc.bit_rate = 96000 * max(1, min(cc.channels, 2))
        cc.time_base = Fraction(1, rate)
        return out

    def _setup_transcode(self, codec: str) -> None:
        rate, layout = self._transcode_plan(codec)
        self._out_stream = self._add_audio_stream(self._out, codec, rate, layout)
        self.mode = "transcode"

    # -- muxing

    def pump(self, until: float) -> None:
        """Mux source audio that starts before ``until`` seconds (output time)."""
        if self.failed:
            return
        try:
            if self.mode == "copy":
                self._pump_copy(until)
            else:
                self._pump_transcode(until)
        except Exception as exc:
            self.failed = f"audio stopped at {self.muxed_until:.2f}s: {exc}"
            logger.warning("%s: %s; continuing without the rest of the audio", self.src, self.failed)

    def finish(self, until: float) -> None:
        self.pump(until)
        if self.mode == "transcode" and not self.failed:
            try:
                self._out.mux(self._out_stream.encode(None))
            except Exception as exc:
                self.failed = f"flushing the audio encoder failed: {exc}"
                logger.warning("%s: %s", self.src, self.failed)

    def close(self) -> None:
        try:
            self._in.close()
        except Exception:
            pass

    def _pump_copy(self, until: float) -> None:
        while True:
            pkt = self._pending
            self._pending = None
            if pkt is None:
                pkt = next(self._packets, None)
                if pkt is None:
                    return
            if pkt.size == 0 or (pkt.pts is None and pkt.dts is None):
                continue
            tb = pkt.time_base
            ts = pkt.pts if pkt.pts is not None else pkt.dts
            start = float(ts * tb - self._offset)
            if start >= until:
                self._pending = pkt
                return
            end = start + float((pkt.duration or 0) * tb)
            if end <= 0 and start < 0:
                continue  # entirely before the first video frame
            if self._offset:
                shift = round(self._offset / tb)
                if pkt.pts is not None:
                    pkt.pts -= shift
                if pkt.dts is not None:
                    pkt.dts -= shift
            pkt.stream = self._out_stream
            self._out.mux(pkt)
            self.muxed_until = max(self.muxed_until, end)

    def _pump_transcode(self, until: float) -> None:
        while True:
            frame = self._pending
            self._pending = None
            if frame is None:
                frame = self._next_decoded()
                if frame is None:
                    return
            if frame.pts is not None and frame.time_base:
                start = float(frame.pts * frame.time_base - self._offset)
            else:
                start = self.muxed_until
            if start >= until:
                self._pending = frame
                return
            end = start + frame.samples / frame.sample_rate
            if end <= 0:
                continue
            if self._next_pts is None:
                self._next_pts = max(0, round(start * frame.sample_rate))
            frame.pts = self._next_pts
            frame.time_base = Fraction(1, frame.sample_rate)
            self._next_pts += frame.samples
            self._out.mux(self._out_stream.encode(frame))
            self.muxed_until = max(self.muxed_until, end)

    def _next_decoded(self):
        buffered = self._decoded
        while not buffered:
            pkt = next(self._packets, None)
            if pkt is None:
                return None
            buffered = list(pkt.decode())
        frame = buffered.pop(0)
        self._decoded = buffered
        return frame


class _NoAudio(Exception):
    pass


# --------------------------------------------------------------------------- writing


class VideoWriter:
    """Encode ``uint8`` RGB frames ``[H, W, 3]`` (or batches ``[B, H, W, 3]``) into a video file.

    * ``codec=None`` picks :func:`best_codec`; ``crf`` (libx264, default 18) or
      ``bit_rate`` control quality, ``preset`` the libx264 speed.
    * Timestamps use ``time_base = 1/fps`` so any rational rate (24,
      30000/1001, 60000/1001, ...) is stored exactly.
    * Sizes the pixel format cannot hold (odd width/height for yuv420p) are
      padded by one replicated edge pixel (``odd_size="pad"``, default) or
      cropped (``"crop"``); :attr:`out_width`/:attr:`out_height` give the result.
    * ``audio_from``: a file whose first audio track is copied into the output
      (re-encoded to AAC if the container refuses a copy; ``audio_codec`` may
      force ``"copy"`` or an encoder name). If that is impossible the video is
      still written; :attr:`audio_status` is then ``"failed"`` (or
      ``"source-has-no-audio"``) and :attr:`audio_detail` says why. Otherwise it
      is ``"none"`` (no audio requested), ``"copied"`` or ``"transcoded"``.
    * Crash safety: frames go to a hidden temp file in the target directory,
      renamed to ``path`` only by a successful :meth:`close`. Leaving a
      ``with`` block by an exception, or :meth:`abort`, deletes it, unless
      ``keep_partial=True``: then the encoded frames are finalised into a valid,
      shorter file named ``<stem>.partial<ext>`` and :attr:`truncated` is True.
    """

    def __init__(
        self,
        path,
        fps,
        width: int,
        height: int,
        codec: str | None = None,
        pix_fmt: str = "yuv420p",
        crf: int | None = None,
        preset: str | None = None,
        bit_rate: int | None = None,
        audio_from=None,
        audio_codec: str = "auto",
        keep_partial: bool = False,
        overwrite: bool = True,
        odd_size: str = "pad",
        template=None,
    ):
        self.fps = as_fps(fps)
        try:
            self.width, self.height = int(width), int(height)
        except (TypeError, ValueError):
            raise VideoIOError(
                f"Invalid frame size {width!r}x{height!r}: width and height must be positive "
                "integers."
            ) from None
        if self.width <= 0 or self.height <= 0:
            raise VideoIOError(f"Invalid frame size {self.width}x{self.height}: width and height must be positive.")
        if odd_size not in ("pad", "crop"):
            raise ValueError("odd_size must be 'pad' or 'crop'")
        self.path = _check_output_path(path, overwrite)
        self.keep_partial = bool(keep_partial)
        self.frames_written = 0
        self.truncated = False
        #: Where the finished (or partial) file ended up; None until closed.
        self.final_path: Path | None = None
        self.audio_status = "none"
        self.audio_detail = ""
        self._state = "open"
        self._audio: _AudioCarry | None = None
        self._container = None
        self._remux = template is not None

        # ---- codec and pixel format
        if codec is None:
            codec = best_codec()
        elif not codec_available(codec):
            raise VideoIOError(
                f"Video encoder '{codec}' is not available in PyAV's FFmpeg build. "
                f"Leave the codec unset to use the best available one ({best_codec()})."
            )
        self.codec = av.codec.Codec(codec, "w").name
        supported = [f.name for f in (av.codec.Codec(self.codec, "w").video_formats or [])]
        if supported and pix_fmt not in supported:
            fallback = "yuv420p" if "yuv420p" in supported else supported[0]
            logger.warning("encoder %s does not support pix_fmt %s; using %s", self.codec, pix_fmt, fallback)
            pix_fmt = fallback
        self.pix_fmt = pix_fmt
        self.out_width, self.out_height = self._fit_size(odd_size)
        fps_enc = self.fps
        if self.codec == "mpeg4" and fps_enc > 65535:
            raise VideoIOError(f"{fps_text(fps_enc)} fps is too high for the mpeg4 encoder (max 65535).")
        if self.codec == "mpeg4" and fps_enc.numerator > 65535:
            fps_enc = _limit_numerator(fps_enc, 65535)
            logger.warning("mpeg4 cannot store %s fps exactly; using %s", fps_text(self.fps), fps_text(fps_enc))
        self._time_base = 1 / fps_enc
        self._fps_enc = fps_enc

        # ---- temp file + container + video stream
        self._tmp = _make_temp(self.path)
        try:
            try:
                self._container = av.open(str(self._tmp), "w")
            except (av.error.FFmpegError, ValueError, OSError) as exc:
                raise VideoIOError(
                    f"Cannot write '{self.path}': FFmpeg has no muxer for the extension '{self.path.suffix}' ({exc}). "
                    "Use .mp4, .mkv or .mov."
                ) from exc
            try:
                if template is not None:
                    with av.open(str(template), "r") as t:
                        stream = self._container.add_stream_from_template(t.streams.video[0])
                else:
                    stream = self._container.add_stream(self.codec, rate=fps_enc)
            except ValueError as exc:
                raise VideoIOError(
                    f"Cannot write '{self.path}': {exc}. Use a .mp4 or .mkv file name, or another codec."
                ) from exc
            stream.width = self.out_width
            stream.height = self.out_height
            stream.pix_fmt = self.pix_fmt
            stream.time_base = self._time_base
            cc = stream.codec_context
            cc.time_base = self._time_base
            cc.framerate = fps_enc
            self._full_range = self.pix_fmt.startswith("yuvj")
            for attr in ("colorspace", "color_primaries", "color_trc"):
                try:
                    setattr(cc, attr, _AVCOL_BT709)
                except Exception:  # pragma: no cover
                    pass
            cc.color_range = int(ColorRange.JPEG if self._full_range else ColorRange.MPEG)
            opts = {}
            if bit_rate:
                cc.bit_rate = int(bit_rate)
            elif self.codec in ("libx264", "libx265"):
                if crf is not None and not 0 <= crf <= 51:
                    raise VideoIOError(f"crf must be between 0 (lossless) and 51 (worst), got {crf}; 18 is a good default.")
                opts["crf"] = str(DEFAULT_CRF if crf is None else int(crf))
            elif self.codec == "mpeg4":
                # Fixed quantiser like `ffmpeg -q:v 3` (crf 18 -> q 3); qmin/qmax pin it, since
                # PyAV cannot set the per-frame quality that -q:v relies on.
                q = max(2, min(31, round((DEFAULT_CRF if crf is None else int(crf)) / 6)))
                opts.update({"flags": "+qscale", "global_quality": str(q * 118), "qmin": str(q), "qmax": str(q)})
            else:
                cc.bit_rate = _default_bit_rate(self.out_width, self.out_height, fps_enc)
            if self.codec in ("libx264", "libx265"):
                opts["preset"] = preset or DEFAULT_PRESET
            cc.options.update(opts)
            try:  # open now, so bad settings fail here and not at the first frame
                if template is None:
                    cc.open()
            except (av.error.FFmpegError, ValueError) as exc:
                raise VideoIOError(
                    f"Cannot set up the {self.codec} encoder for {self.out_width}x{self.out_height} {self.pix_fmt} "
                    f"at {fps_text(fps_enc)} fps ({exc}). Check the codec settings (crf, preset, bit_rate)."
                ) from exc
            self._stream = stream
            self._reformatter = VideoReformatter()

            # ---- audio
            if audio_from is not None:
                self._setup_audio(audio_from, audio_codec)
        except BaseException:
            self._state = "failed"
            self._discard()
            raise
        logger.info(
            "writing %s: %dx%d @ %s fps, %s %s (temporary file %s)",
            self.path, self.out_width, self.out_height, fps_text(self.fps), self.codec, self.pix_fmt, self._tmp.name,
        )

    # ---------------------------------------------------------------- setup helpers

    def _fit_size(self, odd_size: str) -> tuple[int, int]:
        fmt = av.VideoFormat(self.pix_fmt)
        need_w = fmt.chroma_width(2) < 2
        need_h = fmt.chroma_height(2) < 2
        w, h = self.width, self.height
        if need_w and w % 2:
            w = w + 1 if odd_size == "pad" or w == 1 else w - 1
        if need_h and h % 2:
            h = h + 1 if odd_size == "pad" or h == 1 else h - 1
        if (w, h) != (self.width, self.height):
            logger.warning(
                "%s needs even frame sizes: %s %dx%d to %dx%d for %s",
                self.pix_fmt, "padding" if w >= self.width and h >= self.height else "cropping",
                self.width, self.height, w, h, self.path.name,
            )
        return w, h

    def _setup_audio(self, audio_from, audio_codec: str) -> None:
        src = Path(os.fspath(audio_from))
        mode = audio_codec or "auto"
        try:
            _check_input_path(src, "Audio source")
            self._audio = _AudioCarry(src, self._container, mode)
        except _NoAudio as exc:
            self.audio_status = "source-has-no-audio"
            self.audio_detail = f"'{src}' has no audio stream (it contains: {exc})"
            logger.info("%s; writing video without audio", self.audio_detail)
            return
        except Exception as exc:
            self.audio_status = "failed"
            self.audio_detail = f"could not take audio from '{src}': {exc}"
            logger.warning("%s; writing video without audio", self.audio_detail)
            return
        self.audio_status = "copied" if self._audio.mode == "copy" else "transcoded"
        self.audio_detail = (
            f"{self._audio._in_stream.codec_context.name} from '{src}'"
            + ("" if self._audio.mode == "copy" else f" re-encoded to {self._audio._out_stream.codec_context.name}")
        )
        logger.info("audio: %s %s", self.audio_status, self.audio_detail)

    # ---------------------------------------------------------------- context manager

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False

    def __del__(self):
        if getattr(self, "_state", None) == "open":
            logger.warning(
                "VideoWriter for %s was never closed; discarding its temporary file", getattr(self, "path", "?")
            )
            try:
                self._discard()
            except Exception:
                pass

    # ---------------------------------------------------------------- writing

    @property
    def duration(self) -> float:
        """Seconds of video written so far."""
        return float(self.frames_written / self._fps_enc)

    def write(self, frames) -> None:
        """Encode one frame ``[H, W, 3]``, a batch ``[B, H, W, 3]`` or an iterable of frames.

        Frames must be RGB, ``uint8`` (or float in ``[0, 1]``), of the size
        given to the constructor.
        """
        if self._state != "open":
            raise VideoIOError(f"VideoWriter for '{self.path}' is already closed; create a new writer.")
        if isinstance(frames, np.ndarray):
            if frames.ndim == 3:
                self._write_one(frames)
                return
            if frames.ndim == 4:
                for f in frames:
                    self._write_one(f)
                return
            raise VideoIOError(
                "Expected a frame [H, W, 3] or a batch [B, H, W, 3], got an array of shape "
                f"{frames.shape}."
            )
        for f in frames:
            self.write(np.asarray(f))

    def _write_one(self, frame: np.ndarray) -> None:
        frame = np.asarray(frame)
        if frame.shape != (self.height, self.width, 3):
            raise VideoIOError(
                f"Frame {self.frames_written} has shape {frame.shape}; this writer expects "
                f"({self.height}, {self.width}, 3) RGB frames."
            )
        if frame.dtype != np.uint8:
            if np.issubdtype(frame.dtype, np.floating):
                frame = (np.clip(frame, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
            else:
                raise VideoIOError(f"Frames must be uint8 (0..255) or float (0..1), got dtype {frame.dtype}.")
        frame = self._fit_frame(frame)
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        yuv = self._reformatter.reformat(
            vf,
            format=self.pix_fmt,
            dst_colorspace=Colorspace.ITU709,
            dst_color_range=ColorRange.JPEG if self._full_range else ColorRange.MPEG,
            interpolation=Interpolation.BICUBIC | Interpolation.ACCURATE_RND,
        )
        yuv.pts = self.frames_written
        yuv.time_base = self._time_base
        try:
            self._container.mux(self._stream.encode(yuv))
        except (av.error.FFmpegError, OSError) as exc:
            raise VideoIOError(
                f"Encoding frame {self.frames_written} into '{self._tmp}' failed ({exc}). Is the disk full?"
            ) from exc
        self.frames_written += 1
        if self._audio is not None:
            self._audio.pump(self.duration)

    @staticmethod
    def check_path(path, overwrite: bool) -> Path:
        """The checks the constructor makes on ``path`` (a folder, no extension, exists, not writable)."""
        return _check_output_path(path, overwrite)

    def append_file(self, piece, n_frames: int) -> None:
        """Append an encoded video file made by a writer with the same settings, without re-encoding.

        The piece's video packets are copied with their timestamps moved to start where this
        writer's frames end (the pieces of a chunked run; see engine.distributed). ``n_frames`` is
        how many frames the piece holds; the audio of ``audio_from`` is interleaved as for
        :meth:`write`.
        """
        if self._state != "open":
            raise VideoIOError(f"VideoWriter for '{self.path}' is already closed; create a new writer.")
        start = Fraction(self.frames_written) * self._time_base  # seconds
        with av.open(str(piece), "r") as c:
            s_in = c.streams.video[0]
            cc = s_in.codec_context
            if (cc.codec.id, cc.width, cc.height) != (self._stream.codec_context.codec.id, self.out_width,
                                                      self.out_height):
                raise VideoIOError(f"cannot append '{piece}': it is {cc.name} {cc.width}x{cc.height}, this writer "
                                   f"writes {self.codec} {self.out_width}x{self.out_height}")
            tb_out = self._stream.time_base
            shift = None
            for pkt in c.demux(s_in):
                if pkt.size == 0:
                    continue
                if shift is None:
                    shift = int(start / tb_out)
                for attr in ("pts", "dts"):
                    v = getattr(pkt, attr)
                    if v is not None:
                        setattr(pkt, attr, int(round(Fraction(v) * pkt.time_base / tb_out)) + shift)
                if pkt.duration:
                    pkt.duration = int(round(Fraction(pkt.duration) * pkt.time_base / tb_out))
                pkt.time_base = tb_out
                pkt.stream = self._stream
                try:
                    self._container.mux(pkt)
                except (av.error.FFmpegError, OSError) as exc:
                    raise VideoIOError(f"Appending '{piece}' to '{self._tmp}' failed ({exc}). Is the disk full?") \
                        from exc
        self.frames_written += int(n_frames)
        if self._audio is not None:
            self._audio.pump(self.duration)

    def _fit_frame(self, frame: np.ndarray) -> np.ndarray:
        h, w = self.out_height, self.out_width
        if frame.shape[0] > h or frame.shape[1] > w:
            frame = frame[:h, :w]
        if frame.shape[0] < h or frame.shape[1] < w:
            frame = np.pad(frame, ((0, h - frame.shape[0]), (0, w - frame.shape[1]), (0, 0)), mode="edge")
        return frame

    # ---------------------------------------------------------------- finishing

    def close(self, complete: bool = True) -> Path | None:
        """Finish the file and move it to ``path``; returns the final path.

        ``complete=False`` is the same as :meth:`abort`. Calling close again is a no-op.
        """
        if self._state != "open":
            return self.final_path
        if not complete:
            return self.abort()
        if self.frames_written == 0:
            self.abort(keep_partial=False)
            raise VideoIOError(f"No frames were written, so '{self.path}' was not created.")
        try:
            self._finalise()
        except Exception as exc:
            self._state = "failed"
            self._discard()
            raise VideoIOError(
                f"Finishing '{self.path}' failed ({exc}); no output was written. "
                "Is the disk full?"
            ) from exc
        try:
            os.replace(self._tmp, self.path)
        except OSError as exc:
            # The temp file is a complete video: keep it rather than lose the work.
            self._state = "failed"
            self.final_path = self._tmp
            raise VideoIOError(
                f"The video is complete but could not be moved to '{self.path}' ({exc.strerror}); it was left at "
                f"'{self._tmp}'. Is the target open in another program? Rename the file by hand."
            ) from exc
        self._state = "closed"
        self.final_path = self.path
        logger.info(
            "wrote %s: %d frames, %.2fs, audio %s", self.path, self.frames_written, self.duration, self.audio_status
        )
        return self.final_path

    def abort(self, keep_partial: bool | None = None) -> Path | None:
        """Stop writing. Deletes the temp file, or with ``keep_partial`` saves the frames so far.

        Returns the partial file's path when one was kept, else None.
        """
        if self._state != "open":
            return self.final_path
        self._state = "aborted"
        keep = self.keep_partial if keep_partial is None else bool(keep_partial)
        if keep and self.frames_written > 0:
            partial = self.path.with_name(f"{self.path.stem}.partial{self.path.suffix}")
            try:
                self._finalise()
                os.replace(self._tmp, partial)
            except Exception as exc:
                logger.error("could not save the partial video %s (%s); discarding it", partial, exc)
                self._discard()
                return None
            self.truncated = True
            self.final_path = partial
            logger.warning(
                "writing %s was interrupted; kept the %d frames written so far in %s",
                self.path.name, self.frames_written, partial,
            )
            return partial
        if keep:
            logger.warning("writing %s was interrupted before any frame was written; nothing kept", self.path.name)
        else:
            logger.info("writing %s was aborted; temporary file removed", self.path.name)
        self._discard()
        return None

    def _finalise(self) -> None:
        """Flush the encoder and audio, write the trailer. The temp file is then a valid video."""
        if not self._remux:
            self._container.mux(self._stream.encode(None))
        if self._audio is not None:
            self._audio.finish(self.duration)
            if self._audio.failed:
                self.audio_status = "failed"
                self.audio_detail = self._audio.failed
        self._container.close()
        if self._audio is not None:
            self._audio.close()

    def _discard(self) -> None:
        if self._audio is not None:
            self._audio.close()
        if self._container is not None:
            try:
                self._container.close()
            except Exception:
                pass
        try:
            os.unlink(self._tmp)
        except FileNotFoundError:
            pass
        except AttributeError:  # temp file was never created
            pass
        except OSError as exc:
            logger.warning("could not remove temporary file %s: %s", self._tmp, exc)


def _check_output_path(path, overwrite: bool) -> Path:
    p = Path(os.fspath(path))
    if p.is_dir():
        raise VideoIOError(f"Output path '{p}' is a directory. Give a file name inside it, e.g. '{p / 'output.mp4'}'.")
    if not p.suffix:
        raise VideoIOError(
            f"Output path '{p}' has no file extension; add one such as .mp4 so the "
            "container format is known."
        )
    if p.exists() and not overwrite:
        raise VideoIOError(f"Output file '{p}' already exists. Choose another name or allow overwriting.")
    parent = p.parent if str(p.parent) else Path(".")
    ancestor = parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if ancestor.exists() and not ancestor.is_dir():
        raise VideoIOError(
            f"Cannot write '{p}': '{ancestor}' is a file, not a directory. "
            "Choose another output folder."
        )
    if not parent.exists():
        try:
            parent.mkdir(parents=True, exist_ok=True)
            logger.info("created output directory %s", parent)
        except OSError as exc:
            raise VideoIOError(
                f"Cannot create the output directory '{parent}' ({exc.strerror}). "
                "Choose a writable folder."
            ) from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise VideoIOError(
            f"Output directory '{parent}' is not writable (permission denied). "
            "Choose a writable folder."
        )
    return p


def _make_temp(final: Path) -> Path:
    """Create a new hidden temp file next to ``final`` (normal permissions, unlike mkstemp's 0600)."""
    for _ in range(100):
        tmp = final.with_name(f".{final.stem}.{secrets.token_hex(4)}.partial{final.suffix}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        except OSError as exc:
            raise VideoIOError(
                f"Output directory '{final.parent}' is not writable ({exc.strerror}). Choose a writable folder."
            ) from None
        os.close(fd)
        return tmp
    raise VideoIOError(f"Could not create a temporary file next to '{final}'.")


def _limit_numerator(fps: Fraction, max_num: int) -> Fraction:
    inv = (1 / fps).limit_denominator(max_num)
    return 1 / inv


def _default_bit_rate(width: int, height: int, fps: Fraction) -> int:
    # ~0.15 bits per pixel, plenty for H.264-class encoders at these sizes.
    return int(max(500_000, min(50_000_000, width * height * float(fps) * 0.15)))


# --------------------------------------------------------------------------- synthetic media


def synthetic_frame(index: int, width: int, height: int, n_frames: int = 48) -> np.ndarray:
    """Deterministic smooth test frame ``[height, width, 3]`` uint8: drifting gradients plus a moving blob."""
    t = index / max(1, n_frames)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    u, v = x / max(1, width), y / max(1, height)
    r = 128 + 90 * np.sin(2 * np.pi * (u + t))
    g = 128 + 90 * np.sin(2 * np.pi * (v - t) + 1.0)
    b = 128 + 70 * np.cos(2 * np.pi * (u + v + 2 * t))
    cx = width * (0.2 + 0.6 * t)
    cy = height * (0.5 + 0.25 * np.sin(2 * np.pi * t))
    sigma = max(2.0, 0.12 * min(width, height))
    blob = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * sigma**2))
    r = r * (1 - blob) + 250 * blob
    g = g * (1 - blob) + 230 * blob
    b = b * (1 - blob) + 40 * blob
    return np.clip(np.stack([r, g, b], axis=-1) + 0.5, 0, 255).astype(np.uint8)


_TONE_CODECS = {".wav": "pcm_s16le", ".mp3": "libmp3lame", ".mka": "pcm_s16le", ".mkv": "pcm_s16le"}


def make_sample_tone(
    path, duration: float = 2.0, sample_rate: int = 48000, freq: float = 440.0, codec: str | None = None
) -> Path:
    """Write an audio-only file with a stereo sine tone (AAC for .m4a/.mp4, PCM for .wav/.mkv, MP3 for .mp3)."""
    p = Path(os.fspath(path))
    if codec is None:
        codec = _TONE_CODECS.get(p.suffix.lower(), "aac")
        if codec == "aac" and not codec_available("aac"):
            codec = "libmp3lame"
    n_total = int(round(duration * sample_rate))
    with av.open(str(p), "w") as out:
        stream = out.add_stream(codec, rate=sample_rate)
        stream.codec_context.layout = "stereo"
        fmt = stream.codec_context.format.name
        stream.codec_context.time_base = Fraction(1, sample_rate)
        block = stream.codec_context.frame_size or 1024
        pos = 0
        while pos < n_total:
            n = min(block, n_total - pos)
            tt = (np.arange(pos, pos + n) / sample_rate).astype(np.float64)
            mono = 0.3 * np.sin(2 * np.pi * freq * tt)
            frame = _audio_frame(mono, fmt, sample_rate)
            frame.pts = pos
            frame.time_base = Fraction(1, sample_rate)
            out.mux(stream.encode(frame))
            pos += n
        out.mux(stream.encode(None))
    return p


def write_audio(path, samples: np.ndarray, sample_rate: int, codec: str = "aac") -> Path:
    """Encode float samples ``[channels, n]`` (in [-1, 1]) into an audio-only file, block by block.

    For audio that exists only in memory (e.g. a ComfyUI AUDIO), so that :class:`VideoWriter` can
    carry it as ``audio_from``. 1, 2 and 6 channels keep their layout; more are cut to the first two.
    """
    p = Path(os.fspath(path))
    data = np.asarray(samples, dtype=np.float32)
    if data.ndim != 2 or data.shape[1] == 0:
        raise VideoIOError(f"audio samples must be [channels, samples] with at least one sample, got {data.shape}")
    layouts = {1: "mono", 2: "stereo", 6: "5.1"}
    if data.shape[0] not in layouts:
        logger.warning("%d audio channels: keeping the first two", data.shape[0])
        data = data[:2]
    rate = int(sample_rate)
    with av.open(str(p), "w") as out:
        stream = out.add_stream(codec, rate=rate)
        stream.codec_context.layout = layouts[data.shape[0]]
        stream.codec_context.time_base = Fraction(1, rate)
        block = stream.codec_context.frame_size or 1024
        for pos in range(0, data.shape[1], block):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data[:, pos:pos + block]), format="fltp",
                                               layout=layouts[data.shape[0]])
            frame.sample_rate = rate
            frame.pts = pos
            frame.time_base = Fraction(1, rate)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return p


def _audio_frame(mono: np.ndarray, fmt: str, rate: int):
    stereo = np.stack([mono, mono])
    if fmt in ("s16", "s16p"):
        data = (stereo * 32767).astype(np.int16)
    else:
        data = stereo.astype(np.float32)
        fmt = fmt if fmt in ("flt", "fltp") else "fltp"
    if not fmt.endswith("p"):
        data = data.T.reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=fmt, layout="stereo")
    frame.sample_rate = rate
    return frame


def make_sample_clip(
    path,
    n_frames: int = 48,
    size: tuple[int, int] = (320, 192),
    fps=Fraction(24),
    audio: bool = False,
    codec: str | None = None,
) -> Path:
    """Synthesise a short deterministic test clip (``size`` is ``(width, height)``).

    With ``audio=True`` a 440 Hz sine tone as long as the video is added.
    Returns the path written.
    """
    p = Path(os.fspath(path))
    width, height = int(size[0]), int(size[1])
    fps = as_fps(fps)
    tone = None
    try:
        if audio:
            tone = p.with_name(f".{p.stem}.tone.m4a" if codec_available("aac") else f".{p.stem}.tone.mp3")
            make_sample_tone(tone, duration=float(n_frames / fps))
        with VideoWriter(p, fps, width, height, codec=codec, audio_from=tone, preset="veryfast") as writer:
            for i in range(n_frames):
                writer.write(synthetic_frame(i, width, height, n_frames))
        if audio and writer.audio_status not in ("copied", "transcoded"):
            logger.warning("sample clip %s has no audio: %s", p, writer.audio_detail)
    finally:
        if tone is not None and tone.exists():
            tone.unlink()
    return p
