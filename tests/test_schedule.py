"""Properties of the frame schedule (hypothesis) and scene-cut handling."""
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from engine.errors import InputError
from engine.methods import BlendMethod
from engine.runner import Runner, Settings, allocate_output
from engine.schedule import as_fraction, cut_scores, detect_cuts, make_schedule

FPS = st.sampled_from([Fraction(24000, 1001), Fraction(24), Fraction(25), Fraction(30000, 1001), Fraction(30),
                       Fraction(50), Fraction(60000, 1001), Fraction(60), Fraction(12), Fraction(120)])


@given(n=st.integers(0, 500), m=st.integers(1, 16))
def test_multiplier_count(n, m):
    s = make_schedule(n, m)
    assert s.n_out == (n if n < 2 else n + (m - 1) * (n - 1))


@settings(deadline=None)
@given(n=st.integers(2, 300), src=FPS, dst=FPS)
def test_fps_arithmetic(n, src, dst):
    s = make_schedule(n, src_fps=src, dst_fps=dst)
    step = src / dst
    # exactly the outputs whose time lies within the source clip's duration (the last frame lasts 1 / src)
    assert (s.n_out - 1) * step < n <= s.n_out * step
    for e in s:
        pos = e.n * step
        if pos < n - 1:
            assert e.i0 == pos.numerator // pos.denominator and e.t == pos - e.i0
        else:  # past the last source position: the last frame, held
            assert (e.i0, e.t) == (n - 1, 0)
        assert 0 <= e.t < 1 and e.i1 <= n - 1
    ts = [e.n * s.step for e in s]  # output times in source-frame units
    assert all(a < b for a, b in zip(ts, ts[1:])), "timestamps must increase strictly"
    assert s.entry(0).is_source and s.entry(0).i0 == 0


@given(n=st.integers(2, 40), m=st.integers(2, 6))
def test_multiplier_equals_fps_ratio(n, m):
    """x m and src -> m * src fps are the same frames, but the fps run keeps the duration: it ends with
    m - 1 more outputs that show the last source frame (its time on screen)."""
    a = [(e.i0, e.t) for e in make_schedule(n, m)]
    b = [(e.i0, e.t) for e in make_schedule(n, src_fps=25, dst_fps=25 * m)]
    assert b == a + [(n - 1, 0)] * (m - 1)


def test_common_conversions():
    s = make_schedule(1001, src_fps=23.976, dst_fps=59.94)
    assert s.step == Fraction(2, 5) and s.src_fps == Fraction(24000, 1001)
    assert s.n_out == 2503  # 1001 / 23.976 s at 59.94 fps: 2502.5 frames, rounded up
    assert [(e.i0, e.t) for e in list(s)[:6]] == [(0, 0), (0, Fraction(2, 5)), (0, Fraction(4, 5)),
                                                  (1, Fraction(1, 5)), (1, Fraction(3, 5)), (2, 0)]
    s = make_schedule(25, src_fps=24, dst_fps=60)
    assert s.n_out == 63 and s.entry(60).i0 == 24 and s.entry(60).is_source and s.entry(62).i0 == 24
    s = make_schedule(11, src_fps=25, dst_fps=50)
    assert s.n_out == 22
    down = make_schedule(61, src_fps=60, dst_fps=24)  # downsampling: 60 -> 24 fps
    assert down.n_out == 25 and down.entry(1).i0 == 2 and down.entry(1).t == Fraction(1, 2)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 12), m=st.integers(1, 5), src=FPS, dst=FPS, use_fps=st.booleans(), data=st.data())
def test_source_frames_copied_bit_exactly(n, m, src, dst, use_fps, data):
    torch.manual_seed(n * 7 + m)
    frames = torch.rand(n, 6, 5, 3)
    s = make_schedule(n, src_fps=src, dst_fps=dst) if use_fps else make_schedule(n, m)
    cuts = data.draw(st.lists(st.integers(0, n - 2), max_size=3, unique=True))
    s = s.with_cuts(cuts)
    out = allocate_output(s.n_out, 6, 5)
    out.fill_(float("nan"))
    seen = []
    Runner(BlendMethod(), Settings(batch_size=data.draw(st.integers(1, 4))),
           progress=lambda d, tot: seen.append((d, tot))).run(frames, s, out)
    assert not torch.isnan(out).any(), "every output frame written"
    for e in s:
        if e.is_source:
            assert torch.equal(out[e.n], frames[e.i0])
        else:
            assert e.i0 not in cuts
            want = torch.lerp(frames[e.i0], frames[e.i1], float(e.t))
            assert torch.allclose(out[e.n], want, atol=1e-6)
    done = [d for d, _ in seen]
    assert done == sorted(done) and done[-1] == s.n_out and all(tot == s.n_out for _, tot in seen)


