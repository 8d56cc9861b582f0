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
# # Lesson 04: The drift loss
#
# **Where we are.** [Lesson 03](../03/) built the drift field $V = V^+ - V^-$: for every generated sample $x_i$, a
# vector that points towards the data $y^+$ and away from the other generated samples $y^-$, anti-symmetric, and
# zero when the two sets are the same. A field moves *samples*; a generator $x = f_\theta(\varepsilon)$ has
# *weights*. This lesson turns the field into a loss whose gradient moves the weights so that every sample follows
# its drift, which is the whole training objective of "Generative Modeling via Drifting" (Deng et al., 2026,
# [arXiv 2602.04770](https://arxiv.org/abs/2602.04770)):
#
# $$\mathcal L = \frac{1}{N} \sum_{i=1}^{N} \big\| x_i - \mathrm{stopgrad}(x_i + V_i) \big\|^2 .$$
#
# **Objectives.** By the end you can
#
# 1. derive the value $\frac1N \sum_i \|V_i\|^2$ and the gradient $-2V_i/N$ of the drift loss, and write it with a
#    stop-gradient that autograd respects (exercise 4.1);
# 2. say why the stop-gradient is not optional: without it the loss is a different, costlier objective;
# 3. drift particles with no network at all, the simplest "generator" (exercise 4.3);
# 4. combine several temperatures with a per-temperature normalisation (exercise 4.2), and explain why the loss
#    value then stops measuring progress, so that the raw $\|V\|^2$ is what one logs;
# 5. write one training step of a generator and train a small one on a 2-D toy (exercise 4.4);
# 6. show what breaks when the field is no longer anti-symmetric: attraction only, or scaled repulsion
#    (exercise 4.5).
#
# **Time.** About 90 minutes: 35 to read and derive, 55 for the five exercises.
#
# **What right looks like.** Fill in `lessons/04/exercises.py` and run `pytest lessons/04`. Each exercise has several
# graded checks; when one is done its scoreboard line reads `passed`, and the run ends with
# `5 of 5 exercises complete`. In the notebook, the cell under each exercise's description runs that exercise's checks
# and prints its grade: all checks passed, not implemented yet, or the first failure with the property that broke and
# a hint. The demos below print `[demo] using your ...` once your function works; before that they use the reference
# (`drifting_min`, or the worked solution where `drifting_min` has no such function) and say so.
#
# **Notation.** Generated samples $x$ ($N \times D$), data (positives) $y^+$ ($M \times D$), negatives $y^-$,
# temperature $\tau$, drift $V_i = V(x_i)$. Wherever a field from lesson 03 is needed we use its batch form:
# the Laplace kernel $k(x, y) = \exp(-\|x - y\|/\tau)$, the double softmax with cross-weighting, and the generated
# samples as their own negatives, each excluded from its own row (`dm.batch_drift_field(x, y_pos, None, tau)`).

# %%
import time

import matplotlib.pyplot as plt
import torch

import drifting_min as dm
from course import check_exercise, learner_or_reference, load_exercises
from drifting_min.toys.metrics import energy_distance  # 2 E|x - y| - E|x - x'| - E|y - y'| (lesson 05)

torch.set_num_threads(1)  # small problems: one thread is as fast, and the timings below are steadier
ex = load_exercises("04")
solution = load_exercises("04", solutions=True)  # the fallback where drifting_min has no such function


def dm_multi_temperature_drift(x, y_pos, taus):
    """drifting_min's version with the queries as their own negatives (y_neg = None)."""
    return dm.multi_temperature_drift(x, y_pos, None, taus)


drift_loss = learner_or_reference(ex.drift_loss, dm.drift_regression_loss)
multi_temperature_drift = learner_or_reference(ex.multi_temperature_drift, dm_multi_temperature_drift)
drift_particles = learner_or_reference(ex.drift_particles, solution.drift_particles)
generator_step = learner_or_reference(ex.generator_step, solution.generator_step)
unbalanced_drift = learner_or_reference(ex.unbalanced_drift, solution.unbalanced_drift)


