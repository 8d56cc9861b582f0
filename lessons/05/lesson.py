# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 05: 2D toys
#
# **Where we are.** Lesson 04 turned the drift field into a loss,
# $L = \frac{1}{N}\sum_i \lVert x_i - \mathrm{stopgrad}(x_i + V_i)\rVert^2$, and took one step of a generator
# with it. Here a generator $x = f(\epsilon)$ learns for real, on five 2D distributions, and we measure
# how well it learned with one fixed, sample-based protocol. Then we take the method apart: kernel,
# temperatures, normalisation, anti-symmetry, a collapsed start, batch size, the generator; and we set it beside
# its peers, an MMD generator and a many-step flow.
#
# **Objectives.** By the end you can
#
# 1. compute the energy distance between two sample sets and say what its noise floor is;
# 2. write one training step of a toy generator with every knob of the field as an argument;
# 3. compute the drift field on a grid (the arrays behind a quiver plot);
# 4. run an ablation (two fixed configurations, their metrics) and read the ablation table;
# 5. tell whether a generator covers the modes of a mixture;
# 6. read kNN precision, recall and the share off the support next to `floor_ratio`, and say where one-step
#    drifting stands against a many-step flow.
#
# **Time.** About 90 minutes: 25 of reading, 50 for the five exercises, 15 for the ablations.
#
# **When an exercise is right**, `pytest lessons/05 -k ex5_K` passes and its row in the scoreboard reads `passed`; the
# figures below then say "using your ...". In the notebook, the cell under each exercise's description runs that
# exercise's checks and prints its grade: all checks passed, not implemented yet, or the first failure with the
# property that broke and a hint.

# %%
import itertools
import json
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from course import check_exercise, learner_or_reference, load_exercises
from course.loader import LESSONS
from drifting_min import (
    multi_temperature_drift,  # for the raw field sizes printed under section 3's run
    toys,
)
from drifting_min.toys import metrics

torch.set_num_threads(1)  # the site builds on one core; the timings below are for one core
ex = load_exercises("05")
ref = load_exercises("05", solutions=True)  # the worked answers: the fallback where drifting_min has no twin
HERE = LESSONS / "05"  # where the cached ablations live


def show(fig):
    """Display a figure, laid out tight."""
    fig.tight_layout()
    plt.show()


# %% [markdown]
# ## 1. Five toys
#
# Every toy is a seeded sampler `toys.sample_data(name, n, seed)`: the same seed gives the same samples.
# The eight Gaussians have standard deviation 0.05 on a circle of radius 2; the checkerboard fills eight of
# the sixteen cells of $[-2, 2]^2$; the swiss roll, the two moons and the three rings carry Gaussian noise
# of standard deviation 0.05.

# %%
fig, axes = plt.subplots(1, 5, figsize=(16, 3.4))
for ax, name in zip(axes, sorted(toys.DATASETS)):
    y = toys.sample_data(name, 2000, seed=0)
    ax.scatter(*y.T, s=1, c="0.2")
    ax.set(title=name, xlim=(-2.5, 2.5), ylim=(-2.5, 2.5), aspect="equal", xlabel="$y_1$", ylabel="$y_2$")
show(fig)

