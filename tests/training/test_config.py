"""Experiment configs: every shipped YAML loads; unknown keys and wrong types are named."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from medsam_echo.training.config import ConfigError, load_config, save_config

REPO = Path(__file__).resolve().parents[2]
EXPERIMENTS = sorted((REPO / "configs").glob("*.yaml"))
LAUNCHERS = sorted((REPO / "configs" / "accelerate").glob("*.yaml"))


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.name)
def test_every_shipped_experiment_config_loads(path):
    cfg = load_config(path)
    assert cfg.data.structures and cfg.method.name


@pytest.mark.parametrize("path", LAUNCHERS, ids=lambda p: p.name)
def test_launcher_configs_are_accelerate_configs(path):
    from accelerate.commands.config.config_args import ClusterConfig

    data = yaml.safe_load(path.read_text())
    assert data["distributed_type"] in ("NO", "MULTI_GPU", "FSDP")
    ClusterConfig.from_yaml_file(str(path))  # what `accelerate launch --config_file` reads


def test_shipped_configs_cover_the_methods_users_compare():
    methods = {load_config(p).method.name for p in EXPERIMENTS}
    assert {"decoder_only", "medsam_full", "lora_encoder", "adapter_encoder"} <= methods


def test_overrides_are_typed_and_nested(tmp_path):
    cfg = load_config(REPO / "configs/quickstart_scratch.yaml", ["optim.lr=3e-4", "data.structures=[lv_endo]", "train.epochs=2"])
    assert cfg.optim.lr == 3e-4 and cfg.data.structures == ["lv_endo"] and cfg.train.epochs == 2
    save_config(cfg, tmp_path / "resolved.yaml")
    assert load_config(tmp_path / "resolved.yaml") == cfg


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.learning_rate=1e-3", r"optim\.learning_rate"),
        ("optim.lr=fast", r"optim\.lr: expected float"),
        ("train.epochs=1.5", r"train\.epochs: expected int"),
        ("data.structures=lv_endo", r"data\.structures: expected a list"),
        ("data.structures=[lv_endo, lv_wall, la]", r"data\.structures: .* must be distinct names"),
        ("data.structures=[lv_epi, la, la]", r"data\.structures: .* must be distinct names"),
        ("method.name=lora", "unknown method 'lora'"),
        ("train.mixed_precision=fp8", r"train\.mixed_precision"),
        ("prompts.policy=clicks", "policy 'clicks'"),
        ("bogus=1", r"\['bogus'\]"),
    ],
)
def test_bad_keys_and_values_are_named(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(REPO / "configs/quickstart_scratch.yaml", [override])


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_config(bad)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.epochs=-1", r"train\.epochs: -1 must be >= 1"),
        ("train.epochs=0", r"train\.epochs: 0 must be >= 1"),
        ("train.max_steps=-5", r"train\.max_steps: -5 must be >= 0"),
        ("optim.lr=-1e-3", r"optim\.lr: -0\.001 must be > 0"),
        ("optim.lr=1e6", r"optim\.lr: 1000000\.0 must be > 0 and <= 1"),
        ("optim.lr=.nan", r"optim\.lr: nan"),
        ("optim.weight_decay=-0.1", r"optim\.weight_decay: -0\.1 must be >= 0"),
        ("optim.betas=[0.9]", r"optim\.betas: \[0\.9\] must be two values"),
        ("optim.min_lr_ratio=2", r"optim\.min_lr_ratio"),
        ("train.eval_batch_size=0", r"train\.eval_batch_size: 0 must be >= 1"),
        ("train.log_every_steps=0", r"train\.log_every_steps: 0 must be >= 1"),
        ("train.batch_size=0", r"train\.batch_size: 0 must be >= 1"),
        ("train.seed=-1", r"train\.seed: -1 must be >= 0"),
        ("train.max_minutes=-1", r"train\.max_minutes"),
        ("data.structures=[lv_endo, heart]", r"data\.structures"),
        ("data.views=[3CH]", r"data\.views: \['3CH'\] must be distinct names"),
        ("data.phases=[]", r"data\.phases"),
        ("data.synthetic_patients=2", r"data\.synthetic_patients"),
        ("data.augment.gamma=[1.5, 0.7]", r"data\.augment\.gamma"),
        ("loss.dice=-1", r"loss\.dice: -1\.0 must be >= 0"),
        ("model.source=scratch:huge", r"model\.source: 'scratch:huge' names no architecture"),
        ("model.profile=fancy", r"model\.profile: 'fancy' is not one of"),
        ("model.attn_implementation=flash", r"model\.attn_implementation"),
        ("data.train_split=training", r"data\.train_split"),
        ("auto.mode=magic", r"auto\.mode: 'magic' is not one of"),
        ("auto.weight=-1", r"auto\.weight: -1\.0 must be >= 0"),
        ("auto.n_tokens=0", r"auto\.n_tokens: 0 must be >= 1"),
    ],
)
def test_values_out_of_range_are_named_at_load_time(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(REPO / "configs/quickstart_scratch.yaml", [override])
