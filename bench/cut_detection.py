"""Scene-cut detection on real footage: every hard cut found, no change of light taken for one.

    python -m bench.cut_detection            # from the repository root; writes bench/results/cut_detection.json

The clip is tests/shared.spliced_real_clip(): segments of the shared bench's three real clips joined
at 9 hard cuts, with a sudden change of light (x1.5, warmer) inside one shot and a gradual one over
the last shot. Also scored: the 4 sunrise keyframes (tests/shared.sunrise_keyframes), every pair
within each real clip, and 300 random pairs of frames from two different real clips (each one a cut). Figures: the lowest score at a cut, the highest elsewhere, per kind, against
the default threshold 0.3.
"""
from __future__ import annotations

import json
import platform
from pathlib import Path

import cv2
import numpy as np

from engine.schedule import cut_scores, detect_cuts
from tests.shared import CUT_SEGMENTS, load_bench_clip, spliced_real_clip, sunrise_keyframes

THRESHOLD = 0.3
OUT = Path(__file__).resolve().parent / "results" / "cut_detection.json"


def main() -> dict:
    frames, cuts, light = spliced_real_clip()
    scores = cut_scores(frames)
    found = detect_cuts(frames, THRESHOLD)
    others = sorted(set(range(len(scores))) - set(cuts) - set(light))
    sunrise = cut_scores(sunrise_keyframes())
    clips = {name: load_bench_clip(name) for name in ("bigbuckbunny", "carphone", "gen_ltxv_i2v_fox")}
    names, rng, cross = list(clips), np.random.default_rng(0), []
    for _ in range(300):
        a, b = rng.choice(3, 2, replace=False)
        fa, fb = clips[names[a]][rng.integers(90)], clips[names[b]][rng.integers(90)]
        if fa.shape != fb.shape:  # carphone is 176x144: bring it to the other's size
            fa, fb = (cv2.resize(f, (448, 256), interpolation=cv2.INTER_CUBIC) if f.shape[0] == 144 else f
                      for f in (fa, fb))
        cross.append(float(cut_scores(np.stack([fa, fb]))[0]))
    result = dict(
        threshold=THRESHOLD, frames=len(frames), segments=[list(s) for s in CUT_SEGMENTS],
        true_cuts=cuts, found=found, missed=sorted(set(cuts) - set(found)), false=sorted(set(found) - set(cuts)),
        min_score_at_cut=round(float(scores[cuts].min()), 4),
        max_score_same_shot=round(float(scores[others].max()), 4),
        max_score_change_of_light=round(float(scores[light].max()), 4),
        max_score_within_each_real_clip={k: round(float(cut_scores(v).max()), 4) for k, v in clips.items()},
        sunrise_keyframe_scores=[round(float(s), 4) for s in sunrise],
        random_cross_clip_pairs=dict(n=len(cross), min_score=round(min(cross), 4),
                                     found=int(sum(c > THRESHOLD for c in cross))),
        scores_at_cuts=[round(float(s), 4) for s in scores[cuts]],
        machine=f"{platform.machine()} {platform.python_version()}",
    )
    return result


if __name__ == "__main__":
    res = main()
    OUT.write_text(json.dumps(res, indent=1) + "\n")
    for k in ("true_cuts", "found", "missed", "false", "min_score_at_cut", "max_score_same_shot",
              "max_score_change_of_light", "max_score_within_each_real_clip", "sunrise_keyframe_scores",
              "random_cross_clip_pairs"):
        print(f"{k}: {res[k]}")
    print(f"wrote {OUT}")
