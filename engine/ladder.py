"""Recovery ladder: the FallbackSwitch policy and the loop that applies it.

On an out-of-memory or driver error the run continues from the output frame that failed, with
the next allowed rung of the policy, and every frame already written is kept:

    retry (once) -> halve the batch (down to 1) -> lower the flow scale (0.5, 0.25)
    -> reduce resolution (0.75, 0.5 ...; output resized back) -> CPU -> built-in flow -> blend

A driver error skips straight to the CPU (the CUDA context may be unusable). Input errors and
interrupts are never retried. A quality floor forbids rungs below it; when every allowed rung has
failed the run either raises LadderExhausted with the whole history, or passes the remaining frames
through as duplicates and says so. Each retry runs outside the `except` block, after freeing the
failed attempt's tensors and emptying the CUDA cache.
"""
from __future__ import annotations

import gc
import logging
import time
from dataclasses import dataclass, field

import torch

from .errors import Cancelled, ErrorKind, InputError, classify, describe, is_retryable
from .methods import BlendMethod, FlowMethod, Method
from .runner import BatchFailed, Runner, Settings

log = logging.getLogger(__name__)

RUNGS = ("retry", "halve_batch", "flow_scale", "reduce_resolution", "cpu", "builtin_flow", "blend")
# how much quality a rung gives up (0 = none); the floor compares against this
QUALITY_COST = {"retry": 0, "halve_batch": 0, "cpu": 0, "flow_scale": 1, "reduce_resolution": 2,
                "builtin_flow": 3, "blend": 4}
ON_EXHAUSTED = ("raise", "passthrough")
RUNG_HELP = {  # what each rung does, in words (Policy.describe, FallbackSwitch's tooltips)
    "retry": "retry the failed batch once (after freeing memory)",
    "halve_batch": "halve the batch size, down to 1",
    "flow_scale": "lower RIFE's flow scale (0.5, then 0.25): less memory, coarser motion",
    "reduce_resolution": "interpolate at a lower resolution (down to min_res_scale) and resize the result back",
    "cpu": "move to the CPU (slow, but plenty of memory)",
    "builtin_flow": "switch from RIFE or FILM to the built-in optical flow",
    "blend": "switch to a plain cross-fade (cannot fail)",
}


@dataclass(frozen=True)
class Policy:
    rungs: tuple = RUNGS
    max_attempts: int = 12
    quality_floor: str = "blend"  # the lowest-quality rung that may be used
    on_exhausted: str = "raise"
    flow_scales: tuple = (0.5, 0.25)
    min_res_scale: float = 0.5

    def __post_init__(self):
        bad = [r for r in self.rungs if r not in RUNGS]
        if bad:
            raise InputError(f"unknown recovery rungs {bad}; choose from {', '.join(RUNGS)}")
        if self.quality_floor not in RUNGS:
            raise InputError(f"quality floor must be one of {', '.join(RUNGS)}, got {self.quality_floor!r}")
        if self.on_exhausted not in ON_EXHAUSTED:
            raise InputError(f"on_exhausted must be 'raise' or 'passthrough', got {self.on_exhausted!r}")
        if self.max_attempts < 0:
            raise InputError("max_attempts must be >= 0")
        if not 0.1 <= self.min_res_scale <= 1:
            raise InputError(f"min_res_scale must be between 0.1 and 1, got {self.min_res_scale}")

    def allows(self, rung: str) -> bool:
        return rung in self.rungs and QUALITY_COST[rung] <= QUALITY_COST[self.quality_floor]

    def describe(self) -> str:
        """The policy in words (FallbackSwitch's description output)."""
        allowed = [r for r in RUNGS if self.allows(r)]
        below_floor = [r for r in self.rungs if r in RUNGS and not self.allows(r)]
        off = [r for r in RUNGS if r not in self.rungs]
        lines = ["On an out-of-memory or GPU driver error the run continues from the frame that failed, "
                 "trying in order:"]
        if allowed:
            lines += [f"  {i}. {r}: {RUNG_HELP[r]}" for i, r in enumerate(allowed, 1)]
        else:
            lines.append("  (no recovery step allowed)")
        if off:
            lines.append("switched off: " + ", ".join(off))
        if below_floor:
            lines.append(f"below the quality floor '{self.quality_floor}', never used: " + ", ".join(below_floor))
        lines.append(f"at most {self.max_attempts} recovery attempt(s); a driver error skips to the CPU")
        lines.append("when every allowed step has failed: "
                     + ("stop with an error that lists what was tried" if self.on_exhausted == "raise"
                        else "pass the remaining frames through as duplicates and say so in the report"))
        return "\n".join(lines)


