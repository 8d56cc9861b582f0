"""Graded checks of lesson 07: the CIFAR-10 trainer's pieces that run on a CPU.

Run them with `pytest lessons/07` (your exercises) or `pytest lessons/07 --solutions` (the worked answers);
one exercise alone with `pytest lessons/07 -k ex7_1`. Every random draw is seeded; values are compared in
float64 with drifting_min or with a closed form written here.
"""

from __future__ import annotations

import math

import torch

from course import (
    call_on_meta,
    call_requiring_grad,
    call_unchanged,
    check_close,
    check_dtype,
    check_fresh_result,
    check_tensor,
    check_true,
    draw,
    exercise,
)
from drifting_min import features
from drifting_min.cifar import data, fid, train
from drifting_min.cifar.encoder import Encoder


def _spd(seed: int, dim: int, rank: int | None = None, dtype=torch.float64) -> torch.Tensor:
    (a,) = draw(seed, (dim, rank or dim))
    s = a @ a.T / (rank or dim) + (0 if rank else 0.1 * torch.eye(dim, dtype=torch.float64))
    return s.to(dtype)


def _describe_result(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor of shape {tuple(value.shape)}, dtype {value.dtype}"
    return type(value).__name__


def _unchanged(before: list[torch.Tensor], after: list[torch.Tensor], hint: str) -> None:
    for i, (b, a) in enumerate(zip(before, after)):
        check_true(torch.equal(b, a), "the inputs are not modified", f"input {i} changed (max change "
                   f"{(b.double() - a.double()).abs().max().item():.3g})", hint)


# ------------------------------------------------------------------------------------------------ 7.1 frechet_distance


@exercise("7.1", "frechet_distance")
def test_ex7_1_mean_term_alone(ex):
    mu1, mu2 = draw(3, (6,), (6,))
    zero = torch.zeros(6, 6, dtype=torch.float64)
    got = call_unchanged(ex.frechet_distance, mu1, zero, mu2, zero.clone(),
                         hint="symmetrise or regularise into a new tensor ((S + S.T) / 2), never in place")
    check_tensor(got, (), name="frechet_distance(mu1, 0, mu2, 0)", hint="return a 0-dimensional tensor")
    check_dtype(got, torch.float64, name="frechet_distance of float64 statistics",
                hint="work in float64 throughout (FID subtracts large traces)")
    check_close(got, (mu1 - mu2).square().sum(), rtol=1e-10,
                prop="zero covariances: d^2 = |mu1 - mu2|^2",
                hint="the mean term is the squared norm of mu1 - mu2 (its square, not the norm itself)")


@exercise("7.1", "frechet_distance")
def test_ex7_1_diagonal_closed_form(ex):
    (mu,) = draw(3, (6,))
    d1 = torch.tensor([0.5, 1.0, 2.0, 0.1, 3.0, 0.0], dtype=torch.float64)  # one zero variance: singular S1
    d2 = torch.tensor([1.5, 0.2, 2.0, 0.4, 1.0, 0.7], dtype=torch.float64)
    got = ex.frechet_distance(mu, torch.diag(d1), mu.clone(), torch.diag(d2))
    expected = (d1.sqrt() - d2.sqrt()).square().sum()
    check_close(got, expected, rtol=1e-10,
                prop="equal means, diagonal covariances: d^2 = sum_i (sqrt a_i - sqrt b_i)^2",
                hint="here tr sqrt(S1 S2) = sum_i sqrt(a_i b_i): the trace term is tr S1 + tr S2 - 2 tr sqrt(...), "
                     "with nothing added to the covariances")


@exercise("7.1", "frechet_distance")
def test_ex7_1_matches_reference(ex):
    mu1, mu2 = draw(0, (12,), (12,))
    s1, s2 = _spd(1, 12), _spd(2, 12)
    got = ex.frechet_distance(mu1, s1, mu2, s2)
    check_tensor(got, (), name="frechet_distance(mu1, S1, mu2, S2)", hint="return a 0-dimensional tensor")
    check_dtype(got, torch.float64, name="frechet_distance of float64 statistics",
                hint="work in float64 throughout (FID subtracts large traces)")
    expected = fid.frechet_distance(fid.FeatureStats(mu1.numpy(), s1.numpy(), 2),
                                    fid.FeatureStats(mu2.numpy(), s2.numpy(), 2))
    check_close(got, torch.tensor(expected, dtype=torch.float64), rtol=1e-8,
                prop="d^2 = |mu1 - mu2|^2 + tr S1 + tr S2 - 2 tr sqrt(S1^1/2 S2 S1^1/2) on a random SPD pair",
                hint="tr sqrt(S1 S2) is not tr(sqrt(S1) sqrt(S2)) unless the two commute: take the eigenvalues "
                     "of S1^1/2 S2 S1^1/2, and keep the factor 2")


@exercise("7.1", "frechet_distance")
def test_ex7_1_symmetric_zero_on_equal_stats(ex):
    mu1, mu2 = draw(4, (10,), (10,))
    s1, s2 = _spd(5, 10, rank=4), _spd(6, 10)  # S1 of rank 4, like a covariance of fewer samples than features
    ab, ba = ex.frechet_distance(mu1, s1, mu2, s2), ex.frechet_distance(mu2, s2, mu1, s1)
    check_close(ab, ba, rtol=1e-8, prop="d(a, b) = d(b, a)",
                hint="the symmetric route (eigenvalues of S1^1/2 S2 S1^1/2) is symmetric up to rounding")
    same = ex.frechet_distance(mu1, s1, mu1.clone(), s1.clone())
    # atol 1e-6: the square roots of the six zero eigenvalues turn their 1e-16 rounding into about 1e-8 each
    check_close(same, torch.tensor(0.0, dtype=torch.float64), atol=1e-6,
                prop="d(a, a) = 0, even for a singular covariance",
                hint="clamp the tiny negative eigenvalues that rounding makes at zero before the square root")


@exercise("7.1", "frechet_distance")
def test_ex7_1_float64_result_inputs_unchanged(ex):
    mu1, mu2 = (t.float() for t in draw(7, (40,), (40,)))
    s1, s2 = _spd(8, 40, dtype=torch.float32), _spd(9, 40, dtype=torch.float32)
    before = [t.clone() for t in (mu1, s1, mu2, s2)]
    got = ex.frechet_distance(mu1, s1, mu2, s2)
    check_true(isinstance(got, torch.Tensor) and got.dtype == torch.float64,
               "the distance is computed and returned in float64, whatever the input dtype",
               f"got {getattr(got, 'dtype', type(got))} for float32 statistics",
               hint="convert the statistics with .to(torch.float64) first: FID subtracts large traces")
    _unchanged(before, [mu1, s1, mu2, s2], hint="symmetrise into a new tensor ((S + S.T) / 2), not in place")
    expected = ex.frechet_distance(*(t.double() for t in before))
    check_close(got, expected, rtol=1e-10, prop="float32 statistics give the float64 answer of their float64 copies",
                hint="the eigendecompositions must run in float64")


def _fid64(mu1, s1, mu2, s2) -> torch.Tensor:
    stats = [fid.FeatureStats(m.double().numpy(), s.double().numpy(), 2) for m, s in ((mu1, s1), (mu2, s2))]
    return torch.tensor(fid.frechet_distance(*stats), dtype=torch.float64)


@exercise("7.1", "frechet_distance")
def test_ex7_1_device_autograd_mixed_dtypes(ex):
    mu1, mu2 = draw(10, (5,), (5,))
    s1, s2 = _spd(11, 5), _spd(12, 5)
    got, _ = call_requiring_grad(ex.frechet_distance, mu1, s1, mu2, s2, name="frechet_distance")
    check_close(got, _fid64(mu1, s1, mu2, s2), rtol=1e-8, prop="statistics that require grad give the same distance",
                hint="detach the statistics before any numpy or in-place step (a distance for a report needs no graph)")
    meta = call_on_meta(ex.frechet_distance, mu1, s1, mu2, s2, name="frechet_distance")
    check_true(meta.dtype == torch.float64 and meta.shape == (), "on another device: a 0-dimensional float64 tensor",
               f"got {_describe_result(meta)}")
    mixed = ex.frechet_distance(mu1.float(), s1, mu2, s2.float())
    check_dtype(mixed, torch.float64, name="frechet_distance of mixed float32 / float64 statistics",
                hint="convert every statistic to float64 first")


@exercise("7.1", "frechet_distance")
def test_ex7_1_far_from_origin_extreme_scales_one_feature(ex):
    mu1, mu2 = draw(13, (8,), (8,))
    s1, s2 = _spd(14, 8), _spd(15, 8)
    expected = _fid64(mu1, s1, mu2, s2)
    far = ex.frechet_distance(mu1 + 1e7, s1, mu2 + 1e7, s2)
    check_close(far, expected, rtol=1e-8,
                prop="means far from the origin (offset 1e7): d^2 keeps float64 accuracy (a shift changes nothing)",
                hint="subtract the means first, |mu1 - mu2|^2; |mu1|^2 + |mu2|^2 - 2 mu1.mu2 cancels away every digit "
                     "at this offset (and so does a float32 step)")
    for c in (1e-4, 1e4):
        got = ex.frechet_distance(c * mu1, c * c * s1, c * mu2, c * c * s2)
        check_close(got, c * c * expected, rtol=1e-8,
                    prop=f"features scaled by {c:g} (covariances by {c * c:g}) scale d^2 by {c * c:g}",
                    hint="no ridge or epsilon added to the covariances: a fixed 1e-6 is large next to covariances "
                         "of 1e-8")
    a, b = torch.tensor([[2.25]], dtype=torch.float64), torch.tensor([[0.25]], dtype=torch.float64)
    one = ex.frechet_distance(torch.tensor([1.0], dtype=torch.float64), a, torch.tensor([-0.5], dtype=torch.float64), b)
    check_close(one, torch.tensor(1.5**2 + (1.5 - 0.5) ** 2, dtype=torch.float64), rtol=1e-12,
                prop="one feature (D = 1): d^2 = (m1 - m2)^2 + (sqrt a - sqrt b)^2",
                hint="keep the matrix shapes for D = 1 (no squeeze)")


# ------------------------------------------------------------------------------------------------ 7.2 ema_update


def _weights(seed: int, dtype=torch.float64) -> dict[str, torch.Tensor]:
    a, b = draw(seed, (3, 4), (5,))
    return {"w": a.to(dtype), "b": b.to(dtype)}


def _implied_decay(ex, step: int, decay: float) -> float:
    """d read off one update: ema = 1, weights = 0 give d ema + (1 - d) w = d."""
    one = {"w": torch.ones((), dtype=torch.float64)}
    got = ex.ema_update(one, {"w": torch.zeros((), dtype=torch.float64)}, step, decay)
    check_true(isinstance(got, dict) and set(got) == {"w"}, "returns a dict with the same names",
               f"got {type(got).__name__} {sorted(got) if isinstance(got, dict) else ''}")
    check_tensor(got["w"], (), name="ema_update(...)['w'] of a 0-dimensional entry", hint="keep each entry's shape")
    return float(got["w"])


@exercise("7.2", "ema_update")
def test_ex7_2_decay_schedule(ex):
    for decay in (0.999, 0.9, 0.5):
        d = _implied_decay(ex, 100_000, decay)
        check_close(d, decay, rtol=1e-6,
                    prop=f"warmed up (step 100000, decay {decay}): d = min(decay, warm-up) = decay; the old "
                         "average keeps the share d, the new weights get 1 - d",
                    hint="d multiplies the old average and 1 - d the new weights; d is the decay argument once "
                         "(1 + step) / (10 + step) exceeds it (the smaller of the two)")
        check_close(d, decay, rtol=1e-15,
                    prop=f"d is exact in float64 (decay {decay})",
                    hint="compute d as a Python float: a float32 tensor rounds 0.999 to 0.99900001")
    for step in (0, 1, 8, 80, 500):
        expected = min(0.99, (1 + step) / (10 + step))
        check_close(_implied_decay(ex, step, 0.99), expected, rtol=1e-6,
                    prop=f"warm-up at step {step}: d = min(decay, (1 + step) / (10 + step)) = {expected:.6g} "
                         "(decay 0.99; step counts from 0)",
                    hint="the first update is step 0 (d = 0.1 there); take the smaller of decay and the warm-up")


@exercise("7.2", "ema_update")
def test_ex7_2_matches_formula_and_trainer(ex):
    ema, weights = _weights(0), _weights(1)
    for step, decay in ((2, 0.999), (5000, 0.999), (50, 0.9)):
        got = call_unchanged(ex.ema_update, ema, weights, step, decay,
                             hint="build a new dict of new tensors (d * ema[k] + (1 - d) * w); no mul_ / lerp_ "
                                  "on the inputs, no assignment into ema")
        check_true(isinstance(got, dict) and set(got) == set(ema), "returns a dict with the same names",
                   f"got {type(got).__name__} {sorted(got) if isinstance(got, dict) else ''}")
        d = min(decay, (1 + step) / (10 + step))
        for k in ema:
            check_tensor(got[k], tuple(ema[k].shape), name=f"ema_update(...)[{k!r}]")
            check_close(got[k], d * ema[k] + (1 - d) * weights[k], rtol=1e-12,
                        prop=f"every entry: ema <- d ema + (1 - d) w (step {step}, decay {decay})",
                        hint="apply the same d to every entry of every tensor, each with its own weights[k]")
    # the trainer's in-place version on a module agrees
    net, avg = torch.nn.Linear(4, 3).double(), torch.nn.Linear(4, 3).double()
    got = ex.ema_update({"weight": avg.weight.detach().clone(), "bias": avg.bias.detach().clone()},
                        {"weight": net.weight.detach().clone(), "bias": net.bias.detach().clone()}, 7, 0.999)
    train.ema_update(avg, net, 7, 0.999)
    check_close(got["weight"], avg.weight, rtol=1e-12, prop="agrees with drifting_min.cifar.train.ema_update")


@exercise("7.2", "ema_update")
def test_ex7_2_warm_up_fixed_point_half_life(ex):
    ema, weights = _weights(2), _weights(3)
    first = ex.ema_update(ema, weights, 0, 0.999)
    check_close(first["w"], 0.1 * ema["w"] + 0.9 * weights["w"], rtol=1e-12,
                prop="step 0: d = min(0.999, 1/10) = 0.1, so the average is mostly the new weights",
                hint="the warm-up takes the smaller of decay and (1 + step) / (10 + step)")
    same = ex.ema_update(weights, weights, 3, 0.999)
    check_close(same["w"], weights["w"], rtol=1e-12, prop="no bias: constant weights are a fixed point of the average")
    # half-life: with d = decay, the gap to constant weights shrinks by d per update
    decay = 0.99
    k = round(math.log(0.5) / math.log(decay))  # 69 updates
    avg = ema
    for i in range(k):
        avg = ex.ema_update(avg, weights, 10_000 + i, decay)
    check_close(avg["w"] - weights["w"], decay**k * (ema["w"] - weights["w"]), rtol=1e-9,
                prop=f"after ln2/-ln(d) = {k} updates the gap to fixed weights is d^k (about half) of what it was",
                hint="each update keeps the fraction d of the gap")


@exercise("7.2", "ema_update")
def test_ex7_2_no_side_effects_devices_mixed_dtypes(ex):
    ema, weights = _weights(6, torch.float32), _weights(7)
    got, _ = call_requiring_grad(ex.ema_update, ema, weights, 30, 0.95, name="ema_update", grad_args=(1,))
    check_true(isinstance(got, dict) and all(not t.requires_grad and t.grad_fn is None for t in got.values()),
               "the new averages carry no autograd graph when the weights require grad",
               hint="detach the weights (or work under torch.no_grad())")
    for k in ema:
        check_dtype(got[k], torch.float32, name=f"entry {k!r} of float32 averages updated with float64 weights",
                    hint="cast each new value to its ema entry's dtype (.to(ema[k].dtype))")
    back = call_unchanged(ex.ema_update, _weights(8), _weights(9, torch.float32), 3, 0.9)
    check_dtype(back["w"], torch.float64, name="entry 'w' of float64 averages updated with float32 weights",
                hint="the result takes the dtype of the ema entry, not of the weights")
    check_fresh_result(ex.ema_update, _weights(10), _weights(11), 4, 0.9, name="ema_update")
    meta = call_on_meta(ex.ema_update, _weights(12), _weights(13), 4, 0.9, name="ema_update")
    check_true(all(t.shape == (3, 4) or t.shape == (5,) for t in meta.values()), "on another device: same shapes",
               f"got {[tuple(t.shape) for t in meta.values()]}")


# ------------------------------------------------------------------------------------------------ 7.3 batch_indices


@exercise("7.3", "batch_indices")
def test_ex7_3_matches_trainer_stream(ex):
    for n, step, batch in ((10, 0, 4), (10, 2, 4), (10, 7, 4), (7, 3, 16), (50, 11, 8)):
        got = ex.batch_indices(n, 5, step, batch)
        check_tensor(got, (batch,), name=f"batch_indices(n={n}, seed=5, step={step}, batch={batch})",
                     hint="a batch larger than an epoch spans several epochs")
        check_true(got.dtype == torch.long, "indices are a LongTensor", f"got {got.dtype}")
        expected = data.stream_indices(n, 5, step * batch, batch)
        check_true(torch.equal(got, expected),
                   "positions s*batch .. s*batch + batch - 1 of the stream of epoch permutations",
                   f"n={n}, step={step}, batch={batch}: expected {expected.tolist()}, got {got.tolist()}",
                   hint="position p is epoch_permutation(n, seed, p // n)[p % n]: a batch that crosses the end of an "
                        "epoch continues in the next epoch's permutation")


@exercise("7.3", "batch_indices")
def test_ex7_3_every_epoch_is_a_permutation(ex):
    n, batch = 10, 4
    stream = torch.cat([ex.batch_indices(n, 1, s, batch) for s in range(10)])  # 40 positions, 4 epochs
    for e in range(4):
        block = stream[e * n:(e + 1) * n]
        check_true(torch.equal(block.sort().values, torch.arange(n)), f"epoch {e} shows every image exactly once",
                   f"positions {e * n}..{(e + 1) * n - 1} hold {block.tolist()}",
                   hint="seed the permutation by the epoch (p // n), not by the step")
    check_true(not torch.equal(stream[:n], stream[n:2 * n]), "consecutive epochs use different orders",
               hint="take the next epoch's permutation, not the first one again")


@exercise("7.3", "batch_indices")
def test_ex7_3_resume_gives_the_same_batches(ex):
    n, batch, seed = 13, 5, 3
    torch.manual_seed(0)
    uninterrupted = [ex.batch_indices(n, seed, s, batch) for s in range(8)]
    torch.manual_seed(123)  # a resumed process: other global random state, starting at step 5
    resumed = [ex.batch_indices(n, seed, s, batch) for s in range(5, 8)]
    for s, (a, b) in enumerate(zip(uninterrupted[5:], resumed), start=5):
        check_true(torch.equal(a, b), "a run resumed at step 5 reads the same batches as an uninterrupted one",
                   f"step {s}: uninterrupted {a.tolist()}, resumed {b.tolist()}",
                   hint="use only (seed, step): no global random generator, no state kept between calls")
    check_true(not torch.equal(ex.batch_indices(n, seed, 2, batch), ex.batch_indices(n, seed + 1, 2, batch)),
               "another seed gives another order", hint="pass the seed to epoch_permutation")


@exercise("7.3", "batch_indices")
def test_ex7_3_far_positions_batch_of_one_fresh_results(ex):
    n, batch, step = 50_000, 256, 1_000_003  # positions near 2.6e8: above float32's exact integers (2^24)
    got = call_unchanged(ex.batch_indices, n, 9, step, batch)
    expected = data.stream_indices(n, 9, step * batch, batch)
    check_tensor(got, (batch,), name=f"batch_indices(n={n}, seed=9, step={step}, batch={batch})")
    check_true(got.dtype == torch.long and torch.equal(got, expected),
               "exact at a late step (position about 2.6e8, epoch 5120): integer arithmetic throughout",
               f"dtype {got.dtype}; {int((got != expected).sum())} of {batch} indices differ",
               hint="compute epoch and offset with integer divmod (Python ints or int64), never through float32")
    for step in (0, 9, 10, 23):
        one = ex.batch_indices(10, 2, step, 1)
        check_tensor(one, (1,), name=f"batch_indices(n=10, seed=2, step={step}, batch=1)",
                     hint="a batch of one is a tensor of shape (1,): do not squeeze")
        check_true(torch.equal(one, data.stream_indices(10, 2, step, 1)), f"a batch of one at step {step}",
                   f"got {one.tolist()}, expected {data.stream_indices(10, 2, step, 1).tolist()}")
    check_fresh_result(ex.batch_indices, 12, 4, 3, 5, name="batch_indices")


# ----------------------------------------------------------------------------------------------- 7.4 batch_feature_loss


def _setup(seed: int = 0, dtype=torch.float64, n_gen: int = 6, n_real: int = 8):
    torch.manual_seed(seed)
    enc = Encoder(width=2).to(dtype).eval()  # stages at 8x8, 4x4, 2x2 for 16x16 images
    gen, real = draw(seed + 10, (n_gen, 3, 16, 16), (n_real, 3, 16, 16))
    return enc, gen.to(dtype), real.to(dtype)


def _reference(enc, gen, real, taus=(0.02, 0.05, 0.2), raw=True):
    fg = train.drift_features(enc, gen, raw)
    with torch.no_grad():
        fr = train.drift_features(enc, real, raw)
    return features.feature_drift_loss(fg, fr, taus=taus)[0]


@exercise("7.4", "batch_feature_loss")
def test_ex7_4_matches_reference(ex):
    enc, gen, real = _setup(0)
    got = ex.batch_feature_loss(enc, gen, real)
    check_tensor(got, (), name="batch_feature_loss(encoder, gen, real)", hint="return the 0-dimensional sum")
    check_close(got, _reference(enc, gen, real), rtol=1e-6,
                prop="L = sum over the features (multi-scale of every stage, and raw) of the released loss",
                hint="sum (not mean) over features; one released_drift_loss call per feature with all its groups; "
                     "generated features as gen, real ones as pos")
    got = ex.batch_feature_loss(enc, gen, real, taus=(0.05,), raw=False)
    check_close(got, _reference(enc, gen, real, (0.05,), False), rtol=1e-6,
                prop="the taus and raw arguments are used (one temperature, no raw feature)",
                hint="pass taus on to the released loss; add the raw feature only when raw is True")


@exercise("7.4", "batch_feature_loss")
def test_ex7_4_gradient_reaches_generated_images(ex):
    enc, gen, real = _setup(1)
    gen_ref = gen.clone().requires_grad_(True)
    gen = gen.clone().requires_grad_(True)
    got = ex.batch_feature_loss(enc, gen, real)
    check_true(got.requires_grad, "the loss keeps the graph of the generated images",
               "the result does not require grad", hint="compute the generated features with grad enabled")
    (grad,) = torch.autograd.grad(got, gen)
    (expected,) = torch.autograd.grad(_reference(enc, gen_ref, real), gen_ref)
    check_close(grad, expected, rtol=1e-6, atol=1e-12,
                prop="the gradient reaches the generated images through the encoder, as the trainer's does",
                hint="do not detach the generated features; the real ones are the constants")


@exercise("7.4", "batch_feature_loss")
def test_ex7_4_raw_feature_float32_and_real_order(ex):
    enc, gen, real = _setup(2, torch.float32)
    before = [gen.clone(), real.clone()]
    with_raw = ex.batch_feature_loss(enc, gen, real)
    check_true(with_raw.dtype == torch.float32, "float32 images give a float32 loss", f"got {with_raw.dtype}")
    _unchanged(before, [gen, real], hint="do not normalise or clamp the images in place")
    without = ex.batch_feature_loss(enc, gen, real, raw=False)
    raw_alone = features.released_drift_loss(gen.flatten(1)[None], real.flatten(1)[None])[0]
    check_close(with_raw - without, raw_alone, rtol=1e-4, atol=1e-5,
                prop="raw=True adds exactly the released loss of the raw pixels (one group)",
                hint="the raw feature is images.flatten(1)[None]: one group of B samples (float32: looser tolerance)")
    order = torch.randperm(len(real), generator=torch.Generator().manual_seed(0))
    shuffled = ex.batch_feature_loss(enc, gen, real[order])
    check_close(shuffled, with_raw, rtol=1e-4,
                prop="the order of the real images does not matter (float32: looser tolerance)",
                hint="features of the same images must land in the same groups, sample axis second")


@exercise("7.4", "batch_feature_loss")
def test_ex7_4_no_side_effects_on_encoder_or_random_state(ex):
    enc, gen, real = _setup(3)
    flags = [p.requires_grad for p in enc.parameters()]
    got = call_unchanged(ex.batch_feature_loss, enc, gen, real, (0.05, 0.2), False,
                         hint="the encoder is the caller's: do not freeze it (requires_grad_), switch its mode, or "
                              "change the images")
    check_true([p.requires_grad for p in enc.parameters()] == flags, "the encoder's parameters keep requires_grad")
    check_close(got, _reference(enc, gen, real, (0.05, 0.2), False), rtol=1e-6,
                prop="L with two temperatures and no raw feature")