# %% [markdown]
# ## 2. Measuring a generator: the energy distance and its noise floor
#
# A loss that stays near a constant (lesson 04: the normalised field has unit mean square) says nothing about
# progress. We need a number computed from samples alone. For two sets $a$ ($N \times D$) and $b$
# ($M \times D$) the **energy distance** is
#
# $$E(a, b) = \frac{2}{NM}\sum_{i,j}\lVert a_i - b_j\rVert - \frac{1}{N^2}\sum_{i,i'}\lVert a_i - a_{i'}\rVert
# - \frac{1}{M^2}\sum_{j,j'}\lVert b_j - b_{j'}\rVert ,$$
#
# the form of lesson 04. The population version,
# $2\,\mathbb{E}\lVert A - B\rVert - \mathbb{E}\lVert A - A'\rVert - \mathbb{E}\lVert B - B'\rVert$,
# is zero exactly when the two distributions are equal (Székely and Rizzo). Step by step:
#
# 1. the distances are *plain*, not squared: with squared distances the three terms cancel to
#    $\lVert\bar a - \bar b\rVert^2$, which only compares means;
# 2. the within-set means run over all $N^2$ pairs, the zero diagonal included. Then $E$ is the squared
#    MMD with the kernel $\lVert x\rVert + \lVert y\rVert - \lVert x - y\rVert$, so $E \ge 0$ for any two sets,
#    and $E(a, a) = 0$;
# 3. two finite samples of the *same* distribution still give $E > 0$: about 2 (mean distance)$/N$.
#    That is the **noise floor**. We estimate it once per toy as the mean of $E$ over five independent
#    pairs of 4,000 data samples.
#
# **The protocol** (`drifting_min.toys.metrics.quality`, used by the lesson, the tests, the benchmark and the
# command): 4,000 generated samples from fixed noise against 4,000 fresh data samples (a seed training never
# uses); the headline is `floor_ratio` $= E(\text{generated}, \text{data}) / \text{floor}$. Near 1 is as
# good as data; independent data pairs themselves scatter between about 0.6 and 1.6.
#
# ### Exercise 5.1: `energy_distance(a, b) -> Tensor`
#
# Return $E(a, b)$ as a 0-dimensional tensor (`torch.cdist` gives plain distances). Check with
# `pytest lessons/05 -k ex5_1`: the value against `drifting_min.toys.metrics`, $E = 2 \cdot 5 = 10$ for the points
# $(0, 0)$ and $(3, 4)$, $E(a, a) = 0$, symmetry, invariance to a shared rotation and shift, and $E(2a, 2b) = 2E(a, b)$.

# %%
check_exercise(ex, "5.1")

# %%
energy_distance = learner_or_reference(ex.energy_distance, ref.energy_distance)

clean = toys.sample_data("eight_gaussians", 4000, seed=88)
rng = torch.Generator().manual_seed(1)
corrupt = {
    "fresh data": clean,
    "blurred by N(0, 0.1^2)": clean + 0.1 * torch.randn(clean.shape, generator=rng),
    "10% outliers on [-4, 4]^2": torch.cat([clean[400:], 8 * torch.rand(400, 2, generator=rng) - 4]),
    "one mode missing": toys.sample_data("eight_gaussians", 8000, seed=89)[
        torch.cdist(toys.sample_data("eight_gaussians", 8000, seed=89), toys.eight_gaussian_centres()).argmin(1) != 0
    ][:4000],
}
data = toys.sample_data("eight_gaussians", 4000, seed=metrics.DATA_SEED)
floor = metrics.noise_floor("eight_gaussians")
print(f"noise floor of the eight Gaussians: {floor:.2e}")
for name, s in corrupt.items():
    print(f"{name:<28} E = {float(energy_distance(s.double(), data.double())):.2e}   "
          f"floor_ratio = {float(energy_distance(s.double(), data.double())) / floor:6.2f}")

# %% [markdown]
# A missing mode or a few outliers stand out by a large factor. Blurring every mode from standard deviation
# 0.05 to 0.11 scores only about 2.5 to 3 times the floor: the energy distance weighs distances at every
# scale, and a change confined to short distances moves it little. Keep that in mind when reading a ratio
# near 2: look at the samples too. For the eight Gaussians we also count modes: a sample is *near* a mode
# within three standard deviations of its centre, and a mode is *covered* when at least 5% of the samples are
# near it (exercise 5.5).
#
# ## 3. One training step, then a whole run
#
# The generator is an MLP from $\epsilon \sim \mathcal N(0, I_{32})$ to $\mathbb R^2$ with three hidden
# layers of 256 and SiLU, as in the authors' demo (Deng et al. 2026, arXiv 2602.04770). A step:
#
# 1. $x = f(\epsilon)$ for a batch of $N$ noise vectors, and $M$ fresh data samples $y^+$;
# 2. $V = \sum_\tau V_\tau / \mathrm{rms}(V_\tau)$ with the batch field of lesson 03 (the samples are their
#    own negatives, each excluded from its own row), computed with no graph;
# 3. $L = \frac1N\sum_i\lVert x_i - \mathrm{stopgrad}(x_i + V_i)\rVert^2$; backpropagate; an Adam step.
#
# ### Exercise 5.2: `train_step(generator, optimizer, noise, y_pos, cfg) -> float`
#
# Every knob comes from the config `toys.ToyConfig`: `cfg.taus`, `cfg.kernel`, `cfg.normalisation`,
# `cfg.normalise_each`. Return the loss before the step. Check with `pytest lessons/05 -k ex5_2`: two SGD
# steps must match the reference parameter for parameter, the loss must equal $\frac1N\sum_i\lVert V_i\rVert^2$,
# and a small step must move the samples along $V$.

