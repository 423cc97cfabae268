"""Write the example workflows: example_workflows/<name><suffix>.json (UI format, drag-and-drop /
Templates) and example_workflows/api/<name><suffix>.json (API format, for POST /prompt), both from
one description, once per ComfyUI layout:

    suffix ""               ComfyUI 0.3.75's node layouts (its API files also run on 0.25)
    suffix "_comfyui-0.25"  ComfyUI 0.25's: GetVideoComponents has a 4th output (bit_depth, wired
                            into CreateVideo's new bit_depth input), SaveVideo, PreviewAny and
                            PreviewImage have an output

    python tools/make_examples.py            # rewrite the files
    python tools/make_examples.py --check    # exit 1 if a file differs from what would be written

The socket and widget layout of each node type below was read from each version's /object_info;
tests/comfyui/test_nodes.py checks the files of the version it talks to against that live server and
converts every UI file back into its API twin, so the two formats cannot drift apart.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("make_examples")

REPO = Path(__file__).resolve().parents[1]
OUT_DIR = REPO / "example_workflows"
API_DIR = OUT_DIR / "api"

# type -> (inputs [(name, type, widget?, optional?)], outputs [(name, type)], extra widget values after an input)
# Widget values are serialised in input order; an upload combo is followed by the upload button's value.
NODE_DEFS = {
    "LoadVideo": ([("file", "COMBO", True, False)], [("VIDEO", "VIDEO")], {"file": "image"}),
    "GetVideoComponents": ([("video", "VIDEO", False, False)],
                           [("images", "IMAGE"), ("audio", "AUDIO"), ("fps", "FLOAT")], {}),
    "CreateVideo": ([("images", "IMAGE", False, False), ("fps", "FLOAT", True, False), ("audio", "AUDIO", False, True)],
                    [("VIDEO", "VIDEO")], {}),
    "SaveVideo": ([("video", "VIDEO", False, False), ("filename_prefix", "STRING", True, False),
                   ("format", "COMBO", True, False), ("codec", "COMBO", True, False)], [], {}),
    "LoadImage": ([("image", "COMBO", True, False)], [("IMAGE", "IMAGE"), ("MASK", "MASK")], {"image": "image"}),
    "ImageBatch": ([("image1", "IMAGE", False, False), ("image2", "IMAGE", False, False)], [("IMAGE", "IMAGE")], {}),
    "VideoInterpolate": ([("images", "IMAGE", False, False), ("model", "COMBO", True, False),
                          ("multiplier", "INT", True, False), ("target_fps", "FLOAT", True, False),
                          ("source_fps", "FLOAT", True, False), ("scene_cut_threshold", "FLOAT", True, False),
                          ("precision", "COMBO", True, False), ("guard", "VIDEO_ENGINE_GUARD", False, True),
                          ("fallback", "VIDEO_ENGINE_FALLBACK", False, True)],
                         [("images", "IMAGE"), ("fps", "FLOAT"), ("report", "STRING"), ("resource_plot", "IMAGE")], {}),
    "VideoInterpolateStream": ([("video", "VIDEO", False, False), ("model", "COMBO", True, False),
                                ("multiplier", "INT", True, False), ("target_fps", "FLOAT", True, False),
                                ("scene_cut_threshold", "FLOAT", True, False), ("precision", "COMBO", True, False),
                                ("save_output", "BOOLEAN", True, False), ("filename_prefix", "STRING", True, False),
                                ("guard", "VIDEO_ENGINE_GUARD", False, True),
                                ("fallback", "VIDEO_ENGINE_FALLBACK", False, True)],
                               [("video", "VIDEO"), ("fps", "FLOAT"), ("report", "STRING")], {}),
    "PreviewAny": ([("source", "*", False, False)], [], {}),
    "PreviewImage": ([("images", "IMAGE", False, False)], [], {}),
    "PerformanceGuard": ([("strategy", "COMBO", True, False), ("device", "COMBO", True, False),
                          ("batch_size", "INT", True, False), ("flow_scale", "FLOAT", True, False),
                          ("monitor_interval", "FLOAT", True, False)],
                         [("guard", "VIDEO_ENGINE_GUARD"), ("report", "STRING")], {}),
    "FallbackSwitch": ([(r, "BOOLEAN", True, False) for r in ("retry", "halve_batch", "flow_scale",
                                                             "reduce_resolution", "cpu", "builtin_flow", "blend")]
                       + [("max_attempts", "INT", True, False), ("quality_floor", "COMBO", True, False),
                          ("on_exhausted", "COMBO", True, False), ("min_res_scale", "FLOAT", True, False)],
                       [("fallback", "VIDEO_ENGINE_FALLBACK"), ("description", "STRING")], {}),
}

# What ComfyUI 0.25 changed in the node types used here.
NODE_DEFS_025 = dict(
    NODE_DEFS,
    GetVideoComponents=([("video", "VIDEO", False, False)],
                        [("images", "IMAGE"), ("audio", "AUDIO"), ("fps", "FLOAT"), ("bit_depth", "INT")], {}),
    CreateVideo=([("images", "IMAGE", False, False), ("fps", "FLOAT", True, False), ("audio", "AUDIO", False, True),
                  ("bit_depth", "INT", True, True)], [("VIDEO", "VIDEO")], {}),
    SaveVideo=(NODE_DEFS["SaveVideo"][0], [("VIDEO", "VIDEO")], {}),
    PreviewAny=(NODE_DEFS["PreviewAny"][0], [("STRING", "STRING")], {}),
    PreviewImage=(NODE_DEFS["PreviewImage"][0], [("IMAGE", "IMAGE")], {}),
    VideoInterpolate=(NODE_DEFS["VideoInterpolate"][0] + [("interp_model", "INTERP_MODEL", False, True)],
                      NODE_DEFS["VideoInterpolate"][1], {}),  # core's loaded model, where the core has one
)
LAYOUTS = {"0.3.75": NODE_DEFS, "0.25.0": NODE_DEFS_025}  # version -> node layouts
SUFFIX = {"0.3.75": "", "0.25.0": "_comfyui-0.25"}  # version -> file name suffix


def example_name(name: str, version: str) -> str:
    """The file stem of example `name` for a ComfyUI version (the newest layout not newer than it)."""
    key = "0.25.0" if tuple(int(x) for x in version.split(".")[:2]) >= (0, 25) else "0.3.75"
    return name + SUFFIX[key]


VIDEO_INTERPOLATE_DEFAULTS = dict(model="builtin-flow", multiplier=2, target_fps=0.0, source_fps=24.0,
                                  scene_cut_threshold=0.3, precision="auto")


@dataclass
class Node:
    id: int
    type: str
    pos: tuple
    size: tuple
    widgets: dict = field(default_factory=dict)  # widget name -> value (every widget, linked or not)
    links: dict = field(default_factory=dict)  # input name -> (source node id, source output slot)
    title: str | None = None


@dataclass
class Workflow:
    name: str
    title: str
    note: str
    nodes: list
    version: str = "0.3.75"

    @property
    def defs(self) -> dict:
        return LAYOUTS[self.version]


def _check(wf: Workflow) -> None:
    ids = {n.id for n in wf.nodes}
    for n in wf.nodes:
        inputs, outputs, _ = wf.defs[n.type]
        widget_names = [i[0] for i in inputs if i[2]]
        if set(n.widgets) != set(widget_names):
            raise ValueError(f"{wf.name} #{n.id} {n.type}: widgets {sorted(n.widgets)} != {sorted(widget_names)}")
        for name, (src, slot) in n.links.items():
            if src not in ids or name not in [i[0] for i in inputs]:
                raise ValueError(f"{wf.name} #{n.id}: bad link {name} <- {src}:{slot}")


def _order(wf: Workflow) -> dict:
    """Execution order (topological), as the UI stores it."""
    done, order = set(), {}
    pending = sorted(wf.nodes, key=lambda n: n.id)
    while pending:
        for n in pending:
            if all(src in done for src, _ in n.links.values()):
                order[n.id] = len(order)
                done.add(n.id)
                pending.remove(n)
                break
        else:
            raise ValueError(f"{wf.name}: cycle")
    return order


def to_api(wf: Workflow) -> dict:
    _check(wf)
    out = {}
    for n in sorted(wf.nodes, key=lambda n: n.id):
        inputs = {}
        for name, typ, is_widget, _opt in wf.defs[n.type][0]:
            if name in n.links:
                src, slot = n.links[name]
                inputs[name] = [str(src), slot]
            elif is_widget:
                inputs[name] = n.widgets[name]
        out[str(n.id)] = {"class_type": n.type, "inputs": inputs, "_meta": {"title": n.title or n.type}}
    return out


def to_ui(wf: Workflow) -> dict:
    _check(wf)
    order = _order(wf)
    by_id = {n.id: n for n in wf.nodes}
    links = []  # [id, origin, origin_slot, target, target_slot, type]
    ui_inputs: dict[int, list] = {}
    for n in sorted(wf.nodes, key=lambda n: n.id):
        ins = []
        defs = wf.defs[n.type][0]
        # sockets first (in definition order), then widgets that are fed by a link
        for name, typ, is_widget, optional in [d for d in defs if not d[2]] + [d for d in defs if d[2]]:
            if is_widget and name not in n.links:
                continue
            entry = {"name": name, "type": typ, "link": None}
            if optional:
                entry["shape"] = 7
            if is_widget:
                entry["widget"] = {"name": name}
            if name in n.links:
                src, slot = n.links[name]
                link_id = len(links) + 1
                links.append([link_id, src, slot, n.id, len(ins), wf.defs[by_id[src].type][1][slot][1]])
                entry["link"] = link_id
            ins.append(entry)
        ui_inputs[n.id] = ins
    nodes = []
    for n in sorted(wf.nodes, key=lambda n: n.id):
        inputs, outputs, extra = wf.defs[n.type]
        outs = []
        for slot, (name, typ) in enumerate(outputs):
            ids = [lk[0] for lk in links if lk[1] == n.id and lk[2] == slot]
            outs.append({"name": name, "type": typ, "links": ids or None})
        widgets_values = []
        for name, typ, is_widget, _opt in inputs:
            if is_widget:
                widgets_values.append(n.widgets[name])
                if name in extra:
                    widgets_values.append(extra[name])
        node = {"id": n.id, "type": n.type, "pos": list(n.pos), "size": list(n.size), "flags": {},
                "order": order[n.id], "mode": 0, "inputs": ui_inputs[n.id], "outputs": outs,
                "properties": {"Node name for S&R": n.type}, "widgets_values": widgets_values}
        if n.type in ("VideoInterpolate", "VideoInterpolateStream", "PerformanceGuard", "FallbackSwitch"):
            node["properties"]["cnr_id"] = "video-engine"
        else:
            node["properties"]["cnr_id"] = "comfy-core"
            node["properties"]["ver"] = wf.version
        if n.title:
            node["title"] = n.title
        nodes.append(node)
    xs = [n.pos[0] for n in wf.nodes]
    ys = [n.pos[1] for n in wf.nodes]
    note_id = max(by_id) + 1
    nodes.append({"id": note_id, "type": "Note", "pos": [min(xs), min(ys) - 190], "size": [520, 150], "flags": {},
                  "order": len(nodes), "mode": 0, "inputs": [], "outputs": [], "properties": {},
                  "title": wf.title, "widgets_values": [wf.note], "color": "#432", "bgcolor": "#653"})
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, "video-engine/example_workflows/" + wf.name + SUFFIX[wf.version])),
        "revision": 0,
        "last_node_id": note_id,
        "last_link_id": len(links),
        "nodes": nodes,
        "links": links,
        "groups": [],
        "config": {},
        "extra": {"ds": {"scale": 0.8, "offset": [-min(xs) + 110, -min(ys) + 380]}},
        "version": 0.4,
    }


# ----------------------------------------------------------------------------- the examples
# columns: sources | batching / settings | VideoInterpolate and its previews | CreateVideo | SaveVideo
X_SRC, X_MID, X_VI, X_CREATE, X_SAVE = 40, 400, 720, 1220, 1530
VI_SIZE = (440, 270)  # the live status box grows the node downwards: keep the space below it free



def _tail(first_id: int, vi: int, version: str, components: int | None = None) -> list:
    """CreateVideo + SaveVideo fed by VideoInterpolate `vi`, and a text preview of its report. On 0.25
    CreateVideo has a bit_depth: the source's (from GetVideoComponents `components`), else 8."""
    widgets, links = {"fps": 48.0}, {"images": (vi, 0), "fps": (vi, 1)}
    if "bit_depth" in [i[0] for i in LAYOUTS[version]["CreateVideo"][0]]:
        widgets["bit_depth"] = 8
        if components is not None:
            links["bit_depth"] = (components, 3)
    return [
        Node(first_id, "CreateVideo", (X_CREATE, 60), (270, 78), widgets, links),
        Node(first_id + 1, "SaveVideo", (X_SAVE, 60), (520, 560),
             {"filename_prefix": "video/video_engine", "format": "auto", "codec": "auto"},
             {"video": (first_id, 0)}),
        Node(first_id + 2, "PreviewAny", (X_VI, 760), (440, 230), {}, {"source": (vi, 2)}, title="Report"),
    ]