def ring_of_blobs(n: int, modes: int = 8, radius: float = 2.0, std: float = 0.15, seed: int = 0) -> torch.Tensor:
    """The 2-D toy of this lesson: n points spread over `modes` Gaussian blobs on a circle."""
    gen = torch.Generator().manual_seed(seed)
    angle = torch.randint(0, modes, (n,), generator=gen).float() * (2 * torch.pi / modes)
    centres = torch.stack([radius * angle.cos(), radius * angle.sin()], dim=1)
    return centres + std * torch.randn(n, 2, generator=gen)


data = ring_of_blobs(4096)

# %% [markdown]
# ## 1. The loss: its value and its gradient
#
# Treat the drifted sample $x_i + V_i$ as a *frozen target*: a point where $x_i$ should be one step from now. The
# drift loss is the squared distance of each sample to its target, summed over the $D$ coordinates and averaged
# over the $N$ samples. The stop-gradient says that autograd must treat the target as a constant: call it
# $t_i = \mathrm{stopgrad}(x_i + V_i)$, a number that happens to equal $x_i + V_i$.
#
# **The value.** Numerically $t_i = x_i + V_i$, so
#
# $$\mathcal L = \frac1N \sum_i \|x_i - t_i\|^2 = \frac1N \sum_i \|x_i - x_i - V_i\|^2 = \frac1N \sum_i \|V_i\|^2 .$$
#
# **The gradient.** Only the first $x_i$ carries gradient; $t_i$ is a constant and $x_i$ appears in no other term:
#
# $$\frac{\partial \mathcal L}{\partial x_i} = \frac{2}{N}\,(x_i - t_i) = \frac{2}{N}\,(x_i - x_i - V_i)
#   = -\frac{2 V_i}{N}.$$
#
# So one step of gradient descent with learning rate $\eta$ moves each sample by
# $-\eta\, \partial\mathcal L / \partial x_i = \frac{2\eta}{N} V_i$: exactly along its drift. The loss is a
# regression that asks every sample to be where its drift says it should go. (The course always sums over the
# dimensions and averages over the samples; a mean over the dimensions as well divides both the value and the
# gradient by $D$.)
#
# ### Exercise 4.1: `drift_loss(x, drift)`
#
# Return the scalar $\mathcal L$ for samples `x` and drift `drift` (both $N \times D$), with the target
# `(x + drift)` detached. The checks compare with `dm.drift_regression_loss` and with $\frac1N\sum\|V_i\|^2$, check the
# gradient $-2V/N$ with autograd, and pass a drift that was *computed from x with gradients on*: the gradient must
# still be exactly $-2V/N$, and a drift that is a leaf tensor must receive no gradient. Run them with
# `pytest lessons/04 -k ex4_1`.

# %%
check_exercise(ex, "4.1")

# %%
gen = torch.Generator().manual_seed(0)
x = torch.randn(6, 2, generator=gen, dtype=torch.float64, requires_grad=True)
v = torch.randn(6, 2, generator=gen, dtype=torch.float64)
loss = drift_loss(x, v)
loss.backward()
print(f"loss            {loss.item():.6f}")
print(f"mean |V|^2      {v.square().sum(1).mean().item():.6f}")
print(f"max |grad + 2V/N| = {(x.grad + 2 * v / 6).abs().max().item():.2e}  (0 up to rounding)")

