"""The notebook UI over a :class:`~medsam_echo.inference.interactive.PromptSession` (ipywidgets + matplotlib).

Drag a box or click on the frame; the mask is drawn when the mouse button is released. Controls: the
mode (box, positive click, negative click, brush, eraser), the brush radius, the structure, the frame,
undo, clear and export (label maps + ``session.json`` with the EF). The status line says what a click does
with this model (``EchoPredictor.click_behaviour``: box edits for a box-only model such as LiteMedSAM, the
previous mask fed back for a click-trained one). Brush and eraser paint or erase the current structure's
mask along the dragged stroke, for what no click fixes; undo takes a stroke back like any prompt, and the
export writes exactly the label map on the screen. The figure is a live ipympl canvas when ipympl is installed
(``pip install -e ".[notebooks]"``), whatever the notebook's ``%matplotlib`` backend; without ipympl it is
a static picture, the status line says how to get mouse input, and the session is driven from code.

While a box is dragged only the browser draws (the rubber band); the kernel renders the figure once per
gesture, after the release. Each gesture's time from the release to the figure drawn again is kept in
:attr:`PromptWidget.timings`, shown in the status line and written by :meth:`PromptWidget.export`.

The widget holds no segmentation logic: every handler calls the session, then redraws.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from medsam_echo.inference.export import overlay
from medsam_echo.inference.interactive import PromptSession
from medsam_echo.prompts.kinds import BEHAVIOUR_NOTES

MODES = ("box", "positive click", "negative click", "brush", "eraser")
BRUSH_MODES = ("brush", "eraser")
TIMINGS_FILE = "widget_timings.json"
INSTALL_HINT = 'pip install -e ".[notebooks]" (JupyterLab, ipywidgets, ipympl), then restart the kernel'
FIGURE_PX = 500  # the figure's side: 5 in at 100 dpi
MIN_DRAG_PX = 3  # a shorter drag in box mode is a click, not a box (screen px)


def _widgets():
    try:
        import ipywidgets
    except ImportError as err:
        raise ImportError(f"the prompting widget needs ipywidgets: {INSTALL_HINT}") from err
    return ipywidgets


def _figure(live: bool | None):
    """A 5 x 5 in figure on an ipympl canvas (mouse input) when ``live`` allows and ipympl is installed,
    else on a static Agg canvas; returns ``(figure, is_live)``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(FIGURE_PX / 100, FIGURE_PX / 100), dpi=100)
    if live is not False:
        try:
            Canvas, FigureManager = _ipympl()
        except ImportError:
            if live:
                raise ImportError(f"a live figure needs ipympl: {INSTALL_HINT}") from None
        else:
            canvas = Canvas(figure)
            canvas.header_visible = canvas.footer_visible = canvas.resizable = False
            canvas.toolbar_visible = False  # its pan / zoom modes would take the mouse from the prompts
            FigureManager(canvas, 0)
            return figure, True
    FigureCanvasAgg(figure)
    return figure, False


def _ipympl():
    """ipympl's canvas and manager classes, leaving pyplot's backend as it was (``import ipympl`` switches
    it to ipympl: every later ``plt.figure`` in the notebook would become a widget)."""
    import sys

    import matplotlib

    backend = None if "ipympl" in sys.modules else matplotlib.get_backend()
    from ipympl.backend_nbagg import Canvas, FigureManager

    if backend is not None and matplotlib.get_backend() != backend:
        matplotlib.use(backend)
    return Canvas, FigureManager


