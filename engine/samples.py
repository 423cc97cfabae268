"""Small, deterministic test media made without any download: frames, tones and clips with audio.

Used by the demo (`python -m engine.cli demo`), the tests and the benchmarks.
"""
from __future__ import annotations

import logging
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from . import safe_write
from .video_io import VideoWriter, as_fps, codec_available

logger = logging.getLogger(__name__)


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
            tone = safe_write.temp_path(p.with_name(f"{p.stem}.tone{'.m4a' if codec_available('aac') else '.mp3'}"))
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
