"""The ONNX export and engine: onnxruntime gives the torch engine's embeddings, masks and predicted IoU.

Needs the ``onnx`` extra (``pip install -e ".[onnx]"``: onnxruntime, onnx, onnxscript); without it every test
here skips, except where ``MEDSAM_ECHO_REQUIRE_ONNX`` is set (``.ci/run``), which makes that a failure.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from medsam_echo.cli import main as cli
from medsam_echo.inference import EchoPredictor
from medsam_echo.models.onnx_export import DECODER_FILE, ENCODER_FILE, MANIFEST_FILE, OnnxModelError
from medsam_echo.models.registry import build_sam
from medsam_echo.prompts.learned import LearnedPrompts

pytestmark = pytest.mark.onnx
RUN_STRUCTURES = ["lv_endo", "myo", "la"]


@pytest.fixture(scope="module", autouse=True)
def onnx_tools():
    """Skip without the onnx extra; fail instead where CI sets MEDSAM_ECHO_REQUIRE_ONNX."""
    for module in ("onnxruntime", "onnx", "onnxscript"):
        try:
            importlib.import_module(module)
        except ImportError as err:
            message = f"the ONNX tests need {module} (pip install -e '.[onnx]'): {err}"
            if os.environ.get("MEDSAM_ECHO_REQUIRE_ONNX"):
                pytest.fail(message)
            pytest.skip(message)


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, run_dir: Path) -> Path:
    """A copy of the suite's LoRA run (non-zero LoRA B matrices) with learned prompts for its structures."""
    run = Path(shutil.copytree(run_dir, tmp_path_factory.mktemp("onnx_run") / "lora_run"))
    (run / "view_prior.json").unlink(missing_ok=True)  # another test may have fitted one in the original
    base = build_sam("tiny", seed=0)
    learned = LearnedPrompts(RUN_STRUCTURES, hidden_size=base.config.mask_decoder_config.hidden_size)
    learned.init_from_boxes(base, torch.tensor([[30.0, 20, 80, 100], [25, 15, 85, 105], [35, 70, 90, 120]]), seed=1)
    with torch.no_grad():
        learned.tokens.add_(0.05 * torch.randn(learned.tokens.shape, generator=torch.Generator().manual_seed(2)))
    learned.save(run / "model")
    return run


@pytest.fixture(scope="module")
def run_export(tmp_path_factory, lora_run: Path) -> Path:
    """``medsam-echo export-onnx RUN OUT``."""
    out = tmp_path_factory.mktemp("onnx_export") / "lora_run_onnx"
    torch.set_num_threads(1)
    assert cli(["export-onnx", str(lora_run), str(out)]) == 0
    return out


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2 * int((a & b).sum()) / total


def _agree(onnx, torch_, *, scores_atol: float = 1e-4) -> None:
    """Same masks (Dice >= 0.999 each), logits and predicted IoU."""
    assert onnx.masks.shape == torch_.masks.shape
    masks_a = onnx.masks.reshape(-1, *onnx.masks.shape[-2:])
    masks_b = torch_.masks.reshape(-1, *torch_.masks.shape[-2:])
    assert min(_dice(a, b) for a, b in zip(masks_a, masks_b, strict=True)) >= 0.999
    scale = max(1.0, float(np.abs(torch_.logits).max()))
    np.testing.assert_allclose(onnx.logits, torch_.logits, atol=1e-4 * scale)
    np.testing.assert_allclose(onnx.scores, torch_.scores, atol=scores_atol)
    np.testing.assert_array_equal(onnx.best, torch_.best)


def test_tiny_model_round_trip_agrees_with_torch(tiny_dir, echo_image):
    """A source that is no export is exported on the fly; every prompt kind and a mask prompt agree."""
    onnx = EchoPredictor.from_source(str(tiny_dir), engine="onnx")
    reference = EchoPredictor.from_source(str(tiny_dir), device="cpu")
    assert onnx.engine.name == "onnx" and onnx.prompt_kinds.kinds == reference.prompt_kinds.kinds
    assert onnx.click_behaviour == reference.click_behaviour
    for predictor in (onnx, reference):
        predictor.set_image(echo_image)
    embeddings = reference._encoded.embeddings
    scale = float(embeddings.abs().max())
    assert torch.allclose(onnx._encoded.embeddings, embeddings, atol=1e-5 * max(1.0, scale))
    cases = [
        {"boxes": [[10, 12, 50, 70], [5, 30, 60, 85]], "structure": ["lv_endo", "la"]},
        {"points": [[35, 40]], "structure": "lv_endo", "multimask": True},
        {"boxes": [10, 12, 50, 70], "points": [[35, 40], [12, 80]], "point_labels": [1, 0]},
    ]
    for case in cases:
        _agree(onnx.predict(**case), reference.predict(**case))
        n = len(np.atleast_2d(case.get("boxes", [[0, 0, 0, 0]]))) if "boxes" in case else 1
        clicks = [[[20, 30]]] * n if n > 1 else [[20, 30]]
        labels = [[0]] * n if n > 1 else [0]
        _agree(onnx.refine(clicks, labels), reference.refine(clicks, labels))  # the click behaviour's path
    mask_input = reference.last.low_res_logits[:1]
    kwargs = {"boxes": [10, 12, 50, 70], "points": [[35, 40]], "mask_input": mask_input}
    _agree(onnx.predict(**kwargs), reference.predict(**kwargs))  # the mask prompt
    frames = [echo_image, echo_image[::-1].copy()]
    batch = [onnx.engine.encode_batch(frames)[i].embeddings for i in range(2)]
    assert torch.allclose(batch[1], onnx.engine.encode(frames[1]).embeddings, atol=1e-5 * max(1.0, scale))