class PromptWidget:
    """An interactive view of ``session``.

    Args:
        session: the prompting session shown and driven.
        export_dir: where the export button writes label maps, ``session.json`` and the timings.
        live: an ipympl canvas (mouse input); default when ipympl is installed. ``False``: a static
            picture (tests, exports). ``True``: an ImportError with the install command without ipympl.
    """

    def __init__(
        self, session: PromptSession, export_dir: str | Path = "prompting_export", *, live: bool | None = None
    ) -> None:
        w = _widgets()
        self.session, self.export_dir = session, Path(export_dir)
        self.mode = w.ToggleButtons(options=MODES, value="box", description="mode")
        image = session.frames[session.frame].image
        self.radius = w.IntSlider(value=max(2, round(min(image.shape[:2]) / 60)), min=1, max=40,
                                  description="brush px")  # fmt: skip
        self.structure = w.Dropdown(
            options=session.structures, value=session.structure, description="structure"
        )
        self.frame = w.Dropdown(options=sorted(session.frames), value=session.frame, description="frame")
        self.undo_button, self.clear_button, self.export_button = (
            w.Button(description=name) for name in ("undo", "clear", "export")
        )
        self.status = w.HTML()
        self.figure, self.live = _figure(live)
        self.axes = self.figure.add_axes((0.02, 0.02, 0.96, 0.9))
        self.timings: list[dict] = []
        self._pending: dict | None = None  # the gesture whose redraw has not reached the canvas yet
        self._press: tuple[float, float] | None = None  # display px where the left button went down
        self._stroke: list[tuple[float, float]] = []  # image px of the brush stroke being dragged
        self.shown: np.ndarray | None = None  # the label map on the screen (what export writes)
        canvas = self.figure.canvas
        canvas.mpl_connect("button_press_event", self._on_press)
        canvas.mpl_connect("motion_notify_event", self._on_motion)
        canvas.mpl_connect("button_release_event", self._on_release)
        canvas.mpl_connect("draw_event", self._on_draw)
        self.structure.observe(lambda change: self._select(structure=change["new"]), names="value")
        self.frame.observe(lambda change: self._select(frame=change["new"]), names="value")
        self.undo_button.on_click(lambda _: self._gesture("undo", self.session.undo))
        self.clear_button.on_click(lambda _: self._gesture("clear", self.session.clear))
        self.export_button.on_click(lambda _: self.export())
        self.container = w.VBox(
            [
                self.mode,
                w.HBox([self.structure, self.frame, self.radius]),
                w.HBox([self.undo_button, self.clear_button, self.export_button]),
                self.status,
            ]
        )
        if live is None and not self.live:
            self.status.value = f"<b>still picture, no mouse input</b>: {INSTALL_HINT}<br>{self.behaviour_line}"
        else:
            self.status.value = self.behaviour_line
        self.redraw()

    @property
    def behaviour_line(self) -> str:
        """What a click does with this session's model, for the status line."""
        behaviour = self.session.predictor.click_behaviour
        return f"clicks: <b>{behaviour}</b> ({BEHAVIOUR_NOTES[behaviour]})"

    def _ipython_display_(self) -> None:  # shown when the widget is the last expression of a cell
        from IPython.display import display

        display(self.container)
        display(self.figure.canvas if self.live else self.figure)

    def handle_box(self, x0: float, y0: float, x1: float, y1: float) -> None:
        """A dragged box (any corner order) in image px."""
        box = [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)]
        self._gesture("box", lambda: self.session.add_box(np.round(box)))

    def handle_click(self, x: float, y: float) -> None:
        """A click at image px ``(x, y)``; positive or negative by the mode."""
        positive = self.mode.value == "positive click"
        self._gesture(self.mode.value, lambda: self.session.add_click(round(x), round(y), positive))

    def handle_stroke(self, points, erase: bool | None = None) -> None:
        """A brush stroke through image px ``points`` (``(x, y)``, one for a dab) with the radius slider's
        size; paints, or erases in eraser mode (``erase`` overrides the mode)."""
        erase = self.mode.value == "eraser" if erase is None else erase
        radius = float(self.radius.value)
        self._gesture("eraser" if erase else "brush", lambda: self.session.paint(points, radius, erase=erase))

    def export(self) -> dict:
        """Write the session's label maps, ``session.json`` and the gesture timings to ``export_dir``."""
        record = self.session.export(self.export_dir)
        (self.export_dir / TIMINGS_FILE).write_text(json.dumps(self.timings, indent=2) + "\n")
        clinical = record["clinical"]
        if "ef" in clinical and clinical["ef"] is not None:
            result = f"EF {clinical['ef']:.1f} % (EDV {clinical['edv_ml']:.1f} mL, ESV {clinical['esv_ml']:.1f} mL)"
        else:
            result = clinical.get("error", "no EF yet: outline lv_endo on the 2CH and 4CH frames at ED and ES")
        self.status.value = f"exported to {self.export_dir}: {result}"
        return record

    def _image_px(self, x: float, y: float) -> tuple[float, float]:
        """Image px ``(x, y)`` at display px ``(x, y)`` (matplotlib's, from the bottom left), also off the image."""
        x, y = self.axes.transData.inverted().transform((x, y))
        return float(x), float(y)

    def _on_press(self, event) -> None:
        if event.button == 1 and event.inaxes is self.axes:
            self._press = (event.x, event.y)
            self._stroke = [self._image_px(event.x, event.y)]

    def _on_motion(self, event) -> None:
        if self._press is not None and self.mode.value in BRUSH_MODES:
            self._stroke.append(self._image_px(event.x, event.y))  # painted on release: one redraw per stroke
            return
        toolbar = getattr(self.figure.canvas, "toolbar", None)
        if self._press is not None and self.mode.value == "box" and toolbar is not None:
            toolbar.draw_rubberband(event, *self._press, event.x, event.y)  # drawn by the browser alone

    def _on_release(self, event) -> None:
        if self._press is None or event.button != 1:
            return
        press, self._press = self._press, None
        toolbar = getattr(self.figure.canvas, "toolbar", None)
        if toolbar is not None:
            toolbar.remove_rubberband()
        end = self._image_px(event.x, event.y)
        if self.mode.value in BRUSH_MODES:
            stroke, self._stroke = [*self._stroke, end], []
            self.handle_stroke(stroke)
        elif self.mode.value != "box":
            self.handle_click(*end)
        elif max(abs(event.x - press[0]), abs(event.y - press[1])) < MIN_DRAG_PX:
            self.status.value = "box mode: drag from one corner of the structure to the other"
        else:
            self.handle_box(*self._image_px(*press), *end)

    def _select(self, *, structure: str | None = None, frame: str | None = None) -> None:
        if structure is not None:
            self._gesture("structure", lambda: self.session.select_structure(structure))
        if frame is not None:  # a frame never shown before runs the image encoder, once
            self._gesture("frame", lambda: self.session.select_frame(frame))

    def _gesture(self, name: str, action) -> None:
        """Run ``action`` on the session, then redraw; timed from now (the mouse release) to the figure drawn."""
        start = time.perf_counter()
        try:
            action()
        except ValueError as err:  # a prompt off the image, ...: say so, keep the session as it was
            self.status.value = f"<b>not applied</b>: {err}"
            return
        model_ms = 1000 * (time.perf_counter() - start)
        self._pending = {"gesture": name, "structure": self.session.structure, "frame": self.session.frame,
                         "start": start, "model_ms": round(model_ms, 1)}  # fmt: skip
        self.redraw()

    def _on_draw(self, _event) -> None:
        """The canvas rendered the figure: the pending gesture's mask is on it."""
        if self._pending is None:
            return
        timing, self._pending = self._pending, None
        timing["drawn_ms"] = round(1000 * (time.perf_counter() - timing.pop("start")), 1)
        self.timings.append(timing)
        note = ""
        if timing["gesture"].endswith("click") and self.session.history:
            note = getattr(self.session.history[-1][1], "note", "")
        self.status.value = (
            f"{timing['gesture']} ({timing['structure']}): drawn {timing['drawn_ms']:.0f} ms after the release "
            f"(model {timing['model_ms']:.0f} ms){f': {note}' if note else ''}<br>{self.behaviour_line}"
        )

    def redraw(self) -> None:
        """Draw the current frame, its label map and the current structure's prompts."""
        session = self.session
        image = session.frames[session.frame].image
        self.axes.clear()
        self.shown = session.label_map()
        self.axes.imshow(overlay(image, self.shown))
        for action, _ in session.history:
            if action[0] == "box":
                x0, y0, x1, y1 = action[1]
                self.axes.add_patch(_rectangle(x0, y0, x1, y1))
            elif action[0] == "click":
                (x, y), label = action[1], action[2]
                self.axes.plot([x], [y], marker="o", color="lime" if label else "red", markersize=6)
        self.axes.set_title(f"{session.frame}: {session.structure} ({len(session.history)} actions)")
        self.axes.set_axis_off()
        self.figure.canvas.draw()  # ipympl sends it at once (draw_idle waits for the browser to ask)


def _rectangle(x0: float, y0: float, x1: float, y1: float):
    from matplotlib.patches import Rectangle

    # inclusive pixel indices -> pixel edges
    return Rectangle(
        (x0 - 0.5, y0 - 0.5), x1 - x0 + 1, y1 - y0 + 1, fill=False, edgecolor="yellow", linewidth=1
    )