# %% [markdown]
# ## 2. Why the stop-gradient
#
# In training, $V$ is a function of the generated samples: the kernel weights depend on where $x_i$ is, and the
# samples are also the negatives of every other sample. Forget the stop-gradient and the loss is still, in value,
# $\frac1N\sum_i \|V(x_i)\|^2$, but autograd now differentiates it *through* $V$:
#
# $$
# \frac{\partial}{\partial x_k}\, \frac1N \sum_i \|V_i\|^2
# = \frac{2}{N} \sum_{i} \Big(\frac{\partial V_i}{\partial x_k}\Big)^{\!\top} V_i .
# $$
#
# (If the target were written $x_i + V_i$ without the stop-gradient, $x_i - (x_i + V_i) = -V_i$ and the direct
# term cancels: only this through-$V$ term is left.) Three things change.
#
# - **The direction.** The update is no longer "move along $V$": each sample is pushed by a sum over all samples
#   of Jacobian-transposed drifts. It vanishes wherever $J^\top V = 0$, also at configurations where $V \neq 0$,
#   so it has stationary points that are not $q = p$.
# - **The objective.** Minimising $\|V\|^2$ through $V$ rewards making the field *small* by any means, including
#   rearranging the samples so that the smoothed densities match only where the samples sit; it is a different
#   objective that vanishes wherever $V$ does. With the stop-gradient, the generator follows the field of lesson 01,
#   which is zero everywhere only at $q = p$. (Zero at every generated sample is a weaker thing: lesson 01,
#   section 4, shows distributions $q \neq p$ with $V = 0$ at every sample of $q$, such as a batch collapsed on a
#   mode of $p_\tau$.)
# - **The cost.** The graph of the $N \times (N + M)$ kernel matrix must be kept and differentiated (second
#   derivatives of the kernel appear), at every temperature and, in lesson 06, for every feature. With the
#   stop-gradient the field is computed under `torch.no_grad()`: no graph, no second derivatives.
#
# The cell below measures both gradients on a small batch, with the population field of lesson 03 (which,
# unlike the batch form, keeps its graph) and the samples as their own negatives.

# %%
gen = torch.Generator().manual_seed(1)
y_small = ring_of_blobs(256, seed=1).double()
x_small = (0.7 * torch.randn(256, 2, generator=gen, dtype=torch.float64)).requires_grad_(True)
tau = 0.5

start = time.perf_counter()
with torch.no_grad():
    v_const = dm.drift_field(x_small, y_small, x_small, tau, "laplace")
drift_loss(x_small, v_const).backward()
grad_stop, seconds_stop = x_small.grad.clone(), time.perf_counter() - start

x_small.grad = None
start = time.perf_counter()
v_graph = dm.drift_field(x_small, y_small, x_small, tau, "laplace")  # V keeps its graph: no stop-gradient
v_graph.square().sum(1).mean().backward()
grad_through, seconds_through = x_small.grad.clone(), time.perf_counter() - start

cosine = torch.nn.functional.cosine_similarity(-grad_stop, -grad_through, dim=1)
gap = (grad_stop + 2 * v_const / 256).abs().max()
print(f"stop-gradient: the step direction is exactly V (max |grad + 2V/N| = {gap:.1e})")
print(f"through V: per-sample cosine with V, median {cosine.median():.2f}; "
      f"below 0 for {(cosine < 0).float().mean():.0%} of the samples")
print(f"time: {seconds_stop * 1e3:.1f} ms with the stop-gradient, {seconds_through * 1e3:.1f} ms through V "
      f"({seconds_through / seconds_stop:.1f}x)")

# %% [markdown]
# For a sizeable fraction of the samples the gradient through $V$ points away from the drift: it is not a noisier
# version of the same update but another update. It also costs more, in time and above all in memory (every
# kernel matrix and its graph must be kept for the backward pass), and the gap grows with the batch, the number
# of temperatures and the number of features.
#
# ## 3. Particles with no network at all
#
# Take the simplest generator there is: one free parameter per sample, $x_i = \theta_i$. Then
# $\partial \mathcal L / \partial \theta_i = -2V_i/N$, and gradient descent with learning rate $\eta$ is the
# explicit Euler step $x \leftarrow x + s\, V(x)$ with step $s = 2\eta/N$. Repeated, it drifts particles towards
# the data: the discrete version of the flow of lesson 01, with the sample-based field of lesson 03. The field must
# be recomputed at every step, because the negatives are the particles themselves and move with them.
#
# ### Exercise 4.3: `drift_particles(x0, y_pos, tau, step, n_steps)`
#
# Return the trajectory, shape $(n\_steps + 1) \times N \times D$ with entry 0 equal to `x0`: at each step
# $x \leftarrow x + s\, V(x)$ with $V$ = `dm.batch_drift_field(x, y_pos, None, tau)` (the raw field, not
# normalised). Do not modify `x0` and do not update in place (every stored state would then be the same tensor).
# The checks compare with a reference loop and check that the energy distance to the data falls below a tenth of
# its starting value. Run them with `pytest lessons/04 -k ex4_3`.

