"""drifting_min.toys (with its metrics): seeded data, a protocol that is sensitive, training that works.

Tiny configurations only; the whole file runs in well under a minute on two CPU cores.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from drifting_min import toys
from drifting_min.cli import config_from_args
from drifting_min.toys import metrics

# A short seeded run on a small toy: 1,000 steps of 128 + 128 samples (about 5 s on two cores).
SMALL = toys.ToyConfig(dataset="two_moons", steps=800, batch_gen=256, batch_data=256, lr=2e-3, seed=0)


@pytest.mark.parametrize("name", sorted(toys.DATASETS))
def test_datasets_are_seeded_and_finite(name):
    a, b, c = toys.sample_data(name, 500, 1), toys.sample_data(name, 500, 1), toys.sample_data(name, 500, 2)
    assert a.shape == (500, 2) and a.dtype == torch.float32 and torch.isfinite(a).all()
    assert torch.equal(a, b), "the same seed must give the same samples"
    assert not torch.equal(a, c), "another seed must give other samples"
    assert a.abs().max() < 3.0, "the toys live in [-2.5, 2.5]^2, where the figures look"


def test_unknown_dataset_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown dataset"):
        toys.sample_data("spirals", 10, 0)
    with pytest.raises(ValueError, match="unknown dataset"):
        toys.ToyConfig(dataset="spirals")


def test_energy_distance_closed_forms():
    """Szekely's standard form E = 2 E|A - B| - E|A - A'| - E|B - B'| (all pairs), as in lesson 04."""
    a = torch.tensor([[0.0, 0.0]])
    assert metrics.energy_distance(a, torch.tensor([[3.0, 4.0]])) == pytest.approx(10.0)  # 2 * 5 - 0 - 0
    two = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    assert metrics.energy_distance(two, two) == pytest.approx(0.0, abs=1e-12)
    # {0} against {0, 2}: cross mean 1, within a 0, within b 2 * 2 / 4 = 1, so E = 2 * 1 - 0 - 1 = 1
    assert metrics.energy_distance(a, two) == pytest.approx(1.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_energy_distance_is_a_squared_mmd_on_random_sets(seed):
    """E equals the squared MMD with the kernel k(u, v) = |u| + |v| - |u - v| (float64 double loop), is symmetric,
    and does not change when both sets move together."""
    rng = torch.Generator().manual_seed(seed)
    a = torch.randn(9, 3, generator=rng, dtype=torch.float64)
    b = 2 * torch.randn(6, 3, generator=rng, dtype=torch.float64)

    def k(u, v):
        return float(u.norm() + v.norm() - (u - v).norm())

    mmd_sq = (sum(k(u, v) for u in a for v in a) / 81 + sum(k(u, v) for u in b for v in b) / 36
              - 2 * sum(k(u, v) for u in a for v in b) / 54)
    assert metrics.energy_distance(a, b) == pytest.approx(mmd_sq, rel=1e-10)
    assert metrics.energy_distance(b, a) == pytest.approx(mmd_sq, rel=1e-10)
    shift = torch.randn(1, 3, generator=rng, dtype=torch.float64)
    assert metrics.energy_distance(a + shift, b + shift) == pytest.approx(mmd_sq, rel=1e-9)


def _eight_gaussian_variants():
    gen = torch.Generator().manual_seed(123)
    data = toys.sample_data("eight_gaussians", 2 * metrics.N_EVAL, seed=77)
    centres = toys.eight_gaussian_centres()
    mode = torch.cdist(data, centres).argmin(1)
    missing = data[mode != 0][: metrics.N_EVAL]
    clean = data[: metrics.N_EVAL]
    blurred = clean + 0.1 * torch.randn(clean.shape, generator=gen)
    outliers = clean.clone()
    k = metrics.N_EVAL // 10
    outliers[:k] = 8 * torch.rand(k, 2, generator=gen) - 4.0  # uniform on [-4, 4]^2, twice the data's extent
    return clean, {"one mode missing": missing, "blurred by N(0, 0.1^2)": blurred, "10% uniform outliers": outliers}


def test_protocol_is_sensitive():
    """Corruptions of the eight Gaussians score well above the noise floor; clean data stays near 1.

    A missing mode and 10% outliers score at least 3x the floor. Blurring by N(0, 0.1^2) (std 0.05 -> 0.11)
    scores about 2.5-3x only: the energy distance compares distances at every scale and is least sensitive
    to a change confined to short distances; the check asks for 2x there (see lesson 05, "What the number misses").
    """
    clean, variants = _eight_gaussian_variants()
    assert metrics.quality(clean, "eight_gaussians")["floor_ratio"] < 2.0
    for name, samples in variants.items():
        ratio = metrics.quality(samples, "eight_gaussians")["floor_ratio"]
        need = 2.0 if name.startswith("blurred") else 3.0
        assert ratio >= need, f"{name}: floor_ratio {ratio:.2f} < {need}, the protocol misses it"
    cover = metrics.mode_coverage(variants["one mode missing"], toys.eight_gaussian_centres(), 0.05)
    assert cover["covered"] == 7


def test_protocol_is_sensitive_on_the_checkerboard():
    gen = torch.Generator().manual_seed(5)
    clean = toys.sample_data("checkerboard", metrics.N_EVAL, seed=88)
    blurred = clean + 0.1 * torch.randn(clean.shape, generator=gen)
    outliers = clean.clone()
    outliers[:400] = 8 * torch.rand(400, 2, generator=gen) - 4.0
    ratio = metrics.quality(outliers, "checkerboard")["floor_ratio"]
    assert ratio >= 3.0, f"10% outliers: floor_ratio {ratio:.2f} < 3"
    ratio_clean = metrics.quality(clean, "checkerboard")["floor_ratio"]
    assert metrics.quality(blurred, "checkerboard")["floor_ratio"] > ratio_clean


def test_precision_recall_closed_cases():
    """A set against itself: 1 and 1. Disjoint far-apart sets: 0 and 0. A set against a strict subset of its own
    points (every data point a generated one): precision 1, recall only where the subset's balls reach."""
    x = toys.sample_data("two_moons", 500, 3)
    assert metrics.precision_recall(x, x) == (1.0, 1.0)
    assert metrics.precision_recall(x + 100.0, x) == (0.0, 0.0)
    # half of the points, all from one moon's side: all realistic, half the data uncovered
    left = x[x[:, 0] < x[:, 0].median()]
    p, r = metrics.precision_recall(left, x)
    assert p == 1.0 and 0.45 < r < 0.65


@pytest.mark.parametrize("seed", [0, 1])
def test_precision_recall_match_a_double_loop(seed):
    rng = torch.Generator().manual_seed(seed)
    g = torch.randn(40, 2, generator=rng, dtype=torch.float64)
    d = 1.3 * torch.randn(50, 2, generator=rng, dtype=torch.float64)

    def kth_other(a, i, k=metrics.KNN_K):
        return sorted(float((a[i] - a[j]).norm()) for j in range(len(a)) if j != i)[k - 1]

    def inside(q, s):
        hits = [any(float((q[i] - s[j]).norm()) <= kth_other(s, j) for j in range(len(s))) for i in range(len(q))]
        return sum(hits) / len(q)

    assert metrics.precision_recall(g, d) == pytest.approx((inside(g, d), inside(d, g)), abs=1e-12)


@pytest.mark.parametrize("name", sorted(toys.DATASETS))
def test_data_against_itself_is_precise_covering_and_on_support(name):
    """Fresh data: precision and recall near 1, off the support at most the Gaussian tails (about 1%)."""
    q = metrics.quality(toys.sample_data(name, metrics.N_EVAL, seed=5), name)
    assert q["precision"] > 0.97 and q["recall"] > 0.97, q
    assert q["off_support"] <= (0.02 if name == "eight_gaussians" else 0.006), q


def test_off_support_rules():
    board = torch.tensor([[-1.5, -1.5], [-0.5, -1.5], [0.5, 0.5], [1.5, 0.5], [2.1, 0.0], [0.0, -3.0]])
    # cells (col, row) = (0, 0) dark, (1, 0) light, (2, 2) dark, (3, 2) light, then two points off the board
    assert metrics.off_support(board, "checkerboard").tolist() == [False, True, False, True, True, True]
    ring_pts = torch.tensor([[0.5, 0.0], [0.0, 1.36], [0.0, 1.45], [0.0, 0.0], [-2.1, 0.0], [1.7, 0.0]])
    assert metrics.off_support(ring_pts, "rings").tolist() == [False, False, True, True, False, True]
    centres = toys.eight_gaussian_centres()
    near = torch.cat([centres + torch.tensor([0.14, 0.0]), centres + torch.tensor([0.0, 0.16])])
    assert metrics.off_support(near, "eight_gaussians").tolist() == [False] * 8 + [True] * 8
    for name in ("swiss_roll", "two_moons"):
        curve = metrics._curve(name, 1000).float()
        assert not metrics.off_support(curve, name).any()
        assert metrics.off_support(torch.tensor([[5.0, 5.0]]), name).all()


def test_blurred_rings_are_caught_by_precision_not_by_the_energy_distance():
    """The rings blurred by N(0, 0.2^2) look like a filled disk. The energy distance reads about 2x the floor
    (a fresh draw of data itself reads 1-2x); precision and the share off the rings see the disk plainly."""
    data = toys.sample_data("rings", metrics.N_EVAL, seed=5)
    disk = data + 0.2 * torch.randn(data.shape, generator=torch.Generator().manual_seed(0))
    q = metrics.quality(disk, "rings")
    assert q["floor_ratio"] < 2.5, q
    assert q["precision"] < 0.65 and q["off_support"] > 0.4 and q["recall"] > 0.95, q


def test_untrained_generator_is_far_from_the_data():
    run = toys.train(dataclasses.replace(SMALL, steps=0), progress=False)
    assert run.metrics["floor_ratio"] >= 20


def test_short_run_reaches_three_times_the_floor():
    """SMALL is the ten-second configuration: 8 s and floor_ratio 1.2-1.5 on seeds 0-2 on two idle cores.
    Speed is a benchmark's business (`bench/bench_toys.py`), not a timed test's."""
    run = toys.train(SMALL, progress=False)
    assert run.metrics["floor_ratio"] <= 3.0, run.metrics
    # attraction only, everything else equal, collapses towards the data's modes
    attract = toys.train(dataclasses.replace(SMALL, attraction_only=True), progress=False)
    assert attract.metrics["floor_ratio"] >= 2 * run.metrics["floor_ratio"], (attract.metrics, run.metrics)


def test_training_is_deterministic_and_keeps_frames():
    cfg = dataclasses.replace(SMALL, steps=5, batch_gen=16, batch_data=16, hidden=16)
    a = toys.train(cfg, progress=False, frames_at=(0, 5), frame_size=10, evaluate=False)
    b = toys.train(cfg, progress=False, evaluate=False)
    for p, q in zip(a.generator.parameters(), b.generator.parameters()):
        assert torch.equal(p, q)
    assert [s for s, _ in a.frames] == [0, 5] and a.frames[1][1].shape == (10, 2)


def test_ema_weights_follow_the_trained_ones():
    """ema = 0 returns the trained weights; ema > 0 returns a moving average: after one step of lr lr, the averaged
    weights sit (1 - ema) of the way from the initial to the trained ones."""
    cfg = dataclasses.replace(SMALL, steps=1, batch_gen=16, batch_data=16, hidden=16)
    start = toys.make_generator(cfg)
    plain = toys.train(dataclasses.replace(cfg, ema=0.0), progress=False, evaluate=False).generator
    averaged = toys.train(dataclasses.replace(cfg, ema=0.9), progress=False, evaluate=False).generator
    for p0, p1, pe in zip(start.parameters(), plain.parameters(), averaged.parameters()):
        torch.testing.assert_close(pe, p0 + 0.1 * (p1 - p0))
    with pytest.raises(ValueError, match="ema"):
        toys.ToyConfig(ema=1.0)


def test_generator_noise_is_gaussian_and_one_uniform_component():
    """With K components the input is [eps | one_hot(k)]: eps standard normal, k uniform over K; K = 1 is eps alone.
    Each component's first-layer offset starts N(0, component_scale^2), and the K components give K different maps."""
    net = toys.Generator(noise_dim=3, hidden=64, depth=2, components=4, component_scale=5.0)
    noise = net.noise(40_000, torch.Generator().manual_seed(0))
    eps, one_hot = noise[:, :3], noise[:, 3:]
    assert noise.shape == (40_000, 7)
    assert torch.equal(one_hot.sum(1), torch.ones(40_000)) and set(one_hot.unique().tolist()) == {0.0, 1.0}
    assert (one_hot.mean(0) - 0.25).abs().max() < 0.01  # uniform over the four components (std of a share: 0.002)
    assert eps.mean().abs() < 0.02 and (eps.std() - 1).abs() < 0.02
    offsets = net.net[0].weight[:, 3:]
    assert 4.0 < float(offsets.std()) < 6.0
    with torch.no_grad():
        same_eps = torch.cat([eps[:1].repeat(4, 1), torch.eye(4)], dim=1)
        outputs = net(same_eps)
    assert torch.cdist(outputs, outputs).fill_diagonal_(1.0).min() > 1e-3  # four components, four different maps
    plain = toys.Generator(noise_dim=3, components=1)
    assert plain.noise(5, torch.Generator().manual_seed(0)).shape == (5, 3) and plain.net[0].in_features == 3
    torch.testing.assert_close(net.sample(7, 1), net.sample(7, 1))
    with pytest.raises(ValueError, match="components"):
        toys.ToyConfig(components=0)


def test_collapsed_start_puts_every_sample_on_one_point():
    cfg = dataclasses.replace(SMALL, init="collapsed", collapse_at=(2.0, 0.0))
    x = toys.make_generator(cfg).sample(200, 0)
    assert (x - torch.tensor([2.0, 0.0])).norm(dim=1).max() < 0.05


def test_field_on_grid_is_zero_at_equilibrium_and_antisymmetric():
    x, y = toys.sample_data("two_moons", 100, 0).double(), toys.sample_data("two_moons", 100, 1).double()
    points, v = toys.field_on_grid(x, y, (0.1, 0.5), "laplace", lim=2.0, n=6)
    assert points.shape == v.shape == (36, 2)
    _, v_swap = toys.field_on_grid(y, x, (0.1, 0.5), "laplace", lim=2.0, n=6)
    torch.testing.assert_close(v_swap, -v)
    _, v_same = toys.field_on_grid(y, y.clone(), (0.1,), "laplace", lim=2.0, n=6)
    assert v_same.abs().max() < 1e-9


def test_command_prints_json_metrics_last(tmp_path, capsys):
    toys.main(["--dataset", "two_moons", "--steps", "3", "--batch-gen", "16", "--batch-data", "16", "--hidden", "16",
               "--quiet", "--out", str(tmp_path)])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    result = json.loads(last)
    assert result["dataset"] == "two_moons"
    assert {"floor_ratio", "precision", "recall", "off_support"} <= set(result)
    assert (tmp_path / "two_moons.png").exists()


def test_help_documents_every_option(capsys):
    with pytest.raises(SystemExit):
        toys.main(["--help"])
    text = capsys.readouterr().out
    fields = ["--" + f.name.replace("_", "-") for f in dataclasses.fields(toys.ToyConfig)]
    for option in fields + ["--out", "--published", "--threads", "--quiet", "--no-normalise-each"]:
        assert option in text


def test_command_options_are_the_config_fields():
    """Each ToyConfig field is an option with the field's default; changing every one reaches the config."""
    from drifting_min.toys import command

    args = command.parser().parse_args([])
    assert config_from_args(toys.ToyConfig, args) == toys.ToyConfig()
    changed = ["--dataset", "rings", "--steps", "7", "--batch-gen", "8", "--batch-data", "9", "--taus", "0.1", "0.3",
               "--kernel", "gaussian", "--normalisation", "targets", "--no-normalise-each", "--attraction-only",
               "--lr", "0.01", "--lr-final", "0.001", "--noise-dim", "4", "--hidden", "5", "--depth", "1",
               "--init", "collapsed", "--collapse-at", "1", "-1", "--seed", "3", "--ema", "0.9", "--components", "3",
               "--component-scale", "2", "--tau-anneal", "2"]
    cfg = config_from_args(toys.ToyConfig, command.parser().parse_args(changed))
    want = toys.ToyConfig(dataset="rings", steps=7, batch_gen=8, batch_data=9, taus=(0.1, 0.3), kernel="gaussian",
                          normalisation="targets", normalise_each=False, attraction_only=True, lr=0.01, lr_final=0.001,
                          noise_dim=4, components=3, component_scale=2.0, hidden=5, depth=1, init="collapsed",
                          collapse_at=(1.0, -1.0), seed=3, ema=0.9, tau_anneal=2.0)
    assert cfg == want
    default = toys.ToyConfig()
    assert {f.name for f in dataclasses.fields(cfg) if getattr(cfg, f.name) == getattr(default, f.name)} == set()


# The toys' modules, each importing only those before it (plots: only the command imports it, and only lazily).
TOY_MODULES = ["data", "config", "model", "metrics", "training", "field", "ablations", "command", "plots"]


@pytest.mark.parametrize("name", TOY_MODULES)
def test_toys_modules_import_one_way(name):
    import ast
    import importlib

    module = importlib.import_module(f"drifting_min.toys.{name}")
    tree = ast.parse(Path(module.__file__).read_text())
    top_level = {node.module for node in tree.body if isinstance(node, ast.ImportFrom) and node.level == 1}
    later = set(TOY_MODULES[TOY_MODULES.index(name):])
    assert not top_level & later, f"toys.{name} imports {sorted(top_level & later)} at module level, from above it"
    anywhere = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 1}
    if name != "command":
        assert "plots" not in anywhere, f"toys.{name} imports plots"