# %%
check_exercise(ex, "5.2")

# %% [markdown]
# The loop below uses your step (or the reference) on the two moons: 1,000 steps of 128 + 128 samples, the
# learning rate decayed from $4\cdot10^{-3}$ along a cosine. It keeps snapshots to draw.

# %%
train_step = learner_or_reference(ex.train_step, ref.train_step)
cfg = toys.ToyConfig(dataset="two_moons", steps=1000, batch_gen=128, batch_data=128, lr=4e-3, seed=0)
generator = toys.make_generator(cfg)
opt = torch.optim.Adam(generator.parameters(), lr=cfg.lr)
noise_gen = torch.Generator().manual_seed(7)
frame_noise = torch.randn(600, cfg.noise_dim, generator=torch.Generator().manual_seed(11))
frames, losses, start = [], [], time.perf_counter()
for step in range(cfg.steps + 1):
    if step in (0, 30, 100, 300, 1000):
        with torch.no_grad():
            frames.append((step, generator(frame_noise)))
    if step == cfg.steps:
        break
    for group in opt.param_groups:
        group["lr"] = toys.learning_rate(step, cfg)
    y_pos = toys.sample_data(cfg.dataset, cfg.batch_data, seed=step)
    noise = torch.randn(cfg.batch_gen, cfg.noise_dim, generator=noise_gen)
    losses.append(train_step(generator, opt, noise, y_pos, cfg))
seconds = time.perf_counter() - start
result = metrics.quality(generator.sample, cfg.dataset)
print(f"{cfg.steps} steps in {seconds:.1f} s; floor_ratio = {result['floor_ratio']:.2f}")

# %% [markdown]
# ## 4. The drift field on a grid
#
# To draw the field we evaluate it at grid points $g$ that are not samples. The batch form's softmax over
# *queries* would couple the grid points to each other, so the picture uses the population form for each
# temperature, then the same per-temperature normalisation as training:
#
# $$V_\tau(g) = \sum_j \tilde k(g, y^+_j)(y^+_j - g) - \sum_j \tilde k(g, x_j)(x_j - g),$$
# $$V(g) = \sum_\tau \frac{V_\tau(g)}{\mathrm{rms}_{\text{grid}}(V_\tau)} .$$
#
# ### Exercise 5.3: `field_on_grid(samples, data, taus, kernel, lim, n) -> (points, V)`
#
# Points on an $n \times n$ grid over $[-\text{lim}, \text{lim}]^2$, $x_1$ the fast index
# (`torch.meshgrid(axis, axis, indexing="xy")` flattened), and $V$ at each, both $n^2 \times 2$. Check with
# `pytest lessons/05 -k ex5_3`: the reference values, anti-symmetry (swap samples and data: $V \to -V$),
# $V = 0$ when the samples are the data, unit RMS for one temperature.

# %%
check_exercise(ex, "5.3")

# %% [markdown]
# Training as it happens: samples (orange) over the data (grey), and the field (blue) at each snapshot.

# %%