# %%
check_exercise(ex, "4.3")

# %% [markdown]
# The energy distance $2\,\mathbb E\|x - y\| - \mathbb E\|x - x'\| - \mathbb E\|y - y'\|$ is zero exactly when the
# two distributions are equal; it is the progress measure of this lesson's figures.

# %%
torch.manual_seed(2)
y_batch = data[torch.randperm(len(data))[:256]]
x_start = 0.3 * torch.randn(256, 2)
path = drift_particles(x_start, y_batch, 0.5, 1.0, 80)
distances = [energy_distance(state, y_batch) for state in path]

fig, axes = plt.subplots(1, 3, figsize=(13, 4))
for ax, t in zip(axes[:2], (0, 80)):
    ax.scatter(*y_batch.T, s=4, c="tab:gray", alpha=0.5, label="data $y^+$")
    ax.scatter(*path[t].T, s=5, c="tab:blue", label="particles $x$")
    ax.set(title=f"after {t} steps", xlabel="$x_1$", ylabel="$x_2$", aspect="equal", xlim=(-3, 3), ylim=(-3, 3))
    ax.legend(loc="upper right", fontsize=8)
axes[2].semilogy(distances)
axes[2].set(title="energy distance to the data", xlabel="step", ylabel="energy distance (log scale)")
fig.suptitle(r"Particles drifted along $V$ ($\tau = 0.5$, step 1, Laplace kernel, batch form)")
fig.tight_layout()
plt.show()

# %% [markdown]
# **What the figure shows.** A blob at the origin spreads onto the eight modes; the energy distance falls by three
# orders of magnitude. Nothing here was trained: this is the field alone. A generator only has to learn to
# reproduce, for fresh noise, what these particles do.
#
# **What can go wrong.** A step too large overshoots (the particles oscillate around the modes and the distance
# grows again); a field computed once at $x_0$ and reused sends every particle in a straight line past the data.
# The raw field's scale also depends on the temperature and on the batch size (the double softmax spreads weight
# over $N$ queries), so a step size tuned for one setting does not carry over: the next section fixes this.
#
# ## 4. Several temperatures, each normalised
#
# One temperature sees one scale: a small $\tau$ resolves the fine structure near the data but gives almost no
# pull to samples far from it (the kernel weights are all tiny and alike); a large $\tau$ pulls from afar but
# blurs the modes. The paper sums fields at several temperatures, $\tau \in \{0.02, 0.05, 0.2\}$ on its normalised
# features, and reports 10.62, 8.67 and 8.96 FID for each alone against 8.46 for the three together
# (ImageNet 256). Summed raw, the fields would be dominated by whichever temperature happens to be largest, so each
# is first divided by its root mean square over samples *and* dimensions:
#
# $$V = \sum_{\tau} \frac{V_\tau}{\mathrm{rms}(V_\tau)}, \qquad
#   \mathrm{rms}(V_\tau) = \Big(\frac{1}{N D} \sum_{i=1}^{N} \sum_{d=1}^{D} V_{\tau, id}^2\Big)^{1/2}.$$
#
# Each normalised term has mean square exactly 1, whatever the raw scale. That fixes the size of the field in
# *absolute* units, and it changes how a step size behaves under a change of units. Multiply the data, the samples
# and the temperatures by the same $c$: the kernel weights do not change (every distance and every $\tau$ grew by
# $c$), so each raw Laplace-kernel field $V_\tau$ grows by $c$, its rms too, and the normalised sum $V$ is exactly
# the same vectors as before. The data, though, are now $c$ times larger, so the step $x \leftarrow x + s\,V$
# covers a fraction of the data's extent $c$ times smaller: relative to the data, the step shrinks as $1/c$. (The
# raw field does the opposite: it grows with the data, so a step along it is the same fraction of the data at any
# scale.) A step size or learning rate tuned on data of one size therefore does not carry over to data ten times
# larger, and the temperatures do not either. This is why the paper rescales its features so that typical
# distances have a fixed size (lesson 06) before it applies its temperatures and its normalised field.
#
# ### Exercise 4.2: `multi_temperature_drift(x, y_pos, taus)`
#
# Return `(V, raw)`: the summed normalised field ($N \times D$) and, for each temperature in order, the raw
# $\frac1N\sum_i \|V_{\tau, i}\|^2$ *before* normalisation as a Python float. Use `dm.batch_drift_field(x, y_pos,
# None, tau)` for $V_\tau$ and guard the division with `clamp_min(1e-12)`. The checks compare with
# `dm.multi_temperature_drift(x, y_pos, None, taus)`, check that a single temperature gives mean square 1 and the
# same temperature twice gives twice the field, and check that scaling data, samples and temperatures by $c$
# leaves the normalised field unchanged (with the raw energies scaling by $c^2$). Run them with
# `pytest lessons/04 -k ex4_2`.

