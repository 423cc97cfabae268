"""Where the shared bench data lives (../shared beside the checkout, or $VE_SHARED)."""
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path | None:
    for cand in (os.environ.get("VE_SHARED"), ROOT.parent / "shared"):
        if cand and (Path(cand) / "bench" / "data").is_dir():
            return Path(cand)
    return None


def load_bench_clip(name: str):
    """uint8 [N, H, W, 3] frames of a clip of the shared bench (bigbuckbunny, carphone, gen_ltxv_i2v_fox),
    or None when there is no shared bench data (callers skip)."""
    sd = shared_dir()
    if sd is None:
        return None
    import numpy as np

    with np.load(sd / "bench" / "data" / f"{name}.npz") as z:
        return z["frames"]


# (clip, first frame, frames): consecutive segments of different real clips, so every join is a hard cut
CUT_SEGMENTS = (("bigbuckbunny", 0, 12), ("gen_ltxv_i2v_fox", 0, 10), ("carphone", 0, 12), ("bigbuckbunny", 30, 9),
                ("carphone", 40, 12), ("gen_ltxv_i2v_fox", 40, 14), ("bigbuckbunny", 60, 12),
                ("gen_ltxv_i2v_fox", 70, 12), ("carphone", 75, 10), ("bigbuckbunny", 78, 12))


def relight(frame, gain, tint=(1.0, 1.0, 1.0), gamma=1.0):
    """The same picture under other light: a gain, a colour tint and a gamma (uint8 in, uint8 out)."""
    import numpy as np

    f = (frame.astype(np.float32) / 255) ** gamma * gain * np.asarray(tint, np.float32)
    return np.clip(np.rint(f * 255), 0, 255).astype(np.uint8)


def spliced_real_clip():
    """Real footage with hard cuts and lighting changes that are not cuts.

    The CUT_SEGMENTS joined (448x256; carphone resized), then two changes of light on one shot: in
    segment 3 (carphone) the light jumps at its 6th frame (x1.5, warmer), and the last segment
    (bigbuckbunny) brightens and warms frame by frame. Returns (frames, true cut pair indices,
    lighting-change pair indices).
    """
    import cv2
    import numpy as np

    parts, cuts, n = [], [], 0
    for k, (name, first, count) in enumerate(CUT_SEGMENTS):
        seg = [cv2.resize(f, (448, 256), interpolation=cv2.INTER_CUBIC) if f.shape[:2] != (256, 448) else f
               for f in load_bench_clip(name)[first:first + count]]
        if k == 2:
            seg = seg[:5] + [relight(f, 1.5, (1.1, 1.0, 0.8)) for f in seg[5:]]
        if k == len(CUT_SEGMENTS) - 1:
            seg = [relight(f, 1 + 0.06 * j, (1 + 0.02 * j, 1.0, 1 - 0.03 * j), 1 - 0.02 * j) for j, f in enumerate(seg)]
        if k:
            cuts.append(n - 1)
        parts += seg
        n += len(seg)
    light = [cuts[1] + 5] + list(range(cuts[-1] + 1, n - 1))
    return np.stack(parts), cuts, light


def sunrise_keyframes(n=4, h=144, w=256):
    """float32 [n, h, w, 3] keyframes of one landscape (sky, sun, a ridge, textured ground) from night
    through dawn to day: the light changes, the structure does not (except the sun rising)."""
    import numpy as np

    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    frames = []
    for k in range(n):
        s = k / (n - 1)
        top = np.array([0.05, 0.05, 0.2]) * (1 - s) + np.array([0.3, 0.55, 0.95]) * s
        dawn = np.array([0.9, 0.4, 0.15]) * (1 - s) + np.array([0.8, 0.85, 0.95]) * s
        horizon = np.array([0.05, 0.05, 0.15]) if k == 0 else dawn
        t = (y / (h * 0.6))[..., None]
        img = top * (1 - t) + horizon * t
        sun = np.hypot(x - w * 0.6, y - (h * 0.62 - s * h * 0.45)) < h / 14
        img = np.where(sun[..., None], np.array([1.0, 0.9, 0.6]), img)
        ground = np.array([0.02, 0.03, 0.02]) * (1 - s) + np.array([0.2, 0.45, 0.15]) * s
        ridge = h * 0.6 + h / 13 * np.sin(x / 21) + h / 26 * np.sin(x / 6 + 1)
        img = np.where((y > ridge)[..., None], ground * (1 + 0.3 * np.sin(x / 3) * np.sin(y / 4))[..., None], img)
        frames.append(np.clip(img, 0, 1).astype(np.float32))
    return np.stack(frames)
