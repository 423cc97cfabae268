"""The ComfyUI web UI loads in headless Chromium with the server the tests share."""


def test_ui_loads_and_renders_canvas(comfy, page, artifacts_dir):
    page.goto(comfy.base_url, wait_until="domcontentloaded")
    # The front end sets window.app once it is set up; app.graph is the LiteGraph graph on the canvas.
    page.wait_for_function(
        "() => !!(window.app && window.app.graph && window.app.canvas && document.querySelector('canvas'))",
        timeout=90_000,
    )
    # The node definitions came from this server's /object_info.
    page.wait_for_function(
        "() => !!(window.LiteGraph && window.LiteGraph.registered_node_types['LoadVideo'])", timeout=30_000)
    registered = page.evaluate(
        "() => ['LoadVideo', 'GetVideoComponents', 'CreateVideo', 'SaveVideo']"
        ".filter(n => !!window.LiteGraph.registered_node_types[n])")
    assert registered == ["LoadVideo", "GetVideoComponents", "CreateVideo", "SaveVideo"]

    page.wait_for_timeout(1500)  # let the first frames paint
    shot = artifacts_dir / "ui_smoke.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000

    # The seeded settings keep the Templates dialog from covering the canvas on first load.
    assert page.evaluate("() => window.app.ui.settings.getSettingValue('Comfy.TutorialCompleted')") is True
    assert not page.page_errors, page.page_errors
