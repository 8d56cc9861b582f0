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
# # Lesson 02: KDE makes scores sample-based
#
# **Where we are.** [Lesson 01](../01/) ended with a field that lowers $\mathrm{KL}(q \,\|\, p)$: move each
# generated sample along $V(x) = s_p(x) - s_q(x)$, the difference of the two scores $s = \nabla_x \log(\cdot)$.
# That needed the score of $q$, and a generator $x = f(\varepsilon)$ gives samples, never a density. This lesson
# builds a density, and a score, from samples alone: the kernel density estimate (KDE). For the Gaussian kernel it
# turns out to be more than an estimate: it is *exactly* the density of the samples plus Gaussian noise, and its
# score points at the posterior mean of the clean sample (Tweedie's formula). That is the bridge to the mean shift
# of lesson 03 and to the drift field of "Generative Modeling via Drifting" (Deng et al., 2026,
# [arXiv 2602.04770](https://arxiv.org/abs/2602.04770)).
#
# **Objectives.** By the end you can
#
# 1. compute all pairwise distances between two sample sets by broadcasting (exercise 2.1);
# 2. write the log-density of a Gaussian KDE with a logsumexp, and say why $\log\sum\exp$ fails at
#    $\tau = 0.02$ (exercise 2.2);
# 3. derive the KDE score as softmax-weighted displacements $\sum_j \tilde k(x, y_j)(y_j - x)/\tau^2$ and check it
#    against autograd (exercise 2.3);
# 4. derive Tweedie's formula $\mathbb{E}[y \mid x] = x + \tau^2 \nabla_x \log p_\tau(x)$ and use it to denoise
#    (exercise 2.4).
#
# **Time.** About 60 minutes: 25 to read and derive, 35 for the four exercises.
#
# **What right looks like.** Fill in `lessons/02/exercises.py` and run `pytest lessons/02`. Each exercise has several
# graded checks; when one is done its scoreboard line reads `passed`, and the run ends with
# `4 of 4 exercises complete`. In the notebook, the cell under each exercise's description runs that exercise's checks
# and prints its grade: all checks passed, not implemented yet, or the first failure with the property that broke and
# a hint. The demos below print `[demo] using your ...` once your function works (before that they use the reference
# in `drifting_min` and say so).
#
# **Notation.** Queries $x$ ($N \times D$), data $y_1, \dots, y_M$ ($M \times D$), temperature (bandwidth)
# $\tau$. The Gaussian kernel is $k(x, y) = \exp(-\|x - y\|^2 / (2\tau^2))$; the Laplace kernel, which appears at the
# end, is $k(x, y) = \exp(-\|x - y\| / \tau)$. The kernel normalised over the data is
# $\tilde k(x, y_j) = k(x, y_j) / \sum_l k(x, y_l)$.

# %%
import math

import matplotlib.pyplot as plt
import torch

import drifting_min as dm
from course import check_exercise, learner_or_reference, load_exercises

torch.set_num_threads(1)  # small problems: one thread is as fast, and steadier when other work runs
ex = load_exercises("02")
pairwise_distances = learner_or_reference(ex.pairwise_distances, dm.pairwise_distances)
kde_log_density = learner_or_reference(ex.kde_log_density, dm.kde_log_density)
kde_score = learner_or_reference(ex.kde_score, dm.kde_score)
tweedie_denoise = learner_or_reference(ex.tweedie_denoise, dm.tweedie_denoise)
torch.manual_seed(0)