class LadderExhausted(RuntimeError):
    def __init__(self, message: str, events: list):
        super().__init__(message)
        self.events = events


# ----------------------------------------------------------------------------- fault injection
FAULT_KINDS = {
    "oom": lambda: torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected fault)"),
    "cpu_oom": lambda: RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 8589934592 "
                                    "bytes (injected fault)"),
    "driver": lambda: RuntimeError("CUDA error: an illegal memory access was encountered (injected fault)"),
    "input": lambda: InputError("bad input (injected fault)"),
    "interrupt": lambda: Cancelled("interrupted (injected fault)"),
    "other": lambda: ZeroDivisionError("unexpected bug (injected fault)"),
}


@dataclass
class Fault:
    """Raise `kind` when a batch containing output `task` runs: on its `attempt`-th try at that
    task (None = every try) and only on `device` ("cpu", "cuda"; None = any)."""

    task: int
    kind: str = "oom"
    attempt: int | None = 0
    device: str | None = None


def parse_faults(spec, what: str = "faults") -> list[Fault]:
    """Faults from their JSON form, [{"task": 3, "kind": "oom", "attempt": 0, "device": null}, ...]
    (kind defaults to "oom", attempt to 0: the first try); a malformed entry is an InputError."""
    faults = []
    for f in spec if isinstance(spec, list) else [spec]:
        if not isinstance(f, dict) or f.get("kind", "oom") not in FAULT_KINDS or not isinstance(f.get("task"), int):
            raise InputError(f"bad {what} entry {f!r}: need {{task: int, kind: one of {sorted(FAULT_KINDS)}, "
                             "attempt: int or null, device: 'cpu'|'cuda'|null}")
        faults.append(Fault(task=f["task"], kind=f.get("kind", "oom"), attempt=f.get("attempt", 0),
                            device=f.get("device")))
    return faults


class FaultInjector:
    """Off unless given: the runner's before_batch hook, for tests and drills."""

    def __init__(self, faults):
        self.faults = list(faults)
        self.tries: dict[int, int] = {}
        self.raised: list[tuple[int, str]] = []

    def __call__(self, batch_ns, settings: Settings):
        for n in batch_ns:
            k = self.tries.get(n, 0)
            self.tries[n] = k + 1
            for f in self.faults:
                if f.task == n and (f.attempt is None or f.attempt == k) and \
                        (f.device is None or str(settings.device).startswith(f.device)):
                    self.raised.append((n, f.kind))
                    raise FAULT_KINDS[f.kind]()


# ----------------------------------------------------------------------------- the loop
@dataclass
class LadderRun:
    """What a run did. final_settings / method_description: what made the last interpolated frames
    (None / "" when no frame was interpolated); passthrough_from: the first frame passed through."""

    final_settings: Settings | None
    method_description: str
    events: list = field(default_factory=list)
    segments: list = field(default_factory=list)
    path: list = field(default_factory=list)
    passthrough_frames: int = 0
    passthrough_from: int | None = None