# %%
check_exercise(ex, "4.2")

# %% [markdown]
# The paper's temperatures are meant for features rescaled so that typical distances are about 1 (lesson 06). On
# the raw coordinates of our toy (blobs of width 0.15 on a circle of radius 2) we use $\tau = 0.1, 0.3, 1$ instead.
# The cell compares the particles of section 3 before and after their drift.

# %%
taus = (0.1, 0.3, 1.0)
x_far = 0.3 * torch.randn(256, 2)
for label, xs in (("particles at the start", x_far), ("particles after drifting", path[-1])):
    v_sum, raw = multi_temperature_drift(xs, y_batch, taus)
    energies = ", ".join(f"tau={t}: {r:.2e}" for t, r in zip(taus, raw))
    print(f"{label:26s} raw (1/N) sum |V_tau|^2 -> {energies}")
    print(f"{'':26s} loss of the normalised field {v_sum.square().sum(1).mean():.2f}")

# %% [markdown]
# ## 5. The loss value is not a progress measure
#
# In the cell above, the raw energies of the two larger temperatures fell a thousandfold as the particles reached
# the data; the loss of the normalised field went from about 15 to 5, a change of another kind, unrelated to the
# distance to the data. The reason is arithmetic. Write
# $u_\tau = V_\tau / \mathrm{rms}(V_\tau)$, each with $\frac{1}{ND}\sum_{i,d} u_{\tau,id}^2 = 1$. Then
#
# $$\mathcal L = \frac1N \sum_i \Big\| \sum_\tau u_{\tau, i} \Big\|^2
#   = D \sum_{\tau, \tau'} \frac{1}{ND} \sum_{i, d} u_{\tau, id}\, u_{\tau', id},$$
#
# a sum of $T^2$ correlations, each between $-1$ and $1$ and exactly 1 on the diagonal. With one temperature the
# loss is *exactly* $D$ at every step of training, however good or bad the generator; with $T$ temperatures it
# lies between 0 and $T^2 D$ and only says how well the temperatures agree on a direction. The number worth
# logging is the raw $\frac1N \sum_i \|V_{\tau,i}\|^2$ of each
# temperature before normalisation (and, for images, FID).
#
# Below, the particles of section 3 are drifted again, this time as a "generator" with one parameter per sample,
# trained by plain gradient descent on the drift loss with the three normalised temperatures: the exercise 4.4
# step, with a generator that ignores its noise.


# %%
class Particles(torch.nn.Module):
    """A generator with no network: its output is its parameter, one row per sample (the noise is ignored)."""

    def __init__(self, x0: torch.Tensor):
        super().__init__()
        self.x = torch.nn.Parameter(x0.clone())

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        return self.x


torch.manual_seed(3)
particles = Particles(0.3 * torch.randn(256, 2))
step = 0.01  # how far the normalised field moves a sample per update: SGD with lr = step * N / 2
optimizer = torch.optim.SGD(particles.parameters(), lr=step * 256 / 2)
losses, raws, ed = [], [], []
for _ in range(150):
    loss_value, raw = generator_step(particles, optimizer, None, y_batch, taus)
    losses.append(loss_value)
    raws.append(raw)
    ed.append(energy_distance(particles.x.detach(), y_batch))

