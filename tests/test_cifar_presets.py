"""Presets of the CIFAR-10 trainer: sets of overrides of the one config, with explicit flags winning."""

from __future__ import annotations

import dataclasses

import pytest

from drifting_min.cifar import __main__ as command
from drifting_min.cifar.config import PRESET_HELP, PRESETS, CifarConfig, preset_overrides
from drifting_min.cli import config_from_args, given_options


def _config(argv: list[str]) -> CifarConfig:
    args = command._parser().parse_args(argv)
    return config_from_args(CifarConfig, args, **preset_overrides(args.preset, given_options(command._parser(),
                                                                                             argv)))


def test_every_preset_names_real_settings_and_is_valid():
    names = {f.name for f in dataclasses.fields(CifarConfig)}
    assert set(PRESETS) == set(PRESET_HELP), "every preset needs its one-line description for --help"
    for name, overrides in PRESETS.items():
        assert set(overrides) <= names, f"preset {name} sets unknown settings {set(overrides) - names}"
        CifarConfig(**overrides)  # the preset alone makes a valid config


def test_gpu_preset_is_what_the_command_uses_by_default():
    expected = CifarConfig(**PRESETS["gpu"])
    assert _config(["train", "--out", "x"]) == _config(["train", "--out", "x", "--preset", "gpu"]) == expected


def test_cpu_preset_applies_its_overrides():
    cfg = _config(["train", "--out", "x", "--preset", "cpu"])
    for key, value in PRESETS["cpu"].items():
        assert getattr(cfg, key) == (tuple(value) if isinstance(value, list) else value), key
    assert PRESETS["cpu"], "the cpu preset changes something"


@pytest.mark.parametrize("argv, key, value", [
    (["--gen-width", "24"], "gen_width", 24),
    (["--lr", "0.0005"], "lr", 0.0005),
    (["--no-conditional"], "conditional", False),
    (["--warmup", "7"], "warmup", 7),
    (["--gen-steps", str(CifarConfig().gen_steps)], "gen_steps", CifarConfig().gen_steps),  # = the default
])
def test_explicit_flags_win_over_the_preset(argv, key, value):
    assert key in PRESETS["cpu"], f"pick a setting that the cpu preset sets (it does not set {key})"
    before = _config(["train", "--out", "x", "--preset", "cpu"])
    cfg = _config(["train", "--out", "x", "--preset", "cpu", *argv])
    assert getattr(cfg, key) == value, "a flag written on the command line must win, even at its default value"
    others = {k: v for k, v in cfg.to_dict().items() if k != key}
    assert others == {k: v for k, v in before.to_dict().items() if k != key}, "other preset settings are kept"


def test_given_options_sees_only_what_was_written():
    argv = ["train", "--out", "r", "--lr", "0.001", "--amp", "fp32", "--taus", "0.1"]
    assert given_options(command._parser(), argv) == {"command", "out", "lr", "amp", "taus"}


def test_unknown_preset_is_refused():
    with pytest.raises(ValueError, match="unknown preset"):
        preset_overrides("tpu", set())


def test_help_lists_the_presets(capsys):
    with pytest.raises(SystemExit):
        command._parser().parse_args(["train", "--help"])
    text = capsys.readouterr().out
    assert "--preset" in text and "cpu" in text and "gpu" in text


# ------------------------------------------------------------------------------------------ feature choice


def test_feature_choice_selects_stages_locations_and_patches():
    import torch

    from drifting_min.cifar.encoder import Encoder, freeze
    from drifting_min.cifar.train import drift_features

    torch.manual_seed(0)
    enc = freeze(Encoder(8, 10))
    images = torch.rand(6, 3, 32, 32) * 2 - 1
    full = drift_features(enc, images, raw=True)
    assert set(full) == set(drift_features(enc, images, True, (0, 1, 2), True, (2, 4)))
    chosen = drift_features(enc, images, raw=False, stages=(1, 2), locations=False, patch_sizes=(2,))
    assert set(chosen) == {"s1.mean", "s1.std", "s1.p2.mean", "s1.p2.std", "s2.mean", "s2.std", "s2.p2.mean",
                           "s2.p2.std"}
    for name, value in chosen.items():  # the same numbers as in the full set, named after the encoder's stage
        assert torch.equal(value, full[name]), name


def test_zero_patch_size_means_none():
    cfg = CifarConfig(patch_sizes=(0,))
    assert cfg.patch_sizes == ()
    with pytest.raises(ValueError, match="stages"):
        CifarConfig(feature_stages=(3,))


def test_snapshots_keep_the_ema_along_the_run(tmp_path):
    import torch

    from drifting_min.cifar.config import TINY
    from drifting_min.cifar.sample import load_generator
    from drifting_min.cifar.train import train
    from tests.test_cifar import write_folder

    data = write_folder(tmp_path / "images")
    cfg = CifarConfig(**{**TINY, "data": str(data), "snapshot_every": 2})
    train(cfg, tmp_path / "run", progress=False)
    snaps = sorted((tmp_path / "run" / "snapshots").glob("ema_step_*.pt"))
    assert [p.name for p in snaps] == ["ema_step_000002.pt", "ema_step_000004.pt", "ema_step_000006.pt"]
    last, blob = load_generator(snaps[-1])
    final, _ = load_generator(tmp_path / "run")
    assert blob["step"] == cfg.gen_steps
    for a, b in zip(last.parameters(), final.parameters()):
        assert torch.equal(a, b), "the last snapshot is the final EMA"
    first, _ = load_generator(snaps[0])
    assert any(not torch.equal(a, b) for a, b in zip(first.parameters(), final.parameters()))