def _video_chain(version: str, **vi_links) -> list:
    """Nodes 1-6: LoadVideo -> GetVideoComponents -> VideoInterpolate (its frames and fps from the video,
    plus `vi_links`) -> the _tail."""
    return [
        Node(1, "LoadVideo", (X_SRC, 60), (300, 360), {"file": "video_engine_input.mp4"}),
        Node(2, "GetVideoComponents", (X_MID, 60), (240, 70), {}, {"video": (1, 0)}),
        Node(3, "VideoInterpolate", (X_VI, 60), VI_SIZE, dict(VIDEO_INTERPOLATE_DEFAULTS),
             {"images": (2, 0), "source_fps": (2, 2), **vi_links}),
        *_tail(4, 3, version, components=2),
    ]


def video_workflow(version: str) -> Workflow:
    nodes = _video_chain(version)
    return Workflow("video_interpolate", "Video Engine: double a video's frame rate",
                    "Upload a video in Load Video, then Queue. Video Interpolate doubles the frame rate (multiplier 2) "
                    "with the built-in optical flow (no download). The source fps comes from the video; the new fps "
                    "goes to Create Video. For RIFE, put weights in models/frame_interpolation and pick them in "
                    "'model'. For any target rate (e.g. 60), set target_fps.", nodes, version)