# %% [markdown]
# ## 1. Pairwise distances
#
# Every quantity in this lesson (and in the rest of the course) starts from the $N \times M$ matrix of distances
# between the queries and the data,
#
# $$d_{ij} = \|x_i - y_j\| = \Big(\sum_{d=1}^{D} (x_{id} - y_{jd})^2\Big)^{1/2}.$$
#
# With broadcasting it is one line: `x[:, None, :]` has shape $N \times 1 \times D$, `y[None, :, :]` has shape
# $1 \times M \times D$, and their difference is the $N \times M \times D$ array of all displacements. Square, sum
# over the last axis (the coordinates, not the samples), and take the root. The Gaussian kernel needs the *squared*
# distance and the Laplace kernel the plain one, hence a flag.
#
# For large $D$ one uses instead $\|x - y\|^2 = \|x\|^2 + \|y\|^2 - 2\, x \cdot y$, a matrix product: faster, but it
# loses digits when the distance is small next to the norms (it can even come out slightly negative, so it must be
# clamped at 0 before the root). In the low dimensions of this lesson, the exact differences are the right choice.
#
# ### Exercise 2.1: `pairwise_distances(x, y, squared=False)`
#
# Return the $N \times M$ matrix $d_{ij} = \|x_i - y_j\|$, or $d_{ij}^2$ when `squared=True`. The checks compare
# with `drifting_min.pairwise_distances` and test four properties: $d(y, x) = d(x, y)^\top$, a zero diagonal for
# $d(x, x)$, invariance when both sets are rotated and translated, and `squared=True` equal to the square of
# `squared=False`. Run them with `pytest lessons/02 -k ex2_1`.

# %%
check_exercise(ex, "2.1")

# %%
x_small = torch.tensor([[0.0, 0.0], [3.0, 4.0]], dtype=torch.float64)
y_small = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]], dtype=torch.float64)
print(pairwise_distances(x_small, y_small))  # rows: queries; columns: data. Expect [[0, 1, 3], [5, 4.47, 4]]
print(pairwise_distances(x_small, y_small, squared=True))

# %% [markdown]
# ## 2. The kernel density estimate, in logs
#
# Put a Gaussian of standard deviation $\tau$ on every data point and average:
#
# $$p_\tau(x) = \frac{1}{M} \sum_{j=1}^{M} \mathcal{N}(x;\, y_j, \tau^2 I)
#   = \frac{1}{M\,(2\pi\tau^2)^{D/2}} \sum_{j=1}^{M} \exp\Big(-\frac{\|x - y_j\|^2}{2\tau^2}\Big).$$
#
# Each Gaussian integrates to one, and we take their mean (not their sum), so $p_\tau$ is a probability density.
# This is the Parzen-Rosenblatt estimator (Rosenblatt 1956, Parzen 1962). Its logarithm, with the logits
# $\ell_j(x) = \log k(x, y_j) = -\|x - y_j\|^2 / (2\tau^2)$, is
#
# $$\log p_\tau(x) = \log \sum_j e^{\ell_j(x)} - \log M - \frac{D}{2}\log(2\pi\tau^2).$$
#
# **Why not compute $\log\sum\exp$ as written.** In float64, $e^{t}$ is exactly 0 for $t < -745$ (in float32 for
# $t < -103$). At $\tau = 0.02$ the logit is $-d^2 / 0.0008$, below $-745$ as soon as $d > 0.77$: a query that far
# from every data point gets $\log 0 = -\infty$, although its true log-density is an ordinary number near
# $-d^2/0.0008$. The logsumexp trick factors out the largest logit $m = \max_j \ell_j$:
#
# $$\log \sum_j e^{\ell_j} = m + \log \sum_j e^{\ell_j - m}.$$
#
# Now every exponent is $\le 0$ and one of them is exactly $0$, so the sum lies in $[1, M]$: no underflow, no
# overflow. `torch.logsumexp` does exactly this. (Small $\tau$ is not exotic: the paper's temperatures are 0.02,
# 0.05 and 0.2.)
#
# ### Exercise 2.2: `kde_log_density(x, data, tau)`
#
# Return $\log p_\tau(x_i)$ for every query, shape $(N,)$, normalised as above, with a logsumexp. The checks compare
# with `drifting_min.kde_log_density` at two bandwidths, demand a finite and correct answer at $\tau = 0.02$ for
# queries far from the data, integrate $p_\tau$ over a 1-D grid (it must give 1), and translate queries and data
# together (nothing may change). Run them with `pytest lessons/02 -k ex2_2`.

# %%
check_exercise(ex, "2.2")