fig, axes = plt.subplots(1, 2, figsize=(12, 4))
axes[0].plot(losses, c="k", label=r"loss $\frac{1}{N}\sum_i \|V_i\|^2$ (normalised, summed)")
axes[0].axhline(len(taus) ** 2 * 2, ls=":", c="gray", label=r"upper bound $T^2 D = 18$")
axes[0].axhline(2, ls="--", c="gray", label=r"one temperature: exactly $D = 2$")
axes[0].set(title="the loss value", xlabel="step", ylabel="loss", ylim=(0, 20))
axes[0].legend(fontsize=8, loc="lower left")
for j, t in enumerate(taus):
    axes[1].semilogy([r[j] for r in raws], label=rf"raw $\frac{{1}}{{N}}\sum_i \|V_{{\tau,i}}\|^2$, $\tau = {t}$")
axes[1].semilogy(ed, c="k", ls="--", label="energy distance to the data")
axes[1].set(title="what to log instead", xlabel="step", ylabel="value (log scale)")
axes[1].legend(fontsize=8)
fig.suptitle("Particles drifted with three normalised temperatures: the loss ends near where it started")
fig.tight_layout()
plt.show()

# %% [markdown]
# **What the figure shows.** Left: the loss starts near 15, falls to about 1 around step 80, just as the particles
# land on the blobs (the three temperatures then disagree on a direction, so their normalised fields partly
# cancel), and climbs back to nearly its starting value while the particles sit on the data. It stays below $T^2 D = 18$
# and says nothing about the distance to the data. Right: the energy distance falls by three orders of magnitude and the
# raw energies of the two larger temperatures by more than two; those are the curves that show progress. (The smallest
# temperature's raw field is tiny throughout: far from the data its kernel weights are all alike, which is why it
# cannot be used alone.) The zig-zag after step 85 comes from the constant step: the normalised field never
# shrinks, so the particles hop back and forth around the data by about one step; training uses a decaying
# learning rate, or a generator whose outputs average many such updates.
#
# ## 6. One training step of a generator
#
# Now let $x_i = f_\theta(\varepsilon_i)$. By the chain rule and section 1,
#
# $$\nabla_\theta \mathcal L = \sum_i \Big(\frac{\partial f_\theta(\varepsilon_i)}{\partial \theta}\Big)^{\!\top}
#   \frac{\partial \mathcal L}{\partial x_i}
#   = -\frac{2}{N} \sum_i \Big(\frac{\partial f_\theta(\varepsilon_i)}{\partial \theta}\Big)^{\!\top} V_i ,$$
#
# the weight update that moves each output, to first order, along its drift (through the network's coupling
# between samples, which also moves the outputs for noise not in the batch: that is how it generalises). For a
# linear generator $x = \varepsilon W^\top$ this is $\nabla_W \mathcal L = -\frac2N V^\top \varepsilon$, a formula
# the checks use. One step, in code:
#
# 1. `optimizer.zero_grad()`: gradients from the previous step would otherwise be added to this one;
# 2. `x = generator(noise)`;
# 3. `V, raw = multi_temperature_drift(x, y_pos, taus)` under `torch.no_grad()`: the field is a target;
# 4. `loss = drift_loss(x, V)`, `loss.backward()`, `optimizer.step()`.
#
# ### Exercise 4.4: `generator_step(generator, optimizer, noise, y_pos, taus)`
#
# Do those four things with your exercises 4.1 and 4.2, and return `(loss, raw)`: the loss value before the
# step as a Python float, and the raw energies of exercise 4.2. The checks step a small network and a copy of it
# (the copy with `dm.drifting_loss`) and compare every parameter afterwards, starting from stale gradients that a
# correct step clears; they check a linear generator against the closed form above, and that with one temperature
# the returned loss is exactly $D$. Run them with `pytest lessons/04 -k ex4_4`.

# %%
check_exercise(ex, "4.4")

# %% [markdown]
# Below: a small MLP ($\varepsilon \in \mathbb R^8$, two hidden layers of 128, SiLU) trained for 400 steps with
# Adam (learning rate $10^{-2}$ with a cosine decay to 0) on the eight blobs, 256 generated samples and 256 data
# points a step, temperatures $0.1, 0.3, 1$.

