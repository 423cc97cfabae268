"""The nodes refuse bad options sent through the API of a real ComfyUI (0.3.75 and 0.25.0) with the engine's own
message (the same one the engine API, the stream and the command line give: tests/bad_options.py,
tests/test_options.py), before any frame is made. Out-of-list combo values, null and NaN reach the
nodes this way on 0.3.75: ComfyUI's own min/max checks do not catch them. ComfyUI 0.25 checks combo
values itself before any node sees them: there an out-of-list value gets core's own refusal, which
must name the input and the value."""
from __future__ import annotations

import json
import math

import pytest

from bad_options import CASES
from client import PromptRejected
from test_nodes import clip, frames, load_api, node_id_of  # noqa: F401 - module fixtures: the uploaded clip

pytestmark = pytest.mark.comfyui


def refusal(comfy, prompt, node: str) -> str:
    """The error text of a prompt refused at queue time or failing in `node`; fails if `node` ran."""
    comfy.last_node_errors = None
    try:
        result = comfy.run(prompt, timeout=180)
    except PromptRejected as rej:
        return json.dumps(rej.node_errors.get(node, rej.body))
    refused = (comfy.last_node_errors or {}).get(node)
    if refused is not None:  # ComfyUI queued the outputs that do not need the refused node
        assert node not in result.executed_nodes and not [f for f in result.files() if f["filename"].endswith(".mp4")]
        return json.dumps(refused)
    assert result.status == "error", f"the prompt ran ({result.status})"
    assert result.error["node_id"] == node, result.error
    assert not result.files(), "no output may be written"
    return result.error["exception_message"]


@pytest.mark.parametrize("case", [c for c in CASES if CASES[c]["node"] is not None])
def test_nodes_refuse_bad_options_with_the_engine_message(comfy, clip, case):  # noqa: F811
    class_type, name, value = CASES[case]["node"]
    prompt = load_api(comfy, "guarded_interpolation")
    node = node_id_of(prompt, class_type)
    prompt[node]["inputs"][name] = value
    text = refusal(comfy, prompt, node)
    spec = comfy.object_info(class_type)["input"]["required"].get(name, [None])
    if comfy.version >= (0, 25) and spec[0] == "COMBO" and isinstance(value, str) and value not in spec[1]["options"]:
        (err,) = json.loads(text)["errors"]
        assert err["type"] == "value_not_in_list", err
        assert (err["extra_info"]["input_name"], err["extra_info"]["received_value"]) == (name, value), err
        return
    assert CASES[case]["message"] in text, text
    if isinstance(value, float) and math.isnan(value):
        assert "nan" in text


def test_null_model_is_refused_with_the_list_of_models(comfy, clip):  # noqa: F811
    prompt = load_api(comfy, "video_interpolate")
    node = node_id_of(prompt, "VideoInterpolate")
    prompt[node]["inputs"]["model"] = None
    text = refusal(comfy, prompt, node)
    assert "model must be one of builtin-flow, blend" in text and "got None" in text, text
