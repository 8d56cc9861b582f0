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
# # Lesson 03: Mean shift and the drift field
#
# **Where we are.** [Lesson 02](../02/) turned a set of samples into a density and a score: the Gaussian KDE
# $p_\tau$ and its score $\nabla_x \log p_\tau(x) = \sum_j \tilde k(x, y_j)\,(y_j - x)/\tau^2$, a softmax-weighted
# average of displacements. Multiply that score by $\tau^2$ and it becomes a displacement you can walk along: the
# *mean shift*, one of the oldest tools of non-parametric statistics. This lesson builds the drift field of
# "Generative Modeling via Drifting" (Deng et al., 2026, [arXiv 2602.04770](https://arxiv.org/abs/2602.04770)) out
# of two mean shifts, one towards the data and one towards the generated samples, and ends with the batch form that
# the paper trains with.
#
# **Objectives.** By the end you can
#
# 1. write the mean shift $V^+$ for the Gaussian and the Laplace kernels, and show that for the Gaussian kernel it is
#    $\tau^2$ times the KDE score (exercise 3.1);
# 2. run mean-shift iterations, prove that they climb the KDE, and find the modes of a sample set (exercise 3.2);
# 3. build the drift field $V = V^+ - V^-$, check that it is anti-symmetric and vanishes when the two sets are the
#    same (exercise 3.3), and derive its joint form over pairs $(y^+, y^-)$ (exercise 3.4);
# 4. read the Laplace mean shift as a *preconditioned* score and compute its preconditioner (exercise 3.5);
# 5. implement the batch field with the self-mask and the "double softmax" normalisation with cross-weighting
#    (exercise 3.6), and say which properties survive the mask.
#
# **Time.** About 105 minutes: 40 to read and derive, 65 for the six exercises (the batch field of 3.6 alone
# takes about 25).
#
# **What right looks like.** Fill in `lessons/03/exercises.py` and run `pytest lessons/03`. Each exercise has several
# graded checks; when one is done its scoreboard line reads `passed`, and the run ends with
# `6 of 6 exercises complete`. In the notebook, the cell under each exercise's description runs that exercise's checks
# and prints its grade: all checks passed, not implemented yet, or the first failure with the property that broke and
# a hint. The demos below print `[demo] using your ...` once your function works; before that they use the reference
# (`drifting_min`, or the worked solution where `drifting_min` has no such function) and say so.
#
# **Notation.** Queries $x$ ($N \times D$, the generated samples), positives $y^+$ ($M \times D$, the data),
# negatives $y^-$ ($K \times D$, generated samples), temperature $\tau$. Gaussian kernel
# $k(x, y) = \exp(-\|x - y\|^2 / (2\tau^2))$; Laplace kernel $k(x, y) = \exp(-\|x - y\| / \tau)$ on the plain
# distance. $\tilde k(x, y_j) = k(x, y_j) / \sum_l k(x, y_l)$ is the kernel normalised over its target set: a softmax
# of the logits $\log k(x, y_j)$ over $j$.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

import drifting_min as dm
from course import check_exercise, learner_or_reference, load_exercises

torch.set_num_threads(1)  # small problems: one thread is as fast, and steadier when other work runs
ex = load_exercises("03")
worked = load_exercises("03", solutions=True)  # the reference for exercises that drifting_min has no function for
mean_shift = learner_or_reference(ex.mean_shift, dm.mean_shift)
find_modes = learner_or_reference(ex.find_modes, worked.find_modes)
drift_field = learner_or_reference(ex.drift_field, dm.drift_field)
drift_field_joint = learner_or_reference(ex.drift_field_joint, dm.drift_field)
laplace_preconditioner = learner_or_reference(ex.laplace_preconditioner, dm.laplace_preconditioner)
batch_drift_field = learner_or_reference(ex.batch_drift_field, dm.batch_drift_field)
torch.manual_seed(0)


def blobs(centres, std, n, seed):
    """n samples around each centre, isotropic Gaussian noise of the given std (float64)."""
    gen = torch.Generator().manual_seed(seed)
    centres = torch.tensor(centres, dtype=torch.float64)
    return torch.cat([c + std * torch.randn(n, centres.shape[1], generator=gen, dtype=torch.float64) for c in centres])


