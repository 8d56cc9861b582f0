"""drifting_min.cli: options made from a config dataclass, and the config read back from them."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from drifting_min.cli import add_config_options, config_from_args, setting


@dataclass
class Example:
    steps: int = setting(3000, "training steps")
    lr: float = setting(2e-3, "learning rate, 100% at the start")
    kernel: Literal["laplace", "gaussian"] = setting("laplace", "kernel of the field")
    dataset: str = setting("rings", "toy", choices=("rings", "moons", "checkerboard"))
    taus: tuple[float, ...] = setting((0.02, 0.05), "temperatures")
    corner: tuple[float, float] = setting((2.0, 0.0), "a point")
    ema: bool = setting(True, "keep an average of the weights")
    resume: Path | None = setting(None, "checkpoint to resume from")
    internal: int = setting(7, "not an option", cli=False)
    plain: int = 5  # no metadata: an option all the same


def parse(argv: list[str]) -> Example:
    parser = argparse.ArgumentParser()
    add_config_options(parser, Example)
    return config_from_args(Example, parser.parse_args(argv))


def test_no_arguments_give_the_defaults():
    assert parse([]) == Example()


def test_every_kind_of_field_is_parsed_to_its_type():
    cfg = parse(["--steps", "10", "--lr", "0.5", "--kernel", "gaussian", "--dataset", "moons", "--taus", "0.1",
                 "0.2", "0.3", "--corner", "1", "-1", "--no-ema", "--resume", "ckpt.pt", "--plain", "6"])
    assert cfg == Example(steps=10, lr=0.5, kernel="gaussian", dataset="moons", taus=(0.1, 0.2, 0.3),
                          corner=(1.0, -1.0), ema=False, resume=Path("ckpt.pt"), plain=6)
    assert isinstance(cfg.taus, tuple) and isinstance(cfg.corner, tuple) and isinstance(cfg.lr, float)
    assert parse(["--ema"]).ema is True


@pytest.mark.parametrize("argv", [["--kernel", "cosine"], ["--dataset", "spiral"], ["--corner", "1"],
                                  ["--steps", "1.5"], ["--internal", "3"], ["--taus"]])
def test_wrong_values_and_unknown_options_are_refused(argv, capsys):
    with pytest.raises(SystemExit):
        parse(argv)


def test_help_shows_each_field_once_with_its_default_and_choices():
    parser = argparse.ArgumentParser()
    add_config_options(parser, Example)
    text = " ".join(parser.format_help().split())
    assert "training steps (default: 3000)" in text
    assert "100% at the start" in text
    assert "{checkerboard,moons,rings}" in text and "{laplace,gaussian}" in text
    assert "temperatures (default: 0.02 0.05)" in text
    assert "--ema, --no-ema keep an average of the weights (default: --ema)" in text
    assert "--internal" not in text


def test_overrides_apply_last_and_the_config_validates():
    @dataclass
    class Checked:
        n: int = setting(2, "at least 2")

        def __post_init__(self):
            if self.n < 2:
                raise ValueError("n >= 2")

    parser = argparse.ArgumentParser()
    add_config_options(parser, Checked)
    assert config_from_args(Checked, parser.parse_args(["--n", "3"]), n=9).n == 9
    with pytest.raises(ValueError, match="n >= 2"):
        config_from_args(Checked, parser.parse_args(["--n", "1"]))


def test_fields_without_a_default_or_an_option_type_are_refused():
    @dataclass
    class NoDefault:
        n: int

    @dataclass
    class Unsupported:
        table: dict = field(default_factory=dict)

    for cls in (NoDefault, Unsupported):
        with pytest.raises(TypeError):
            add_config_options(argparse.ArgumentParser(), cls)
