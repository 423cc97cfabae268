"""Found by search: what a user types in the node search box (double-click on the canvas) finds
VideoInterpolate.

On ComfyUI 0.25 the node's search_aliases reach the frontend (1.45.19), so every term of
SEARCH_TERMS finds it among the first results. ComfyUI 0.3.75's node schema has no search_aliases;
its frontend (1.32.9) matches what the node's name and display name say, and FOUND_ON_0_3 is the
set of terms that find it there (README, "Found by search").
"""
from __future__ import annotations

import json

import pytest

SEARCH_TERMS = ("rife", "vfi", "fps", "frame interpolation", "slow motion", "interpolate")
FOUND_ON_0_3 = {"interpolate"}
OURS = "Video Interpolate (Video Engine)"
TOP = 10  # "finds" = among the first TOP results


def open_canvas(comfy, page):
    page.goto(comfy.base_url, wait_until="domcontentloaded")
    page.wait_for_function(
        "() => !!(window.app && window.app.graph && window.app.canvas && window.LiteGraph"
        " && window.LiteGraph.registered_node_types['VideoInterpolate'])", timeout=90_000)
    page.evaluate("() => window.app.graph.clear()")
    page.wait_for_timeout(1000)


def open_search_box(page):
    """Double-click on empty canvas as a user does until the node search box opens; return its field."""
    box = page.locator("input[role=combobox]:visible, input[placeholder]:visible")
    for attempt in range(6):  # a double-click can land before the canvas listens, or while a box closes
        page.mouse.dblclick(700 + 15 * attempt, 520)
        try:
            box.last.wait_for(timeout=3000)
            return box.last
        except Exception:  # noqa: BLE001 - playwright's TimeoutError; retry
            continue
    raise AssertionError("the node search box did not open on a double-click")


def search(page, term: str, shot=None) -> list[str]:
    """Open the search box, type `term`, return the titles of the listed nodes in order (a
    screenshot of the open list to `shot`, if given)."""
    field = open_search_box(page)
    field.press_sequentially(term, delay=25)
    page.wait_for_function("([sel, t]) => { const i = [...document.querySelectorAll(sel)].pop();"
                           " return i && i.value === t && document.querySelectorAll('[role=option]').length > 0; }",
                           arg=["input[role=combobox], input[placeholder]", term], timeout=15_000)
    page.wait_for_timeout(800)  # the list settles after the last keystroke
    titles = page.evaluate(
        "() => [...document.querySelectorAll('[role=option]')].filter(e => e.offsetParent)"
        ".map(e => (e.innerText || '').split('\\n').map(s => s.trim()).filter(Boolean)[0] || '')")
    if shot is not None:
        page.screenshot(path=str(shot))
    page.keyboard.press("Escape")
    page.wait_for_timeout(300)
    return titles


def test_search_finds_video_interpolate(comfy, page, artifacts_dir):
    open_canvas(comfy, page)
    found, ranks = {}, {}
    version = ".".join(map(str, comfy.version))
    for term in SEARCH_TERMS:
        shot = artifacts_dir / f"node_search_{version}.png" if term == "rife" else None
        titles = search(page, term, shot)
        assert titles, f"no results at all for {term!r}"
        found[term] = OURS in titles[:TOP]
        ranks[term] = titles.index(OURS) + 1 if OURS in titles else None
    (artifacts_dir / f"node_search_{version}.json").write_text(json.dumps(ranks, indent=1) + "\n")
    if comfy.version >= (0, 25):
        assert all(found.values()), found
    else:
        assert {t for t, ok in found.items() if ok} == FOUND_ON_0_3, found
    assert not page.page_errors, page.page_errors


def test_choosing_the_result_adds_the_node(comfy, page):
    if comfy.version < (0, 25):
        pytest.skip("'rife' does not find the node on ComfyUI 0.3.75 (no search_aliases there)")
    open_canvas(comfy, page)
    field = open_search_box(page)
    field.press_sequentially("rife", delay=25)
    option = page.locator("[role=option]", has_text=OURS).first
    option.wait_for(timeout=15_000)
    option.click()
    page.wait_for_function("() => window.app.graph._nodes.some(n => n.type === 'VideoInterpolate')", timeout=15_000)
    assert not page.page_errors, page.page_errors