# %% [markdown]
# ## 1. The mean shift
#
# Take targets $y_1, \dots, y_M$ and a query $x$. The **mean shift** towards the targets is the step from $x$ to the
# kernel-weighted mean of the targets:
#
# $$V_y(x) = \frac{\sum_j k(x, y_j)\,(y_j - x)}{\sum_j k(x, y_j)} = \sum_j \tilde k(x, y_j)\,(y_j - x)
#   = \Big(\sum_j \tilde k(x, y_j)\, y_j\Big) - x .$$
#
# The last step uses $\sum_j \tilde k(x, y_j) = 1$. The weights are a softmax over the targets of the logits
# $\log k(x, y_j)$, so they are computed stably at any temperature, exactly as the KDE score of lesson 02. When the
# targets are the data, we write $V^+$.
#
# **The Gaussian kernel: a scaled score.** For $k(x, y) = \exp(-\|x - y\|^2 / (2\tau^2))$ the gradient of a logit is
# $\nabla_x \log k(x, y_j) = (y_j - x)/\tau^2$, and lesson 02 showed that the KDE score is the softmax-weighted average
# of these gradients. Hence
#
# $$V^+(x) = \tau^2 \sum_j \tilde k(x, y_j)\,\frac{y_j - x}{\tau^2} = \tau^2\, \nabla_x \log p_\tau(x).$$
#
# So the mean shift is a score in disguise, and by Tweedie's formula (lesson 02) $x + V^+(x) = \mathbb{E}[y \mid x]$:
# the posterior mean of the clean sample given a noisy one. The unified view of Lai et al. (2026,
# [arXiv 2603.07514](https://arxiv.org/abs/2603.07514)) builds on exactly this identity.
#
# **The Laplace kernel.** For $k(x, y) = \exp(-\|x - y\|/\tau)$ the formula for $V^+$ is the same weighted mean with
# other weights: the logits are $-\|x - y_j\|/\tau$ on the *plain* distance. It is not $\tau^2$ times the KDE score
# any more (section 5 says what it is instead).
#
# ### Exercise 3.1: `mean_shift(x, targets, tau, kernel="gaussian")`
#
# Return $V_y(x)$, shape $N \times D$: logits $-d^2/(2\tau^2)$ (Gaussian) or $-d/\tau$ (Laplace) from the distances
# $d_{ij} = \|x_i - y_j\|$ (`dm.pairwise_distances` from lesson 02 is yours to use), a softmax over the targets
# (`dim=1`), the weighted mean of the targets, minus $x$. The checks compare with `drifting_min.mean_shift`, with
# $\tau^2$ times the autograd score of the KDE, and test translation equivariance and the one-target case
# $V(x) = y - x$. Run them with `pytest lessons/03 -k ex3_1`.

# %%
check_exercise(ex, "3.1")

# %%
data_demo, x_demo = blobs([[0.0, 0.0], [2.0, 1.0]], 0.4, 30, seed=1), blobs([[1.0, -1.0]], 1.0, 5, seed=2)
tau = 0.6
x_grad = x_demo.clone().requires_grad_(True)
log_p = dm.kde_log_density(x_grad, data_demo, tau)
(score,) = torch.autograd.grad(log_p.sum(), x_grad)
v_pos = mean_shift(x_demo, data_demo, tau)
print("max |V+ - tau^2 * autograd score| =", float((v_pos - tau**2 * score).abs().max()))

# %% [markdown]
# ## 2. Mean-shift iterations climb the density
#
# Mean shift began as an algorithm, not a field: Fukunaga and Hostetler (1975) proposed to move every point to the
# weighted mean of its neighbours and repeat, to find the modes of a density from samples; Comaniciu and Meer (2002)
# made it a standard tool for clustering and image segmentation. They also gave a proof that the iterates converge,
# which Li, Hu and Wu (2007) later showed to be flawed; what does hold, by the argument below, is that the density
# estimate increases at every step (and, being bounded, converges). That the points themselves converge needs
# extra conditions, such as isolated stationary points. One step is
#
# $$x_{t+1} = x_t + V^+(x_t) = \sum_j \tilde k(x_t, y_j)\, y_j ,$$
#
# which for the Gaussian kernel is gradient ascent on $\log p_\tau$ with step size $\tau^2$:
# $x_{t+1} = x_t + \tau^2 \nabla \log p_\tau(x_t)$.
#
# **Why the density never decreases.** Write $a_j(x) = -\|x - y_j\|^2/(2\tau^2)$, so that
# $\log p_\tau(x) = \log \sum_j e^{a_j(x)} + \text{const}$, and let $w_j = \tilde k(x_t, y_j)$ be the weights at the
# current point. Then
#
# $$\log p_\tau(x) - \log p_\tau(x_t) = \log \sum_j w_j\, e^{a_j(x) - a_j(x_t)}
#   \;\ge\; \sum_j w_j \big(a_j(x) - a_j(x_t)\big)$$
#
# by Jensen's inequality ($\log$ is concave, the $w_j$ sum to one). The right-hand side is $0$ at $x = x_t$ and is a
# concave quadratic in $x$, maximised where $\sum_j w_j (y_j - x) = 0$, that is at $x = \sum_j w_j y_j = x_{t+1}$. So
# the bound at $x_{t+1}$ is at least its value at $x_t$, which is $0$: $\log p_\tau(x_{t+1}) \ge \log p_\tau(x_t)$,
# with equality only at a fixed point, where $V^+ = 0$. (It is the argument that makes EM climb its likelihood.)
#
# ### Exercise 3.2: `find_modes(x0, data, tau, n_steps=50)`
#
# Return the whole path, shape $(n_\text{steps} + 1) \times N \times D$, with `path[0] = x0` and
# `path[t + 1] = path[t] + V+(path[t])` for the Gaussian kernel (use your `mean_shift`). The checks compare the path
# with the iterations done by hand, check that the KDE log-density never decreases along it, and that two
# well-separated clusters end in two modes, each a fixed point ($|V^+| \approx 0$). Run `pytest lessons/03 -k ex3_2`.

