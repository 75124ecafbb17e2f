"""The clinician notebook in a real browser: JupyterLab, headless Chromium, the widget driven by the mouse.

JupyterLab starts on a free localhost port over a copy of ``notebooks/02_clinician_prompting.ipynb``, with
none of our environment variables: the notebook runs on its defaults, the pretrained LiteMedSAM and the
bundled synthetic patient. Chromium (Debian's ``chromium`` + ``chromium-driver``, driven by Selenium)
opens it, runs all cells from the Run menu, drags a box on the LV, sees the mask appear, adds a negative
click, undoes it, switches to the LA, boxes the LV in the three other frames, exports, and checks the label
maps and ``session.json`` (EF) on disk. A screenshot per step, ``latency.json`` (release to mask drawn, in
the browser and in the widget, with the load average) and ``widget.png`` (the README's picture) go to the
test's folder, or to ``$MEDSAM_ECHO_BROWSER_OUT``.

Skipped (with the reason) without chromium, chromedriver, selenium, JupyterLab or ipympl; CI
(``.ci/run``) installs them and sets ``MEDSAM_ECHO_REQUIRE_BROWSER=1``, which makes a missing one a failure.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy import ndimage

from medsam_echo.data.io import read_image
from medsam_echo.data.sample import structure_mask
from medsam_echo.evaluation.metrics import dice
from medsam_echo.inference import EchoPredictor
from medsam_echo.inference.interactive import PromptSession
from medsam_echo.inference.study import open_study
from medsam_echo.prompts.boxes import box_from_mask
from medsam_echo.prompts.clicks import n_components, stripe_score

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # about 4 min: run with the slow tests (CI: pytest -m slow)
NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "02_clinician_prompting.ipynb"
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
RUN_ALL_TIMEOUT_S = 600  # the whole notebook, LiteMedSAM on 2 busy cores included
# the browser's own view of a gesture: mouseup on the figure -> the figure's pixels change
PROBE_JS = """
const [image, top] = arguments[0].querySelectorAll('canvas');
const context = image.getContext('2d');
const signature = () => {
  const d = context.getImageData(0, 0, image.width, image.height).data;
  let h = 0;
  for (let i = 0; i < d.length; i += 4) h = (Math.imul(h, 31) + d[i] + 3 * d[i + 1] + 7 * d[i + 2]) | 0;
  return h;
};
const probe = {before: signature(), start: null, changed: null, after: null};
if (arguments[1]) probe.start = performance.now();  // a widget control: timed from the call
else top.addEventListener('mouseup', () => { probe.start = performance.now(); }, {capture: true, once: true});
const poll = () => {
  if (probe.start !== null) {
    const now = signature();
    if (now !== probe.before) { probe.changed = performance.now(); probe.after = now; return; }
  }
  setTimeout(poll, 2);
};
poll();
window.__probe = probe;
"""


@pytest.fixture(scope="module")
def tools():
    """Skip without the browser or the notebooks extra; fail instead where CI sets MEDSAM_ECHO_REQUIRE_BROWSER."""
    missing = [] if CHROMIUM and CHROMEDRIVER else ["Debian's chromium and chromium-driver (apt-get install)"]
    missing += [f"{m} (pip install -e '.[notebooks]')" for m in ("selenium", "jupyterlab", "ipympl")
                if importlib.util.find_spec(m) is None]  # fmt: skip
    if missing:
        message = "the browser test needs " + ", ".join(missing)
        if os.environ.get("MEDSAM_ECHO_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def out_dir(tmp_path) -> Path:
    out = Path(os.environ.get("MEDSAM_ECHO_BROWSER_OUT") or tmp_path / "browser")
    out.mkdir(parents=True, exist_ok=True)
    print(f"screenshots and latency.json in {out}")
    return out


@pytest.fixture
def lab(tools, tmp_path, out_dir, monkeypatch):
    """JupyterLab on a free localhost port over a folder holding the notebook; yields its URL and folder."""
    root = tmp_path / "notebooks"
    root.mkdir()
    shutil.copy(NOTEBOOK, root)
    settings = tmp_path / "lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false", "checkForUpdates": false}')
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDSAM_ECHO_")}
    env.update(
        XDG_CACHE_HOME=str(tmp_path / "cache"),  # where the notebook writes the bundled patient
        JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "lab-settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "lab-workspaces"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "jupyter-runtime"),
        JUPYTER_DATA_DIR=str(tmp_path / "jupyter-data"),  # the user's own Jupyter files stay untouched
        JUPYTER_CONFIG_DIR=str(tmp_path / "jupyter-config"),
        IPYTHONDIR=str(tmp_path / "ipython"),
    )
    monkeypatch.setenv("XDG_CACHE_HOME", env["XDG_CACHE_HOME"])  # the test reads the same patient
    port = _free_port()
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1",
               f"--port={port}", "--ServerApp.port_retries=0", "--IdentityProvider.token=",
               "--ServerApp.password=", f"--ServerApp.root_dir={root}"]  # fmt: skip
    log = (out_dir / "jupyterlab.log").open("w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: server.poll() is not None or _responds(f"{url}/api/status"), 120, "JupyterLab to start")
        assert server.poll() is None, f"JupyterLab exited: see {out_dir / 'jupyterlab.log'}"
        yield url, root
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture
def browser(tools, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-extensions", "--force-device-scale-factor=1",
                 "--window-size=1280,1300", f"--user-data-dir={tmp_path / 'chromium'}"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _responds(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _wait(condition, timeout_s: float, what: str, interval_s: float = 0.25, fail: bool = True):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(interval_s)
    if fail:
        raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
    return None


class Notebook:
    """The JupyterLab page with the clinician notebook, and the first prompting widget in it."""

    def __init__(self, driver, out_dir: Path, frames) -> None:
        self.driver, self.out_dir, self.steps = driver, out_dir, 0
        self.frames = {f.case_id: f for f in frames}
        # where the kernel's figure puts image px: the same widget, built here on a static canvas
        from medsam_echo.inference.widget import FIGURE_PX, PromptWidget

        session = PromptSession(EchoPredictor.from_source("baseline:ellipse"), frames)
        self.layout, self.figure_px = PromptWidget(session, out_dir / "unused", live=False), FIGURE_PX

    def find(self, xpath: str, root=None):
        from selenium.webdriver.common.by import By

        return (root or self.driver).find_element(By.XPATH, xpath)

    def run_all(self) -> None:
        from selenium.webdriver.common.by import By

        driver = self.driver
        _wait(lambda: driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell"), 120, "the notebook")
        _wait(lambda: driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook-ExecutionIndicator[data-status='idle']"),
              120, "the kernel")  # fmt: skip
        time.sleep(2)  # the kernel reads idle a moment before it takes requests
        for _ in range(3):  # as a user would: Run > Run All Cells, again if nothing started
            self.find("//li[contains(@class, 'lm-MenuBar-item')][normalize-space()='Run']").click()
            _wait(lambda: self._menu_item("Run All Cells"), 10, "the Run menu")[0].click()
            if _wait(lambda: self._prompts() != self._prompts(fresh=True) or None, 15, "", fail=False):
                break

        def finished():  # every code cell numbered ("[*]:" runs, "[ ]:" waits)
            prompts = self._prompts()
            failed = driver.find_elements(By.CSS_SELECTOR, "[data-mime-type='application/vnd.jupyter.error']")
            return failed or (prompts and all(p[1:-2].isdigit() for p in prompts))

        _wait(finished, RUN_ALL_TIMEOUT_S, "all cells to run", interval_s=1)
        errors = driver.find_elements(By.CSS_SELECTOR, "[data-mime-type='application/vnd.jupyter.error']")
        assert not errors, "a cell failed: " + errors[0].text[-2000:]
        self.canvas_div = _wait(
            lambda: driver.find_elements(By.CSS_SELECTOR, ".jupyter-matplotlib-canvas-div"), 60, "the figure"
        )[0]
        self.output = self.find("./ancestor::div[contains(concat(' ', @class, ' '), ' jp-OutputArea ')][1]", self.canvas_div)
        self.image_canvas, self.top_canvas = self.canvas_div.find_elements(By.TAG_NAME, "canvas")

    def _prompts(self, fresh: bool = False) -> list[str]:
        """The code cells' prompts (textContent: also of cells off screen); ``fresh``: as never run."""
        prompts = self.driver.execute_script(
            "return Array.from(document.querySelectorAll('.jp-CodeCell .jp-InputPrompt'), e => e.textContent.trim());"
        )
        return ["[ ]:"] * len(prompts) if fresh else prompts

    def _menu_item(self, label: str):
        from selenium.webdriver.common.by import By

        xpath = f"//li[contains(@class, 'lm-Menu-item')][.//div[normalize-space()='{label}']]"
        return [item for item in self.driver.find_elements(By.XPATH, xpath) if item.is_displayed()]

    def shot(self, name: str) -> Path:
        self.steps += 1
        path = self.out_dir / f"{self.steps:02d}_{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def to_viewport(self, case_id: str, x: float, y: float) -> tuple[int, int]:
        """Viewport px of image px ``(x, y)`` of frame ``case_id`` as the kernel's figure draws it."""
        self.layout.session.select_frame(case_id)
        self.layout.redraw()
        fx, fy = self.layout.axes.transData.transform((x, y))  # figure px from the bottom left
        rect = self.driver.execute_script("return arguments[0].getBoundingClientRect();", self.top_canvas)
        scale = rect["width"] / self.figure_px
        return round(rect["left"] + fx * scale), round(rect["top"] + (self.figure_px - fy) * scale)

    def probe(self, control: bool = False) -> None:
        self.driver.execute_script(PROBE_JS, self.canvas_div, control)

    def probed(self, what: str) -> dict:
        """Wait for the figure to change after the probed action; the probe's times in ms."""
        return _wait(
            lambda: self.driver.execute_script("return window.__probe.changed !== null && window.__probe;"),
            120, f"the figure to change after {what}", interval_s=0.01,
        )  # fmt: skip

    def drag(self, case_id: str, box) -> dict:
        """Drag the mouse from one corner of ``box`` (XYXY image px) to the other; the probe after release."""
        from selenium.webdriver.common.action_chains import ActionChains

        (x0, y0), (x1, y1) = self.to_viewport(case_id, *box[:2]), self.to_viewport(case_id, *box[2:])
        press = ActionChains(self.driver, duration=20)
        press.w3c_actions.pointer_action.move_to_location(x0, y0).pointer_down()
        for t in (0.25, 0.5, 0.75, 1.0):
            press.w3c_actions.pointer_action.move_to_location(round(x0 + t * (x1 - x0)), round(y0 + t * (y1 - y0)))
        press.perform()
        return self._release()

    def click(self, case_id: str, x: float, y: float) -> dict:
        from selenium.webdriver.common.action_chains import ActionChains

        down = ActionChains(self.driver, duration=20)
        down.w3c_actions.pointer_action.move_to_location(*self.to_viewport(case_id, x, y)).pointer_down()
        down.perform()
        return self._release()

    def _release(self) -> dict:
        from selenium.webdriver.common.action_chains import ActionChains

        self.probe()
        up = ActionChains(self.driver, duration=0)
        up.w3c_actions.pointer_action.pointer_up()
        up.perform()
        return self.probed("the mouse release")

    def control(self, xpath: str) -> dict:
        """Click a widget control (a button) in the widget's output; the probe after it."""
        element = self.find(xpath, self.output)
        self.probe(control=True)
        element.click()
        return self.probed(xpath)

    def choose(self, label: str, value: str) -> dict:
        from selenium.webdriver.support.ui import Select

        select = self.find(f".//div[contains(@class, 'widget-dropdown')][.//label[normalize-space()='{label}']]//select",
                           self.output)  # fmt: skip
        self.probe(control=True)
        Select(select).select_by_visible_text(value)
        return self.probed(f"{label} = {value}")

    def status(self) -> str:
        return self.find(".//div[contains(concat(' ', @class, ' '), ' widget-html ')]", self.output).text

    def figure_rgb(self) -> np.ndarray:
        """The figure as the browser shows it, ``(H, W, 3)`` RGB."""
        url = self.driver.execute_script("return arguments[0].toDataURL('image/png');", self.image_canvas)
        png = np.frombuffer(base64.b64decode(url.split(",", 1)[1]), np.uint8)
        return cv2.cvtColor(cv2.imdecode(png, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)

    def tinted(self, case_id: str, box, channel: int) -> float:
        """Fraction of the figure's px inside ``box`` (image px) whose ``channel`` (0 red, 2 blue) dominates."""
        return float(self.tinted_mask(case_id, box, channel).mean())

    def tinted_mask(self, case_id: str, box, channel: int) -> np.ndarray:
        """Bool ``(h, w)`` figure px inside ``box`` (image px) whose ``channel`` (0 red, 2 blue) dominates:
        the mask as the clinician sees it."""
        (x0, y0), (x1, y1) = (self._figure_px(case_id, *box[:2]), self._figure_px(case_id, *box[2:]))
        patch = self.figure_rgb()[y0:y1, x0:x1].astype(int)
        others = np.delete(patch, channel, axis=2).max(axis=2)
        return (patch[:, :, channel] - others) > 25

    def _figure_px(self, case_id: str, x: float, y: float) -> tuple[int, int]:
        self.layout.session.select_frame(case_id)
        self.layout.redraw()
        fx, fy = self.layout.axes.transData.transform((x, y))
        return round(fx), round(self.figure_px - fy)


def _timing(probe: dict, gesture: str) -> dict:
    return {"gesture": gesture, "browser_ms": round(probe["changed"] - probe["start"], 1),
            "load_1min": round(os.getloadavg()[0], 2)}  # fmt: skip


def test_a_clinician_prompts_undoes_and_exports_in_jupyterlab(lab, browser, out_dir):
    url, root = lab
    study = open_study(None)  # what the notebook opens with DATA = None (same cache folder)
    page = Notebook(browser, out_dir, study.frames)
    try:
        _prompt_and_export(page, url, root, study)
    except BaseException:
        page.shot("failure")
        raise


def _prompt_and_export(page, url: str, root: Path, study) -> None:
    """Run the notebook, prompt and export with the mouse; check the files; write ``latency.json``."""
    browser, out_dir = page.driver, page.out_dir
    boxes = {(f.case_id, s): box_from_mask(structure_mask(f.label, s)).tolist() for f in study.frames
             for s in ("lv_endo", "la")}  # fmt: skip
    first = study.frames[0].case_id
    started = time.monotonic()
    browser.get(f"{url}/lab/tree/{NOTEBOOK.name}")
    page.run_all()
    run_all_s = time.monotonic() - started
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", page.output)
    page.shot("notebook_run")
    assert page.tinted(first, boxes[(first, "lv_endo")], 0) < 0.02  # nothing segmented yet

    timings = []
    timings.append(_timing(page.drag(first, boxes[(first, "lv_endo")]), "box lv_endo"))
    boxed = browser.execute_script("return window.__probe.after;")
    page.shot("box_on_lv")
    before = page.tinted_mask(first, boxes[(first, "lv_endo")], 0)
    assert page.tinted(first, boxes[(first, "lv_endo")], 0) > 0.3, "no LV mask after the box"
    assert "drawn" in page.status()

    page.find(".//button[normalize-space()='negative click']", page.output).click()  # the mode: no redraw
    x0, y0, x1, y1 = boxes[(first, "lv_endo")]
    timings.append(_timing(page.click(first, (x0 + x1) / 2, y0 + 0.15 * (y1 - y0)), "negative click"))
    page.shot("negative_click")
    after = page.tinted_mask(first, boxes[(first, "lv_endo")], 0)
    # one smaller, smooth region: not the rows of red a mask prompt gave a box-only model (03_negative_click);
    # the red dot of the click itself (about 50 figure px) is not a region
    components, _ = ndimage.label(after, structure=np.ones((3, 3), bool))
    main = components == np.argmax(np.bincount(components.ravel())[1:]) + 1
    assert 0.3 * before.sum() < main.sum() <= before.sum(), (int(before.sum()), int(main.sum()))
    assert n_components(after, min_px=200) == 1 and stripe_score(main) <= 2.5, stripe_score(main)
    if main.sum() == before.sum():  # LiteMedSAM is box-only: a box edit beyond its budget is refused, and said
        assert "use the brush" in page.status(), page.status()
    timings.append(_timing(page.control(".//button[normalize-space()='undo']"), "undo"))
    assert browser.execute_script("return window.__probe.after;") == boxed, "undo did not restore the box's mask"
    page.shot("undo")

    page.find(".//button[normalize-space()='box']", page.output).click()
    timings.append(_timing(page.choose("structure", "la"), "structure la"))
    timings.append(_timing(page.drag(first, boxes[(first, "la")]), "box la"))
    assert page.tinted(first, boxes[(first, "la")], 2) > 0.3, "no LA mask after the box"
    page.shot("box_on_la")
    page.output.screenshot(str(out_dir / "widget.png"))  # the README's picture: LV and LA outlined

    timings.append(_timing(page.choose("structure", "lv_endo"), "structure lv_endo"))
    for frame in study.frames[1:]:
        timings.append(_timing(page.choose("frame", frame.case_id), "frame (first view: encoder)"))
        timings.append(_timing(page.drag(frame.case_id, boxes[(frame.case_id, "lv_endo")]), "box lv_endo"))
    page.shot("last_frame")
    page.find(".//button[normalize-space()='export']", page.output).click()
    _wait(lambda: "exported" in page.status(), 60, "the export")
    page.shot("exported")

    export = root.parent / "runs" / "prompting_export"  # the notebook's EXPORT_DIR, beside notebooks/
    record = json.loads((export / "session.json").read_text())
    clinical = record["clinical"]
    assert set(clinical) == {"edv_ml", "esv_ml", "ef"} and 0 < clinical["ef"] < 100, clinical
    assert f"EF {clinical['ef']:.1f} %" in page.status()
    assert record["frames"][first]["lv_endo"] == [["box", [float(v) for v in boxes[(first, "lv_endo")]]]]
    for frame in study.frames:
        labels = read_image(export / f"{frame.case_id}.nii.gz")[0]
        assert dice(labels == 1, frame.label == 1) > 0.8, frame.case_id  # LiteMedSAM, zero-shot, from a box
    widget_timings = json.loads((export / "widget_timings.json").read_text())
    gestures = [t for t in widget_timings if t["gesture"] in ("box", "negative click")]
    browser_gestures = [t for t in timings if t["gesture"].startswith(("box", "negative"))]
    summary = {
        "run_all_s": round(run_all_s, 1),
        "browser": timings,
        "widget": widget_timings,
        "release_to_mask_ms": {
            "browser_median": float(np.median([t["browser_ms"] for t in browser_gestures])),
            "browser_max": max(t["browser_ms"] for t in browser_gestures),
            "widget_median": float(np.median([t["drawn_ms"] for t in gestures])),
            "model_median": float(np.median([t["model_ms"] for t in gestures])),
        },
        "ef": clinical,
        "true_ef": study.frames[0].meta.get("ef"),
        "load_1min_end": round(os.getloadavg()[0], 2),
    }
    (out_dir / "latency.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary["release_to_mask_ms"]), f"run all {run_all_s:.0f} s")
    assert summary["release_to_mask_ms"]["browser_max"] < 10_000  # a mask, not a hang; the target is reported