def keyframes_workflow(version: str) -> Workflow:
    files = ["keyframe_1.png", "keyframe_2.png", "keyframe_3.png", "keyframe_4.png"]
    nodes = [Node(i + 1, "LoadImage", (X_SRC, 60 + 340 * i), (300, 314), {"image": f}) for i, f in enumerate(files)]
    nodes += [
        Node(5, "ImageBatch", (X_MID, 240), (210, 46), {}, {"image1": (1, 0), "image2": (2, 0)}),
        Node(6, "ImageBatch", (X_MID, 580), (210, 46), {}, {"image1": (5, 0), "image2": (3, 0)}),
        Node(7, "ImageBatch", (X_MID, 920), (210, 46), {}, {"image1": (6, 0), "image2": (4, 0)}),
        Node(8, "VideoInterpolate", (X_VI, 60), VI_SIZE,
             dict(VIDEO_INTERPOLATE_DEFAULTS, multiplier=8, source_fps=3.0, scene_cut_threshold=0.0),
             {"images": (7, 0)}),
        *_tail(9, 8, version),
    ]
    return Workflow("keyframes_to_video", "Video Engine: keyframes to a smooth clip",
                    "Load your keyframes (same size, in order) in the Load Image nodes; Image Batch joins them. "
                    "Video Interpolate treats them as a 3 fps sequence and makes 7 frames between each pair "
                    "(multiplier 8 -> 24 fps). Scene-cut detection is off (0) because keyframes differ a lot by design.",
                    nodes, version)


