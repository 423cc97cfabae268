"""VideoInterpolateStream: VIDEO in, VIDEO out, streamed frame by frame (memory flat in video length).

The VIDEO is never turned into an IMAGE batch: a file (what LoadVideo gives) is decoded on a
thread into a bounded queue; a VIDEO made from in-memory frames (CreateVideo) is read one frame at
a time from its own tensor, never copied whole. Frames go through the engine's streamed entry point
(schedule, scene cuts, guard, recovery ladder) and straight into the encoder. The result is a real
file, so SaveVideo copies its streams (exact fps, audio) and the UI can preview it:

    temp/video_engine/  one file per node and set of inputs (the last KEEP_PER_NODE are kept,
                        older ones are deleted; ComfyUI empties temp/ when it starts)
    output/             when save_output is on (a new numbered file, never overwritten)

The file appears only when complete; a cancelled or failed run leaves nothing behind.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Iterator

import comfy.model_management as mm
import folder_paths
import numpy as np
import torch
from comfy_api.latest import InputImpl, io, ui

from ..engine.errors import InputError
from ..engine.options import Options
from ..engine.pipeline import format_report
from ..engine.audio import write_audio
from ..engine.schedule import FrameTimes, as_fraction
from ..engine.stream import Encoder, interpolate_stream, source_frames, to_uint8
from ..engine.video_io import VideoWriter, probe
from . import model_cache
from .interpolate_node import (check_model, core_model_inputs, drill_faults, node_status, optional_inputs,
                               progress_hooks, report_failure, run_inputs, run_model, run_options)
from .types import CATEGORY, SEARCH_ALIASES, GuardSettings, schema_extras

log = logging.getLogger(__name__)

TEMP_SUBFOLDER = "video_engine"
KEEP_PER_NODE = 2  # temp results kept per node: the current one and the one before (A -> B -> A reuses A)
DEFAULT_PREFIX = "video/VideoEngine"


@dataclass
class Source:
    """Where the frames come from: a file (streamed by a decoder thread) or in-memory frames."""

    n_frames: int
    fps: Fraction
    width: int
    height: int
    path: str | None = None  # a video file to decode (audio is taken from it)
    frames: torch.Tensor | None = None  # [N, H, W, C] float in [0, 1] (CreateVideo's images)
    audio: dict | None = None  # {"waveform": [1, C, S], "sample_rate": int} for in-memory frames
    name: str = ""  # how the source is named in messages
    identity: tuple | None = None  # stable identity for the result cache (None: never reused)
    cleanup: Callable[[], None] | None = None
    frame_times: FrameTimes | None = None  # a file with a variable frame rate: retimed from these

    def iter_frames(self) -> Iterator[np.ndarray]:
        """uint8 [H, W, 3] frames of the in-memory source, converted one at a time."""
        imgs = self.frames
        for i in range(int(imgs.shape[0])):
            f = imgs[i, :, :, :3]
            yield f.detach().to("cpu", torch.float32).clamp(0, 1).mul(255).add_(0.5).to(torch.uint8).numpy()


def _components_fps(rate) -> Fraction:
    fr = Fraction(rate)
    # CreateVideo stores Fraction(float): 23.976 becomes a 2**k denominator; read it as the float it was
    return as_fraction(float(fr)) if fr.denominator > 10000 else fr


def _file_source(path: str, name: str | None = None, cleanup=None) -> Source:
    try:
        info = probe(path, count_frames=True)
    except Exception as e:  # noqa: BLE001 - every unreadable input gets the same clear shape
        if cleanup:
            cleanup()
        raise InputError(_input_error(e, name or path)) from None
    if not info.frame_count:
        if cleanup:
            cleanup()
        raise InputError(f"Video Engine: the input video '{name or path}' has a video stream but no frames")
    try:
        st = os.stat(path)
        identity = ("file", os.path.realpath(path), st.st_size, st.st_mtime_ns) if cleanup is None else None
    except OSError:
        identity = None
    n_frames, times = source_frames(info)
    return Source(n_frames=n_frames, fps=info.fps, width=info.width, height=info.height, path=path,
                  name=name or path, identity=identity, cleanup=cleanup, frame_times=times)


def _input_error(exc: BaseException, name: str) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"Video Engine: {text}" if name in text else f"Video Engine: cannot read the input video '{name}': {text}"


def _spill(write: Callable[[str], None], what: str) -> Source:
    """A VIDEO that is not a plain file: write it into a temporary file (compressed, on disk) and stream that."""
    tmp_dir = os.path.join(folder_paths.get_temp_directory(), TEMP_SUBFOLDER)
    os.makedirs(tmp_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".ve_input_", suffix=".mp4", dir=tmp_dir)
    os.close(fd)

    def cleanup():
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass

    try:
        write(tmp)
    except Exception as e:  # noqa: BLE001
        cleanup()
        raise InputError(f"Video Engine: cannot read the input video ({what}): {type(e).__name__}: {e}") from None
    return _file_source(tmp, name=what, cleanup=cleanup)


def video_source(video) -> Source:
    """A Source for any VIDEO: core's VideoFromFile / VideoFromComponents, or another node's VideoInput."""
    if video is None:
        raise InputError("Video Engine: no video: connect a VIDEO (e.g. from Load Video or Create Video)")
    trim = getattr(video, "get_active_trim_window", None)
    trimmed = trim is not None and tuple(trim()) != (0.0, 0.0)
    if isinstance(video, InputImpl.VideoFromFile) and not trimmed:
        src = video.get_stream_source()
        if isinstance(src, (str, os.PathLike)):
            return _file_source(os.fspath(src))

        def write_bytes(tmp, buf=src):
            buf.seek(0)
            with open(tmp, "wb") as f:
                shutil.copyfileobj(buf, f)

        return _spill(write_bytes, "an in-memory video file")
    if isinstance(video, InputImpl.VideoFromComponents):
        comp = video.get_components()  # the same tensors, not a copy
        images = comp.images
        if images is None or images.ndim != 4 or images.shape[0] == 0 or images.shape[-1] < 3:
            shape = None if images is None else tuple(images.shape)
            raise InputError(f"Video Engine: the input VIDEO has no usable frames (images of shape {shape}); "
                                   "it needs [frames, height, width, 3]")
        return Source(n_frames=int(images.shape[0]), fps=_components_fps(comp.frame_rate), width=int(images.shape[2]),
                      height=int(images.shape[1]), frames=images, audio=comp.audio, name="the VIDEO's frames")
    # A trimmed file, or another pack's VideoInput: let it write itself to a file, then stream that.
    kind = "a trimmed video" if trimmed else type(video).__name__
    log.info("Video Engine: %s is written to a temporary file first (the node streams from files)", kind)
    return _spill(lambda tmp: video.save_to(tmp), kind)


# ----------------------------------------------------------------------------- temp results
@dataclass
class Finished:
    path: str
    subfolder: str
    folder_type: io.FolderType
    fps: float
    report: str
    report_dict: dict


_results: OrderedDict[str, Finished] = OrderedDict()  # cache key -> finished temp result
_per_node: dict[str, deque] = {}  # node id -> its temp files, newest last
_lock = threading.Lock()


def cache_key(node_id: str, source: Source, params: dict) -> str | None:
    """Same node, same source file (path, size, mtime) and same settings: the same result."""
    if source.identity is None:
        return None
    blob = json.dumps([node_id, list(source.identity), params], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _reusable(key: str | None) -> Finished | None:
    with _lock:
        hit = _results.get(key) if key else None
        if hit is not None and os.path.isfile(hit.path):
            return hit
        return None


def _remember(node_id: str, key: str | None, done: Finished) -> None:
    """Keep the newest KEEP_PER_NODE temp results of a node; delete older ones."""
    if done.folder_type != io.FolderType.temp:
        return  # the user's files are never deleted
    with _lock:
        if key:
            _results[key] = done
        files = _per_node.setdefault(node_id, deque())
        if done.path in files:
            files.remove(done.path)
        files.append(done.path)
        while len(files) > KEEP_PER_NODE:
            old = files.popleft()
            try:
                os.unlink(old)
            except FileNotFoundError:
                pass
            except OSError as e:
                log.warning("Video Engine: could not remove the old temp result %s: %s", old, e)
            for k in [k for k, v in _results.items() if v.path == old]:
                del _results[k]


def _output_path(save_output: bool, prefix: str, node_id: str, key: str | None, w: int, h: int):
    if save_output:
        folder, filename, counter, subfolder, _ = folder_paths.get_save_image_path(
            prefix or DEFAULT_PREFIX, folder_paths.get_output_directory(), w, h)
        name = f"{filename}_{counter:05}_.mp4"
        return os.path.join(folder, name), name, subfolder, io.FolderType.output
    folder = os.path.join(folder_paths.get_temp_directory(), TEMP_SUBFOLDER)
    os.makedirs(folder, exist_ok=True)
    tag = key or os.urandom(8).hex()
    safe_node = "".join(c if c.isalnum() else "_" for c in node_id)[:32] or "node"
    name = f"stream_{safe_node}_{tag}.mp4"
    return os.path.join(folder, name), name, TEMP_SUBFOLDER, io.FolderType.temp


# ----------------------------------------------------------------------------- the node
class VideoInterpolateStream(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VideoInterpolateStream",
            display_name="Video Interpolate (stream)",
            category=CATEGORY,
            description=("Interpolates a VIDEO into a smoother or higher-frame-rate VIDEO without ever holding the "
                         "clip in memory: frames are decoded, interpolated and encoded one by one, so a 3,000-frame "
                         "video needs no more RAM than a 300-frame one. Same methods, frame-rate conversion, scene "
                         "cuts and out-of-memory recovery as Video Interpolate; the audio is kept and the frame rate "
                         "is exact. Connect Load Video (or any VIDEO) in and Save Video out."),
            inputs=[
                io.Video.Input("video", tooltip="The video to interpolate (Load Video, Create Video, or any node "
                                                "that outputs a VIDEO). Its frame rate and audio are used."),
                *run_inputs(source_fps=False),
                io.Boolean.Input("save_output", default=False,
                                 tooltip="Off: the result is a temporary file (connect Save Video to keep it). On: "
                                         "it is also saved in the output folder under filename_prefix."),
                io.String.Input("filename_prefix", default=DEFAULT_PREFIX,
                                tooltip="Where save_output puts the file, inside the output folder "
                                        "(numbered, never overwritten)."),
                *optional_inputs(),
                *core_model_inputs(),
            ],
            outputs=[
                io.Video.Output("interpolated_video", display_name="video",
                                tooltip="The interpolated video (a real file: Save Video copies it as it is)."),
                io.Float.Output("fps", display_name="fps", tooltip="Frame rate of the output video."),
                io.String.Output("report", display_name="report",
                                 tooltip="What ran: method, device, batch, fallbacks, scene cuts, time, memory."),
            ],
            hidden=[io.Hidden.unique_id, io.Hidden.extra_pnginfo],
            is_output_node=True,
            **schema_extras(SEARCH_ALIASES + ["stream", "long video", "video to video"]),
        )

    @classmethod
    def validate_inputs(cls, model=None):
        return check_model(model) or True  # the message names the model folder and the file

    @classmethod
    def execute(cls, video, model, multiplier, target_fps, scene_cut_threshold, precision, save_output,
                filename_prefix, guard=None, fallback=None, interp_model=None) -> io.NodeOutput:
        node_id, status = node_status(cls)
        node_id = node_id or ""
        settings = guard if isinstance(guard, GuardSettings) else GuardSettings()
        source = core_method = None
        try:
            opts = run_options(multiplier, target_fps, None, scene_cut_threshold, precision, settings)
            bad_model = check_model(model)
            if bad_model:
                raise InputError(bad_model)
            source = video_source(video)
            opts = opts.replace(src_fps=source.fps)  # checks a target fps against the video's
            # a result is reused only for a model file it can name (not for core's model object); checked
            # before the model is put on the device, so a reused result loads nothing into VRAM
            key = None
            if not save_output and interp_model is None:
                params = dict(model=model, model_key=model_cache.get(model).key, options=opts.as_dict(),
                              fallback=repr(fallback))
                key = cache_key(node_id, source, params)
            done = _reusable(key)
            if done is not None:
                log.info("Video Engine: same inputs as an earlier run, reusing %s", done.path)
                status.finish(done.report_dict, done.report)
            else:
                loaded, opts = run_model(model, interp_model, opts, (source.n_frames, source.height, source.width, 3))
                core_method = loaded.method if interp_model is not None else None
                done = cls._run(node_id, source, loaded, key, status, opts, settings, fallback, save_output,
                                filename_prefix)
        except BaseException as e:
            report_failure(e, status, node_id)
            raise
        finally:
            if core_method is not None:
                core_method.restore()  # core's model back where its ModelPatcher put it
            if source is not None and source.cleanup is not None:
                source.cleanup()
            mm.soft_empty_cache()  # no gc.collect(): ComfyUI's prompt worker runs it (0.36 s in a 0.25 server)
        _remember(node_id, key, done)
        return cls._result(done)

    @staticmethod
    def _result(done: Finished) -> io.NodeOutput:
        preview = ui.PreviewVideo([ui.SavedResult(os.path.basename(done.path), done.subfolder, done.folder_type)])
        return io.NodeOutput(InputImpl.VideoFromFile(done.path), done.fps, done.report, ui=preview)

    @classmethod
    def _run(cls, node_id, source: Source, loaded, key, status, opts: Options, settings: GuardSettings, fallback,
             save_output, filename_prefix) -> Finished:
        path, name, subfolder, folder_type = _output_path(save_output, filename_prefix, node_id, key,
                                                          source.width, source.height)
        on_plan, on_progress = progress_hooks(status, node_id)
        sched = opts.schedule(source.n_frames, times=source.frame_times)
        audio_tmp = writer = encoder = None
        try:
            audio_from = source.path
            if source.path is None and source.audio is not None:
                audio_from = audio_tmp = _audio_file(source.audio)
            writer = VideoWriter(path, sched.dst_fps, source.width, source.height, audio_from=audio_from,
                                 overwrite=False)
            encoder = Encoder(writer)
            report = interpolate_stream(
                source.path if source.path is not None else source.iter_frames(), source.n_frames,
                lambda n, frame: encoder.put(to_uint8(frame)), loaded.method, options=opts, policy=fallback,
                cancel=mm.throw_exception_if_processing_interrupted, on_plan=on_plan, on_written=on_progress,
                on_event=status.fallback, monitor_interval=settings.monitor_interval, frame_times=source.frame_times,
                faults=drill_faults(getattr(getattr(cls, "hidden", None), "extra_pnginfo", None)))
            encoder.finish()
            writer.close()
        except BaseException:
            if encoder is not None:
                try:
                    encoder.finish()
                except BaseException:  # noqa: BLE001 - the first error is the one to report
                    pass
            if writer is not None:
                writer.abort(keep_partial=False)  # nothing that looks complete is left behind
            raise
        finally:
            if audio_tmp is not None:
                try:
                    os.unlink(audio_tmp)
                except OSError:
                    pass
        report.update(output=path, frames_written=writer.frames_written,
                      audio=dict(status=writer.audio_status, detail=writer.audio_detail))
        text = format_report(report)
        status.finish(report, text)
        log.info("Video Engine: %s", text.replace("\n", " | "))
        return Finished(path=path, subfolder=subfolder, folder_type=folder_type, fps=float(sched.dst_fps),
                        report=text, report_dict={k: v for k, v in report.items() if k != "timeline"})


def _audio_file(audio: dict) -> str | None:
    """In-memory audio (an AUDIO dict) as a small temporary .m4a the encoder copies from."""
    wave = audio.get("waveform") if isinstance(audio, dict) else None
    rate = int(audio.get("sample_rate") or 0) if isinstance(audio, dict) else 0
    if wave is None or rate <= 0 or wave.numel() == 0:
        return None
    folder = os.path.join(folder_paths.get_temp_directory(), TEMP_SUBFOLDER)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".ve_audio_", suffix=".m4a", dir=folder)
    os.close(fd)
    try:
        write_audio(tmp, wave[0].detach().to("cpu", torch.float32).numpy(), rate)
    except Exception as e:  # noqa: BLE001 - the video is still written, without the audio
        log.warning("Video Engine: could not take the VIDEO's audio (%s); writing video only", e)
        os.unlink(tmp)
        return None
    return tmp

