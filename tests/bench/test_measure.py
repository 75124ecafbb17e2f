"""Memory, FLOP and hardware figures of the benchmark."""

from __future__ import annotations

import time

import pytest
import torch

from medsam_echo.bench import measure
from medsam_echo.bench.baseline import medsam_loss
from medsam_echo.bench.presets import PRESETS, BenchPreset


@pytest.mark.parametrize(("name", "peak"), [("NVIDIA H200", 989e12), ("NVIDIA H100 80GB HBM3", 989e12),
                                            ("NVIDIA GH200 480GB", 989e12), ("NVIDIA A100-SXM4-80GB", 312e12),
                                            ("Tesla V100-SXM2-16GB", None)])
def test_peak_bf16_flops_by_gpu_name(name, peak):
    assert measure.peak_bf16_flops(name) == peak


def test_step_memory_sees_what_a_step_allocates():
    def step():
        block = torch.ones(32 * 2**20 // 4)  # 32 MiB, touched
        time.sleep(0.05)
        return block.sum()

    assert measure.step_memory(step)["step_peak_mb"] > 24


def test_flops_of_a_matmul_forward_and_backward():
    a = torch.randn(64, 32, requires_grad=True)
    b = torch.randn(32, 16)
    # forward 2*64*32*16; backward for a's gradient another 2*64*16*32
    assert measure.count_flops(lambda: (a @ b).sum().backward()) == 4 * 64 * 32 * 16


def test_resident_bytes_count_weights_gradients_and_optimizer_moments():
    model = torch.nn.Linear(10, 10)  # 110 float32 parameters
    optimizer = torch.optim.AdamW(model.parameters())
    assert measure.resident_bytes(model, optimizer) == 2 * 110 * 4
    model(torch.randn(2, 10)).sum().backward()
    optimizer.step()
    assert measure.resident_bytes(model, optimizer) == 4 * 110 * 4 + 2 * 4  # + exp_avg, exp_avg_sq, 2 steps


def test_medsam_loss_is_zero_for_a_confident_right_answer_and_large_for_a_wrong_one():
    masks = torch.zeros(1, 2, 8, 8)
    masks[:, :, 2:6, 2:6] = 1
    assert float(medsam_loss(40 * (2 * masks - 1), masks)) < 1e-3
    assert float(medsam_loss(-40 * (2 * masks - 1), masks)) > 10


def test_presets_must_measure_a_ratio_and_their_headline():
    with pytest.raises(ValueError, match="both 'baseline' and 'ours'"):
        BenchPreset(architecture="tiny", methods=("decoder_only",), batch_sizes=(2,), variants=("ours",),
                    headline=("decoder_only", 2))
    with pytest.raises(ValueError, match="headline"):
        BenchPreset(architecture="tiny", methods=("decoder_only",), batch_sizes=(2,))
    assert {"cpu-tiny", "cpu-small", "gpu-vitb"} <= set(PRESETS)
