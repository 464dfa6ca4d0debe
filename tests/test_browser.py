"""The widgets in a real browser: JupyterLab on localhost, the notebooks run from the menu in headless Chromium.

The SAM playground (notebook 01): the head-count and first-kernel sliders are moved with the keyboard and a
head is masked with a click; the model explorer (notebook 02): the stage and tap pickers. After each action
the shown image (its bytes) changed, the explanation and the readout say the new values exactly, no cell has
an error output, the widget's status line is empty (but for N = 3, which it must refuse), the browser console
has no error, the controls are not overlapped and the heads view is not stretched, and nothing but localhost
was contacted (requests elsewhere are aborted and counted). Screenshots of the final states go to
test-artifacts/browser/.

Run alone with `pytest -m browser`; skipped (saying what to install) without Chromium or Playwright.
"""
import re

import pytest

from browser_harness import (
    ARTIFACTS,
    Browser,
    by_class,
    chromium,
    control_handle,
    control_readout,
    control_select,
    error_outputs,
    image_info,
    jupyter_lab,
    missing,
    open_notebook,
    output_area,
    run_all_cells,
    toggle_button,
)

# one group: under pytest-xdist (--dist loadgroup) the tests share one server and one browser
pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser"),
              pytest.mark.skipif(missing() is not None, reason=missing() or "")]

RENDERED = "the widget did not render: is jupyterlab_widgets (ipywidgets' lab extension) installed?"
WAIT_MS = 60_000  # a new model (a checkpoint read, resized kernels) on a busy 2-core machine


@pytest.fixture(scope="module")
def lab():
    with jupyter_lab() as server:
        yield server


@pytest.fixture(scope="module")
def browser(lab):
    with chromium() as b:
        yield b


def _clean(b: Browser, status) -> None:
    """No error output in any cell, an empty widget status line, no console error, only localhost contacted."""
    assert error_outputs(b) == []
    assert status.inner_text().strip() == ""
    assert b.console_errors == []
    assert b.blocked == [], f"{len(b.blocked)} requests to non-local addresses were attempted"


def _rendered(img) -> dict:
    info = image_info(img)
    assert info["width"] > 100 and info["height"] > 100 and info["colours"] > 20, info  # a drawing, not blank
    return info


def _laid_out(controls, views, img=None) -> None:
    """The controls column is not overlapped by the views, and `img` is not stretched (blurred) past its pixels."""
    c, v = controls.bounding_box(), views.bounding_box()
    assert c["x"] + c["width"] <= v["x"] + 1, f"the views column overlaps the controls: {c}, {v}"
    if img is not None:
        info = image_info(img)
        assert info["shown_width"] <= info["width"] + 1, f"the image is stretched: {info}"


