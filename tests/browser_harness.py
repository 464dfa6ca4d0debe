"""JupyterLab on localhost and headless Chromium, for the browser test and the browser benchmark.

    from browser_harness import jupyter_lab, chromium, open_notebook, run_all_cells

`jupyter_lab()` starts `python -m jupyter lab` (this interpreter) on a free port of 127.0.0.1, with no
token and no password, its own temporary config, data, runtime and IPython folders and a root folder
holding a copy of the notebooks; the kernel imports the project from this checkout, and the notebooks run
in fast mode unless told otherwise. The kernelspec and the lab extensions (ipywidgets) are still found in
the interpreter's prefix. Lab's news feed, update check and extension manager are off, so nothing asks
the internet. `chromium()` drives Chromium with Playwright; every request (and web socket) that is not
for localhost is aborted and recorded in `Browser.blocked`; console errors and page errors are recorded
too. Both are context managers that shut down (server process group, browser, temporary folders) also
on errors. The rest finds ipywidgets 8 controls in JupyterLab 4's DOM and times updates in the page.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
ARTIFACTS = ROOT / "test-artifacts" / "browser"
LOCAL_HOSTS = ("127.0.0.1", "localhost")

# Without the background-networking flags Chromium keeps contacting Google services, which a closed
# network refuses (and which a test has no business contacting).
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# User settings of the temporary Lab: no news or update checks (requests to the internet), every cell
# attached to the DOM (no windowing: the test reads outputs below the fold).
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
}


def chromium_path() -> Optional[str]:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def missing() -> Optional[str]:
    """Why the browser test can not run here (what to install), or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed: pip install playwright (or pip install -e '.[test]')"
    if chromium_path() is None:
        return "Chromium is not installed: sudo apt-get install chromium (or make sysdeps as root)"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _token_flags() -> list[str]:
    import jupyter_server

    if jupyter_server.version_info >= (2,):
        return ["--IdentityProvider.token=", "--PasswordIdentityProvider.hashed_password=",
                "--PasswordIdentityProvider.password_required=False"]
    return ["--ServerApp.token=", "--ServerApp.password="]


@dataclass
class Lab:
    url: str
    root: Path
    process: subprocess.Popen
    log: Path

    def log_tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""


@contextlib.contextmanager
def jupyter_lab(notebooks: Path = NOTEBOOKS, *, timeout: float = 60.0, fast: bool = True,
                env: Optional[dict] = None) -> Iterator[Lab]:
    """A JupyterLab server on 127.0.0.1 serving a copy of `notebooks`, stopped (process group) on exit.

    Args:
        notebooks: The folder copied into the server's root folder.
        timeout: Seconds to wait for the server to answer.
        fast: Run the notebooks in fast mode (SMT_NOTEBOOK_FAST=1).
        env: More environment variables for the server and its kernels.
    """
    tmp = Path(tempfile.mkdtemp(prefix="smt-lab-"))
    proc = None
    try:
        root = tmp / "root"
        shutil.copytree(notebooks, root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        config = tmp / "config"
        for name, values in LAB_SETTINGS.items():
            f = config / "lab" / "user-settings" / f"{name}.jupyterlab-settings"
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(json.dumps(values))
        extra, env = env or {}, dict(os.environ)
        env.update(JUPYTER_CONFIG_DIR=str(config), JUPYTER_DATA_DIR=str(tmp / "data"),
                   JUPYTER_RUNTIME_DIR=str(tmp / "runtime"), IPYTHONDIR=str(tmp / "ipython"),
                   PYTHONPATH=os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])),
                   JUPYTER_PLATFORM_DIRS="1")
        env.pop("JUPYTER_PATH", None)
        env["SMT_NOTEBOOK_FAST"] = "1" if fast else "0"
        env.update(extra)
        port = _free_port()
        cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.open_browser=False",
               "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
               f"--ServerApp.root_dir={root}", "--ServerApp.terminals_enabled=False",
               "--LabApp.news_url=None", "--LabApp.extension_manager=readonly",
               "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
               *_token_flags(), *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else [])]
        log = tmp / "lab.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(cmd, env=env, cwd=root, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        lab = Lab(f"http://127.0.0.1:{port}", root, proc, log)
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with code {proc.returncode}:\n{lab.log_tail()}")
            try:
                with urllib.request.urlopen(f"{lab.url}/api/status", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"JupyterLab did not answer within {timeout:.0f} s:\n{lab.log_tail()}")
            time.sleep(0.25)
        yield lab
    finally:
        if proc is not None:
            _stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the server's process group (the server shuts its kernels down), SIGKILL to what is left.

    Kernels run in sessions of their own; one that outlives a killed server exits by itself (ipykernel
    watches its parent process).
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(15)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(5)