# %%
data_demo = torch.randn(6, 2, dtype=torch.float64)
far = torch.tensor([[3.0, 3.0], [-4.0, 1.0]], dtype=torch.float64)
tau = 0.02
logits = -pairwise_distances(far, data_demo, squared=True) / (2 * tau**2)
naive = torch.log(torch.exp(logits).sum(dim=1)) - math.log(6) - math.log(2 * math.pi * tau**2)
print("largest logit per query:     ", logits.max(dim=1).values.numpy())
print("naive log(sum(exp)) formula: ", naive.numpy())
print("kde_log_density (logsumexp): ", kde_log_density(far, data_demo, tau).numpy())

# %% [markdown]
# The naive column is $-\infty$; the logsumexp column is finite and sits just above the largest logit (the gap is
# $\log M$ and the normaliser).
#
# ## 3. The score of a KDE is a softmax-weighted displacement
#
# Differentiate the log-density. The constants vanish, and the derivative of a logsumexp is a softmax:
#
# $$\nabla_x \log p_\tau(x) = \frac{\sum_j e^{\ell_j(x)}\, \nabla_x \ell_j(x)}{\sum_l e^{\ell_l(x)}}
#   = \sum_j \tilde k(x, y_j)\, \nabla_x \ell_j(x), \qquad
#   \tilde k(x, y_j) = \operatorname{softmax}_j \ell_j(x).$$
#
# For the Gaussian kernel $\nabla_x \ell_j(x) = \nabla_x\big(-\|x - y_j\|^2/(2\tau^2)\big) = (y_j - x)/\tau^2$, so
#
# $$\boxed{\; s_{p_\tau}(x) = \nabla_x \log p_\tau(x) = \frac{1}{\tau^2} \sum_j \tilde k(x, y_j)\,(y_j - x)
#   = \frac{1}{\tau^2}\Big(\sum_j \tilde k(x, y_j)\, y_j - x\Big). \;}$$
#
# Read it: the score points from $x$ towards a weighted average of the data, and the weights favour the data points
# nearest to $x$. The last form uses $\sum_j \tilde k(x, y_j) = 1$: the weights are normalised over the data (a
# softmax along `dim=1` of the $N \times M$ logits), never over the queries. This is the formula we wanted: a score
# computed from samples alone. It is what lets a drifting model estimate $s_q$ from a batch of generated samples.
#
# ### Exercise 2.3: `kde_score(x, data, tau)`
#
# Return $\nabla_x \log p_\tau(x_i)$ for every query, $N \times D$, in closed form with `torch.softmax` (no
# autograd inside). The checks compare with `drifting_min.kde_score` and with autograd of the log-density, test a
# single data point (the score of one Gaussian is $(y - x)/\tau^2$ exactly), translate queries and data together
# (the $-x$ term cancels the shift only if the weights sum to one), and ask for a finite answer at $\tau = 0.02$
# (where $e^{\ell}/\sum e^{\ell}$ written by hand is $0/0$). Run them with `pytest lessons/02 -k ex2_3`.

# %%
check_exercise(ex, "2.3")

# %%
queries = torch.randn(5, 2, dtype=torch.float64)
data_demo = torch.randn(20, 2, dtype=torch.float64)
for tau in (0.02, 0.3, 2.0):
    xg = queries.clone().requires_grad_(True)
    (auto,) = torch.autograd.grad(kde_log_density(xg, data_demo, tau).sum(), xg)
    closed = kde_score(queries, data_demo, tau)
    rel = ((closed - auto).norm() / auto.norm()).item()
    print(f"tau = {tau:<5} |closed form - autograd| / |autograd| = {rel:.2e}")

# %% [markdown]
# The closed form agrees with autograd to rounding error at every bandwidth, including $\tau = 0.02$.
#
# ### The KDE and its score field at three bandwidths
#
# Below, a 2-D sample of 60 points (three clusters of different spreads). The colour is $\log p_\tau$; the arrows
# are $\tau^2\, s_{p_\tau}(x)$, the score rescaled to the units of $x$ (section 4 shows that this is the step from
# $x$ to the posterior mean, which is why it is a natural length to draw), shortened to a quarter so they do not
# overlap.

