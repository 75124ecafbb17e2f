"""The notebook UI over a :class:`~medsam_echo.inference.interactive.PromptSession` (ipywidgets + matplotlib).

Drag a box or click on the frame; the mask updates at once. Controls: the mode (box, positive click,
negative click), the structure, the frame, undo, clear and export (label maps + ``session.json`` with
the EF). Mouse input needs an interactive matplotlib backend in the notebook (``%matplotlib widget``,
from ``pip install ipympl``); without one the figure is static and the session is driven from code.

The widget holds no logic: every handler calls the session, then redraws.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medsam_echo.inference.export import overlay
from medsam_echo.inference.interactive import PromptSession

MODES = ("box", "positive click", "negative click")


def _widgets():
    try:
        import ipywidgets
    except ImportError as err:
        raise ImportError(
            "the prompting widget needs ipywidgets: pip install 'medsam-echo[notebooks]'"
        ) from err
    return ipywidgets


class PromptWidget:
    """An interactive view of ``session``; ``export_dir`` is where the export button writes."""

    def __init__(self, session: PromptSession, export_dir: str | Path = "prompting_export") -> None:
        import matplotlib.pyplot as plt
        from matplotlib.widgets import RectangleSelector

        w = _widgets()
        self.session, self.export_dir = session, Path(export_dir)
        self.mode = w.ToggleButtons(options=MODES, value="box", description="mode")
        self.structure = w.Dropdown(
            options=session.structures, value=session.structure, description="structure"
        )
        self.frame = w.Dropdown(options=sorted(session.frames), value=session.frame, description="frame")
        self.undo_button, self.clear_button, self.export_button = (
            w.Button(description=name) for name in ("undo", "clear", "export")
        )
        self.status = w.HTML()
        with plt.ioff():  # shown by _ipython_display_, not once more by the backend
            self.figure, self.axes = plt.subplots(figsize=(5, 5))
        self.selector = RectangleSelector(
            self.axes,
            self._on_box,
            useblit=False,
            interactive=False,
            button=[1],
            minspanx=2,
            minspany=2,
            spancoords="data",
        )
        self.figure.canvas.mpl_connect("button_press_event", self._on_press)
        self.structure.observe(lambda change: self._select(structure=change["new"]), names="value")
        self.frame.observe(lambda change: self._select(frame=change["new"]), names="value")
        self.undo_button.on_click(lambda _: self._do(self.session.undo))
        self.clear_button.on_click(lambda _: self._do(self.session.clear))
        self.export_button.on_click(lambda _: self.export())
        self.container = w.VBox(
            [
                w.HBox([self.mode, self.structure, self.frame]),
                w.HBox([self.undo_button, self.clear_button, self.export_button]),
                self.status,
            ]
        )
        self.redraw()

    def _ipython_display_(self) -> None:  # shown when the widget is the last expression of a cell
        from IPython.display import display

        display(self.container)
        canvas = self.figure.canvas  # a live widget under ipympl; else a static picture of the figure
        display(canvas if isinstance(canvas, _widgets().DOMWidget) else self.figure)

    def handle_box(self, x0: float, y0: float, x1: float, y1: float) -> None:
        """A dragged box (any corner order) in image px."""
        box = [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)]
        self._do(lambda: self.session.add_box(np.round(box)))

    def handle_click(self, x: float, y: float) -> None:
        """A click at image px ``(x, y)``; positive or negative by the mode."""
        self._do(lambda: self.session.add_click(round(x), round(y), self.mode.value == "positive click"))

    def export(self) -> dict:
        """Write the session's label maps and ``session.json`` to ``export_dir``."""
        record = self.session.export(self.export_dir)
        self.status.value = f"exported to {self.export_dir}: {record['clinical']}"
        return record

    def _on_box(self, press, release) -> None:
        if self.mode.value == "box" and None not in (press.xdata, release.xdata):
            self.handle_box(press.xdata, press.ydata, release.xdata, release.ydata)

    def _on_press(self, event) -> None:
        if self.mode.value != "box" and event.inaxes is self.axes and event.xdata is not None:
            self.handle_click(event.xdata, event.ydata)

    def _select(self, *, structure: str | None = None, frame: str | None = None) -> None:
        if structure is not None:
            self.session.select_structure(structure)
        if frame is not None:
            self.session.select_frame(frame)
        self.redraw()

    def _do(self, action) -> None:
        try:
            action()
        except ValueError as err:  # a prompt off the image, ...: say so, keep the session as it was
            self.status.value = f"<b>not applied</b>: {err}"
            return
        self.status.value = ""
        self.redraw()

    def redraw(self) -> None:
        """Draw the current frame, its label map and the current structure's prompts."""
        session = self.session
        image = session.frames[session.frame].image
        self.axes.clear()
        self.axes.imshow(overlay(image, session.label_map()))
        for action, _ in session.history:
            if action[0] == "box":
                x0, y0, x1, y1 = action[1]
                self.axes.add_patch(_rectangle(x0, y0, x1, y1))
            else:
                (x, y), label = action[1], action[2]
                self.axes.plot([x], [y], marker="o", color="lime" if label else "red", markersize=6)
        self.axes.set_title(f"{session.frame}: {session.structure} ({len(session.history)} actions)")
        self.axes.set_axis_off()
        self.figure.canvas.draw_idle()


def _rectangle(x0: float, y0: float, x1: float, y1: float):
    from matplotlib.patches import Rectangle

    # inclusive pixel indices -> pixel edges
    return Rectangle(
        (x0 - 0.5, y0 - 0.5), x1 - x0 + 1, y1 - y0 + 1, fill=False, edgecolor="yellow", linewidth=1
    )
