"""One rule and one message per bad option, on every entry point: the engine API (pipeline.interpolate),
the stream (stream.interpolate_stream) and the command line; the nodes are in
tests/comfyui/test_options_nodes.py. Nothing is read, loaded or written before the refusal."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from bad_options import CASES
from engine import cli, methods, pipeline, stream
from engine.errors import InputError
from engine.options import Options
from engine.samples import make_sample_clip


def _frames_u8(n=3):
    return np.stack([np.full((16, 16, 3), 40 * i, np.uint8) for i in range(n)])


def _api(case) -> dict:
    return {"src_fps": 24, **CASES[case]["api"]}


@pytest.fixture
def no_model_loading(monkeypatch):
    monkeypatch.setattr(pipeline, "load_method", lambda *a, **k: pytest.fail("loaded a model before refusing"))
    monkeypatch.setattr(stream, "load_method", lambda *a, **k: pytest.fail("loaded a model before refusing"))


@pytest.mark.parametrize("case", list(CASES))
def test_options_object_refuses_with_the_message(case):
    with pytest.raises(InputError) as e:
        Options(**_api(case))
    assert str(e.value) == CASES[case]["message"]


@pytest.mark.parametrize("case", list(CASES))
def test_pipeline_refuses_before_any_work(case, no_model_loading):
    frames = torch.from_numpy(_frames_u8()).float() / 255
    with pytest.raises(InputError) as e:
        pipeline.interpolate(frames, "blend", **_api(case))
    assert str(e.value) == CASES[case]["message"]


@pytest.mark.parametrize("case", list(CASES))
def test_stream_refuses_before_reading_a_frame(case, no_model_loading):
    def source():
        pytest.fail("a frame was read before the options were checked")
        yield

    with pytest.raises(InputError) as e:
        stream.interpolate_stream(source(), 3, lambda n, f: None, "blend", **_api(case))
    assert str(e.value) == CASES[case]["message"]


def test_pipeline_and_stream_refuse_unknown_option_names():
    with pytest.raises(InputError, match="unknown option"):
        pipeline.interpolate(torch.zeros(2, 8, 8, 3), "blend", scene_threshold=0.5)
    with pytest.raises(InputError, match="unknown option"):
        stream.interpolate_stream(iter(()), 2, lambda n, f: None, "blend", fps=60)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_sample_clip(tmp_path_factory.mktemp("opt") / "in.mp4", n_frames=6, size=(64, 48), fps=24)


@pytest.mark.parametrize("case", [c for c in CASES if CASES[c]["cli"] is not None])
def test_command_line_refuses_with_the_same_message(case, clip, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(methods, "load_method", lambda *a, **k: pytest.fail("loaded a model before refusing"))
    out = tmp_path / "out.mp4"
    eng = logging.getLogger("engine")
    saved = list(eng.handlers), eng.level
    try:
        with pytest.raises(SystemExit) as e:  # argparse (the options' own check as its type) ...
            code = cli.main(["interpolate", str(clip), str(out), *CASES[case]["cli"]])
            raise SystemExit(code)  # ... or the options object inside interpolate_file
    finally:
        eng.handlers[:], _ = saved[0], eng.setLevel(saved[1])
    err = capsys.readouterr().err
    assert e.value.code == 2, err
    assert CASES[case]["message"] in " ".join(err.split()), err
    assert list(tmp_path.iterdir()) == [], "nothing is written"
