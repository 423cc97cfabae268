"""Bad run options and the one message each gets, on every entry point (tests/test_options.py for the
engine API, the stream and the command line; tests/comfyui/test_options_nodes.py for the nodes).

Each case: api = keyword arguments for pipeline.interpolate / stream.interpolate_stream (with
src_fps=24 unless given), cli = extra `interpolate` arguments (None: the command line has no such
option or cannot spell the value), node = (class_type, input, value) set in the guarded example
workflow (None: ComfyUI's own min/max check refuses it first, or the widget gives the value a
defined meaning, like target_fps 0 = use the multiplier), message = the exact engine message.
"""
NAN, INF = float("nan"), float("inf")
FPS_HINT = "such as 60, 59.94 or 60000/1001"
STRATEGIES = "speed_first, quality_first, balanced, memory_efficient, adaptive"
MULTIPLIER = "multiplier must be a whole number from 1 to 16, got {}; for a non-integer ratio give a target fps instead"
FLOW_SCALE = "flow scale must be one of 0.25, 0.5, 1, 2, 4 (or none: the strategy decides), got {}"
THRESHOLD = "scene threshold must be a number from 0 (detection off) to 1, got {}"

CASES = {
    "target fps 0": dict(api=dict(dst_fps=0), cli=["--fps", "0"], node=None,
                         message=f"target fps must be a positive number {FPS_HINT}, got 0"),
    "target fps NaN": dict(api=dict(dst_fps=NAN), cli=["--fps", "nan"], node=("VideoInterpolate", "target_fps", NAN),
                           message=f"target fps must be a positive number {FPS_HINT}, got nan"),
    "target fps negative": dict(api=dict(dst_fps=-24), cli=["--fps", "-24"], node=None,
                                message=f"target fps must be a positive number {FPS_HINT}, got -24"),
    "source fps NaN": dict(api=dict(src_fps=NAN), cli=None, node=("VideoInterpolate", "source_fps", NAN),
                           message="source fps must be a positive number such as 24, 29.97 or 30000/1001, got nan"),
    "multiplier with target fps": dict(api=dict(multiplier=3, dst_fps=60), cli=["-m", "3", "--fps", "60"], node=None,
                                       message="a multiplier (here 3) is not allowed with a target fps (here 60): "
                                               "give one or the other"),
    "multiplier 17": dict(api=dict(multiplier=17), cli=["-m", "17"], node=None, message=MULTIPLIER.format(17)),
    "multiplier 2.5": dict(api=dict(multiplier=2.5), cli=["-m", "2.5"], node=None, message=MULTIPLIER.format(2.5)),
    "fps ratio over 16": dict(api=dict(dst_fps=385), cli=["--fps", "385"], node=None,
                              message="target fps 385 is more than 16 times the source's 24 fps; at most 16 times "
                                      "(384 fps) is supported"),
    "scene threshold 2": dict(api=dict(cut_threshold=2), cli=["--scene-threshold", "2"], node=None,
                              message=THRESHOLD.format('2')),
    "scene threshold inf": dict(api=dict(cut_threshold=INF), cli=["--scene-threshold", "inf"], node=None,
                                message=THRESHOLD.format('inf')),
    "scene threshold NaN": dict(api=dict(cut_threshold=NAN), cli=["--scene-threshold", "nan"],
                                node=("VideoInterpolate", "scene_cut_threshold", NAN),
                                message=THRESHOLD.format('nan')),
    "scene threshold negative": dict(api=dict(cut_threshold=-0.1), cli=["--scene-threshold", "-0.1"], node=None,
                                     message=THRESHOLD.format('-0.1')),
    "scene threshold string": dict(api=dict(cut_threshold="0.3"), cli=None, node=None,
                                   message=THRESHOLD.format("'0.3'")),
    "strategy Balanced": dict(api=dict(strategy="Balanced"), cli=["--strategy", "Balanced"],
                              node=("PerformanceGuard", "strategy", "Balanced"),
                              message=f"strategy must be one of {STRATEGIES}, got 'Balanced'"),
    "device gpu": dict(api=dict(device="gpu"), cli=["--device", "gpu"], node=("PerformanceGuard", "device", "gpu"),
                       message="device must be auto, cpu, cuda or cuda:N, got 'gpu'"),
    "precision fp8": dict(api=dict(precision="fp8"), cli=["--precision", "fp8"],
                          node=("VideoInterpolate", "precision", "fp8"),
                          message="precision must be one of auto, fp32, fp16, bf16, got 'fp8'"),
    "cut fill morph": dict(api=dict(cut_fill="morph"), cli=["--cut-fill", "morph"], node=None,
                           message="cut fill must be one of hold, nearest, got 'morph'"),
    "batch size 0": dict(api=dict(batch_size=0), cli=["--batch-size", "0"], node=None,
                         message="batch size must be a whole number from 1 to 256 (or none: the strategy decides), "
                                 "got 0"),
    "flow scale NaN": dict(api=dict(flow_scale=NAN), cli=None, node=("PerformanceGuard", "flow_scale", NAN),
                           message=FLOW_SCALE.format("nan")),
    "flow scale 5": dict(api=dict(flow_scale=5), cli=None, node=None, message=FLOW_SCALE.format(5)),
    "flow scale 0.7": dict(api=dict(flow_scale=0.7), cli=None, node=("PerformanceGuard", "flow_scale", 0.7),
                           message=FLOW_SCALE.format(0.7)),
    "flow scale 0.3": dict(api=dict(flow_scale=0.3), cli=None, node=None, message=FLOW_SCALE.format(0.3)),
    "flow scale string": dict(api=dict(flow_scale="0.5"), cli=None, node=None, message=FLOW_SCALE.format("'0.5'")),
}