# %%
check_exercise(ex, "3.2")

# %%
data = torch.cat([blobs([[-1.5, -1.0], [1.5, -1.0]], 0.35, 60, seed=3), blobs([[0.0, 1.6]], 0.5, 80, seed=4)])
tau = 0.45
g = torch.linspace(-3.2, 3.2, 25, dtype=torch.float64)
starts = torch.stack(torch.meshgrid(g[::4], g[::4], indexing="xy"), -1).reshape(-1, 2)
path = find_modes(starts, data, tau, 30)
modes = path[-1]

gx = torch.linspace(-3.2, 3.2, 160, dtype=torch.float64)
grid = torch.stack(torch.meshgrid(gx, gx, indexing="xy"), -1).reshape(-1, 2)
log_density = dm.kde_log_density(grid, data, tau).reshape(160, 160)
log_p_path = torch.stack([dm.kde_log_density(p, data, tau) for p in path])  # steps x N

fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 5.2), gridspec_kw={"width_ratios": [1.1, 1]})
ax.contourf(gx, gx, log_density.exp(), levels=20, cmap="Blues")
ax.scatter(data[:, 0], data[:, 1], s=5, c="k", alpha=0.4, label="data $y^+$")
for i in range(path.shape[1]):
    ax.plot(path[:, i, 0], path[:, i, 1], "-", color="tab:orange", lw=1, alpha=0.8)
ax.scatter(starts[:, 0], starts[:, 1], s=14, c="tab:orange", label="starts $x_0$")
ax.scatter(modes[:, 0], modes[:, 1], s=120, marker="*", c="tab:red", edgecolor="k", zorder=5, label="end points")
ax.set(title=f"Mean-shift paths on the Gaussian KDE ($\\tau$ = {tau})", xlabel="$x_1$", ylabel="$x_2$",
       xlim=(-3.2, 3.2), ylim=(-3.2, 3.2), aspect="equal")
ax.legend(loc="lower left", fontsize=8)
ax2.plot(log_p_path.numpy(), color="tab:orange", alpha=0.5, lw=1)
ax2.set(title="$\\log p_\\tau(x_t)$ along every path: it never decreases", xlabel="step $t$",
        ylabel="KDE log-density $\\log p_\\tau(x_t)$")
ax2.grid(alpha=0.3)
plt.tight_layout()
plt.show()
distinct = torch.unique(torch.round(modes, decimals=3), dim=0)
print(f"{len(distinct)} distinct end points:\n{distinct.numpy()}")
print("largest decrease of log p along a step (rounding only):", float((log_p_path[:-1] - log_p_path[1:]).max()))