def guarded_workflow(version: str) -> Workflow:
    nodes = [
        *_video_chain(version, guard=(7, 0), fallback=(9, 0)),
        Node(7, "PerformanceGuard", (X_SRC, 480), (320, 200),
             dict(strategy="memory_efficient", device="auto", batch_size=0, flow_scale=0.0, monitor_interval=0.25)),
        Node(8, "PreviewAny", (X_SRC, 720), (320, 260), {}, {"source": (7, 1)}, title="Guard report"),
        Node(9, "FallbackSwitch", (X_MID, 200), (280, 400),
             dict(retry=True, halve_batch=True, flow_scale=True, reduce_resolution=True, cpu=True, builtin_flow=True,
                  blend=True, max_attempts=12, quality_floor="blend", on_exhausted="raise", min_res_scale=0.5)),
        Node(10, "PreviewAny", (X_MID, 640), (280, 340), {}, {"source": (9, 1)}, title="Fallback policy"),
        Node(11, "PreviewImage", (X_VI, 1030), (440, 300), {}, {"images": (3, 3)}, title="Resource plot"),
    ]
    return Workflow("guarded_interpolation", "Video Engine: low-memory run with fallbacks",
                    "Performance Guard (memory_efficient) runs batch 1 with the lowest peak memory; Fallback Switch "
                    "lists what may happen if memory still runs out (smaller batch, coarser flow, lower resolution, "
                    "CPU, built-in flow, blend). The report says which path was taken; the plot shows RAM, VRAM "
                    "and CPU over the run.", nodes, version)


