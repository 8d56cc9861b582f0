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


def test_gpu_preset_is_the_defaults():
    assert PRESETS["gpu"] == {}
    assert _config(["train", "--out", "x"]) == _config(["train", "--out", "x", "--preset", "gpu"]) == CifarConfig()


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
    argv = ["train", "--out", "r", "--lr", "0.001", "--no-amp", "--taus", "0.1"]
    assert given_options(command._parser(), argv) == {"command", "out", "lr", "amp", "taus"}


def test_unknown_preset_is_refused():
    with pytest.raises(ValueError, match="unknown preset"):
        preset_overrides("tpu", set())


def test_help_lists_the_presets(capsys):
    with pytest.raises(SystemExit):
        command._parser().parse_args(["train", "--help"])
    text = capsys.readouterr().out
    assert "--preset" in text and "cpu" in text and "gpu" in text