# %%
gen = torch.Generator().manual_seed(2)
centres = torch.tensor([[-1.5, -0.8], [1.4, -1.0], [0.0, 1.4]], dtype=torch.float64)
spreads = torch.tensor([0.25, 0.45, 0.15], dtype=torch.float64)
labels = torch.arange(60) % 3
sample2d = centres[labels] + spreads[labels, None] * torch.randn(60, 2, generator=gen, dtype=torch.float64)

grid_1d = torch.linspace(-3.2, 3.2, 161, dtype=torch.float64)
gx, gy = torch.meshgrid(grid_1d, grid_1d, indexing="xy")
grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)
arrows_1d = torch.linspace(-3.0, 3.0, 13, dtype=torch.float64)
ax_, ay_ = torch.meshgrid(arrows_1d, arrows_1d, indexing="xy")
arrow_points = torch.stack([ax_.reshape(-1), ay_.reshape(-1)], dim=1)

fig, axes = plt.subplots(1, 3, figsize=(15, 5), constrained_layout=True)
for ax, tau in zip(axes, (0.15, 0.4, 1.0)):
    log_p = kde_log_density(grid, sample2d, tau).reshape(gx.shape)
    shade = ax.contourf(gx.numpy(), gy.numpy(), log_p.clamp_min(-12).numpy(), levels=30, cmap="viridis")
    step = tau**2 * kde_score(arrow_points, sample2d, tau)  # drawn at a quarter of its length
    ax.quiver(arrow_points[:, 0], arrow_points[:, 1], step[:, 0], step[:, 1], color="white",
              angles="xy", scale_units="xy", scale=4.0, width=0.005, label=r"$\tau^2 \nabla \log p_\tau$ (1/4 length)")
    ax.scatter(sample2d[:, 0], sample2d[:, 1], s=12, c="red", edgecolors="black", linewidths=0.4, label="data $y_j$")
    ax.set_title(rf"Gaussian KDE, $\tau$ = {tau}")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.set_aspect("equal")
    ax.legend(loc="lower left", fontsize=8, framealpha=0.8)
    fig.colorbar(shade, ax=ax, shrink=0.8, label=r"$\log p_\tau(x)$ (clipped at $-12$)")
fig.suptitle("KDE log-density and score field: small tau sees every point, large tau sees the blob")
plt.show()