field_fn = learner_or_reference(ex.field_on_grid, ref.field_on_grid)
moons = toys.sample_data("two_moons", 600, seed=1)
fig, axes = plt.subplots(1, len(frames), figsize=(4 * len(frames), 4))
for ax, (step, samples) in zip(axes, frames):
    points, v = field_fn(samples.double(), moons.double(), cfg.taus, cfg.kernel, 2.5, 15)
    ax.scatter(*moons.T, s=2, c="0.7", label="data $y^+$")
    ax.scatter(*samples.T, s=2, c="tab:orange", label="generated $x$")
    ax.quiver(*points.T, *v.T, color="tab:blue", angles="xy", scale_units="xy", scale=6, width=0.005)
    ax.set(title=f"step {step}", xlim=(-2.5, 2.5), ylim=(-2.5, 2.5), aspect="equal", xlabel="$x_1$", ylabel="$x_2$")
axes[0].legend(loc="lower left", fontsize=8, markerscale=4)
show(fig)

print("raw (1/N) sum |V_tau|^2 at the 600 samples, before normalisation:")
for step, samples in frames:
    _, raw = multi_temperature_drift(samples, moons, None, cfg.taus, cfg.kernel, cfg.normalisation)
    print(f"  step {step:>4}: " + ", ".join(f"tau={t}: {r:.1e}" for t, r in zip(cfg.taus, raw)))

fig, ax = plt.subplots(figsize=(5, 3))
ax.semilogy(losses)
ax.set(title="loss of the normalised field (not a progress measure)", xlabel="step", ylabel="$L$")
show(fig)

# %% [markdown]
# At step 0 every sample sits near the origin and the arrows point out towards the data. The samples
# spread, then fill the moons; by the end the arrows no longer share a direction: they are local corrections that
# change from place to place. Their *length* cannot show the field shrinking: in every snapshot each temperature's
# field is rescaled to unit root mean square over the grid, so the arrows have about the same overall size in every
# panel, however strong or weak the field is. The raw sizes are printed under the figure, at the samples and before
# normalisation: from step 30 to the end they fall, by a factor of about 3 at the smallest temperature and about 30 at
# the largest. At step 0 they are smallest of all: the data are far away compared with the other samples, so the
# positives get tiny weights and, through the cross-weighting, so does the whole field (the reason each temperature is
# normalised). The raw size is therefore no progress measure either; nor would a field that vanished at every sample
# prove $q = p$ (lesson 01, section 4). The loss barely moves: each temperature's field is rescaled to unit mean
# square, so $L$ stays near $(\#\tau)$ times a constant. Progress is what the metric and the pictures show.
#
# ## 5. Does the generator cover every mode?
#
# ### Exercise 5.5: `mode_coverage(samples, centres, std) -> (near, covered)`
#
# `near[k]` is the share of *all* samples within $3\,\sigma$ of centre $c_k$; `covered` counts the modes
# with `near[k] >= 0.05`. Check with `pytest lessons/05 -k ex5_5` (the boundary cases count: exactly
# $3\sigma$ away is near, exactly 5% is covered).

# %%
check_exercise(ex, "5.5")

# %% [markdown]
# ## 6. Ablations: what each part of the method does
#
# ### Exercise 5.4: `ablation(base, **change) -> {"base": metrics, "variant": metrics}`
#
# Build the variant with `dataclasses.replace(base, **change)`, train both with
# `toys.train(cfg, progress=False)`, return their `.metrics`. Training is seeded by the config, so the
# two runs differ only by the change. Check with `pytest lessons/05 -k ex5_4` (tiny runs: a few seconds).

# %%
check_exercise(ex, "5.4")

# %% [markdown]
# The full-size ablations take about ten minutes on two cores, too long for building this page, so their
# results are cached in `lessons/05/ablations.json`, written by
#
# ```
# python -m drifting_min.toys ablations --threads 2 --out lessons/05/ablations.json
# ```
#
# Run it again to regenerate them. Every row is one default run (3,000 steps, 256 + 256 samples, Laplace
# kernel, temperatures 0.02, 0.05, 0.2, double softmax, Adam from $2\cdot10^{-3}$ to $10^{-4}$, a generator of
# three hidden layers of 256) with one change. Besides `floor_ratio` the table gives the kNN precision and recall
# and the share of samples off the toy's support (section 8 defines them). Attraction only shows why both are
# needed: its samples sit on the modes (precision 1, nothing off the support) but cover few of them (low recall).

