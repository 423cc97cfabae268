"""Classes of bad input to the in-memory entry point (issue 15): each gets a clear InputError that says
what is wrong and what to do, before any model is loaded; nothing is silently turned into NaN or white."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from engine import schedule
from engine.errors import InputError
from engine.methods import BlendMethod
from engine.pipeline import interpolate
from engine.runner import BatchFailed, NonFiniteOutput, Runner, Settings, allocate_output
from engine.schedule import make_schedule


def _frames(n=4, h=16, w=20, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).random((n, h, w, 3), dtype=np.float32))


@pytest.mark.parametrize("bad, where", [(float("nan"), "NaN"), (float("inf"), "infinite"),
                                        (-float("inf"), "infinite")])
def test_non_finite_input_frames_are_refused(bad, where):
    """A 5x5 NaN (or inf) patch in one frame would make both neighbouring in-betweens NaN (issue 15, case 6)."""
    frames = _frames()
    frames[2, 3:8, 4:9, :] = bad
    with pytest.raises(InputError) as err:
        interpolate(frames, "blend", multiplier=2)
    msg = str(err.value)
    assert where in msg and "frame 2" in msg and "75" in msg, msg  # which frame, how many values
    assert "nan_to_num" in msg or "replace" in msg, msg  # what to do


@settings(max_examples=25, deadline=None)
@given(frame=st.integers(0, 5), y=st.integers(0, 11), x=st.integers(0, 9),
       value=st.sampled_from([float("nan"), float("inf"), -float("inf")]),
       dtype=st.sampled_from([torch.float32, torch.float16, torch.bfloat16, torch.float64]))
def test_one_non_finite_value_anywhere_in_any_float_dtype_is_refused(frame, y, x, value, dtype):
    frames = _frames(6, 12, 10).to(dtype)
    frames[frame, y, x, 1] = value
    with pytest.raises(InputError, match=f"frame {frame}"):
        interpolate(frames, "blend", multiplier=2, cut_threshold=0)


@pytest.mark.parametrize("scale, hint", [(255.0, "0-255"), (-1.0, "-1")])
def test_frames_on_another_scale_are_refused(scale, hint):
    """Float frames in 0-255 came out as untouched sources between clamped near-white in-betweens (issue 15,
    case 9); frames in [-1, 1] would lose their darker half the same way."""
    frames = _frames() * 255.0 if scale == 255 else _frames() * 2 - 1
    with pytest.raises(InputError) as err:
        interpolate(frames, "blend", multiplier=2)
    msg = str(err.value)
    assert hint in msg and "[0, 1]" in msg, msg


def test_slight_overshoot_is_accepted_and_defined():
    """Bicubic resizing overshoots [0, 1] a little: accepted; sources are copied as they are, in-betweens are
    made from the frames clamped to [0, 1] (the documented result)."""
    frames = _frames() * 1.2 - 0.1  # values in [-0.1, 1.1]
    res = interpolate(frames, "blend", multiplier=2, cut_threshold=0)
    assert torch.equal(res.frames[0], frames[0]) and torch.equal(res.frames[2], frames[1])
    assert float(res.frames[1].min()) >= 0 and float(res.frames[1].max()) <= 1
    assert torch.allclose(res.frames[1], (frames[0].clamp(0, 1) + frames[1].clamp(0, 1)) / 2, atol=1e-6)


@pytest.mark.parametrize("frames, match", [
    (torch.zeros(0, 16, 16, 3), "no frames"),
    (torch.zeros(3, 1, 16, 3), "2x2"),
    (torch.zeros(3, 16, 1, 3), "2x2"),
    (torch.zeros(3, 3, 16, 16), "channels first"),
    (torch.zeros(3, 16, 16, 4), "RGBA"),
    (torch.zeros(16, 16, 3), "IMAGE batch"),
    (torch.zeros(3, 16, 16, 3, dtype=torch.uint8), "uint8.*divide by 255"),
    (torch.zeros(3, 16, 16, 3, dtype=torch.int64), "float"),
    (torch.zeros(3, 16, 16, 3, dtype=torch.bool), "float"),
    (torch.zeros(3, 16, 16, 3, dtype=torch.complex64), "float"),
    (np.zeros((3, 16, 16, 3), np.float32), "torch.from_numpy"),
    ([[0.0]], "tensor"),
])
def test_wrong_type_and_layout_say_what_to_do(frames, match):
    with pytest.raises(InputError, match=match):
        interpolate(frames, "blend", multiplier=2)


def test_ram_preflight_refuses_before_scene_cut_scoring(monkeypatch):
    """The RAM check needs only the shapes: it refuses before any frame is scored for cuts (issue 15, case 14:
    54 s of scoring 2,000 1080p frames came before the refusal)."""
    scored = []
    real = schedule.cut_scores
    monkeypatch.setattr(schedule, "cut_scores", lambda frames: scored.append(len(frames)) or real(frames))
    frames = torch.rand(1, 1024, 1024, 3).expand(300, -1, -1, -1)  # 300 frames, 12 MiB of memory
    with pytest.raises(InputError, match="Not enough RAM for the output"):
        interpolate(frames, "blend", multiplier=16)  # 4,785 outputs: 56 GiB
    assert scored == [], "frames were scored for cuts before the refusal"


def test_non_finite_in_betweens_are_an_error_not_silent():
    """A method that gives NaN from finite frames (a broken net, an fp16 overflow) stops the run with a clear
    error naming the frames; it never writes NaN or black frames."""
    class Broken(BlendMethod):
        def interpolate(self, s0, s1, t, scale=1.0, ensemble=False):
            return super().interpolate(s0, s1, t) * float("nan")

    frames = _frames(3)
    s = make_schedule(3, 2)
    out = allocate_output(s.n_out, 16, 20).fill_(-1)
    with pytest.raises(BatchFailed) as err:
        Runner(Broken(), Settings(batch_size=1)).run(frames, s, out)
    assert isinstance(err.value.cause, NonFiniteOutput) and err.value.at == 1
    assert torch.equal(out[0], frames[0]) and bool((out[1:] == -1).all()), "nothing written from the NaN batch on"
    with pytest.raises(NonFiniteOutput, match=r"linear blend made NaN or infinite values at output frame\(s\) 1 "):
        interpolate(frames, Broken(), multiplier=2, cut_threshold=0)


@pytest.mark.parametrize("frame, match", [
    (np.random.default_rng(0).random((16, 20, 3), dtype=np.float32), "float32 .*use engine.pipeline.interpolate"),
    (np.zeros((16, 20, 3), np.uint16), "uint16"),
    (np.zeros((16, 20, 4), np.uint8), r"\(16, 20, 4\)"),
    (np.zeros((20, 16, 3), np.uint8), "16x20 but the frames before it are 20x16"),
    ("frame.png", "got str"),
])
def test_streamed_source_frames_of_another_type_or_size_are_refused(frame, match):
    """The streamed entry point reads uint8 frames: a float frame in [0, 1] would be divided by 255 again
    (black), another size would be misread. Refused at the frame, with what to do."""
    from engine.stream import interpolate_stream

    good = np.zeros((16, 20, 3), np.uint8)
    with pytest.raises(InputError, match=match):
        interpolate_stream(iter([good, good, frame, good]), 4, lambda n, f: None, "blend", multiplier=2,
                           cut_threshold=0)


def test_target_fps_tail_is_the_same_in_memory_and_streamed():
    """4 keyframes 24 -> 60 fps: both entry points end on the last keyframe, 10 frames (issue 15, case 22)."""
    from engine.stream import interpolate_stream

    u8 = (np.random.default_rng(1).random((4, 16, 20, 3)) * 255).astype(np.uint8)
    ref = interpolate(torch.from_numpy(u8).float() / 255, "blend", src_fps=24, dst_fps=60, cut_threshold=0)
    got = []
    report = interpolate_stream(iter(list(u8)), 4, lambda n, f: got.append(f.clone()), "blend", src_fps=24,
                                dst_fps=60, cut_threshold=0)
    assert report["frames_out"] == len(got) == ref.frames.shape[0] == 10
    assert torch.equal(torch.stack(got), ref.frames)
    assert torch.equal(got[-1], torch.from_numpy(u8[3]).float() / 255)
