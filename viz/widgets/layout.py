"""Layout helpers of the widget apps: the controls column, the views column, rows that wrap, the top-5 table."""
from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Optional

__all__ = ["top5_html", "top5_widget", "row_layout", "controls_layout", "views_layout", "tagged"]


def tagged(widget, css: str):
    """`widget` with CSS class `css` (the browser tests find controls and views by class, not by position)."""
    widget.add_class(css)
    return widget


def top5_html(top5: Sequence[tuple[str, float]], truth: Optional[str]) -> str:
    """The top-5 table from (class name, probability) pairs, with the true class when known."""
    rows = "".join(f"<tr><td style='white-space:nowrap'>{html.escape(c)}</td>"
                   f"<td style='text-align:right'>{100 * p:.1f}%</td></tr>" for c, p in top5)
    said = f"<br>true class: {html.escape(truth)}" if truth is not None else ""
    return f"<b>top-5</b>{said}<table>{rows}</table>"


def top5_widget():
    """The top-5 table: its own width (class names are not wrapped or cut), moved under the views by a
    narrow page rather than squeezed."""
    import ipywidgets as W

    return tagged(W.HTML(layout=W.Layout(min_width="12em", flex="0 0 auto", margin="0 0 0 0.5em")), "viz-top5")


def row_layout():
    """A row of views that wraps on a narrow page."""
    import ipywidgets as W

    return W.Layout(flex_flow="row wrap", align_items="flex-start")


def controls_layout(width: str):
    """The controls column: a fixed width that a long line in the views column can not squeeze."""
    import ipywidgets as W

    return W.Layout(width=width, flex="0 0 auto")


def views_layout():
    """The views column: children keep their own width (a flex column would stretch a narrower image, blurred)."""
    import ipywidgets as W

    return W.Layout(align_items="flex-start")