# %%
ablations = json.loads((HERE / "ablations.json").read_text())
rows = ablations["rows"]
coverage = learner_or_reference(ex.mode_coverage, ref.mode_coverage)
print(f"cached with torch {ablations['torch']} on {ablations['threads']} threads "
      "(seconds measured on a shared machine: compare them only roughly)\n")
print(f"{'ablation':<16} {'run':<33} {'toy':<16} {'floor_ratio':>11} {'precision':>9} {'recall':>6} {'off':>5} "
      f"{'modes':>5} {'seconds':>7}")
for r in rows:
    modes = ""
    if r["dataset"] == "eight_gaussians":
        _, covered = coverage(torch.tensor(r["samples"]), toys.eight_gaussian_centres(), 0.05)
        modes = f"{covered}/8"
    m = r["metrics"]
    print(f"{r['group']:<16} {r['label']:<33} {r['dataset']:<16} {m['floor_ratio']:>11.2f} {m['precision']:>9.2f} "
          f"{m['recall']:>6.2f} {100 * m['off_support']:>4.0f}% {modes:>5} {r['seconds']:>7.1f}")


# %%
def draw_group(group, ncols=None):
    chosen = [r for r in rows if r["group"] == group]
    fig, axes = plt.subplots(1, len(chosen), figsize=(3.3 * len(chosen), 3.5), squeeze=False)
    for ax, r in zip(axes[0], chosen):
        data = toys.sample_data(r["dataset"], 600, seed=3)
        s = torch.tensor(r["samples"])
        ax.scatter(*data.T, s=1, c="0.75")
        ax.scatter(*s.T, s=1, c="tab:orange")
        ax.set(title=f"{r['label']}\nratio {r['metrics']['floor_ratio']:.3g}", xlim=(-2.6, 2.6), ylim=(-2.6, 2.6),
               aspect="equal", xlabel="$x_1$", ylabel="$x_2$")
    fig.suptitle(f"ablation: {group} (grey data, orange samples)")
    show(fig)


for group in ("kernel", "temperature", "normalisation"):
    draw_group(group)

# %% [markdown]
# **Kernel.** The paper's Laplace kernel $e^{-\lVert x - y\rVert/\tau}$ against the Gaussian
# $e^{-\lVert x - y\rVert^2/(2\tau^2)}$ at the same temperatures. In 2D the Gaussian's weights fall off much
# faster with distance at these small $\tau$, so a sample far from the data feels a weaker, noisier pull.
#
# **Temperature.** One small temperature sees only the nearest data and leaves mass where it first landed
# (0.02 alone is far from the floor in the table); one large temperature transports mass well but draws the
# cells' edges softly. The paper sums $\tau \in \{0.02, 0.05, 0.2\}$, each normalised to unit mean square,
# and on ImageNet that beat every single temperature (8.46 FID against 10.62 / 8.67 / 8.96). On this 2D toy the
# table does not show such a clear win: 0.2 alone can score as well as the three together on one seed, and a
# single run moves by a factor of two with the seed (see "What can go wrong" below), so read small differences
# in the table as noise.
#
# **Normalisation.** The double softmax (the geometric mean of a softmax over targets and one over
# queries, cross-weighted) against a softmax over targets only, and against separate softmaxes for
# positives and negatives (the population form $V^+ - V^-$). The paper reports 8.46 / 8.92 / 10.54 FID
# for both / targets-only / none on ImageNet; one port found uncoupled softmaxes slightly better in its
# ImageNet pilots. On these toys the cached table above gives the ranking measured here.

# %%
for group in ("anti-symmetry", "collapsed start", "batch size"):
    draw_group(group)