def stream_workflow(version: str) -> Workflow:
    nodes = [
        Node(1, "LoadVideo", (X_SRC, 60), (300, 360), {"file": "video_engine_input.mp4"}),
        Node(2, "VideoInterpolateStream", (X_MID, 60), (440, 330),
             dict(model="builtin-flow", multiplier=2, target_fps=0.0, scene_cut_threshold=0.3, precision="auto",
                  save_output=False, filename_prefix="video/VideoEngine"),
             {"video": (1, 0)}, title="Video Interpolate (stream)"),
        Node(3, "SaveVideo", (X_CREATE - 300, 60), (520, 560),
             {"filename_prefix": "video/video_engine", "format": "auto", "codec": "auto"}, {"video": (2, 0)}),
        Node(4, "PreviewAny", (X_MID, 820), (440, 230), {}, {"source": (2, 2)}, title="Report"),
    ]
    return Workflow("stream_video", "Video Engine: long videos, streamed",
                    "Upload a video in Load Video, then Queue. Video Interpolate (stream) decodes, interpolates and "
                    "encodes frame by frame, so memory does not grow with the video's length (use it for long "
                    "clips). It doubles the frame rate here (multiplier 2; or set target_fps, e.g. 60) and keeps "
                    "the audio; Save Video copies the result as it is.", nodes, version)


WORKFLOWS = [video_workflow, keyframes_workflow, guarded_workflow, stream_workflow]


def render() -> dict[Path, str]:
    files = {}
    for version in LAYOUTS:
        for make in WORKFLOWS:
            wf = make(version)
            stem = wf.name + SUFFIX[version]
            files[OUT_DIR / f"{stem}.json"] = json.dumps(to_ui(wf), indent=2) + "\n"
            files[API_DIR / f"{stem}.json"] = json.dumps(to_api(wf), indent=2) + "\n"
    return files


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only compare; exit 1 when a file is out of date")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    stale = []
    for path, text in render().items():
        if path.is_file() and path.read_text() == text:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    for p in stale:
        log.info("%s: %s", "out of date" if args.check else "wrote", p.relative_to(REPO))
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