# %% [markdown]
# **What the figure shows.** Every start climbs the KDE (left) and stops at one of its three modes (the stars; the
# cluster of stars at each mode is one point, reached from many starts). On the right, the log-density along each
# path only goes up, as the Jensen argument promised, and flattens as the path reaches its mode. Starts far from all
# data make the longest first step: far away, the softmax puts almost all weight on the nearest few samples and the
# first step lands close to them, however far that is.
#
# **What can go wrong.** A smaller $\tau$ finds more modes, down to one per sample as $\tau \to 0$; a larger one merges
# them. A step of $\nabla \log p_\tau$ instead of $\tau^2 \nabla \log p_\tau$ (forgetting that the mean shift *is* the
# scaled score) is $1/\tau^2$ times the mean-shift step. At the temperatures of practice, $\tau < 1$, that
# overshoots (400 times too far at $\tau = 0.05$), and the density no longer increases: with this section's data,
# starts and $\tau = 0.45$, every one of the 49 paths goes down at some step and flies off. For $\tau > 1$ the
# same slip gives a *shorter* step, which still climbs, only slowly.
#
# ## 3. The drift field: attraction minus repulsion
#
# A generator gives samples $x$ of $q$; the data give samples $y^+$ of $p$. Lesson 01 showed that moving the samples
# along $\nabla \log p - \nabla \log q$ lowers $\mathrm{KL}(q\,\|\,p)$. With two mean shifts we can build that field
# from samples: the positives $y^+$ are data, the negatives $y^-$ are generated samples, and
#
# $$V(x) = V^+(x) - V^-(x), \qquad V^+(x) = \sum_j \tilde k(x, y^+_j)(y^+_j - x), \quad
#   V^-(x) = \sum_k \tilde k(x, y^-_k)(y^-_k - x),$$
#
# each $\tilde k$ normalised over its own set. This is the population form of the paper's field (Deng et al., 2026).
# Three properties follow at once:
#
# * **anti-symmetry**: swapping the roles of $y^+$ and $y^-$ negates $V$, i.e. $V_{p,q} = -V_{q,p}$;
# * **equilibrium**: if $y^+$ and $y^-$ are the same set (in any order), $V^+ = V^-$ and $V = 0$ everywhere: when the
#   generator matches the data, nothing moves;
# * **translation equivariance**: the $-x$ terms cancel, $V(x) = \sum_j \tilde k^+_j y^+_j - \sum_k \tilde k^-_k y^-_k$,
#   so shifting $x$, $y^+$ and $y^-$ together leaves $V$ unchanged.
#
# For the Gaussian kernel, section 1 gives $V = \tau^2 (\nabla \log p_\tau - \nabla \log q_\tau)$: a score difference
# between the two distributions, each smoothed by $\mathcal N(0, \tau^2 I)$. This is the reading of Lai et al. (2026):
# drifting is score matching between smoothed distributions.
#
# ### Exercise 3.3: `drift_field(x, y_pos, y_neg, tau, kernel="gaussian")`
#
# Return $V(x) = V^+(x) - V^-(x)$, $N \times D$, from two calls of your `mean_shift`. The checks compare with
# `drifting_min.drift_field`, test anti-symmetry, $V = 0$ when the sets coincide, the Gaussian score difference by
# autograd, and translation equivariance. Run `pytest lessons/03 -k ex3_3`.

# %%
check_exercise(ex, "3.3")

# %% [markdown]
# ## 4. The joint form: an average over pairs
#
# The paper also writes the field as a single expectation over a positive and a negative drawn together. Because
# $\sum_k \tilde k(x, y^-_k) = 1$, we may multiply $V^+$ by it, and likewise $V^-$ by $\sum_j \tilde k(x, y^+_j) = 1$:
#
# $$V^+(x) = \sum_j \sum_k \tilde k(x, y^+_j)\, \tilde k(x, y^-_k)\,(y^+_j - x), \qquad
#   V^-(x) = \sum_j \sum_k \tilde k(x, y^+_j)\, \tilde k(x, y^-_k)\,(y^-_k - x).$$
#
# Subtracting, the $x$ terms cancel pair by pair:
#
# $$V(x) = \sum_{j,k} \tilde k(x, y^+_j)\, \tilde k(x, y^-_k)\,(y^+_j - y^-_k)
#   = \frac{\mathbb{E}_{y^+ \sim p,\, y^- \sim q}\big[k(x, y^+)\, k(x, y^-)\,(y^+ - y^-)\big]}{Z_p(x)\, Z_q(x)},$$
#
# with $Z_p(x) = \mathbb{E}_p[k(x, y^+)]$ and $Z_q(x) = \mathbb{E}_q[k(x, y^-)]$. Read it as: draw a pair, weight it by
# how close both its members are to $x$, and move along the difference "data minus generated". Anti-symmetry is
# visible term by term: swapping the sets swaps $j$ and $k$ and flips $y^+_j - y^-_k$.
#
# ### Exercise 3.4: `drift_field_joint(x, y_pos, y_neg, tau, kernel="gaussian")`
#
# Compute the double sum as written: the two normalised kernels ($N \times M$ and $N \times K$), the
# $M \times K \times D$ tensor of differences $y^+_j - y^-_k$, and one `torch.einsum`. The checks compare with the
# two-mean-shift form, check that one positive and one negative give $V = y^+ - y^-$ at every query, and anti-symmetry.
# Run `pytest lessons/03 -k ex3_4`.

# %%
check_exercise(ex, "3.4")