def test_a_lora_run_exports_merged_with_its_structures_and_learned_prompts(lora_run, run_export, tiny_dir,
                                                                          echo_image):
    import onnx

    manifest = json.loads((run_export / MANIFEST_FILE).read_text())
    assert manifest["structures"] == RUN_STRUCTURES and manifest["learned_structures"] == RUN_STRUCTURES
    assert set(manifest["graphs"]) == {"encoder", "decoder", "learned"}
    assert (run_export / "prompt_kinds.json").is_file()
    for name in manifest["graphs"].values():  # LoRA is folded into the weights: no adapter tensor is left
        graph = onnx.load(str(run_export / name))
        assert not [t.name for t in graph.graph.initializer if "lora" in t.name.lower()]
        assert not [n.name for n in graph.graph.node if "lora" in n.name.lower()]
    onnx_predictor = EchoPredictor.from_source(str(run_export), engine="onnx")
    reference = EchoPredictor.from_source(str(lora_run), device="cpu")  # merged LoRA in torch
    base = EchoPredictor.from_source(str(tiny_dir), device="cpu")
    assert onnx_predictor.structures == reference.structures == tuple(RUN_STRUCTURES)
    for predictor in (onnx_predictor, reference, base):
        predictor.set_image(echo_image)
    ours, theirs = onnx_predictor._encoded.embeddings, reference._encoded.embeddings
    assert torch.allclose(ours, theirs, atol=1e-5 * max(1.0, float(theirs.abs().max())))
    assert not torch.allclose(ours, base._encoded.embeddings, atol=1e-3)  # the LoRA update is in the export
    box = [10, 12, 50, 70]
    _agree(onnx_predictor.predict(boxes=box), reference.predict(boxes=box))


def test_the_automatic_mode_runs_on_the_exported_learned_prompts(lora_run, run_export, echo_image):
    onnx_predictor = EchoPredictor.from_source(str(run_export), engine="onnx")
    reference = EchoPredictor.from_source(str(lora_run), device="cpu")
    assert onnx_predictor.automatic_method == reference.automatic_method == "tokens"
    for predictor in (onnx_predictor, reference):
        predictor.set_image(echo_image)
    starts = onnx_predictor.engine.decode_learned(onnx_predictor._encoded, ["la", "lv_endo"])
    expected = reference.engine.decode_learned(reference._encoded, ["la", "lv_endo"])
    np.testing.assert_allclose(starts.logits, expected.logits, atol=1e-4 * max(1.0, np.abs(expected.logits).max()))
    np.testing.assert_allclose(starts.scores, expected.scores, atol=1e-5)
    auto, wanted = onnx_predictor.segment(), reference.segment()
    assert (auto.label_map == wanted.label_map).mean() > 0.999
    for structure, value in wanted.confidence.items():
        assert auto.confidence[structure] == pytest.approx(value, abs=1e-3)
    with pytest.raises(KeyError, match="lv_epi"):
        onnx_predictor.engine.decode_learned(onnx_predictor._encoded, ["lv_epi"])


def test_predict_cli_engine_onnx_writes_the_torch_label_maps(lora_run, run_export, camus_root, tmp_path):
    args = ["--data", str(camus_root), "--split", "test", "--prompt", "box"]
    assert cli(["predict", "--model", str(run_export), "--engine", "onnx", *args, "--out", str(tmp_path / "o")]) == 0
    assert cli(["predict", "--model", str(lora_run), "--device", "cpu", *args, "--out", str(tmp_path / "t")]) == 0
    from medsam_echo.data.io import read_image

    written = sorted(p.name for p in (tmp_path / "t").glob("*.nii.gz"))
    assert written and written == sorted(p.name for p in (tmp_path / "o").glob("*.nii.gz"))
    for name in written:
        ours, theirs = read_image(tmp_path / "o" / name)[0], read_image(tmp_path / "t" / name)[0]
        assert (ours == theirs).mean() > 0.999