def test_cut_fill_modes():
    s = make_schedule(3, 4, cuts=[0])
    assert [(e.i0, e.t) for e in s][:5] == [(0, 0), (0, 0), (0, 0), (0, 0), (1, 0)]
    s = make_schedule(3, 4, cuts=[0], cut_fill="nearest")
    assert [e.i0 for e in s][:5] == [0, 0, 1, 1, 1]
    assert [e.is_source for e in s][5:8] == [False, False, False]


@pytest.mark.parametrize("bad", [dict(multiplier=0), dict(multiplier=2.5), dict(multiplier=-3), dict(multiplier=True),
                                 dict(dst_fps=60), dict(src_fps=24, dst_fps=0), dict(src_fps=24, dst_fps="abc"),
                                 dict(src_fps=24, dst_fps=float("inf")), dict(multiplier=3, src_fps=24, dst_fps=60),
                                 dict(cut_fill="morph"), dict(cuts=[9])])
def test_bad_parameters_are_input_errors(bad):
    with pytest.raises(InputError):
        make_schedule(5, **bad)


def test_as_fraction():
    assert as_fraction(29.97) == Fraction(30000, 1001)
    assert as_fraction("60000/1001") == Fraction(60000, 1001)
    assert as_fraction(12.5) == Fraction(25, 2)


def test_scene_cuts_detected_on_real_cut():
    rng = np.random.default_rng(0)
    base = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    shot_a = [np.stack([np.roll(base, k, 1)] * 3, -1) * 0.8 for k in range(4)]  # a slow pan, grey
    shot_b = [np.stack([0.9 - 0.2 * np.roll(base, k, 0), 0.2 + 0 * base, 0.1 + 0.5 * base], -1) for k in range(4)]
    frames = np.clip(np.stack(shot_a + shot_b) + rng.normal(0, 0.01, (8, 64, 64, 3)), 0, 1).astype(np.float32)
    scores = cut_scores(frames)
    assert scores.argmax() == 3
    assert detect_cuts(frames, 0.3) == [3]
    assert detect_cuts(frames, 0) == []  # switched off


def test_real_footage_cuts(real_clip):
    """Single shots (slow talking head, CG film) have no cut; a splice of two real clips has one."""
    import cv2
    from shared import shared_dir
    with np.load(shared_dir() / "bench" / "data" / "carphone.npz") as z:
        phone = z["frames"][:40]
    assert detect_cuts(phone, 0.3) == []
    assert detect_cuts(real_clip[:60], 0.3) == []
    h, w = real_clip.shape[1:3]
    phone_big = np.stack([cv2.resize(f, (w, h)) for f in phone[:10]])
    spliced = np.concatenate([real_clip[:10], phone_big])
    assert detect_cuts(spliced, 0.3) == [9]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 40), m=st.integers(1, 8), fps=st.sampled_from([None, (24, 60), (60, 24), (24000, 60000), (30, 24)]),
       cut=st.booleans())
def test_n_tasks_counts_the_interpolated_frames(n, m, fps, cut):
    kw = dict(src_fps=fps[0], dst_fps=fps[1]) if fps else dict(multiplier=m)
    cuts = [0] if cut and n > 1 else []
    sched = make_schedule(n, **kw, cuts=cuts)
    assert sched.n_tasks == sum(1 for e in sched if not e.is_source)
    lo, hi = n // 3, n - n // 4
    assert sched.tasks_in(lo, hi) == sum(1 for k in range(lo, min(hi, sched.n_out)) if not sched.entry(k).is_source)


# ----------------------------------------------------------------------------- issue 15
def test_lighting_change_on_keyframes_is_not_a_cut(real_clip):
    """4 sunrise-like keyframes x8 at 3 fps morph (issue 15, case 21): a change of light on the same
    structure is no scene cut, for a drawn landscape and for a real frame relit."""
    from engine.pipeline import interpolate
    from shared import relight, sunrise_keyframes

    drawn = sunrise_keyframes()
    relit = np.stack([relight(real_clip[20], g, tint, gm) for g, tint, gm in
                      [(0.35, (0.8, 0.8, 1.3), 1.5), (0.8, (1.3, 1.0, 0.7), 1.3), (1.0, (1.1, 1.0, 0.9), 1.1),
                       (1.15, (1.0, 1.0, 1.0), 0.9)]]).astype(np.float32) / 255
    for keyframes in (drawn, relit):
        res = interpolate(torch.from_numpy(keyframes), "blend", multiplier=8, src_fps=3)
        assert res.cuts == [] and res.frames.shape[0] == 25
        distinct = {res.frames[i].numpy().tobytes() for i in range(25)}
        assert len(distinct) == 25, "every in-between is a morph, none a held keyframe"
        assert not res.report.get("warnings")