# %%
y_pos = blobs([[-1.2, 0.8], [1.2, 0.8]], 0.3, 40, seed=5)  # data: two blobs
y_neg = blobs([[0.0, -0.8]], 0.45, 60, seed=6)  # generated samples: one blob in between
tau = 0.5
gq = torch.linspace(-2.4, 2.4, 13, dtype=torch.float64)
queries = torch.stack(torch.meshgrid(gq, gq, indexing="xy"), -1).reshape(-1, 2)
v_plus, v_minus = mean_shift(queries, y_pos, tau), mean_shift(queries, y_neg, tau)
v = drift_field(queries, y_pos, y_neg, tau)
print("max |V - (V+ - V-)|         =", float((v - (v_plus - v_minus)).abs().max()))
print("max |joint form - V|        =", float((drift_field_joint(queries, y_pos, y_neg, tau) - v).abs().max()))
print("max |V(p, q) + V(q, p)|     =", float((drift_field(queries, y_neg, y_pos, tau) + v).abs().max()))
print("max |V| with y- = y+        =", float(drift_field(queries, y_pos, y_pos.flip(0), tau).abs().max()))

fig, axes = plt.subplots(1, 3, figsize=(15, 5), sharey=True)
for ax, field, title, colour in zip(
    axes, (v_plus, v_minus, v), ("$V^+$: towards the data", "$V^-$: towards the generated samples",
                                 "$V = V^+ - V^-$: the drift"), ("tab:blue", "tab:red", "k")):
    ax.scatter(y_pos[:, 0], y_pos[:, 1], s=8, c="tab:blue", alpha=0.6, label="positives $y^+$ (data)")
    ax.scatter(y_neg[:, 0], y_neg[:, 1], s=8, c="tab:red", alpha=0.6, label="negatives $y^-$ (generated)")
    ax.quiver(queries[:, 0], queries[:, 1], field[:, 0], field[:, 1], color=colour, angles="xy", scale_units="xy",
              scale=3.0, width=0.005)
    ax.set(title=f"{title} ($\\tau$ = {tau}, Gaussian)", xlabel="$x_1$", aspect="equal",
           xlim=(-2.6, 2.6), ylim=(-2.6, 2.6))
