"""FallbackSwitch: which recovery steps VideoInterpolate may take when memory or the driver fails."""
from __future__ import annotations

from comfy_api.latest import io

from ..engine.ladder import ON_EXHAUSTED, RUNG_HELP, RUNGS, Policy
from .types import CATEGORY, FallbackSocket, option_outputs, schema_extras


class FallbackSwitch(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        rung_inputs = [
            io.Boolean.Input(r, default=True, tooltip=f"Allow this recovery step: {RUNG_HELP[r]}.")
            for r in RUNGS
        ]
        return io.Schema(
            node_id="FallbackSwitch",
            display_name="Fallback Switch (Video Engine)",
            category=CATEGORY,
            description=("Sets what VideoInterpolate does when it runs out of memory or the GPU driver fails: which "
                         "recovery steps it may take (in the order listed), how many attempts, the lowest quality "
                         "it may fall to, and whether to stop or pass frames through when nothing helps. Wire its "
                         "output into VideoInterpolate's 'fallback' input."),
            inputs=rung_inputs + [
                io.Int.Input("max_attempts", default=12, min=0, max=100, step=1,
                             tooltip="Most recovery attempts in one run (0 = never recover)."),
                io.Combo.Input("quality_floor", options=list(RUNGS), default="blend",
                               tooltip="The lowest-quality step that may be used; steps that cost more quality "
                                       "are skipped. Cost order: retry, halve_batch, cpu (none) < flow_scale < "
                                       "reduce_resolution < builtin_flow < blend."),
                io.Combo.Input("on_exhausted", options=list(ON_EXHAUSTED), default="raise",
                               tooltip="raise: stop with an error listing what was tried. passthrough: fill the "
                                       "remaining frames with duplicates of the source frames and warn in the report."),
                io.Float.Input("min_res_scale", default=0.5, min=0.1, max=1.0, step=0.05,
                               tooltip="The smallest resolution factor reduce_resolution may go down to."),
            ],
            outputs=option_outputs(FallbackSocket, "fallback", "description", "The recovery policy in words."),
            **schema_extras(["oom", "out of memory", "fallback", "recovery", "retry", "cpu fallback", "vfi"]),
        )

    @classmethod
    def execute(cls, retry, halve_batch, flow_scale, reduce_resolution, cpu, builtin_flow, blend, max_attempts,
                quality_floor, on_exhausted, min_res_scale) -> io.NodeOutput:
        enabled = dict(retry=retry, halve_batch=halve_batch, flow_scale=flow_scale,
                       reduce_resolution=reduce_resolution, cpu=cpu, builtin_flow=builtin_flow, blend=blend)
        policy = Policy(rungs=tuple(r for r in RUNGS if enabled[r]), max_attempts=int(max_attempts),
                        quality_floor=quality_floor, on_exhausted=on_exhausted, min_res_scale=float(min_res_scale))
        return io.NodeOutput(policy, policy.describe())

