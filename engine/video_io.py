"""Streaming video input/output on top of PyAV (FFmpeg).

Everything here works one frame (or one small chunk) at a time, so memory use
stays flat however long the video is:

* :func:`probe` reads a file's metadata into a :class:`VideoInfo`.
* :class:`VideoReader` decodes frames as ``uint8`` RGB arrays ``[H, W, 3]``.
* :class:`VideoWriter` encodes such frames, optionally carrying over the audio
  track of another file (engine.audio), and is crash safe: it writes to a hidden
  temporary file next to the target and only renames it into place on a
  successful :meth:`VideoWriter.close`.

Test media without any download (sample clips, tones, frames) is engine.samples.

Problems the user can fix (missing or corrupt input, unwritable output, bad
frame rate, ...) raise :class:`VideoIOError`, whose message says what is wrong
and what to do about it.

This module is plain Python + numpy + PyAV: frames are numpy arrays, no torch code runs here
(torch is imported only through engine.errors), and it never imports ComfyUI.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace, Interpolation, VideoReformatter

from . import safe_write
from .audio import AudioCarry, NoAudio, is_attached_pic, stream_desc
from .errors import InputError, VideoIOError
from .schedule import FrameTimes, as_fraction, fps_text

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
]

#: Video encoders in order of preference (first one PyAV's FFmpeg has wins).
VIDEO_CODEC_PREFERENCE = ("libx264", "libopenh264", "mpeg4")
#: Encoders that take crf and preset options.
_CRF_CODECS = ("libx264", "libx264rgb", "libx265")
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
_AVCOL_SPC_RGB = 0  # matrix "identity": the planes are G, B, R
_AVCOL_SPC_UNSPECIFIED = 2

_FFMPEG_ERRORS = (av.error.FFmpegError,)


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
    candidates = [s for s in container.streams.video if not is_attached_pic(s)]
    if fmt in _TEXT_FORMATS or any(
        (s.codec_context is not None and s.codec_context.name in _TEXT_CODECS) for s in candidates
    ):
        raise VideoIOError(
            f"'{p}' is a text file, not a video (FFmpeg only recognised it as ANSI text art). "
            "Give a video file such as .mp4, .mkv, .mov or .webm."
        )
    if not candidates:
        found = ", ".join(stream_desc(s) for s in container.streams) or "no streams at all"
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
    #: The frames' real times when they are not evenly spaced (variable frame rate; ``fps`` is then
    #: the average), else None. Known only with ``count_frames=True``.
    frame_times: FrameTimes | None = None


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
    if count_frames:
        n, pts, last = 0, [], (None, None)
        try:
            for pkt in container.demux(stream):
                if pkt.size > 0:
                    n += 1
                    pts.append(pkt.pts)
                    if pkt.pts is not None and (last[0] is None or pkt.pts > last[0]):
                        last = (pkt.pts, pkt.duration)
        except _FFMPEG_ERRORS as exc:
            raise VideoIOError(
                f"Cannot count the frames of '{p}': reading failed ({exc}). "
                "The file is probably corrupt."
            ) from exc
        times = None
        if stream.time_base and None not in pts and (not exact or n == frames):  # (not from a truncated file)
            times = FrameTimes.detect(pts, stream.time_base, last[1])
        # a declared count stays (a truncated file declares more than it holds: the reader finds out)
        info = replace(info, frame_count=frames if exact else n, frame_count_exact=True, frame_times=times)
    return info


def probe(path, count_frames: bool = False) -> VideoInfo:
    """Read the metadata of ``path``'s first video stream.

    ``frame_count`` comes from the container when it stores one; otherwise it
    is estimated from the duration (``frame_count_exact=False``), unless
    ``count_frames=True``, which counts the video packets (reads the whole
    file, but decodes nothing) and reads their timestamps (``frame_times``).
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

    Use as a context manager and iterate it. Frames come in presentation order,
    as the decoder outputs them. Only the video stream is demuxed and decoded;
    memory use does not grow with the video's length.

    ``errors="raise"`` (default) turns a decoding error into :class:`VideoIOError`;
    ``errors="skip"`` logs it and goes on instead. A frame the decoder outputs but flags
    corrupt (damage it concealed), and a packet the container flags incomplete anywhere but
    at the very end (there: a truncated file, logged), count as decoding errors too.

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
            # Slice threads only: with frame threads FFmpeg's h264 decoder drops the corrupt flag of a
            # frame it concealed damage in about one decode in ten (measured), and a damaged file would
            # then read as a good one. Decoding is not what a run waits for (single-threaded 720p h264
            # decodes at ~300 fps here; the interpolation runs at a few to ~100).
            try:
                self._stream.thread_type = "SLICE"
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
        # A packet the demuxer flags corrupt (data missing: cut short, or lost in transport) is a
        # truncated file's last one if no packet with data follows (the frames before it are what the
        # file holds; the caller compares them with what the container declares), damage if one does
        # (frames are missing from the middle, whether or not the decoder then complains).
        cut = None
        try:
            for packet in self._container.demux(stream):
                if cut is not None and packet.size:
                    self._damaged(*cut)
                    cut = None
                if packet.is_corrupt and packet.size:
                    cut = (f"data is missing after frame {self.frames_read} (the container flags a packet "
                           "incomplete)", None)
                try:
                    frames = packet.decode()
                except av.error.InvalidDataError as exc:
                    if cut is None:
                        self._damaged(f"decoding failed after {self.frames_read} frames ({exc})", exc)
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
                    if frame.is_corrupt:  # decoded, but over damaged data the decoder concealed
                        self._damaged(f"frame {self.frames_read} decoded from damaged data (the decoder filled in "
                                      "what it could not read)")
                        continue
                    if self.frames_read == 0:
                        self._check_rotation(frame)
                    arr = self._to_rgb(frame)
                    self.frames_read += 1
                    yield arr
            if cut is not None:
                logger.warning("%s ends inside a frame (truncated): its last packet is incomplete", self.path)
        except VideoIOError:
            raise
        except _FFMPEG_ERRORS as exc:
            raise VideoIOError(
                f"Reading '{self.path}' failed after {self.frames_read} frames ({exc}). The file is probably "
                "truncated or corrupt; re-encode or re-download it."
            ) from exc

    def _damaged(self, what: str, exc: Exception | None = None) -> None:
        """A packet that failed to decode, a frame the decoder flagged corrupt or an incomplete packet
        before the end: VideoIOError (errors="raise"), or a warning and the data dropped (errors="skip")."""
        self.decode_errors += 1
        if self.errors == "raise":
            raise VideoIOError(f"'{self.path}' is damaged: {what}. Re-encode it (for example: ffmpeg -i damaged.mp4 "
                               "-c:v libx264 fixed.mp4) and try again.") from exc
        logger.warning("%s: skipping damaged data: %s", self.path, what)

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
        protect=(),
    ):
        self.fps = as_fps(fps)
        self.width, self.height = _frame_size(width, height)
        if odd_size not in ("pad", "crop"):
            raise ValueError("odd_size must be 'pad' or 'crop'")
        #: Paths never written (the inputs; audio_from is one): neither the output nor the partial file.
        self.protect = [Path(os.fspath(x)) for x in (*protect, audio_from) if x is not None]
        self.path = _check_output_path(path, overwrite, self.protect)
        self.overwrite = bool(overwrite)
        self.keep_partial = bool(keep_partial)
        self.frames_written = 0
        self.truncated = False
        #: Where the finished (or partial) file ended up; None until closed.
        self.final_path: Path | None = None
        self.audio_status = "none"
        self.audio_detail = ""
        self._state = "setup"  # "open" once set up; a writer that failed to set up has nothing to close
        self._audio: AudioCarry | None = None
        self._container = None
        self._remux = template is not None
        self.codec, self.pix_fmt = _choose_codec(codec, pix_fmt)
        self._full_range = self.pix_fmt.startswith("yuvj")
        self.out_width, self.out_height = self._fit_size(odd_size)
        self._fps_enc = _encoder_fps(self.codec, self.fps)
        self._time_base = 1 / self._fps_enc

        try:
            self._tmp = safe_write.temp_path(self.path)
        except safe_write.TargetError as exc:
            raise VideoIOError(str(exc)) from None
        with contextlib.ExitStack() as on_error:  # anything below fails (or is interrupted): no temporary file is left
            on_error.callback(self._fail)
            self._container = self._open_container()
            self._stream = self._add_video_stream(crf, preset, bit_rate, template)
            self._reformatter = VideoReformatter()
            if audio_from is not None:
                self._setup_audio(audio_from, audio_codec)
            on_error.pop_all()
        self._state = "open"
        logger.info(
            "writing %s: %dx%d @ %s fps, %s %s (temporary file %s)",
            self.path, self.out_width, self.out_height, fps_text(self.fps), self.codec, self.pix_fmt, self._tmp.name,
        )

    # ---------------------------------------------------------------- setup helpers

    def _fail(self) -> None:
        self._state = "failed"
        self._discard()

    def _open_container(self):
        try:
            return av.open(str(self._tmp), "w")
        except (av.error.FFmpegError, ValueError, OSError) as exc:
            raise VideoIOError(
                f"Cannot write '{self.path}': FFmpeg has no muxer for the extension '{self.path.suffix}' ({exc}). "
                "Use .mp4, .mkv or .mov."
            ) from exc

    def _add_video_stream(self, crf, preset, bit_rate, template=None):
        """The output's video stream, its encoder set up (BT.709 tags, quality options) and opened;
        with a `template` file, a stream copied from its video stream (for remuxing: not opened)."""
        try:
            if template is not None:
                with av.open(str(template), "r") as t:
                    stream = self._container.add_stream_from_template(t.streams.video[0])
            else:
                stream = self._container.add_stream(self.codec, rate=self._fps_enc)
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
        cc.framerate = self._fps_enc
        rgb = av.VideoFormat(self.pix_fmt).is_rgb  # libx264rgb & co store RGB itself: no YUV matrix
        self._full_range = rgb or self.pix_fmt.startswith("yuvj")
        for attr, value in (("colorspace", _AVCOL_SPC_RGB if rgb else _AVCOL_BT709),
                            ("color_primaries", _AVCOL_BT709), ("color_trc", _AVCOL_BT709)):
            try:
                setattr(cc, attr, value)
            except Exception:  # pragma: no cover
                pass
        cc.color_range = int(ColorRange.JPEG if self._full_range else ColorRange.MPEG)
        opts = {}
        if bit_rate:
            cc.bit_rate = int(bit_rate)
        elif self.codec in _CRF_CODECS:
            if crf is not None and not 0 <= crf <= 51:
                raise VideoIOError(f"crf must be between 0 (lossless) and 51 (worst), got {crf}; 18 is a good default.")
            opts["crf"] = str(DEFAULT_CRF if crf is None else int(crf))
        elif self.codec == "mpeg4":
            # Fixed quantiser like `ffmpeg -q:v 3` (crf 18 -> q 3); qmin/qmax pin it, since
            # PyAV cannot set the per-frame quality that -q:v relies on.
            q = max(2, min(31, round((DEFAULT_CRF if crf is None else int(crf)) / 6)))
            opts.update({"flags": "+qscale", "global_quality": str(q * 118), "qmin": str(q), "qmax": str(q)})
        else:
            cc.bit_rate = _default_bit_rate(self.out_width, self.out_height, self._fps_enc)
        if self.codec in _CRF_CODECS:
            opts["preset"] = preset or DEFAULT_PRESET
        cc.options.update(opts)
        try:  # open now, so bad settings fail here and not at the first frame
            if template is None:
                cc.open()
        except (av.error.FFmpegError, ValueError) as exc:
            raise VideoIOError(
                f"Cannot set up the {self.codec} encoder for {self.out_width}x{self.out_height} {self.pix_fmt} "
                f"at {fps_text(self._fps_enc)} fps ({exc}). Check the codec settings (crf, preset, bit_rate)."
            ) from exc
        return stream

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
            self._audio = AudioCarry(src, self._container, mode)
        except NoAudio as exc:
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
    def check_path(path, overwrite: bool, protect=()) -> Path:
        """The checks the constructor makes on ``path`` (a folder, no extension, exists, an input, not writable)."""
        return _check_output_path(path, overwrite, protect)

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
            safe_write.publish(self._tmp, self.path, overwrite=self.overwrite)
        except OSError as exc:
            # The temp file is a complete video: keep it, under a name no clean-up removes.
            self._state = "failed"
            self.final_path = self._tmp
            with contextlib.suppress(OSError, safe_write.TargetError):
                kept = safe_write.free_name(self.path.with_name(f"{self.path.stem}.complete{self.path.suffix}"))
                os.rename(self._tmp, kept)
                self.final_path = kept
            why = "it appeared meanwhile" if isinstance(exc, FileExistsError) else exc.strerror
            raise VideoIOError(
                f"The video is complete but could not be moved to '{self.path}' ({why}); it was left at "
                f"'{self.final_path}'. Is the target open in another program? Rename the file by hand."
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
                for _ in range(100):  # never over an existing file or an input: the next free name
                    partial = safe_write.free_name(partial, [self.path, *self.protect])
                    try:
                        safe_write.publish(self._tmp, partial, overwrite=False)
                        break
                    except FileExistsError:
                        continue
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


def _frame_size(width, height) -> tuple[int, int]:
    try:
        w, h = int(width), int(height)
    except (TypeError, ValueError):
        raise VideoIOError(
            f"Invalid frame size {width!r}x{height!r}: width and height must be positive integers."
        ) from None
    if w <= 0 or h <= 0:
        raise VideoIOError(f"Invalid frame size {w}x{h}: width and height must be positive.")
    return w, h


def _choose_codec(codec: str | None, pix_fmt: str) -> tuple[str, str]:
    """The encoder's canonical name and a pixel format it takes (the asked one, else yuv420p or its first)."""
    if codec is None:
        codec = best_codec()
    elif not codec_available(codec):
        raise VideoIOError(
            f"Video encoder '{codec}' is not available in PyAV's FFmpeg build. "
            f"Leave the codec unset to use the best available one ({best_codec()})."
        )
    name = av.codec.Codec(codec, "w").name
    supported = [f.name for f in (av.codec.Codec(name, "w").video_formats or [])]
    if supported and pix_fmt not in supported:
        fallback = "yuv420p" if "yuv420p" in supported else supported[0]
        logger.warning("encoder %s does not support pix_fmt %s; using %s", name, pix_fmt, fallback)
        pix_fmt = fallback
    return name, pix_fmt


def _encoder_fps(codec: str, fps: Fraction) -> Fraction:
    """The rate the encoder is given: `fps`, except where mpeg4 cannot store it exactly."""
    if codec == "mpeg4" and fps > 65535:
        raise VideoIOError(f"{fps_text(fps)} fps is too high for the mpeg4 encoder (max 65535).")
    if codec == "mpeg4" and fps.numerator > 65535:
        enc = _limit_numerator(fps, 65535)
        logger.warning("mpeg4 cannot store %s fps exactly; using %s", fps_text(fps), fps_text(enc))
        return enc
    return fps


def _check_output_path(path, overwrite: bool, protect=()) -> Path:
    p = Path(os.fspath(path))
    if p.is_dir():
        raise VideoIOError(f"Output path '{p}' is a directory. Give a file name inside it, e.g. '{p / 'output.mp4'}'.")
    if not p.suffix:
        raise VideoIOError(
            f"Output path '{p}' has no file extension; add one such as .mp4 so the "
            "container format is known."
        )
    try:
        safe_write.check_target(p, overwrite=overwrite, protect=protect)
    except safe_write.TargetError as exc:
        raise VideoIOError(str(exc)) from None
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


def _limit_numerator(fps: Fraction, max_num: int) -> Fraction:
    inv = (1 / fps).limit_denominator(max_num)
    return 1 / inv


def _default_bit_rate(width: int, height: int, fps: Fraction) -> int:
    # ~0.15 bits per pixel, plenty for H.264-class encoders at these sizes.
    return int(max(500_000, min(50_000_000, width * height * float(fps) * 0.15)))