axes[0].set_ylabel("$x_2$")
axes[0].legend(loc="lower left", fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# **What the figure shows.** Arrows are drawn at a third of their length. $V^+$ (left) points at the data from
# everywhere: near the data at the nearest blob, far away at its nearest samples (the Gaussian softmax of
# $-d^2/(2\tau^2)$ is sharp there). $V^-$ (middle) does the same for the generated samples. Their difference (right)
# is the drift: it splits the generated blob in two and carries each half up towards the data blob on its side.
# Far from both sets $V^+$ and $V^-$ are long but nearly parallel; their difference is about "nearest data sample
# minus nearest generated sample", a vector of moderate length that no longer depends on where the query is.
#
# ## 5. The Laplace kernel: a preconditioned score
#
# The paper trains with the Laplace kernel $\kappa(r) = e^{-r/\tau}$ of the plain distance $r = \|x - y\|$, not with
# the Gaussian. Its mean shift is no longer $\tau^2$ times the KDE score, but Lai et al. (2026) show that it is still a
# score, of a different smoothing, times a scalar. For any radial kernel $\kappa(r)$ define
#
# $$K(r) = \int_r^\infty s\, \kappa(s)\, ds, \qquad\text{so that}\qquad
#   \nabla_x K(\|x - y\|) = K'(r)\,\frac{x - y}{r} = -r\,\kappa(r)\,\frac{x - y}{r} = \kappa(r)\,(y - x).$$
#
# Sum over the data: $\nabla (p * K)(x) = \frac1M \sum_j \kappa(r_j)(y_j - x)$, which is the numerator of the mean
# shift. Dividing by the denominator $(p * \kappa)(x) = \frac1M \sum_j \kappa(r_j)$,
#
# $$V^+(x) = \frac{\nabla (p * K)(x)}{(p * \kappa)(x)} = \rho_p(x)\, \nabla_x \log (p * K)(x), \qquad
#   \rho_p(x) = \frac{(p * K)(x)}{(p * \kappa)(x)}.$$
#
# For the Gaussian kernel $K(r) = \tau^2 \kappa(r)$, so $\rho = \tau^2$ and we are back at section 1. For the
# Laplace kernel, integrating by parts, $K(r) = \tau (r + \tau)\, e^{-r/\tau}$, and
#
# $$\rho_p(x) = \frac{\sum_j \tau (r_j + \tau)\, e^{-r_j/\tau}}{\sum_j e^{-r_j/\tau}}
#   = \tau\,\big(\tau + \bar r_p(x)\big),
#   \qquad \bar r_p(x) = \sum_j \tilde k(x, y_j)\, r_j,$$
#
# the kernel-weighted mean distance from $x$ to the data. So the Laplace mean shift is a score with a step size that
# grows with the distance to the data: long steps far away, $\tau^2$ steps close to an isolated sample. The drift
# field $V = V^+ - V^-$ is then a preconditioned score difference plus a residual
# $(\rho_p - \rho_q)\nabla \log (q * K)$, which the unified-view paper bounds and finds small at low temperature and in
# high dimension.
#
# ### Exercise 3.5: `laplace_preconditioner(x, data, tau)`
#
# Return $\rho(x) = \tau(\tau + \bar r(x))$, shape $N \times 1$, with $\bar r$ the Laplace-softmax-weighted mean of the
# plain distances. The checks compare with `drifting_min.laplace_preconditioner`, verify
# $V^+ = \rho\, \nabla \log(p * K)$ with autograd, and test the limits (one data point: $\rho = \tau(\tau + r)$; on an
# isolated data point: $\rho = \tau^2$). Run `pytest lessons/03 -k ex3_5`.

# %%
check_exercise(ex, "3.5")

# %%
data_1d = blobs([[-1.0, 0.0], [1.5, 0.0]], 0.25, 40, seed=7)
tau_l = 0.3
line = torch.stack([torch.linspace(-5, 5, 401, dtype=torch.float64), torch.zeros(401, dtype=torch.float64)], 1)
rho = laplace_preconditioner(line, data_1d, tau_l)
x_grad = line.clone().requires_grad_(True)
(grad_log_pk,) = torch.autograd.grad(dm.laplace_log_potential(x_grad, data_1d, tau_l).sum(), x_grad)
err = (rho * grad_log_pk - mean_shift(line, data_1d, tau_l, "laplace")).abs().max()
print(f"max |rho * grad log(p*K) - V+ (Laplace)| = {float(err):.2e}")
gauss_norm = mean_shift(line, data_1d, tau_l, "gaussian").norm(dim=1)
lap_norm = mean_shift(line, data_1d, tau_l, "laplace").norm(dim=1)

fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
ax.plot(line[:, 0], rho[:, 0], label=r"Laplace: $\rho(x) = \tau(\tau + \bar r(x))$")
ax.axhline(tau_l**2, color="tab:green", ls="--", label=r"Gaussian: $\rho = \tau^2$")
ax.plot(data_1d[:, 0], np.zeros(len(data_1d)), "|", color="k", ms=12, label="data (first coordinate)")
ax.set(title=f"The preconditioner along the line $x_2 = 0$ ($\\tau$ = {tau_l})", xlabel="$x_1$", ylabel=r"$\rho(x)$")
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
ax2.plot(line[:, 0], lap_norm, label="Laplace $|V^+|$")
ax2.plot(line[:, 0], gauss_norm, "--", label="Gaussian $|V^+|$")
ax2.set(title="Length of the mean shift along the same line", xlabel="$x_1$", ylabel="$|V^+(x)|$")
ax2.legend(fontsize=8)
ax2.grid(alpha=0.3)
plt.tight_layout()
plt.show()

# %% [markdown]
# **What the figure shows.** Left: the Gaussian preconditioner is the constant $\tau^2$; the Laplace one stays a small
# multiple of $\tau^2$ inside a blob (where $\bar r$ is about the blob's radius), rises between the blobs, and grows
# linearly with the distance to the data outside, which is what lets a far-away sample take a step of its whole
# distance. Right: both mean shifts have similar lengths far from the data
# (both point at the nearest samples; the Laplace one, with its flatter weights, a little further), and they differ
# between and inside the blobs, where the two kernels weigh the samples differently.
#
# ## 6. Excluding a sample from its own negatives
#
# In training there is no separate set of negatives: the negatives are the generated batch itself, so each query
# $x_i$ is also the negative $y^-_i$. Its own term has the largest possible kernel value, $k(x_i, x_i) = 1$ (logit $0$),
# and no direction at all ($y^-_i - x_i = 0$): left in, it soaks up weight in the softmax and shrinks the repulsion
# from all the other samples, more so the lower the temperature. So each query is excluded from its own negatives by
# giving that entry a logit of exactly $-\infty$: its weight is then exactly zero, at every temperature. A "large"
# finite number is not the same thing: when all other logits are even lower (far-apart samples, a low temperature),
# the masked entry can still win the softmax.
#
# The mask has a price that is worth saying out loud: **with the mask, $V = 0$ for identical sets holds only for
# queries that are not among the negatives.** If the queries are the positives and the negatives at once, each query
# sees itself among the positives (at distance $0$) but not among the negatives, so $V^+ \ne V^-$ at that query.
# Anti-symmetry and the zero field at $y^+ = y^-$ remain exact for explicit negatives and for queries outside them.

# %%
x_same = blobs([[0.0, 0.0]], 1.0, 12, seed=8)
outside = blobs([[0.5, 0.5]], 1.0, 4, seed=9)
print("queries outside the negatives, y- = y+:  max |V| =",
      float(dm.batch_drift_field(outside, x_same, x_same.clone(), 0.5).abs().max()))
print("queries are the negatives (masked), y+ = x:  max |V| =",
      float(dm.batch_drift_field(x_same, x_same, None, 0.5).abs().max()))

# %% [markdown]
# ## 7. The batch form: the "double softmax" with cross-weighting
#
# The paper's Algorithm 2 computes the field for a batch in one pass, over all targets at once. With $K$ negatives and
# $M$ positives, form the $N \times (K + M)$ logits over the concatenated targets $[\,y^- \mid y^+\,]$,
# $l_{ij} = \log k(x_i, y_j)$ ($-\|x_i - y_j\|/\tau$ for the Laplace kernel), with $l_{ii} = -\infty$ in the
# negative block when the queries are their own negatives. Then
#
# $$A = \sqrt{\operatorname{softmax}_j(l) \odot \operatorname{softmax}_i(l)}, \qquad A^- = A_{:,:K},\; A^+ = A_{:,K:},$$
#
# $$W^+ = A^+ \odot \operatorname{rowsum}(A^-), \qquad W^- = A^- \odot \operatorname{rowsum}(A^+), \qquad
#   V = W^+ y^+ - W^- y^- .$$
#
# * The **softmax over the targets** ($j$, along a row) is the $\tilde k$ of the population form, taken over all
#   targets together. The **softmax over the queries** ($i$, down a column) asks, for each target, which queries it
#   is closest to: a target shared by many queries has its weight shared between them. The geometric mean keeps both.
#   In the paper's ablation (ImageNet 256, B/2) both softmaxes gave 8.46 FID, the softmax over targets alone 8.92,
#   and no normalisation 10.54.
# * **Cross-weighting** makes the rows of $W^+$ and $W^-$ have equal sums,
#   $\operatorname{rowsum}(W^+) = \operatorname{rowsum}(A^+)\operatorname{rowsum}(A^-) = \operatorname{rowsum}(W^-)$,
#   so $W^+(y^+ - x) - W^-(y^- - x) = W^+ y^+ - W^- y^-$: the $-x$ terms cancel and need not be written. It is the
#   joint form of section 4 again: $W^+ y^+ - W^- y^- = \sum_{j,k} A^+_{ij} A^-_{ik}\,(y^+_j - y^-_k)$. With the softmax
#   over targets alone, $A^+_{ij} A^-_{ik} = k^+_{ij} k^-_{ik} / (S_p + S_q)^2$ with the kernel sums
#   $S_p = \sum_j k^+_{ij}$ and $S_q = \sum_k k^-_{ik}$, so the batch field is the population field scaled by
#   $S_p S_q / (S_p + S_q)^2 \le 1/4$ at each query (the cell below checks it).
# * Computing $\sqrt{\cdot}$ of a product of two softmaxes can underflow at low temperature; take it in log space,
#   $A = \exp\big((\log\operatorname{softmax}_j l + \log\operatorname{softmax}_i l)/2\big)$, where
#   $\exp(-\infty) = 0$ handles the mask exactly.
#
# ### Exercise 3.6: `batch_drift_field(x, y_pos, y_neg=None, tau=0.05, kernel="laplace")`
#
# Return $V$, $N \times D$, as above; `y_neg=None` means "the queries are their own negatives", with the diagonal of the
# negative block set to $-\infty$; explicit negatives are not masked. The field is a constant: compute it from
# `x.detach()`. The checks compare with `drifting_min.batch_drift_field` (with and without explicit negatives, both
# kernels), test translation equivariance (the $-x$ terms cancel), anti-symmetry and the zero field for explicit
# negatives, and an exact mask at a scale where a large finite logit fails. Run `pytest lessons/03 -k ex3_6`.

# %%
check_exercise(ex, "3.6")

# %%
n_q, m_p, tau_b = 8, 10, 0.6
xb = blobs([[0.0, 0.0]], 0.8, n_q, seed=10)
yb = blobs([[1.0, 0.5]], 0.8, m_p, seed=11)
v_batch = batch_drift_field(xb, yb, None, tau_b, "laplace")
print("max |batch field used here - drifting_min's| =",
      float((v_batch - dm.batch_drift_field(xb, yb, None, tau_b, "laplace")).abs().max()))

# The pieces, for the picture (the same computation, spelled out).
logits = dm.kernel_logits(xb, torch.cat([xb, yb]), tau_b, "laplace")
logits[:, :n_q] = logits[:, :n_q].masked_fill(torch.eye(n_q, dtype=torch.bool), float("-inf"))
soft_row, soft_col = torch.softmax(logits, dim=1), torch.softmax(logits, dim=0)
affinity = (soft_row * soft_col).sqrt()
a_neg, a_pos = affinity[:, :n_q], affinity[:, n_q:]
w_pos, w_neg = a_pos * a_neg.sum(1, keepdim=True), a_neg * a_pos.sum(1, keepdim=True)
print("max |rowsum(W+) - rowsum(W-)| =", float((w_pos.sum(1) - w_neg.sum(1)).abs().max()))

# Softmax over targets only: the population field times S_p S_q / (S_p + S_q)^2 (explicit negatives, no mask).
yn = blobs([[-0.5, 0.5]], 0.8, 7, seed=12)
s_p = dm.kernel_matrix(xb, yb, tau_b, "laplace").sum(1, keepdim=True)
s_q = dm.kernel_matrix(xb, yn, tau_b, "laplace").sum(1, keepdim=True)
targets_only = dm.batch_drift_field(xb, yb, yn, tau_b, "laplace", normalisation="targets")
scaled_population = s_p * s_q / (s_p + s_q) ** 2 * dm.drift_field(xb, yb, yn, tau_b, "laplace")
print("max |targets-only batch field - scaled population field| =",
      float((targets_only - scaled_population).abs().max()))

fig, axes = plt.subplots(1, 4, figsize=(17, 4.4))
panels = [(soft_row, "softmax over targets (rows)"), (soft_col, "softmax over queries (columns)"),
          (affinity, "$A$ = geometric mean"), (torch.cat([w_neg, w_pos], 1), "$[W^- \\mid W^+]$ after cross-weighting")]
for ax, (mat, title) in zip(axes, panels):
    shown = np.ma.masked_where(mat.numpy() == 0, mat.numpy())
    im = ax.imshow(shown, cmap="viridis", aspect="auto")
    ax.axvline(n_q - 0.5, color="w", lw=2)
    ax.set(title=title, xlabel=f"targets: negatives 0-{n_q - 1} | positives {n_q}-{n_q + m_p - 1}",
           ylabel="query $i$")
    fig.colorbar(im, ax=ax, fraction=0.046)
fig.suptitle(f"Double-softmax affinity, Laplace kernel, $\\tau$ = {tau_b}; the white diagonal is the self-mask "
             "(weight exactly 0)")
plt.tight_layout()
plt.show()

# %% [markdown]
# **What the figure shows.** Each panel is a query-by-target matrix, negatives (the queries themselves) left of the
# white line, positives right of it. The masked diagonal is blank: weight exactly zero. The row softmax is
# dominated by each query's nearest targets; the column softmax by each target's nearest queries; their geometric
# mean $A$ keeps the pairs that are close *both ways*. After cross-weighting, every row of $W^+$ has the same sum as
# the same row of $W^-$ (printed above, to rounding), which is why $V$ needs no $-x$ term.
#
# **What can go wrong.** The softmax along the wrong axis (a column instead of a row) gives a field of the right
# shape and nonsense values; forgetting the mask lets every query repel itself with the largest weight; a large
# finite number instead of $-\infty$ looks fine at moderate scales and fails when all logits are far below zero;
# forgetting the cross-weighting breaks the cancellation of the $-x$ terms, so the field is no longer translation
# equivariant; the squared distance with the Laplace kernel silently turns it into a Gaussian with a different
# temperature. The graded checks include one test for each of these.
#
# ## What comes next
#
# We now have the field; [lesson 04](../04/) turns it into a loss. Regressing each sample onto a frozen, drifted copy
# of itself, $L = \frac1N \sum_i \|x_i - \operatorname{stopgrad}(x_i + V_i)\|^2$, has value $\frac1N\sum_i\|V_i\|^2$
# and gradient $-2V_i/N$: a gradient step moves each generated sample along its drift, and through the generator,
# the generator's weights. Lesson 04 also shows what breaks when anti-symmetry is broken (attraction only, scaled
# repulsion), the reason this lesson insisted on it.
#
# **References.** K. Fukunaga and L. Hostetler, "The estimation of the gradient of a density function, with
# applications in pattern recognition", *IEEE Trans. Information Theory*, 1975. D. Comaniciu and P. Meer, "Mean shift:
# a robust approach toward feature space analysis", *IEEE TPAMI*, 2002. X. Li, Z. Hu and F. Wu, "A note on the
# convergence of the mean shift", *Pattern Recognition*, 2007. Deng, Li, Li, Du and He, "Generative Modeling
# via Drifting", 2026, [arXiv 2602.04770](https://arxiv.org/abs/2602.04770). Lai, Nguyen, Murata, Takida, Uesaka,
# Mitsufuji, Ermon and Tao, "A Unified View of Drifting and Score-Based Models", 2026,
# [arXiv 2603.07514](https://arxiv.org/abs/2603.07514).
