"""Real scanners' ultrasound files through ``predict --input`` with a box prompt file, to complete outputs.

The files are not in the repository: pydicom's bundled test files and the ``dicom-test`` extra's
pydicom-data wheel (``pip install -e ".[dicom-test]"``; MIT) -- GE, Philips, Aloka, SonoSite and Acme
ultrasound in RGB, YBR, PALETTE, 16-bit, big endian, JPEG baseline / lossless, JPEG 2000 and RLE, single-
and multi-frame. Without pydicom-data the test skips (CI sets ``MEDSAM_ECHO_REQUIRE_REAL_DICOM=1``, which
makes that a failure). A few representative files run in plain ``pytest``; all of them with ``-m slow``.
docs/dicom.md has the table of what each gives (spacing, EF or the reason for none).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import pytest

pydicom = pytest.importorskip("pydicom")
pytest.importorskip("highdicom")

from medsam_echo.cli import main as cli  # noqa: E402
from medsam_echo.data.dicom import read_dicom_cine  # noqa: E402

FAST = {  # one of each hard form, in plain pytest
    "JPGLosslessP14SV1_1s_1f_8b.dcm",  # single frame, JPEG lossless, no Patient ID value
    "OBXXXX1A_expb_2frame.dcm",  # big endian, palette, 2 frames of the single-frame class, obstetric
    "US1_J2KR.dcm",  # JPEG 2000
    "gdcm-US-ALOKA-16_big.dcm",  # 16-bit palette, big endian
    "color-pl.dcm",  # no Patient ID, ACR-NEMA date and time
    "examples_palette.dcm",  # a region that does not fit the image
}
EXPECTED_SPACING = {"OBXXXX1A_expb_2frame.dcm": 0.26228787661969977, "examples_palette.dcm": None,
                    "examples_ybr_color.dcm": None, "color3d_jpeg_baseline.dcm": 0.5104970559477806}  # fmt: skip


def real_ultrasound_files() -> list[Path]:
    """Every ultrasound image among pydicom's test files and pydicom-data's (and pylibjpeg's test data
    package ``ljdata`` when installed), sorted by name; nothing is downloaded."""
    import pydicom.data.data_manager as manager

    folders = [Path(manager.DATA_ROOT) / "test_files"]
    for package in ("data_store", "ljdata"):
        try:
            module = __import__(package)
        except ImportError:
            continue
        folders.append(Path(module.__file__).parent)
    found = []
    for folder in folders:
        for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".dcm", "")):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    ds = pydicom.dcmread(path, stop_before_pixels=True)
                    has_pixels = "PixelData" in pydicom.dcmread(path, specific_tags=["PixelData"])
            except Exception:  # not DICOM: skip
                continue
            if str(ds.get("Modality", "")) == "US" and has_pixels:
                found.append(path)
    return sorted(found, key=lambda p: p.name)


def _have_pydicom_data() -> bool:
    try:
        import data_store  # noqa: F401  (pydicom-data)
    except ImportError:
        return False
    return True


FILES = real_ultrasound_files()


def _param(path: Path):
    return pytest.param(path, id=path.name, marks=() if path.name in FAST else pytest.mark.slow)


@pytest.fixture(scope="module", autouse=True)
def _pydicom_data():
    if not _have_pydicom_data():
        message = "pydicom-data is not installed (pip install -e '.[dicom-test]')"
        if os.environ.get("MEDSAM_ECHO_REQUIRE_REAL_DICOM"):
            pytest.fail(message + "; MEDSAM_ECHO_REQUIRE_REAL_DICOM is set")
        pytest.skip(message)


def box_prompts(path: Path, out: Path) -> Path:
    """One lv_endo box over the middle of the sector (or frame), for every frame (a plain list)."""
    cine = read_dicom_cine(path)
    x0, y0, x1, y1 = cine.region or (0, 0, cine.frames.shape[2] - 1, cine.frames.shape[1] - 1)
    w, h = x1 - x0, y1 - y0
    box = [round(x0 + 0.3 * w), round(y0 + 0.25 * h), round(x0 + 0.7 * w), round(y0 + 0.75 * h)]
    out.write_text(json.dumps({path.name: [{"structure": "lv_endo", "box": box}]}))
    return out


def test_the_real_files_are_there():
    names = {p.name for p in FILES}
    assert len(FILES) >= 21 and FAST <= names and set(EXPECTED_SPACING) <= names


@pytest.mark.parametrize("path", [_param(p) for p in FILES])
def test_real_file_goes_through_predict_to_complete_outputs(tmp_path, tiny_dir, capsys, path):
    prompts = box_prompts(path, tmp_path / "prompts.json")
    argv = ["predict", "--model", str(tiny_dir), "--device", "cpu", "--structures", "lv_endo", "--input", str(path),
            "--prompts", str(prompts), "--out", str(tmp_path / "out")]  # fmt: skip
    code = cli(argv)
    err = capsys.readouterr().err
    assert code == 0, err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["complete"] is True and "Traceback" not in err
    assert sorted(summary["outputs"]) == sorted(p.name for p in (tmp_path / "out").iterdir())
    (row,) = summary["views"].values()
    if path.name in EXPECTED_SPACING:
        expected = EXPECTED_SPACING[path.name]
        assert row["spacing_mm"] == (None if expected is None else [pytest.approx(expected)] * 2)
    if "does not fit" in row["spacing_source"]:  # said on the console and in the summary, spacing unknown
        assert row["spacing_mm"] is None and any("does not fit" in w for w in summary["warnings"])
        assert "does not fit" in err
    assert summary["exam"]["ef"] is None or "ef_reason" not in row  # an EF only with no reason against it


def table(model: str, out: Path, structures: tuple[str, ...] = ("lv_endo",)) -> str:
    """Markdown: each real file through ``predict --input FILE --prompts BOX.json`` with ``model``."""
    import contextlib
    import io
    import time

    lines = ["| file | from | form | frames | complete | spacing (mm / px) | EF | why no EF / warnings | s |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for path in FILES:
        work = out / path.stem
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        syntax = ds.file_meta.TransferSyntaxUID.name.replace(" Image Compression", "").split(":")[0]
        form = f"{ds.PhotometricInterpretation}, {ds.BitsAllocated}-bit, {syntax}"
        err = io.StringIO()
        start = time.perf_counter()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = cli(["predict", "--model", model, "--structures", *structures, "--input", str(path),
                        "--prompts", str(box_prompts(path, work.with_suffix(".json"))), "--out", str(work)])  # fmt: skip
        seconds = time.perf_counter() - start
        summary = json.loads((work / "summary.json").read_text()) if (work / "summary.json").is_file() else {}
        row = next(iter(summary.get("views", {}).values()), {})
        spacing = row.get("spacing_mm")
        ef = (summary.get("exam") or {}).get("ef")
        why = row.get("ef_reason", "").split(";")[0]
        warned = [w.split(" (resized")[0] for w in row.get("warnings", [])]  # the reader's, not the EF notes
        notes = "; ".join([why, *warned]).strip("; ").replace("|", "/")
        source = "pydicom" if "pydicom" in str(path.parent) else "pydicom-data"
        lines.append(f"| {path.name} | {source} | {form} | {int(ds.get('NumberOfFrames', 1) or 1)} | "
                     f"{'yes' if code == 0 and summary.get('complete') else 'NO: ' + err.getvalue()[-200:]} | "
                     f"{'unknown (px)' if spacing is None else f'{spacing[0]:.4f}'} | "
                     f"{'-' if ef is None else f'{ef:.1f} %'} | {notes} | {seconds:.0f} |")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":  # the table of docs/dicom.md
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description="real ultrasound files through predict --input (docs/dicom.md)")
    parser.add_argument("--model", default="litemedsam")
    args = parser.parse_args()
    print(table(args.model, Path(tempfile.mkdtemp(prefix="real-dicom-"))))