def test_a_damaged_or_missing_file_is_named(run_export, tmp_path, capsys):
    def copy(name: str) -> Path:
        return Path(shutil.copytree(run_export, tmp_path / name))

    truncated = copy("truncated")
    data = (truncated / DECODER_FILE).read_bytes()
    (truncated / DECODER_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(OnnxModelError, match=f"{DECODER_FILE}: damaged"):
        EchoPredictor.from_source(str(truncated), engine="onnx")
    missing = copy("missing")
    (missing / ENCODER_FILE).unlink()
    with pytest.raises(OnnxModelError, match=f"{ENCODER_FILE}: missing"):
        EchoPredictor.from_source(str(missing))  # an export folder runs on onnx without being told
    assert cli(["predict", "--model", str(missing), "--engine", "onnx", "--input", str(tmp_path),
                "--prompts", "auto", "--out", str(tmp_path / "p")]) == 1
    assert ENCODER_FILE in capsys.readouterr().err
    garbage = copy("garbage")  # bytes onnxruntime cannot read, with a manifest that vouches for them
    (garbage / ENCODER_FILE).write_bytes(b"not an onnx graph")
    manifest = json.loads((garbage / MANIFEST_FILE).read_text())
    import hashlib

    manifest["files"][ENCODER_FILE] = hashlib.sha256(b"not an onnx graph").hexdigest()
    (garbage / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(OnnxModelError, match=f"{ENCODER_FILE}: onnxruntime cannot load it"):
        EchoPredictor.from_source(str(garbage), engine="onnx")
    no_manifest = copy("no_manifest")
    (no_manifest / MANIFEST_FILE).unlink()
    with pytest.raises(OnnxModelError, match=f"{MANIFEST_FILE}: missing"):
        EchoPredictor.from_source(str(no_manifest), engine="onnx")


def test_export_refuses_what_is_no_model(tmp_path, capsys):
    assert cli(["export-onnx", "baseline:ellipse", str(tmp_path / "x")]) == 1
    assert "nothing to export" in capsys.readouterr().err
    with pytest.raises(ValueError, match="no ONNX engine"):
        EchoPredictor.from_source("baseline:ellipse", engine="onnx")
    with pytest.raises(ValueError, match="engine must be one of"):
        EchoPredictor.from_source("baseline:ellipse", engine="tensorrt")
    with pytest.raises(ValueError, match="torch engine options"):
        EchoPredictor.from_source(str(tmp_path), engine="onnx", decoder_precision="bf16")
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_shipped_litemedsam_round_trip_agrees_with_torch(tmp_path):
    """The shipped LiteMedSAM (TinyViT, 256 px) exported and run on onnxruntime, on synthetic echo frames."""
    from medsam_echo.data.open import open_dataset
    from medsam_echo.data.sample import structure_mask
    from medsam_echo.data.synthetic import make_camus
    from medsam_echo.prompts.boxes import box_from_mask

    out = tmp_path / "litemedsam_onnx"
    assert cli(["export-onnx", "litemedsam", str(out)]) == 0
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    assert manifest["profile"]["name"] == "litemedsam" and manifest["embedding_shape"] == [256, 64, 64]
    onnx_predictor = EchoPredictor.from_source(str(out), engine="onnx")
    reference = EchoPredictor.from_source("litemedsam", device="cpu")
    assert onnx_predictor.click_behaviour == reference.click_behaviour == "box-edit"
    root = make_camus(tmp_path / "camus", patients=3, seed=3, size=(224, 192), frames=0)
    structures = ["lv_endo", "lv_epi", "la"]
    for sample in list(open_dataset(root, "all"))[:3]:
        for predictor in (onnx_predictor, reference):
            predictor.set_image(sample.image)
        ours, theirs = onnx_predictor._encoded.embeddings, reference._encoded.embeddings
        assert torch.allclose(ours, theirs, atol=1e-4 * max(1.0, float(theirs.abs().max())))
        boxes = np.stack([box_from_mask(structure_mask(sample.label, s)) for s in structures])
        _agree(onnx_predictor.predict(boxes=boxes, structure=structures),
               reference.predict(boxes=boxes, structure=structures))
        _agree(onnx_predictor.predict(boxes=boxes, structure=structures, multimask=True),
               reference.predict(boxes=boxes, structure=structures, multimask=True))
