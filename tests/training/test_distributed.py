"""Two gloo processes through Accelerate train like one process with the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import torch
from safetensors.torch import load_file

from tests.training.conftest import REPO, tiny_overrides

WORKER = str(REPO / "tests" / "training" / "ddp_worker.py")


def _launch(nproc: int, out, camus_root, batch: int) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
                "--master_port", str(29500 + nproc), WORKER]
    args = ["--config", str(REPO / "configs" / "quickstart_scratch.yaml"),
            *tiny_overrides(camus_root, out, "train.max_steps=3", f"train.batch_size={batch}",
                            "method.name=lora_encoder", "method.train_prompt_encoder=null")]
    done = subprocess.run([*launcher, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_two_processes_match_one_process_with_the_same_global_batch(camus_root, tmp_path):
    _launch(2, tmp_path / "ddp", camus_root, batch=1)
    _launch(1, tmp_path / "single", camus_root, batch=2)
    rank0 = load_file(str(tmp_path / "ddp" / "rank0.safetensors"))
    rank1 = load_file(str(tmp_path / "ddp" / "rank1.safetensors"))
    single = load_file(str(tmp_path / "single" / "rank0.safetensors"))
    assert rank0.keys() == rank1.keys() == single.keys()
    assert any("lora_" in k for k in rank0)  # LoRA + decoder: DDP with a frozen encoder
    for key in rank0:
        torch.testing.assert_close(rank0[key], rank1[key], rtol=0, atol=0, msg=f"ranks differ: {key}")
        # Adam divides by sqrt(v): float noise in near-zero gradients moves a few weights by up to
        # ~lr/10 (lr = 1e-3). A wrong batch, schedule or reduction moves them by ~lr or more.
        torch.testing.assert_close(rank0[key], single[key], rtol=0, atol=3e-4, msg=f"DDP != single: {key}")
    total = sum(v.numel() for v in rank0.values())
    close = sum(int(((rank0[k] - single[k]).abs() <= 1e-5).sum()) for k in rank0)
    assert close / total > 0.999
    metrics = (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()
    assert len(metrics) == 1  # one evaluation, written once (main process), gathered over both ranks


# Every method with box prompts, and every prompt policy with the method that trains the prompt encoder
# (whose parameters a prompt kind leaves unused): two gloo processes, a few steps, identical ranks.
METHOD_RUNS = {
    "decoder_only": ["method.name=decoder_only", "method.train_prompt_encoder=null"],  # embedding cache on
    "litemedsam_lora": ["model.source=scratch:tinyvit_tiny", "method.name=lora_encoder",
                        "method.train_prompt_encoder=null", "prompts.jitter_amount=1.0"],
    "medsam_full": ["method.name=medsam_full"],  # + prompt encoder, as configs/quickstart_scratch.yaml
    "lora_encoder_decoder": ["method.name=lora_encoder_decoder", "method.train_prompt_encoder=null"],
    "adapter_encoder": ["method.name=adapter_encoder", "method.train_prompt_encoder=null"],
}
POLICY_RUNS = {
    f"policy_{policy}": ["method.name=medsam_full", f"prompts.policy={policy}", *extra]
    for policy, extra in (("points", []), ("box_points", ["prompts.n_neg=1"]), ("mix", []),
                          ("iterative", ["prompts.iterative_rounds=2", "prompts.iterative_start=mix"]))
}


def test_every_method_and_prompt_policy_trains_under_ddp(camus_root, tmp_path):
    runs = {**METHOD_RUNS, **POLICY_RUNS}
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "DDP_RUNS": json.dumps(runs)}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29511",
                WORKER, "--config", str(REPO / "configs" / "quickstart_scratch.yaml")]
    overrides = tiny_overrides(camus_root, tmp_path, "train.max_steps=2", "train.batch_size=1",
                               "data.max_train_samples=8", "train.eval_at_start=false")
    done = subprocess.run([*launcher, *overrides], env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for name in runs:
        rank0 = load_file(str(tmp_path / name / "rank0.safetensors"))
        rank1 = load_file(str(tmp_path / name / "rank1.safetensors"))
        assert rank0.keys() == rank1.keys() and rank0, name
        for key in rank0:
            torch.testing.assert_close(rank0[key], rank1[key], rtol=0, atol=0, msg=f"{name}: ranks differ: {key}")
