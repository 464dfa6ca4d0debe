"""JupyterLab apps (ipywidgets 8): the SAM playground and the model explorer.

    from viz.widgets import SAMPlayground, ModelExplorer
    SAMPlayground()          # the demo model `main` on the shipped canvases
    ModelExplorer()

Each app owns its controls and views and computes nothing itself: a control's handler asks a session of
`viz.sessions` (captures and caches, no widgets) for the view's data and hands it to a `View`, which
draws it once with a `viz.plot` function and later sets new data on the artists that function returned
(`update_*`), then sends the re-rendered PNG to a `widgets.Image`. The paper figures draw with the same
functions. Errors never escape a handler: the status line says what went wrong in plain words, with the
traceback behind a "details" toggle, and the widget stays usable. `debounce` (seconds) coalesces bursts
of events when an event loop runs (as in Jupyter); without one, updates are immediate. Controls and
views carry CSS classes (`viz-control-heads`, `viz-view-heads`, ...) that browser tests select by.

    app.py         the base: status line and error details, guard, debouncing, quiet(), latency
    view.py        Drawing (a figure per shape, the last shapes' kept laid out, dynamic artists blitted),
                   View (a Drawing as PNG in a widgets.Image), Panel (a plot's artists plus the widget's texts)
    layout.py      columns, wrapping rows, the top-5 table, CSS class tags
    playground.py  SAMPlayground
    explorer.py    ModelExplorer
"""
from .explorer import ModelExplorer
from .playground import SAMPlayground

__all__ = ["SAMPlayground", "ModelExplorer"]