# %%
torch.manual_seed(4)
generator = torch.nn.Sequential(
    torch.nn.Linear(8, 128), torch.nn.SiLU(), torch.nn.Linear(128, 128), torch.nn.SiLU(), torch.nn.Linear(128, 2)
)
n_steps = 400
optimizer = torch.optim.Adam(generator.parameters(), lr=1e-2)
schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, n_steps)
eval_noise, eval_data = torch.randn(1024, 8), data[:1024]
snapshots, history = {}, {"step": [], "raw": [], "ed": []}
start = time.perf_counter()
for k in range(n_steps + 1):
    if k in (0, 60, n_steps):
        with torch.no_grad():
            snapshots[k] = generator(eval_noise)
    if k % 10 == 0:
        with torch.no_grad():
            history["ed"].append(energy_distance(generator(eval_noise), eval_data))
        history["step"].append(k)
    if k == n_steps:
        break
    y_step = data[torch.randint(0, len(data), (256,))]
    loss_value, raw = generator_step(generator, optimizer, torch.randn(256, 8), y_step, taus)
    schedule.step()
    if k % 10 == 0:
        history["raw"].append(sum(raw))
seconds = time.perf_counter() - start
print(f"{n_steps} steps in {seconds:.1f} s; energy distance {history['ed'][0]:.3f} -> {history['ed'][-1]:.4f}")

fig, axes = plt.subplots(1, 4, figsize=(17, 4))
for ax, k in zip(axes[:3], (0, 60, n_steps)):
    ax.scatter(*eval_data.T, s=3, c="tab:gray", alpha=0.4, label="data")
    ax.scatter(*snapshots[k].T, s=3, c="tab:red", alpha=0.6, label=r"$f_\theta(\varepsilon)$")
    ax.set(title=f"generator after {k} steps", xlabel="$x_1$", ylabel="$x_2$", aspect="equal",
           xlim=(-3, 3), ylim=(-3, 3))
    ax.legend(loc="upper right", fontsize=8)
axes[3].semilogy(history["step"], history["ed"], c="k", label="energy distance (fresh samples)")
axes[3].semilogy(history["step"][:-1], history["raw"], c="tab:blue",
                 label=r"raw field energy (sum over $\tau$)")
axes[3].set(title="progress", xlabel="step", ylabel="value (log scale)")
axes[3].legend(fontsize=8, loc="upper right")
fig.suptitle("A tiny generator trained with the drift loss (one network evaluation per sample)")
fig.tight_layout()
plt.show()

# %% [markdown]
# **What the figure shows.** From a small cloud at the origin, the generator overshoots into a wide cloud (step 60),
# then gathers most of its samples onto a ring through the eight blobs, densest at the blobs; the energy
# distance, measured on noise it never trained on, drops by two orders of magnitude. It is not finished: bridges
# of samples join neighbouring blobs (a continuous map from Gaussian noise has to cross the gaps somewhere) and
# about one sample in ten is still inside the ring; longer training and larger batches keep improving it. The raw
# field energy starts tiny (the samples are far from the data, where every kernel weight is alike), peaks when
# the samples reach the data and then falls with the energy distance; it is noisier, being measured on each
# step's fresh batch. Lesson 05 takes this further: more toys, quiver plots of the field, and the ablations.
#
# ## 7. Anti-symmetry is what makes $q = p$ the equilibrium
#
# Lesson 03 showed $V_{p,q} = -V_{q,p}$, so $V = 0$ when $q = p$. Scale the two halves differently,
#
# $$V_{a,r}(x) = a\, V^+(x) - r\, V^-(x),$$
#
# and at $q = p$ (where $V^+ = V^-$) the field is $(a - r)\,V^+$, which is not zero: the data distribution is no
# longer a fixed point. With $a > r$ the samples keep being pulled inward even when they already match the data,
# so they contract; with $r > a$ they keep pushing each other apart and spread too wide; with $r = 0$ the field is
# the mean shift towards the data alone, which climbs to the modes of the smoothed data density: every sample
# converges to a mode and the spread collapses. The paper's ablation on ImageNet 256 (Deng et al., 2026) measures
# it: the balanced field reaches 8.46 FID, 1.5x attraction 41.05, 1.5x repulsion 46.28, attraction only 177.14.
#
# ### Exercise 4.5: `unbalanced_drift(x, y_pos, tau, attraction, repulsion)`
#
# Return $a V^+ - r V^-$ in population form with the Laplace kernel, the samples `x` as the negatives (no
# self-mask): $V^+$ = `dm.mean_shift(x, y_pos, tau, "laplace")`, $V^-$ = `dm.mean_shift(x, x, tau, "laplace")`.
# The checks compare with these pieces and with `dm.drift_field` at $a = r = 1$; check that at `y_pos = x` the
# field vanishes for $a = r$ and equals $(a - r)V^+$ otherwise; and drift particles with attraction only (their
# spread must collapse below 5% of the data's) and balanced (their spread must stay above 70% of it). Run them with
# `pytest lessons/04 -k ex4_5`.

