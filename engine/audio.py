"""The audio of a source file carried into an output container as the video is written.

AudioCarry copies the source's audio packets where the output format can hold them, else re-encodes
them (AAC by default); either way incrementally (pump), so the audio interleaves with the video and
nothing is buffered. engine.video_io.VideoWriter owns one when it is given `audio_from`.
"""
from __future__ import annotations

import io
import logging
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from .errors import VideoIOError

logger = logging.getLogger(__name__)

# Sample rates the native AAC encoder accepts.
AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)


def is_attached_pic(stream) -> bool:
    try:
        return bool(stream.disposition & av.stream.Disposition.attached_pic)
    except Exception:
        return False


def stream_desc(stream) -> str:
    try:
        name = stream.codec_context.name if stream.codec_context is not None else "unknown codec"
    except Exception:
        name = "unknown codec"
    kind = "cover image" if stream.type == "video" and is_attached_pic(stream) else stream.type
    return f"{kind} ({name})"


class AudioCarry:
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
                raise NoAudio(", ".join(stream_desc(s) for s in self._in.streams) or "no streams")
            self._in_stream = audio[0]
            video = [s for s in self._in.streams.video if not is_attached_pic(s)]
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
        if codec == "aac" and rate not in AAC_RATES:
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


class NoAudio(Exception):
    pass


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