def test_report_warns_when_most_pairs_are_cuts(real_clip):
    """Keyframes that really are different pictures: the cuts are kept, and the report says so loudly."""
    from engine.pipeline import format_report, interpolate
    from shared import load_bench_clip

    fox, phone = load_bench_clip("gen_ltxv_i2v_fox"), load_bench_clip("carphone")
    import cv2
    keys = np.stack([real_clip[0], fox[0], cv2.resize(phone[0], (448, 256)), fox[60]]).astype(np.float32) / 255
    res = interpolate(torch.from_numpy(keys), "blend", multiplier=8, src_fps=3)
    assert res.cuts == [0, 1, 2]
    (warning,) = res.report["warnings"]
    assert "3 of 3 frame pairs" in warning and "scene_cut_threshold" in warning
    assert "WARNING: 3 of 3" in format_report(res.report)


def test_real_footage_hard_cuts_are_all_found_and_light_changes_are_not():
    """Real clips joined at 9 hard cuts, with a sudden and a gradual change of light inside shots: every cut
    is found and nothing else (issue 15, case 21; figures from bench/cut_detection.py)."""
    from shared import spliced_real_clip

    frames, cuts, light = spliced_real_clip()
    assert len(cuts) == 9 and len(light) == 12
    assert detect_cuts(frames, 0.3) == cuts
    scores = cut_scores(frames)
    assert scores[cuts].min() > 0.3 > scores[light].max()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
def test_low_and_high_precision_frames_are_scored(dtype):
    """bf16 / fp16 / fp64 IMAGE batches: cut scoring works and agrees with fp32 (issue 15, case 12)."""
    from engine.pipeline import interpolate

    import cv2
    rng = np.random.default_rng(3)
    a, b = (cv2.GaussianBlur(rng.random((24, 40, 3), dtype=np.float32), (0, 0), 2) for _ in range(2))
    shots = [a[:, k:k + 32] for k in (0, 2)] + [b[:, k:k + 32] * 0.5 for k in (0, 2)]  # a cut between 1 and 2
    frames = torch.from_numpy(np.stack(shots))
    frames = (frames - frames.min()) / (frames.max() - frames.min())
    ref = cut_scores(frames)
    got = cut_scores(frames.to(dtype))
    assert np.abs(got - ref).max() < 0.02
    res = interpolate(frames.to(dtype), "blend", multiplier=2)
    assert res.cuts == [1] and res.frames.dtype == torch.float32 and res.frames.shape[0] == 7


def test_target_fps_keeps_the_last_frame_and_the_duration():
    """A non-integer fps ratio (issue 15, case 22): the last source frame is in the output and the output
    lasts as long as the input, within one output frame."""
    from engine.pipeline import interpolate

    s = make_schedule(4, src_fps=24, dst_fps=60)  # 4 keyframes: positions 0, 0.4, ... 3.2, 3.6
    assert s.n_out == 10 and s.entry(s.n_out - 1).i0 == 3 and s.entry(s.n_out - 1).is_source
    assert [e.i0 for e in s if e.is_source] == [0, 2, 3, 3]  # keyframe 1 sits at 2.5 output frames
    s = make_schedule(60, src_fps=24, dst_fps=60)
    assert s.n_out == 150  # 2.5 s, as the input
    keys = torch.rand(4, 8, 8, 3)
    res = interpolate(keys, "blend", src_fps=24, dst_fps=60, cut_threshold=0)
    assert res.frames.shape[0] == 10 and torch.equal(res.frames[-1], keys[3])


@settings(deadline=None)
@given(n=st.integers(1, 400), src=FPS, dst=FPS)
def test_target_fps_duration_property(n, src, dst):
    s = make_schedule(n, src_fps=src, dst_fps=dst)
    out_s, in_s = Fraction(s.n_out) / dst, Fraction(n) / src
    assert 0 <= out_s - in_s < 1 / dst, "output duration = input duration, within one output frame"
    if dst >= src:
        assert s.entry(s.n_out - 1).i0 == n - 1 and s.entry(s.n_out - 1).is_source, "last source frame shown"
    assert all(e.i1 <= n - 1 for e in s)