# %% [markdown]
# **Anti-symmetry.** With attraction only, $V = V^+$, nothing pushes samples apart: every sample runs to the
# nearest dense spot and stays; the ratio is hundreds of times the floor. The paper's ImageNet number is
# 177.14 FID for attraction only, against 8.46 (Deng et al. 2026); lesson 04 showed why: at $q = p$ the field
# no longer vanishes.
#
# **A collapsed start.** Every sample starts on one mode of the eight Gaussians, $(2, 0)$. Samples that
# coincided exactly would push each other nowhere, and at an exact mode of $p_\tau$ the whole field would vanish
# (lesson 01, section 4). These start almost coincident (a spread of about $2\cdot10^{-5}$: the generator's last layer
# is shrunk, not zeroed), so the raw field is small, with a root mean square of order $10^{-4}$ to $10^{-3}$ across
# the three temperatures. The per-temperature normalisation rescales each to unit size; the repulsion between nearby
# samples then spreads them, and the largest temperature reaches along the circle. In 3,000 steps the samples spread
# around the whole circle and cover about half of the modes, with mass still strung between them (the table's ratio
# and mode count say how far it got); it keeps improving with more steps. With the published demo's single raw
# temperature 0.05 and no normalisation, the field at a sample 1.5 units from the next mode is vanishingly small and
# the samples never leave the mode they started on. Moving mass between modes 1.5 apart at these temperatures is slow
# in the default run too: its mode shares end between about 0.11 and 0.14 instead of 0.125. The larger defect there is
# shape, though: about a quarter of the samples are left between the modes (`python bench/diagnose_toy_masses.py`
# measures both; the [results page](../../docs/results.md) has the numbers).
#
# **Batch size.** The field is an estimate from $N$ generated and $M$ data samples; with few of them it is
# noisy and biased (the softmax over 32 targets is a poor average). The paper saw the same on ImageNet:
# 1 / 16 / 32 / 64 positives gave 20.43 / 10.39 / 8.97 / 8.46 FID.

# %%
draw_group("generator")

# %% [markdown]
# **The generator.** Every sample comes from one smooth map $f(\epsilon)$ of Gaussian noise. To put mass on three
# separate rings, $f$ has to tear the noise apart, and an MLP can only approximate a tear by a steep transition: the
# noise that falls inside a transition lands in the gap between two rings. With the default three hidden layers of 256
# the rings come out as one blurred disk, yet the field is not to blame: at the end of training, its radial part
# points 76-85% of the samples that lie off the rings toward the nearest ring (chance is half). Depth buys steepness
# (each SiLU layer can sharpen what the layer below made): five hidden layers of 128, with fewer weights and a little
# less time a step, drew the rings on seed 0 (precision 0.84 instead of 0.57, 16% off the rings instead of 45%). It is
# not the default because it did not hold up: on seeds 1 and 2 the rings stayed mostly a disk (precision 0.63 and
# 0.68), and the eight Gaussians got worse (4.5, 17 and 15 times the floor on seeds 0, 1, 2, against 2.6, 8.0 and 1.5
# for the default): a deeper generator is harder to train in 3,000 steps. The [results page](../../docs/results.md)
# has the measurements.
#
# ## 7. The command, and the numbers of the defaults
#
# `python -m drifting_min.toys --dataset checkerboard --out outputs/demo` (`make demo`) trains with the
# defaults, writes `outputs/demo/checkerboard.png` (data, samples, field) and prints the metrics as JSON on
# its last line. `python bench/bench_toys.py` times the defaults against the authors' demo settings
# (2,000 steps, 2,048 + 2,048 samples, one raw temperature 0.05) in one run.
#
# **What can go wrong.** A generator that reaches `floor_ratio` 1 on one seed can score 2 on another: a
# single energy distance between two sets of 4,000 samples is itself noisy (fresh data scatters between
# about 0.6 and 1.6 of the floor). Compare runs with the same seeds, and look at the samples. Look at more than one
# number, too: section 8 shows runs whose `floor_ratio` reads 2 to 3 while their rings are a blurred disk.
#
# ## 8. One step against many: drifting beside its peers
#
# How good is "good" for a one-step generator on these toys? The benchmark `bench/bench_toy_peers.py` trains
# three methods with the same MLP (three hidden layers of 256, SiLU) for the same wall time on one thread:
#
# * **drifting**, the defaults of this lesson: one network evaluation a sample;
# * **an MMD generator** (Li et al. 2015), its closest classical relative: the same generator, trained to
#   minimise the squared MMD between a generated and a data batch with Gaussian kernels at six bandwidths. Like
#   drifting it is a one-step generator trained by comparing two sample sets through a kernel; unlike drifting
#   it follows the gradient of one global discrepancy, not a field normalised temperature by temperature;
# * **flow matching** (a rectified flow): the MLP takes $(x_t, t)$ and regresses the velocity $y - \epsilon$
#   on the straight path $x_t = (1 - t)\epsilon + t y$; sampling integrates it with 1, 4 or 100 Euler steps,
#   that many network evaluations a sample.
#
# Every method is scored by the same protocol, which now reports, besides `floor_ratio`, where the samples
# are: **kNN precision** (the share of generated samples inside the data's support, estimated as the union of
# balls reaching each data sample's 5th nearest neighbour; Kynkaanniemi et al. 2019), **recall** (the same
# with the roles swapped: how much of the data the samples cover) and the **share off the support** (by rule:
# a light cell of the checkerboard, farther than three standard deviations from every Gaussian, farther than
# 0.15 from every ring or curve). The results are cached in `lessons/05/peers.json` (the table) and
# `lessons/05/peers.npz` (1,500 samples of each method on each toy, seed 0), written by
#
# ```
# python bench/bench_toy_peers.py --seconds 30 --seeds 0 1 2 --json lessons/05/peers.json --samples lessons/05/peers.npz
# ```