def _shot(locator, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    locator.screenshot(path=str(path))
    print(f"screenshot: {path}")


def test_the_playground_follows_the_keyboard_and_the_mouse(lab, browser):
    from playwright.sync_api import expect

    b = browser
    open_notebook(b, lab, "01_sam_playground.ipynb")
    run_all_cells(b)
    out = output_area(b, "SAMPlayground(")
    expect(out.locator(".widget-slider").first, RENDERED).to_be_visible()
    app = by_class(out, "viz-sam-playground")
    views, controls = by_class(app, "viz-views"), by_class(app, "viz-controls")
    explanation, status, readout = (by_class(app, c) for c in ("viz-explanation", "viz-status", "viz-readout"))
    heads_view = by_class(app, "viz-view-heads")
    for img in out.locator("img.widget-image").all():
        _rendered(img)
    expect(explanation).to_have_text("the main model (N = 4, SAA on, kernels 3/5/7/9)")
    expect(readout).to_have_text(re.compile(r"^stages\.0\.blocks\.0: N = 4, kernels 3/5/7/9, expand ratio 2, "
                                            r"SAA on, masked heads none; image canvas 0 \(.+\)$"))
    _clean(b, status)
    _laid_out(controls, views, heads_view)
    shown = _rendered(heads_view)

    # heads N 4 -> 3: smt_nano's 32 channels do not split into 3 heads; the status line says so, the views stay
    control_handle(app, "heads").press("ArrowLeft")
    expect(status).to_contain_text("32 channels are not divisible by sam_heads=3", timeout=WAIT_MS)
    expect(explanation).to_have_text("the main model (N = 4, SAA on, kernels 3/5/7/9)")
    expect(readout).to_contain_text("stages.0.blocks.0: N = 4, kernels 3/5/7/9")
    assert b.console_errors == [] and error_outputs(b) == []

    # heads N 3 -> 2: the trained N = 2 checkpoint, and the status line is empty again
    control_handle(app, "heads").press("ArrowLeft")
    expect(control_readout(app, "heads")).to_have_text("2")
    expect(readout).to_contain_text("stages.0.blocks.0: N = 2, kernels 3/5, expand ratio 2, SAA on, "
                                    "masked heads none; image canvas 0", timeout=WAIT_MS)
    expect(explanation).to_have_text("trained checkpoint 'heads2' (N = 2, SAA on, kernels 3/5)")
    expect(by_class(app, "viz-control-mask")).to_have_text(["head 1", "head 2"])
    new = _rendered(heads_view)
    assert new["hash"] != shown["hash"], "the heads view did not change with N"
    _clean(b, status)
    _laid_out(controls, views, heads_view)
    shown = new

    # first kernel 3 -> 5 (step 2): heads2's kernels zero-padded to 5/7
    control_handle(app, "first-kernel").press("ArrowRight")
    expect(control_readout(app, "first-kernel")).to_have_text("5")
    expect(readout).to_contain_text("N = 2, kernels 5/7, expand ratio 2, SAA on, masked heads none",
                                    timeout=WAIT_MS)
    resized = ("trained checkpoint 'heads2' (N = 2, SAA on) with its kernels resized: head 1 3x3 → 5x5 "
               "zero-padded (output unchanged); head 2 5x5 → 7x7 zero-padded (output unchanged)")
    expect(explanation).to_have_text(resized)
    new = _rendered(heads_view)
    assert new["hash"] != shown["hash"], "the heads view did not change with the kernels"
    _clean(b, status)
    _laid_out(controls, views, heads_view)
    shown = new

    # mask head 1 with a click
    toggle_button(by_class(app, "viz-control-masks"), "head 1").click()
    expect(toggle_button(by_class(app, "viz-control-masks"), "head 1")).to_have_class(re.compile(r"\bmod-active\b"))
    expect(readout).to_contain_text("N = 2, kernels 5/7, expand ratio 2, SAA on, masked heads [1]; image canvas 0",
                                    timeout=WAIT_MS)
    expect(explanation).to_have_text(re.compile(re.escape(resized) + r"\. Masking head 1 of stages\.0\.blocks\.0: "
                                                r"top-1 .+ \d+(?:\.\d)?% → .+ \d+(?:\.\d)?%$"))
    new = _rendered(heads_view)
    assert new["hash"] != shown["hash"], "the heads view did not change with the mask"
    _clean(b, status)
    _laid_out(controls, views, heads_view)
    _shot(out, "playground.png")


def test_the_model_explorer_follows_its_pickers(lab, browser):
    from playwright.sync_api import expect

    b = browser
    open_notebook(b, lab, "02_feature_maps.ipynb")
    run_all_cells(b)
    out = output_area(b, "ModelExplorer(")
    expect(out.locator(".widget-dropdown").first, RENDERED).to_be_visible()
    app = by_class(out, "viz-model-explorer")
    views, controls = by_class(app, "viz-views"), by_class(app, "viz-controls")
    status, readout, tap_view = (by_class(app, c) for c in ("viz-status", "viz-readout", "viz-view-tap"))
    for img in out.locator("img.widget-image").all():
        _rendered(img)
    expect(readout).to_have_text(re.compile(r"^stages\.0\.blocks\.0\.attn\.mhmc\.heads\.0: mean over \d+ channels; "
                                            r"map 28x28, range \[.+\]$"))
    _clean(b, status)
    shown = _rendered(tap_view)

    # stage 1 -> 2: the block and tap pickers refill, the first tap of stages.1.blocks.0 is shown
    control_select(app, "stage").select_option(label="stage 2")
    expect(control_select(app, "block")).to_have_value("stage 2, block 1 (SAM)")
    expect(readout).to_have_text(re.compile(r"^stages\.1\.blocks\.0\.attn\.mhmc\.heads\.0: mean over \d+ channels; "
                                            r"map 14x14, range \[.+\]$"), timeout=WAIT_MS)
    new = _rendered(tap_view)
    assert new["hash"] != shown["hash"], "the tap view did not change with the stage"
    _clean(b, status)
    _laid_out(controls, views)
    shown = new

    control_select(app, "tap").select_option(label="attn.modulator")
    expect(readout).to_have_text(re.compile(r"^stages\.1\.blocks\.0\.attn\.modulator: mean over \d+ channels; "
                                            r"map 14x14, range \[.+\]$"), timeout=WAIT_MS)
    new = _rendered(tap_view)
    assert new["hash"] != shown["hash"], "the tap view did not change with the tap"
    _clean(b, status)
    _laid_out(controls, views)
    _shot(out, "model_explorer.png")


def test_requests_beyond_localhost_are_aborted_and_counted(browser):
    page = browser.context.new_page()
    try:
        failed = page.evaluate("() => fetch('https://example.com/probe').then(() => false, () => true)")
    finally:
        page.close()
    assert failed and browser.blocked == ["https://example.com/probe"]
    browser.blocked.clear()