def _local(url: str) -> bool:
    u = urlparse(url)
    return u.scheme in ("data", "blob", "about") or u.hostname in LOCAL_HOSTS


def file_only(url: str) -> bool:
    """Only files from disk (and inline data): what a page opened from file:// may load."""
    return urlparse(url).scheme in ("file", "data", "blob", "about")


@dataclass
class Browser:
    page: Any
    context: Any
    blocked: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        return [f"request to a non-local address: {u}" for u in self.blocked] + list(self.console_errors)


@contextlib.contextmanager
def chromium(*, width: int = 1500, height: int = 1800, allow: Callable[[str], bool] = None) -> Iterator[Browser]:
    """Headless Chromium (Playwright) with one page; requests that `allow` refuses (default: all but localhost,
    `file_only` for a page opened from disk) are aborted and recorded."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": width, "height": height})
            page = context.new_page()
            b = Browser(page, context)

            def block(route):
                b.blocked.append(route.request.url)
                route.abort()

            def block_ws(ws):
                b.blocked.append(ws.url)
                ws.close()

            allowed = allow or _local
            context.route(lambda url: not allowed(url), block)
            context.route_web_socket(lambda url: not allowed(url), block_ws)
            page.on("console", lambda m: b.console_errors.append(f"console error: {m.text} ({m.location})")
                    if m.type == "error" else None)
            page.on("pageerror", lambda e: b.console_errors.append(f"page error: {e}"))
            yield b
        finally:
            browser.close()


def open_notebook(b: Browser, lab: Lab, name: str, *, timeout: float = 60.0) -> None:
    """Open notebook `name` (from the file browser when Lab is already loaded) and wait for its idle kernel."""
    page = b.page
    if page.url.startswith(f"{lab.url}/lab"):
        page.locator(".jp-DirListing-item", has=page.locator(".jp-DirListing-itemText", has_text=name)).dblclick()
    else:
        page.goto(f"{lab.url}/lab/tree/{name}", wait_until="domcontentloaded")
    notebook(b).locator(".jp-Cell").first.wait_for(timeout=timeout * 1000)
    page.locator(".lm-DockPanel-tabBar .lm-mod-current", has_text=name).wait_for(timeout=timeout * 1000)
    wait_kernel_idle(b, timeout=timeout)


def notebook(b: Browser):
    """The notebook shown in the main area."""
    return b.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")


def dismiss_dialogs(b: Browser) -> None:
    """Accept any modal dialog (e.g. "Select Kernel") that would block the notebook."""
    for d in b.page.locator(".jp-Dialog").all():
        with contextlib.suppress(Exception):
            d.locator(".jp-mod-accept").first.click(timeout=2000)


def wait_kernel_idle(b: Browser, *, timeout: float = 60.0) -> None:
    """Wait until the status bar says the notebook's kernel is connected and idle ("Python 3 (ipykernel) | Idle")."""
    deadline = time.monotonic() + timeout
    while True:
        dismiss_dialogs(b)
        try:
            b.page.wait_for_function(KERNEL_IDLE, timeout=1000, polling=100)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the kernel did not become idle within {timeout:.0f} s") from None


KERNEL_IDLE = """() => [...document.querySelectorAll('.jp-StatusBar-TextItem[title^="Change kernel"]')]
    .some(e => /\\| Idle$/.test(e.textContent) && !/^No Kernel/.test(e.textContent))"""

ALL_RAN = """() => {
    const prompts = [...document.querySelectorAll(
        '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputArea-prompt')];
    return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
}"""