# %% [markdown]
# **What the figure shows.** At $\tau = 0.15$ the density is a set of bumps, one per point or tight cluster, and
# each arrow points at the data nearest to it, with a length proportional to the distance (far from the data the
# density is tiny, yet the arrows stay well defined). At $\tau = 0.4$ each cluster
# becomes one mode, and the arrows point at the cluster. At $\tau = 1$ the three clusters merge into one broad
# hill, and every arrow points at (roughly) the mean of the whole sample. The bandwidth decides which structure
# the score can see: this is why the paper sums fields over several temperatures (lessons 04 to 06).
#
# ## 4. Tweedie's formula: the score points at the posterior mean
#
# **The Gaussian KDE is a noisy data distribution.** Draw a data point uniformly, $y = y_J$ with
# $J \sim \mathrm{Uniform}\{1, \dots, M\}$, and add noise, $x = y + \tau\varepsilon$ with
# $\varepsilon \sim \mathcal{N}(0, I)$. Then
#
# $$p(x) = \sum_j P(J = j)\, p(x \mid J = j) = \frac{1}{M}\sum_j \mathcal{N}(x;\, y_j, \tau^2 I) = p_\tau(x):$$
#
# the Gaussian KDE is not an approximation of anything here; it is exactly the density of data plus
# $\mathcal{N}(0, \tau^2 I)$ noise, $p_\tau = p_{\text{data}} * \mathcal{N}(0, \tau^2 I)$.
#
# **Bayes gives the posterior over the data points.** Given a noisy $x$, which $y_j$ did it come from?
#
# $$P(J = j \mid x) = \frac{\tfrac{1}{M}\mathcal{N}(x;\, y_j, \tau^2 I)}
#   {\sum_l \tfrac{1}{M}\mathcal{N}(x;\, y_l, \tau^2 I)}
#   = \frac{e^{-\|x - y_j\|^2/(2\tau^2)}}{\sum_l e^{-\|x - y_l\|^2/(2\tau^2)}} = \tilde k(x, y_j).$$
#
# The prior $1/M$ and the Gaussian's normaliser are the same for every $j$ and cancel: the softmax weights of
# section 3 *are* the posterior. Hence the posterior mean of the clean point is
#
# $$\mathbb{E}[y \mid x] = \sum_j \tilde k(x, y_j)\, y_j = x + \sum_j \tilde k(x, y_j)(y_j - x)
#   = x + \tau^2\, \nabla_x \log p_\tau(x),$$
#
# using the boxed formula of section 3 in the last step. That is **Tweedie's formula** (Robbins 1956; Efron 2011,
# "Tweedie's formula and selection bias").
#
# **It holds for any data distribution, not only a finite sample.** With $p_\tau(x) = \int p(y)\,
# \mathcal{N}(x; y, \tau^2 I)\, dy$ and $\nabla_x \mathcal{N}(x; y, \tau^2 I) = \mathcal{N}(x; y, \tau^2 I)\,
# (y - x)/\tau^2$,
#
# $$\nabla_x p_\tau(x) = \int p(y)\, \mathcal{N}(x; y, \tau^2 I)\, \frac{y - x}{\tau^2}\, dy
#   = p_\tau(x)\, \frac{\mathbb{E}[y \mid x] - x}{\tau^2},$$
#
# and dividing by $p_\tau(x)$ gives the same identity. In the language of the course, the mean shift towards the
# data, $V^+(x) = \sum_j \tilde k(x, y^+_j)(y^+_j - x)$, equals $\tau^2 \nabla \log p_\tau(x)$: the Gaussian drift field
# is a difference of scores of *smoothed* distributions, which is the observation of "A Unified View of Drifting
# and Score-Based Models" (Lai et al., 2026, [arXiv 2603.07514](https://arxiv.org/abs/2603.07514)).
#
# ### Exercise 2.4: `tweedie_denoise(x, data, tau)`
#
# Return $\mathbb{E}[y \mid x_i]$ for every query, $N \times D$. Write it as the posterior-weighted mean of the data
# (the solution does this without calling `kde_score`; $x + \tau^2$ times your score is equally right). The checks
# compare with `drifting_min.tweedie_denoise`, with the posterior written out in float64, and with
# $x + \tau^2 \nabla \log p_\tau$ from autograd; then they test the properties: in 1-D every answer lies between the
# smallest and largest data point (a convex combination), as $\tau \to 0$ it is the nearest data point, and as
# $\tau \to \infty$ the mean of the data. Run them with `pytest lessons/02 -k ex2_4`.

# %%
check_exercise(ex, "2.4")

# %%
data_1d = torch.tensor([[-2.0], [-0.6], [0.2], [1.3], [2.8]], dtype=torch.float64)
tau_main = 0.4

# Monte Carlo check of both claims: draw clean y from the data, add N(0, tau^2) noise.
gen = torch.Generator().manual_seed(3)
n_mc = 40000
clean = data_1d[torch.randint(0, 5, (n_mc,), generator=gen)]
noisy = clean + tau_main * torch.randn(n_mc, 1, generator=gen, dtype=torch.float64)
edges = torch.linspace(-3.2, 4.0, 37, dtype=torch.float64)
bin_of = torch.bucketize(noisy[:, 0], edges) - 1
centres_mc, means_mc = [], []
for b in range(len(edges) - 1):
    in_bin = bin_of == b
    if in_bin.sum() >= 200:  # the empirical E[y | x in bin], where the bin has enough samples
        centres_mc.append(float((edges[b] + edges[b + 1]) / 2))
        means_mc.append(float(clean[in_bin].mean()))

x_line = torch.linspace(-4.0, 5.0, 600, dtype=torch.float64)[:, None]
fig, (ax_l, ax_m, ax_r) = plt.subplots(1, 3, figsize=(18, 5.2), constrained_layout=True)

