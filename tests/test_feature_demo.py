"""Tests of drifting_min.images (procedural shapes) and drifting_min.feature_demo (lesson 06's experiments)."""

from __future__ import annotations

import json

import numpy as np
import torch

from course import draw
from drifting_min import feature_demo, images


def test_shapes_are_seeded_in_range_and_cover_the_classes():
    x, y = images.shapes(200, seed=3)
    x2, y2 = images.shapes(200, seed=3)
    assert x.shape == (200, 3, 16, 16) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert float(x.min()) >= 0 and float(x.max()) <= 1
    assert set(y.tolist()) == {0, 1, 2, 3}
    assert not torch.equal(images.shapes(200, seed=4)[0], x)
    big, _ = images.shapes(4, seed=0, size=32)
    assert big.shape == (4, 3, 32, 32)


def test_uint8_round_trip_and_grid():
    x, _ = images.shapes(6, seed=0)
    u = images.to_uint8(x)
    assert u.shape == (6, 16, 16, 3) and u.dtype == torch.uint8
    assert torch.allclose(u.permute(0, 3, 1, 2).float() / 255, x, atol=0.5 / 255 + 1e-6)
    g = images.grid(u, 2, 3)
    assert g.shape == (2 * 17 + 1, 3 * 17 + 1, 3)


def test_concentration_limits():
    assert abs(feature_demo.concentration(3 * torch.eye(6)) - 1.0) < 1e-12
    (x,) = draw(2, (200, 2000))
    assert feature_demo.concentration(x) > 0.9  # high-dimensional Gaussian data: distances concentrate
    (x,) = draw(3, (200, 2))
    assert feature_demo.concentration(x) < 0.2


def test_feature_loss_reaches_the_generator_through_the_encoder():
    torch.manual_seed(0)
    enc = feature_demo.Encoder().eval().requires_grad_(False)
    gen = feature_demo.ImageGenerator()
    real, _ = images.shapes(8, seed=0)
    out = gen(torch.randn(8, 32))
    assert out.shape == (8, 3, 16, 16)
    loss = feature_demo.feature_loss(out, real, (0.05, 0.2), enc)
    loss.backward()
    grads = [p.grad for p in gen.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert all(p.grad is None for p in enc.parameters())


def test_command_writes_a_small_cache(tmp_path):
    out = tmp_path / "r.npz"
    feature_demo.main(
        ["--out", str(out), "--steps", "2", "--encoder-steps", "2", "--clip-steps", "2", "--n-eval", "200"]
    )
    arrays = np.load(out)
    assert arrays["samples_features"].dtype == np.uint8 and arrays["samples_features"].shape[1:] == (16, 16, 3)
    summary = json.loads(out.with_suffix(".json").read_text())
    assert set(summary["quality"]) == {"real", "pixels", "pixels_no_clip", "features", "pixels_no_clip_long"}
    enc = feature_demo.load_encoder(out)
    x, _ = images.shapes(4, seed=0)
    assert [tuple(m.shape) for m in enc.feature_maps(x)] == [(4, 16, 16, 16), (4, 32, 8, 8), (4, 64, 4, 4)]