# %%
METHODS = ["drifting", "MMD generator", "flow, 1 Euler", "flow, 4 Euler", "flow, 100 Euler", "data itself"]

peers = json.loads((HERE / "peers.json").read_text())
peers["rows"].sort(key=lambda r: (r["toy"], METHODS.index(r["method"])))
peer_samples = np.load(HERE / "peers.npz")
seeds = sorted({r["seed"] for r in peers["rows"]})
print(f"{peers['seconds']:.0f} s of training each, {peers['threads']} thread; median over seeds {seeds}\n")
print(f"{'toy':<16} {'method':<16} {'floor_ratio':>11} {'precision':>9} {'recall':>7} {'off support':>11} {'steps':>6} "
      f"{'NFE':>4}")
for (toy, method), rs in itertools.groupby(peers["rows"], key=lambda r: (r["toy"], r["method"])):
    rs = list(rs)
    keys = ("floor_ratio", "precision", "recall", "off_support", "steps")
    med = {k: float(np.median([r[k] for r in rs])) for k in keys}
    print(f"{toy:<16} {method:<16} {med['floor_ratio']:>11.2f} {med['precision']:>9.3f} {med['recall']:>7.3f} "
          f"{100 * med['off_support']:>10.1f}% {med['steps']:>6.0f} {rs[0]['nfe']:>4}")

# %%
shown_toys = ["checkerboard", "rings", "eight_gaussians"]
fig, axes = plt.subplots(len(shown_toys), len(METHODS), figsize=(2.4 * len(METHODS), 2.5 * len(shown_toys)))
for row, toy in zip(axes, shown_toys):
    scores = {r["method"]: r for r in peers["rows"] if r["toy"] == toy and r["seed"] == seeds[0]}
    for ax, method in zip(row, METHODS):
        s = peer_samples[f"{toy}/{method}"]
        ax.scatter(s[:, 0], s[:, 1], s=0.5, c="tab:orange" if method != "data itself" else "0.4")
        r = scores[method]
        ax.set(xlim=(-2.6, 2.6), ylim=(-2.6, 2.6), aspect="equal", xticks=[], yticks=[],
               title=f"{method}\nprec. {r['precision']:.2f}, off {100 * r['off_support']:.0f}%")
        ax.title.set_fontsize(8)