ax_l.hist(noisy[:, 0].numpy(), bins=120, density=True, color="lightgray", label=r"samples of $y + \tau\varepsilon$")
ax_l.plot(x_line[:, 0], kde_log_density(x_line, data_1d, tau_main).exp(), color="C0", lw=2,
          label=rf"KDE $p_\tau(x)$, $\tau$ = {tau_main}")
for j, y in enumerate(data_1d[:, 0]):
    component = torch.exp(-(x_line[:, 0] - y) ** 2 / (2 * tau_main**2)) / (5 * math.sqrt(2 * math.pi) * tau_main)
    ax_l.plot(x_line[:, 0], component, color="C0", lw=0.8, ls="--",
              label=r"one bump $\mathcal{N}(x; y_j, \tau^2) / M$" if j == 0 else None)
ax_l.plot(data_1d[:, 0], torch.zeros(5), "v", color="red", ms=10, label="data $y_j$")
ax_l.set_title("(a) A Gaussian KDE is the density of data plus noise")
ax_l.set_xlabel("$x$")
ax_l.set_ylabel("density")
ax_l.legend(fontsize=9, loc="upper right")

for y in data_1d[:, 0]:
    ax_m.axhline(float(y), color="red", lw=0.6, ls="--")
ax_m.plot([], [], color="red", lw=0.6, ls="--", label="data $y_j$ (levels)")
ax_m.axhline(float(data_1d.mean()), color="C1", lw=1.0, ls="-.", label="mean of the data")
ax_m.plot(x_line[:, 0], x_line[:, 0], color="gray", ls=":", label="$x$ itself (no denoising)")
for tau, colour in ((0.1, "C2"), (1.5, "C1"), (tau_main, "C0")):
    ax_m.plot(x_line[:, 0], tweedie_denoise(x_line, data_1d, tau)[:, 0], color=colour, lw=2,
              label=rf"$\mathbb{{E}}[y \mid x]$, $\tau$ = {tau}")
ax_m.plot(centres_mc, means_mc, "o", mfc="none", mec="black", ms=7,
          label=rf"Monte Carlo: mean clean $y$ per bin of $x$ ($\tau$ = {tau_main})")
ax_m.set_ylim(-3.0, 4.2)
ax_m.set_title(r"(b) Tweedie: $\mathbb{E}[y \mid x] = x + \tau^2 \nabla \log p_\tau(x)$")
ax_m.set_xlabel("noisy $x$")
ax_m.set_ylabel(r"posterior mean $\mathbb{E}[y \mid x]$")
ax_m.legend(fontsize=8, loc="upper left")