def run_all_cells(b: Browser, *, timeout: float = 90.0) -> None:
    """Run > Run All Cells from the menu bar, then wait until every code cell has run and the kernel is idle."""
    page = b.page
    page.locator(".lm-MenuBar-item", has_text="Run").first.click()
    page.locator(".lm-Menu-item[data-command='runmenu:run-all']").click()
    deadline = time.monotonic() + timeout
    while True:
        dismiss_dialogs(b)
        try:
            page.wait_for_function(ALL_RAN, timeout=1000, polling=200)
            break
        except Exception:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the notebook did not finish within {timeout:.0f} s") from None
    wait_kernel_idle(b, timeout=timeout)


def run_code(b: Browser, code: str, *, timeout: float = 60.0) -> str:
    """Add a code cell at the end of the shown notebook, run it (Shift+Enter) and return its output text."""
    page, nb = b.page, notebook(b)
    nb.locator(".jp-Cell").last.locator(".jp-InputPrompt").click()  # select the last cell in command mode
    page.keyboard.press("Escape")
    page.keyboard.press("b")  # a new code cell below
    cell = nb.locator(".jp-Cell").nth(nb.locator(".jp-Cell").count() - 1)  # Shift+Enter adds one more below it
    cell.locator(".cm-content").click()
    page.keyboard.insert_text(code)
    page.keyboard.press("Shift+Enter")
    cell.locator(".jp-InputArea-prompt", has_text=re.compile(r"\[\d+\]")).wait_for(timeout=timeout * 1000)
    return cell.locator(".jp-OutputArea").inner_text()


def error_outputs(b: Browser) -> list[str]:
    """Error outputs of the shown notebook (Lab renders them as stderr): a traceback or an `...Error:` line.
    Other stderr text (a library's warning) is not an error."""
    texts = notebook(b).locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
                                ).all_inner_texts()
    return [t[:800] for t in texts if "Traceback" in t or re.search(r"^\w*(Error|Exception)\b", t, re.M)]


def output_area(b: Browser, code: str):
    """The output area of the code cell whose source contains `code`."""
    cell = notebook(b).locator(".jp-CodeCell").filter(has=b.page.locator(".jp-InputArea", has_text=code))
    return cell.locator(".jp-OutputArea")


# -- the apps' controls and views by the CSS classes they set (viz.widgets: viz-control-*, viz-view-*, ...) ---------
def by_class(scope, css: str):
    """The element of `scope` with CSS class `css` (e.g. "viz-readout", "viz-control-heads", "viz-view-heads")."""
    return scope.locator(f".{css}")


def control_handle(scope, name: str):
    """The handle of the slider with class `viz-control-{name}`."""
    return by_class(scope, f"viz-control-{name}").locator(".noUi-handle")


def control_readout(scope, name: str):
    """The readout of the slider with class `viz-control-{name}`."""
    return by_class(scope, f"viz-control-{name}").locator(".widget-readout")


def control_select(scope, name: str):
    """The `<select>` of the dropdown with class `viz-control-{name}`."""
    return by_class(scope, f"viz-control-{name}").locator("select")


# -- ipywidgets 8 controls by their description --------------------------------------------------------------------
def labelled(scope, kind: str, description: str):
    """The `.widget-slider` / `.widget-dropdown` / ... of `scope` whose label is `description`."""
    return scope.locator(f".{kind}").filter(has=scope.page.locator(
        "label.widget-label", has_text=re.compile(rf"^{re.escape(description)}$")))


def slider_handle(scope, description: str):
    return labelled(scope, "widget-slider", description).locator(".noUi-handle")


def slider_readout(scope, description: str):
    return labelled(scope, "widget-slider", description).locator(".widget-readout")


def dropdown(scope, description: str):
    return labelled(scope, "widget-dropdown", description).locator("select")


def toggle_button(scope, text: str):
    return scope.locator("button.widget-toggle-button", has_text=re.compile(rf"^{re.escape(text)}$"))