fig.suptitle(f"the same MLP, the same {peers['seconds']:.0f} s, seed {seeds[0]}: samples of each method (1,500 each)")
show(fig)

# %% [markdown]
# **Why the energy distance alone missed the disk.** Put a blur of $\mathcal N(0, 0.2^2)$ on the rings: to the
# eye they merge into one filled disk. The energy distance compares mean distances between samples, which on
# these toys are of order 2; a blur of 0.2 moves them little, and the statistic weighs every scale alike, so the
# change confined to short distances costs it little (the same blind spot as the blurred Gaussians of
# section 2). Precision and the share off the rings look at each sample's neighbourhood and see it at once:

# %%
ring_data = toys.sample_data("rings", metrics.N_EVAL, seed=5)
for blur in (0.0, 0.1, 0.2):
    blurred = ring_data + blur * torch.randn(ring_data.shape, generator=torch.Generator().manual_seed(0))
    q = metrics.quality(blurred, "rings")
    print(f"rings + N(0, {blur}^2): floor_ratio {q['floor_ratio']:4.2f}, precision {q['precision']:.2f}, "
          f"recall {q['recall']:.2f}, off the rings {100 * q['off_support']:4.1f}%")

# %% [markdown]
# **What it teaches.** Read the table toy by toy, and at equal training time:
#
# * **A flow needs its steps.** Sampled in one Euler step, the flow is hundreds of times the floor: its network
#   learned the *average* velocity at each $(x_t, t)$, and from pure noise that average points at the data's
#   mean, so one step lands every sample near the centre (recall near 0). Four steps are still tens of times
#   the floor. With 100 steps it is sharp: sharper than drifting on the checkerboard, the eight Gaussians and
#   the swiss roll, by precision and the share off the support (on the moons drifting was the sharper, and on
#   the rings both drew a disk in these runs, on a busy machine that left every method fewer steps). Its
#   sharpness is bought with 100 network evaluations a sample, and it is a property of the *integration*: many
#   small steps can bend noise into thin, separate components that no single smooth step can.
# * **One-step drifting sits between them**, at one network evaluation: far better than the flow at 1 or 4
#   steps, and comparable with the 100-step flow on `floor_ratio` (medians 0.55-3.7 times the floor against
#   1.2-2.2: better on the moons, worse on the checkerboard and the eight Gaussians), with more samples off the
#   support on four toys of five. It beats the MMD generator, its closest classical relative, on four toys of
#   five (on the rings both drew the same disk; the MMD generator's learning rate was not tuned here, and it
#   took fewer steps in the time): the MMD gradient is one global discrepancy whose pull on a sample fades with
#   the sample's distance to the batch, while the drift field is normalised temperature by temperature, so
#   every scale keeps pulling.
# * **Where one step loses: the gaps.** A one-step generator is one continuous map from a Gaussian to the
#   plane. To put mass on separate squares, modes or rings it must tear the noise apart, and a smooth MLP can
#   only make steep transitions, not jumps: the noise that falls in a transition lands between components. On
#   the rings, with three nested components, the default MLP of three hidden layers never makes those
#   transitions steep enough in 30 s and draws a blurred disk; the drift field itself points most of the stray
#   samples at the nearest ring, it is the generator that cannot follow. None of the field's knobs (smaller
#   temperatures, a larger data batch, raw instead of normalised temperatures) changed that; a deeper generator
#   did, on one seed of three (section 6, "The generator"). A flow composes 100 small maps, and there lies the
#   gap: the depth a one-step generator needs it must learn in one network, in the same 30 s.
#
# **Next.** In two dimensions, distances mean something and a kernel on raw coordinates works. Lesson 06
# asks what happens to images, where they concentrate, and why the kernel needs the features of an encoder:
# [Lesson 06: feature-space kernels](../06/).