# (c) A few noisy samples: clean y (top row) -> noisy x (middle row) -> E[y | x] (bottom row).
picks = torch.tensor([0, 1, 2, 3, 4, 0, 2, 3], dtype=torch.long)
clean_few = data_1d[picks]
noisy_few = clean_few + tau_main * torch.randn(8, 1, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
denoised_few = tweedie_denoise(noisy_few, data_1d, tau_main)
ax_r.plot(data_1d[:, 0], torch.full((5,), 2.0), "v", color="red", ms=10, label="data $y_j$")
ax_r.plot(noisy_few[:, 0], torch.full((8,), 1.0), "o", color="gray", ms=7, label=r"noisy $x = y + \tau\varepsilon$")
ax_r.plot(denoised_few[:, 0], torch.zeros(8), "D", color="C0", ms=7, label=r"$\mathbb{E}[y \mid x]$")
for c, n, d in zip(clean_few[:, 0], noisy_few[:, 0], denoised_few[:, 0]):
    ax_r.plot([float(c), float(n)], [2.0, 1.0], color="gray", lw=0.7, ls=":")
    ax_r.annotate("", xy=(float(d), 0.05), xytext=(float(n), 0.95),
                  arrowprops=dict(arrowstyle="->", color="C0", lw=1.2))
ax_r.set_yticks([0, 1, 2], [r"$\mathbb{E}[y \mid x]$", "noisy $x$", "clean $y$"])
ax_r.set_ylim(-0.5, 3.0)
ax_r.set_xlabel("position on the line")
ax_r.set_title(rf"(c) Add noise, then denoise ($\tau$ = {tau_main})")
ax_r.legend(fontsize=8, loc="upper center", ncol=3)
plt.show()

# %% [markdown]
# **What the figure shows.** (a) The histogram of 40,000 draws of $y + \tau\varepsilon$ lies on the KDE curve, the
# sum of the dashed bumps: the KDE is the density of the noisy data. (b) The posterior mean as a function of the
# noisy $x$. At $\tau = 0.1$ it is a staircase: each $x$ is sent to its nearest data point (the red levels). At
# $\tau = 1.5$ it is a gentle slope near the mean of the data (the orange dash-dot line), because the noise hides
# which point $x$ came from. The open circles average the *true* clean $y$ of the simulated samples in each bin of
# $x$; they fall on the $\tau = 0.4$ curve, which was computed from the formula alone: Tweedie's formula, checked
# by simulation. (c) Eight noisy samples (middle row), each drawn from a data point of the top row (the dotted
# lines join it to its origin), and their Tweedie estimates (bottom row): a noisy point near one $y_j$ is pulled back
# onto it; one halfway between two data points lands in between, because the posterior hedges. The estimate is the best
# guess in mean square, not a sample: it can lie where no data point is.
#
# ## 5. The Laplace kernel, briefly
#
# The paper's experiments use the Laplace kernel $k = e^{-\|x - y\|/\tau}$ on plain distances. The same algebra
# gives its score: $\nabla_x \ell_j = (y_j - x)/(\tau \|y_j - x\|)$, so
# $\nabla \log p(x) = \sum_j \tilde k(x, y_j)\,(y_j - x)/(\tau\|y_j - x\|)$: unit vectors towards the data, weighted.
# The mean shift $\sum_j \tilde k(x, y_j)(y_j - x)$ is then no longer $\tau^2$ times this score, but a
# *preconditioned* score of a differently smoothed density; lesson 03 makes this precise. The reference has both
# kernels; check the Laplace score against autograd too:

# %%
xg = queries.clone().requires_grad_(True)
(auto,) = torch.autograd.grad(dm.kde_log_density(xg, data_demo, 0.5, kernel="laplace").sum(), xg)
closed = dm.kde_score(queries, data_demo, 0.5, kernel="laplace")
print("Laplace kernel: max |closed form - autograd| =", f"{(closed - auto).abs().max().item():.2e}")

# %% [markdown]
# ## What can go wrong
#
# - **$\log\sum\exp$ by hand.** Finite at $\tau = 1$, $-\infty$ at $\tau = 0.02$. Use `torch.logsumexp`, and
#   `torch.softmax` for the weights ($e^\ell / \sum e^\ell$ is $0/0$ there).
# - **The wrong softmax axis.** The weights of a query are normalised over the *data* (`dim=1` of the $N \times M$
#   logits). Normalising over the queries gives plausible-looking numbers that are neither a score nor a posterior.
# - **$\tau$ versus $\tau^2$.** The Gaussian kernel's logits divide $\|x - y\|^2$ by $2\tau^2$, the score divides by
#   $\tau^2$, and Tweedie's step multiplies by $\tau^2$. A stray $\tau$ rescales everything by $1/\tau$.
# - **Plain versus squared distance.** The Gaussian kernel uses $\|x - y\|^2$, the Laplace kernel $\|x - y\|$.
# - **Low precision.** In float16 or bfloat16 the exponentials underflow far sooner; `drifting_min` runs distances
#   and softmaxes in float32 even inside a mixed-precision training step.
#
# ## What comes next
#
# We now have a score from samples: $s_{p_\tau}(x) = \big(\sum_j \tilde k(x, y_j)\, y_j - x\big)/\tau^2$. Apply it
# twice, once to the data (positives $y^+$) and once to the generated samples (negatives $y^-$), and lesson 01's
# field $s_p - s_q$ becomes, up to the factor $\tau^2$, the difference of two mean shifts,
# $V = V^+ - V^-$. [Lesson 03: Mean shift](../03/) builds it, iterates it to find modes, proves its anti-symmetry,
# and turns it into the batch form that the drifting paper trains with.