IMAGE_INFO = """async img => {
    if (!img.complete) await new Promise(r => img.addEventListener('load', r, {once: true}));
    const buf = await (await fetch(img.src)).arrayBuffer();
    const hash = [...new Uint8Array(await crypto.subtle.digest('SHA-256', buf))]
        .map(x => x.toString(16).padStart(2, '0')).join('');
    const c = document.createElement('canvas');
    c.width = img.naturalWidth; c.height = img.naturalHeight;
    const ctx = c.getContext('2d');
    ctx.drawImage(img, 0, 0);
    const px = ctx.getImageData(0, 0, c.width, c.height).data;
    const colours = new Set();
    for (let i = 0; i < px.length; i += 4 * 7) colours.add((px[i] << 16) | (px[i + 1] << 8) | px[i + 2]);
    return {hash, bytes: buf.byteLength, width: img.naturalWidth, height: img.naturalHeight, colours: colours.size,
            shown_width: img.getBoundingClientRect().width};
}"""


def image_info(img) -> dict:
    """What an `<img>` shows: SHA-256 of its bytes, size in pixels, the number of colours (sampled), shown width."""
    return img.evaluate(IMAGE_INFO)


# -- latency: key press (or click) to the new image in the page ---------------------------------------------------
LATENCY_INSTALL = """root => {
    const rec = window.__smt_latency = {t0: null, loads: new Map(), text: null, src0: [], root};
    document.addEventListener('keydown', () => { rec.t0 = rec.t0 ?? performance.now(); }, true);
    document.addEventListener('mousedown', () => { rec.t0 = rec.t0 ?? performance.now(); }, true);
    root.addEventListener('load', e => {
        if (e.target.tagName === 'IMG' && !rec.loads.has(e.target)) rec.loads.set(e.target, performance.now());
    }, true);
    new MutationObserver(() => { rec.text = rec.text ?? performance.now(); })
        .observe(root.querySelector('.__smt_readout'), {childList: true, characterData: true, subtree: true});
}"""

LATENCY_ARM = """() => {
    const rec = window.__smt_latency;
    rec.t0 = null; rec.loads = new Map(); rec.text = null;
    rec.imgs = [...rec.root.querySelectorAll('img.widget-image')];
    rec.src0 = rec.imgs.map(i => i.src);
}"""

# done when the readout changed and every image whose src changed has loaded; the watched image must change
LATENCY_DONE = """watched => {
    const rec = window.__smt_latency;
    if (rec.t0 === null || rec.text === null) return false;
    const imgs = [...rec.root.querySelectorAll('img.widget-image')];
    if (!rec.loads.has(imgs[watched])) return false;
    if (!imgs.every((img, i) => img.src === rec.src0[i] || rec.loads.has(img))) return false;
    const t = [...rec.loads.values(), rec.text];
    return {image: rec.loads.get(imgs[watched]) - rec.t0, all: Math.max(...t) - rec.t0};
}"""


class Latency:
    """Times from a key press or click inside `root` to the new `<img>` (index `watched`) and to the whole update
    (the readout element and every image that changed), measured with `performance.now()` in the page."""

    def __init__(self, b: Browser, root, readout, watched: int):
        self.b, self.watched = b, watched
        readout.evaluate("e => e.classList.add('__smt_readout')")
        root.evaluate(LATENCY_INSTALL)

    def measure(self, act, *, prepare=None, timeout: float = 30.0) -> dict:
        """{"image": ms, "all": ms} of `act()` (after `prepare()`, which is not timed)."""
        if prepare is not None:
            prepare()
        self.b.page.evaluate(LATENCY_ARM)
        act()
        try:
            return self.b.page.wait_for_function(LATENCY_DONE, arg=self.watched, timeout=timeout * 1000,
                                                 polling="raf").json_value()
        except Exception as e:
            state = self.b.page.evaluate(LATENCY_STATE)
            raise TimeoutError(f"no complete update within {timeout:.0f} s after the action: {state}") from e


LATENCY_STATE = """() => {
    const rec = window.__smt_latency;
    const imgs = [...rec.root.querySelectorAll('img.widget-image')];
    return {t0: rec.t0, text: rec.text, images: imgs.length,
            changed: imgs.map((img, i) => img.src !== rec.src0[i]), loaded: imgs.map(img => rec.loads.has(img))};
}"""
