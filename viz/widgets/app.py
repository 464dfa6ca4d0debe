"""What every widget app shares: a status line whose error keeps its traceback behind a "details" toggle, one
guard around every handler (the widget stays usable after an error), debouncing, `quiet()` for changes the
app makes itself, and latency records."""
from __future__ import annotations

import asyncio
import html
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, Optional

__all__ = ["App"]


class App:
    """Base of a widget app.

    `on(name, fn)` makes the `observe` handler of control `name`: it ignores events while the app is
    `quiet()`, coalesces bursts into one call when `debounce` > 0 and an event loop runs (as in Jupyter;
    without one, calls are immediate), runs `fn` inside `guard`, and records the latency under `name`.

    Args:
        debounce: Seconds to coalesce bursts of events (0: immediate).
    """

    def __init__(self, debounce: float = 0.0):
        import ipywidgets as W

        self.debounce = debounce
        self.status = W.HTML(value="").add_class("viz-status")
        self.w_details = W.ToggleButton(value=False, description="details", tooltip="show the traceback",
                                        layout=W.Layout(width="6em", display="none")).add_class("viz-error-details")
        self.w_traceback = W.HTML(value="", layout=W.Layout(display="none")).add_class("viz-traceback")
        self.w_details.observe(lambda change: self._show_traceback(change["new"]), "value")
        self.status_box = W.VBox([W.HBox([self.status, self.w_details], layout=W.Layout(align_items="center")),
                                  self.w_traceback]).add_class("viz-status-box")
        self.explanation = W.HTML(value="").add_class("viz-explanation")
        self.latency: dict[str, list[float]] = {}
        # errors of values that are still set, by what they concern ("model", "block", ...): shown until fixed,
        # whatever other control changes meanwhile (the views keep the last good state)
        self.standing: dict[str, tuple[Exception, str]] = {}
        self.last_error: Optional[str] = None
        self.traceback: Optional[str] = None
        self.pending: dict[str, Any] = {}
        self._quiet = 0
        # entered around every handler: the session's torch thread count (viz.sessions.TorchThreads), so that
        # building a model and preparing an input run like the session's forward passes
        self.compute: AbstractContextManager = nullcontext()

    # -- status -------------------------------------------------------------------------------------------------
    def say(self, text: str, error: bool = False) -> None:
        color = "#b00020" if error else "#555"
        self.status.value = f"<span style='color:{color}'>{html.escape(text)}</span>" if text else ""

    def _show_traceback(self, shown: bool) -> None:
        self.w_traceback.layout.display = "" if shown and self.traceback else "none"

    def _set_error(self, e: Optional[Exception], tb: Optional[str] = None) -> None:
        if e is None and self.standing:  # another control worked, but a bad value is still set: keep saying so
            e, tb = next(reversed(self.standing.values()))
        if e is None:
            self.last_error = self.traceback = None
            self.say("")
            self.w_details.layout.display = "none"
            self.w_traceback.value = ""
        else:
            self.last_error = f"{type(e).__name__}: {e}"
            self.traceback = tb or traceback.format_exc()
            self.say(self.plain(e), error=True)
            self.w_traceback.value = ("<pre style='font-size:smaller;white-space:pre-wrap;margin:0'>"
                                      f"{html.escape(self.traceback)}</pre>")
            self.w_details.layout.display = ""
        self._show_traceback(self.w_details.value)

    @contextmanager
    def standing_error(self, what: str) -> Iterator[None]:
        """An error raised inside concerns a value that stays set (`what`): it is shown until a later run of this
        block succeeds, also while other controls change."""
        try:
            yield
        except Exception as e:
            self.standing.pop(what, None)
            self.standing[what] = (e, traceback.format_exc())
            raise
        self.standing.pop(what, None)

    @staticmethod
    def plain(e: Exception) -> str:
        """An exception as a sentence: its message, capitalised (the type when it has none)."""
        text = str(e).strip("'\"")
        return text[0].upper() + text[1:] if text else type(e).__name__

    # -- running handlers ---------------------------------------------------------------------------------------
    def guard(self, name: str, fn: Callable[[], None]) -> None:
        """Run an update; record its latency; show any error in the status line (the widget stays usable)."""
        t0 = time.perf_counter()
        try:
            with self.compute:
                fn()
            self._set_error(None)
        except Exception as e:  # shown in the widget, with its traceback behind "details"
            self._set_error(e)
        self.latency.setdefault(name, []).append(1000 * (time.perf_counter() - t0))

    @contextmanager
    def quiet(self) -> Iterator[None]:
        """Changes to controls made inside run no handler (the app sets them itself)."""
        self._quiet += 1
        try:
            yield
        finally:
            self._quiet -= 1

    def on(self, name: str, fn: Callable[[], None]) -> Callable:
        """The `observe` handler of control `name`: runs `fn` guarded, debounced when an event loop runs."""
        def handler(change=None):
            if self._quiet:
                return
            if self.debounce > 0:
                try:
                    loop = asyncio.get_running_loop()
                except RuntimeError:
                    loop = None
                if loop is not None:
                    old = self.pending.pop(name, None)
                    if old is not None:
                        old[0].cancel()
                    self.pending[name] = (loop.call_later(self.debounce, lambda: self._run_pending(name)), fn)
                    return
            self.guard(name, fn)
        return handler

    def _run_pending(self, name: str) -> None:
        entry = self.pending.pop(name, None)
        if entry is not None:
            self.guard(name, entry[1])

    def flush(self) -> None:
        """Run the debounced updates that are still waiting, now (e.g. before reading `explanation_text` in
        the same notebook cell that set a control: the event loop does not run between a cell's lines)."""
        for name in list(self.pending):
            if name in self.pending:  # an update run here may have settled another one
                self.pending[name][0].cancel()
                self._run_pending(name)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