# %%
check_exercise(ex, "4.5")

# %%
settings = {"balanced (a = r = 1)": (1.0, 1.0), "1.5x attraction": (1.5, 1.0),
            "1.5x repulsion": (1.0, 1.5), "attraction only (r = 0)": (1.0, 0.0)}
torch.manual_seed(5)
x_start = 0.5 * torch.randn(256, 2)
fig, axes = plt.subplots(1, 4, figsize=(17, 4.4))
for ax, (label, (a, r)) in zip(axes, settings.items()):
    xs = x_start.clone()
    for _ in range(60):
        xs = xs + 0.5 * unbalanced_drift(xs, y_batch, 0.3, a, r)
    ax.scatter(*y_batch.T, s=4, c="tab:gray", alpha=0.5, label="data")
    ax.scatter(*xs.T, s=5, c="tab:blue", label="particles after 60 steps")
    ax.set(title=f"{label}\nenergy distance {energy_distance(xs, y_batch):.3f}", xlabel="$x_1$", ylabel="$x_2$",
           aspect="equal", xlim=(-3.2, 3.2), ylim=(-3.2, 3.2))
    ax.legend(loc="upper right", fontsize=7)
fig.suptitle(r"$a\,V^+ - r\,V^-$ (Laplace kernel, $\tau = 0.3$, population form): only $a = r$ keeps the data's spread")
fig.tight_layout(rect=(0, 0, 1, 0.95))
plt.show()

# %% [markdown]
# **What the figure shows.** The balanced field spreads the particles over the blobs like the data. With 1.5x
# attraction each blob is too tight; with 1.5x repulsion the particles overflow the blobs; with attraction only
# every particle has climbed to a mode and sits on it: a perfect-looking "sample" in each blob and no diversity at
# all. This is mode seeking, the failure that the negatives $V^-$ exist to prevent.
#
# ## What can go wrong
#
# - **A forgotten stop-gradient.** The loss value is the same, so nothing looks wrong, but the update is the
#   gradient of $\|V\|^2$ through $V$ (section 2). In PyTorch: compute the field under `torch.no_grad()` or detach
#   the target. Writing `x - (x + V)` without the detach even cancels the only useful term.
# - **Reading the loss as a learning curve.** Once fields are normalised it is near a constant (exactly $D$ for one
#   temperature). Log the raw $\frac1N\sum\|V_\tau\|^2$ and a sample-based distance.
# - **Stale gradients.** Without `optimizer.zero_grad()` every step adds the previous gradients.
# - **Normalising per sample** instead of over the whole batch gives every sample a unit-length drift, so samples
#   that are already right are pushed as hard as those far away.
# - **Unbalanced halves**, for instance a weight on the positives only, move the equilibrium away from $q = p$.
#
# ## What comes next
#
# [Lesson 05](../05/) trains generators on several 2-D toys (eight Gaussians, checkerboard, swiss roll, two
# moons, rings), draws the drift field as it trains, measures quality with sample-based metrics, and runs the
# ablations that teach the method: kernel, temperature, several temperatures, normalisation, batch size, and a
# start collapsed onto one mode.