class _State:
    def __init__(self, method: Method, settings: Settings, policy: Policy):
        self.method, self.settings, self.policy = method, settings, policy
        self.planned = settings
        self.retried = False
        self.pos = 0  # the ladder only moves down the policy's order; a rung may repeat (halving...)

    def next(self, kind: ErrorKind):
        """(rung, method, settings) of the next allowed rung that changes something, or None."""
        p, s, m = self.policy, self.settings, self.method
        on_gpu = not str(s.device).startswith("cpu")
        for i, rung in enumerate(p.rungs):
            if i < self.pos or not p.allows(rung):
                continue
            if kind == ErrorKind.DRIVER and on_gpu and rung not in ("cpu", "builtin_flow", "blend"):
                continue  # the CUDA context may be unusable: leave the GPU
            hit = self._apply(rung, kind, s, m, on_gpu)
            if hit is not None:
                self.pos = i
                return hit
        return None

    def _apply(self, rung, kind, s: Settings, m: Method, on_gpu: bool):
        """(rung, method, settings) if this rung changes something now, else None."""
        p = self.policy
        if rung == "retry" and not self.retried and kind != ErrorKind.DRIVER:
            self.retried = True
            return rung, m, s
        if rung == "halve_batch" and s.batch_size > 1:
            return rung, m, s.but(batch_size=max(1, s.batch_size // 2))
        if rung == "flow_scale" and m.supports_scale:
            lower = [f for f in p.flow_scales if f < s.flow_scale]
            if lower:
                return rung, m, s.but(flow_scale=lower[0])
        if rung == "reduce_resolution" and s.res_scale > p.min_res_scale + 1e-9:
            return rung, m, s.but(res_scale=max(p.min_res_scale, round(s.res_scale - 0.25, 4)))
        if rung == "cpu" and on_gpu:
            # plenty of memory there: give back the quality the GPU rungs traded away
            return rung, m, s.but(device="cpu", dtype=torch.float32, flow_scale=self.planned.flow_scale,
                                  res_scale=self.planned.res_scale, batch_size=min(s.batch_size, 2))
        if rung == "builtin_flow" and m.network:
            return rung, FlowMethod(), s.but(device="cpu", dtype=torch.float32, res_scale=self.planned.res_scale)
        if rung == "blend" and m.kind != "blend":
            return rung, BlendMethod(), s.but(device="cpu", dtype=torch.float32, res_scale=1.0)
        return None


def free_memory(device) -> None:
    gc.collect()
    if str(device).startswith("cuda") and torch.cuda.is_available():
        try:
            torch.cuda.synchronize()
        except Exception:  # noqa: BLE001 - after a driver error this can fail too
            pass
        torch.cuda.empty_cache()


def _passthrough(frames, sched, out, start, stop) -> int:
    n = 0
    for k in range(start, stop):
        e = sched.entry(k)
        out[k] = frames[e.i0 if e.t < 0.5 else e.i1]
        n += 0 if e.is_source else 1
    return n


def run(frames, sched, method: Method, settings: Settings, out, *, policy: Policy | None = None, progress=None,
        cancel=None, on_event=None, adapt=None, faults=None, start: int = 0, stop: int | None = None) -> LadderRun:
    """Outputs start..stop-1 (default: all) of sched into out, down the policy's rungs on failure."""
    stop = sched.n_out if stop is None else stop
    policy = policy or Policy()
    state = _State(method, settings, policy)
    injector = faults if isinstance(faults, FaultInjector) or faults is None else FaultInjector(faults)
    result = LadderRun(None, "")
    attempts = 0
    while True:
        failed = None
        seg_start = start
        try:
            runner = Runner(state.method, state.settings, progress=progress, cancel=cancel,
                            before_batch=injector, adapt=adapt)
            runner.run(frames, sched, out, start=start, stop=stop)
            result.segments.append(dict(start=seg_start, stop=stop, method=state.method.describe(),
                                        settings=runner.settings.as_dict()))
            result.final_settings, result.method_description = runner.settings, state.method.describe()
            break
        except BatchFailed as bf:
            kind = classify(bf.cause)
            if not is_retryable(kind):
                raise bf.cause from None  # a genuine bug: its own traceback, without the BatchFailed wrapper
            failed = dict(at=bf.at, kind=kind.value, error=describe(bf.cause), time=round(time.time(), 3),
                          settings=bf.settings.as_dict(), method=state.method.describe())
            if bf.at > seg_start:
                result.segments.append(dict(start=seg_start, stop=bf.at, method=state.method.describe(),
                                            settings=bf.settings.as_dict()))
                if any(not sched.entry(k).is_source for k in range(seg_start, bf.at)):  # it interpolated
                    result.final_settings, result.method_description = bf.settings, state.method.describe()
            start = bf.at
            state.settings = bf.settings  # what ran (an adaptive run may have changed the batch size)
            del bf
        # -- outside the except block: the failed attempt's frames are gone, caches can be emptied
        free_memory(state.settings.device)
        attempts += 1
        nxt = state.next(ErrorKind(failed["kind"])) if attempts <= policy.max_attempts else None
        if nxt is None:
            failed["rung"] = "exhausted"
            result.events.append(failed)
            if on_event:
                on_event(failed)
            if policy.on_exhausted == "passthrough":
                result.passthrough_frames = _passthrough(frames, sched, out, start, stop)
                result.passthrough_from = start
                result.path.append("passthrough")
                if progress:
                    progress(stop, sched.n_out)
                log.warning("every allowed recovery step failed; %d frames passed through as duplicates",
                            result.passthrough_frames)
                break
            raise LadderExhausted(exhausted_message(policy, result.events, start, attempts), result.events)
        if adapt is not None:
            adapt.after_recovery(state.settings, failed["kind"])
        rung, state.method, state.settings = nxt
        failed["rung"] = rung
        failed["next_settings"] = state.settings.as_dict()
        failed["next_method"] = state.method.describe()
        result.events.append(failed)
        result.path.append(rung)
        log.warning("frame %d: %s (%s) -> %s", failed["at"], failed["kind"], failed["error"], rung)
        if on_event:
            on_event(failed)
    return result


def exhausted_message(policy: Policy, events: list, start: int, attempts: int) -> str:
    """Why the ladder stopped, what it tried and what is left to try, for LadderExhausted."""
    tried = list(dict.fromkeys(e["rung"] for e in events if e.get("rung") not in (None, "exhausted")))
    allowed = [r for r in policy.rungs if policy.allows(r)]
    untried = [r for r in allowed if r not in tried]
    off = [r for r in RUNGS if r not in policy.rungs]
    below = [r for r in RUNGS if r in policy.rungs and not policy.allows(r)]
    head = f"interpolation failed at output frame {start} ({events[-1]['kind']}: {events[-1]['error']})"
    if not allowed:
        why = ("every recovery step is switched off in FallbackSwitch" if not policy.rungs else
               f"the steps switched on ({', '.join(below)}) are all below the quality floor "
               f"'{policy.quality_floor}'")
        msg = f"{head}, and no recovery step is allowed: {why}."
        advice = "Switch on a recovery step in FallbackSwitch"
    elif policy.max_attempts == 0:
        msg = f"{head}, and recovery is off: FallbackSwitch's max_attempts is 0."
        advice = "Raise max_attempts in FallbackSwitch"
    elif attempts > policy.max_attempts and untried:
        msg = (f"{head}, and the limit of {policy.max_attempts} recovery attempt(s) (FallbackSwitch's "
               f"max_attempts) was reached. Tried: {', '.join(tried) or 'nothing'}; not tried: {', '.join(untried)}.")
        advice = "Raise max_attempts in FallbackSwitch"
    else:
        msg = (f"{head} after {attempts} attempt(s); every allowed recovery step was tried. Tried: "
               f"{', '.join(tried) or 'nothing'}"
               + (f"; allowed but of no use here: {', '.join(untried)}" if untried else "") + ".")
        advice = "Switch on more steps or lower the quality floor in FallbackSwitch"
    if off and allowed:
        msg += f" Switched off: {', '.join(off)}."
    if below and allowed:
        msg += f" Below the quality floor '{policy.quality_floor}': {', '.join(below)}."
    history = "; ".join(f"frame {e['at']}: {e['kind']} ({e['error']}) -> {e['rung']}" for e in events)
    done = {0: "No frame was done.", 1: "Frame 0 was done."}.get(start, f"Frames 0..{start - 1} were done.")
    return f"{msg} History: {history}. {done} {advice}, or set on_exhausted to passthrough."
