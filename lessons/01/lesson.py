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
# # Lesson 01: From KL to a score difference
#
# **Where we are.** This is the first lesson. A drifting model is a generator that turns noise into a sample in
# one network evaluation, $x = f_\theta(\varepsilon)$, and it is trained by moving its samples along a vector
# field $V$ that points from where the model puts mass towards where the data does
# (Deng et al., 2026). Before any kernel appears, this lesson asks a simpler question: if the goal is to make
# the model's distribution $q$ close to the data distribution $p$ in KL divergence, which direction should each
# sample move? The answer is the difference of two scores, $V = s_p - s_q$. Everything later in the course is a
# way of computing that field from samples.
#
# **Objectives.** By the end you can
#
# - derive the gradient of $\mathrm{KL}(q_\theta \,\|\, p)$ for a pushforward generator, and say why the term
#   $\mathbb E_q[\partial_\theta \log q_\theta]$ drops out;
# - read the result as "each sample's gradient is $s_q(x) - s_p(x)$", so that training moves samples along
#   $V = s_p - s_q$;
# - show that moving samples along $V$ lowers the KL at the rate $\mathbb E_q \lVert V \rVert^2$ (a Fisher
#   divergence), that $V = 0$ everywhere exactly when $q = p$, and why $V = 0$ at every sample of $q$ is not enough;
# - compute scores, KL divergences and their gradients for Gaussians in closed form and check them against
#   autograd and Monte Carlo;
# - name the obstacle that the next lesson removes: $s_q$ is unknown for a generator.
#
# **Time.** About 90 minutes: 35 to read the derivation, 55 for the six exercises (1.5 and 1.6 take longest).
#
# **When you are right.** You fill in `lessons/01/exercises.py` and run `pytest lessons/01`. Each exercise starts as
# "not implemented"; when it is right its line on the scoreboard at the end of the run says `passed`, and the last
# line reads `6 of 6 exercises complete`. A failing check tells you which property broke (a sign, a scale, an identity
# with autograd) and gives a hint. In the notebook you can grade without leaving it: the cell under each exercise's
# description runs that exercise's checks and prints its grade: all checks passed, not implemented yet, or the first
# failure with the property that broke and a hint. The demos below use your functions as soon as they work, and the
# worked solutions before that; each demo prints which one it used.

# %%
import math

import matplotlib.pyplot as plt
import torch
from torch.distributions import MultivariateNormal

import drifting_min as dm  # the kernel fields of lessons 02 to 05, used in section 4 only for the counterexamples
from course import check_exercise, learner_or_reference, load_exercises

torch.set_default_dtype(torch.float64)  # closed forms are compared to many digits below
torch.set_num_threads(1)  # small problems: one thread is as fast, and steadier when other work runs
ex = load_exercises("01")  # your exercises
ref = load_exercises("01", solutions=True)  # the worked answers, used while an exercise is a stub

gaussian_score = learner_or_reference(ex.gaussian_score, ref.gaussian_score)
gaussian_kl = learner_or_reference(ex.gaussian_kl, ref.gaussian_kl)
kl_monte_carlo = learner_or_reference(ex.kl_monte_carlo, ref.kl_monte_carlo)
score_difference = learner_or_reference(ex.score_difference, ref.score_difference)
kl_gradient_pathwise = learner_or_reference(ex.kl_gradient_pathwise, ref.kl_gradient_pathwise)
drift_particles = learner_or_reference(ex.drift_particles, ref.drift_particles)

# %% [markdown]
# ## 1. A generator and the distribution it makes
#
# A generator is a function $f_\theta : \mathbb R^{D_\varepsilon} \to \mathbb R^D$ applied to noise
# $\varepsilon \sim \mathcal N(0, I)$. The law of $x = f_\theta(\varepsilon)$ is written
# $q_\theta = f_\theta \# \mathcal N(0, I)$, the *pushforward* of the noise. We can draw from $q_\theta$ as often
# as we like, but we are never given its density: for a neural network $f_\theta$ that density would need the
# inverse of $f_\theta$ and the determinant of its Jacobian.
#
# The target $p$ is the data distribution. Its *score* is the gradient of its log-density with respect to the
# point, $s_p(x) = \nabla_x \log p(x)$, and likewise $s_q(x) = \nabla_x \log q_\theta(x)$. A score never
# depends on the normalising constant of the density, and it points uphill, towards where the density grows.
#
# We measure the mismatch by
#
# $$
# \mathrm{KL}(q_\theta \,\|\, p) = \mathbb E_{x \sim q_\theta}\big[\log q_\theta(x) - \log p(x)\big] \;\ge\; 0,
# $$
#
# with equality exactly when $q_\theta = p$. The expectation is over the model's own samples, which is the one
# thing a generator gives us freely.

# %% [markdown]
# ## 2. The gradient of the KL is a score difference
#
# **Step 1: write the expectation over the noise.** Because $x = f_\theta(\varepsilon)$ with $\varepsilon$
# independent of $\theta$,
#
# $$
# \mathrm{KL}(q_\theta \,\|\, p) = \mathbb E_{\varepsilon}\Big[
# \log q_\theta\big(f_\theta(\varepsilon)\big) - \log p\big(f_\theta(\varepsilon)\big)\Big].
# $$
#
# The distribution we average over no longer depends on $\theta$, so the gradient can go inside the expectation.
#
# **Step 2: differentiate.** $\theta$ now appears in two places: through the sample $x = f_\theta(\varepsilon)$,
# and in $\log q_\theta$ itself, the density of the model. The chain rule gives both:
#
# $$
# \nabla_\theta \mathrm{KL}
# = \mathbb E_{\varepsilon}\Big[\big(s_q(x) - s_p(x)\big)^{\top}
# \frac{\partial f_\theta(\varepsilon)}{\partial \theta}\Big]
# + \mathbb E_{x \sim q_\theta}\Big[\frac{\partial}{\partial \theta} \log q_\theta(x)\Big],
# \qquad x = f_\theta(\varepsilon).
# $$
#
# Here $\partial f_\theta(\varepsilon) / \partial\theta$ is the $D \times \dim\theta$ Jacobian of one sample
# with respect to the parameters, and the second term differentiates the density at a *fixed* point $x$.
#
# **Step 3: the second term is zero.** For any family of normalised densities,
#
# $$
# \mathbb E_{x \sim q_\theta}\big[\partial_\theta \log q_\theta(x)\big]
# = \int q_\theta(x)\, \frac{\partial_\theta q_\theta(x)}{q_\theta(x)}\, dx
# = \partial_\theta \int q_\theta(x)\, dx = \partial_\theta 1 = 0 .
# $$
#
# (This is the familiar fact that a score with respect to parameters has mean zero.) Changing $\theta$ reshapes
# $q_\theta$, but the total mass stays one, so on average it changes nothing.
#
# **Step 4: the result.**
#
# $$
# \boxed{\;\nabla_\theta \mathrm{KL}(q_\theta \,\|\, p)
# = \mathbb E_{\varepsilon}\Big[\big(s_q(x) - s_p(x)\big)^{\top}
# \frac{\partial f_\theta(\varepsilon)}{\partial \theta}\Big]
# = -\,\mathbb E_{\varepsilon}\Big[V(x)^{\top} \frac{\partial f_\theta(\varepsilon)}{\partial \theta}\Big],
# \qquad V = s_p - s_q. \;}
# $$
#
# **Reading it.** This is the backpropagation of a per-sample gradient: each sample $x_i$ receives the
# gradient $s_q(x_i) - s_p(x_i)$ with respect to its own position, and the Jacobian of the generator carries it
# to the weights. A gradient-descent step on $\theta$ therefore asks the generator to move every sample a
# little along $V(x_i) = s_p(x_i) - s_q(x_i)$. The first score, $s_p$, pulls samples towards high data density;
# the second, $-s_q$, pushes them away from where the model already crowds its samples. Without it every
# sample would climb to the mode of $p$ and the model would collapse.
#
# The same gradient comes out of a regression with a frozen target, the form the drifting paper trains with
# (Lesson 04 works it out): for $L = \frac1N \sum_i \lVert x_i - \mathrm{stopgrad}(x_i + V_i) \rVert^2$ the
# gradient with respect to $x_i$ is $-2 V_i / N$, so backpropagating $L$ moves the weights along
# $V$ as well, up to a factor of two.
#
# Using a score difference as the generator's update is not new: distribution matching distillation (Yin et al.,
# 2024) trains a one-step generator with a difference of the same kind, but not with $s_p - s_q$ itself: it adds
# noise of a random level $t$ to each generated sample and takes the scores of the two *noised* distributions
# there, $s_{p_t} - s_{q_t}$ at the noised sample, both from diffusion models (a pretrained one for $p_t$, one
# trained on the generator's outputs for $q_t$); and
# Lai et al. (2026) show that the drifting field of Deng et al. with a Gaussian kernel *is* this difference for
# smoothed versions of $p$ and $q$ (Lesson 02 and 03 get there).

# %% [markdown]
# ## 3. Moving samples along $V$ lowers the KL
#
# Forget the network for a moment and move the samples themselves: $\frac{dx}{dt} = V_t(x)$, with $V_t = s_p - s_{q_t}$
# computed from the current distribution $q_t$ of the samples. Mass is conserved as it flows, which is the
# continuity equation $\partial_t q_t = -\nabla \cdot (q_t V_t)$. Then
#
# $$
# \frac{d}{dt}\mathrm{KL}(q_t \,\|\, p)
# = \int \partial_t q_t \,\big(\log q_t - \log p + 1\big)\,dx
# = -\int \nabla\cdot(q_t V_t)\,\log\frac{q_t}{p}\,dx
# = \int q_t\, V_t \cdot \nabla \log \frac{q_t}{p}\,dx
# = -\,\mathbb E_{q_t}\big\lVert s_p - s_{q_t} \big\rVert^2 .
# $$
#
# The $+1$ disappears because $\int \partial_t q_t = 0$; the third equality integrates by parts (the densities
# vanish at infinity); the last uses $\nabla \log(q_t / p) = s_{q_t} - s_p = -V_t$. The rate
# $\mathbb E_q\lVert s_p - s_q\rVert^2$ is the *Fisher divergence* between $q$ and $p$: the KL decreases at
# exactly that rate, and it stops decreasing only where the Fisher divergence is zero.
#
# ## 4. When does $V = 0$ mean $q = p$?
#
# If $q = p$ the two scores are the same function, so $V = 0$ everywhere. The drifting paper demands this of any
# drift field, together with anti-symmetry, $V_{p,q} = -V_{q,p}$, which $s_p - s_q$ has (swap the roles and the
# sign flips). The converse holds, but only if we are careful about *where* $V$ vanishes.
#
# **$V = 0$ everywhere: then $q = p$.** Suppose both densities are positive on all of $\mathbb R^D$ and $V = 0$ at
# every point. Then $\nabla \log (q/p) = -V = 0$ on $\mathbb R^D$, which is connected, so $q/p$ is one constant $c$;
# integrating $q = c\,p$ gives $1 = c$, and $q = p$.
#
# **$V = 0$ wherever $q$ has mass: not enough.** Training only ever sees $V$ at the model's own samples. Take
# $p = \mathcal N(0, 1)$ and $q$ the same density cut to $x > 0$: $q(x) = 2p(x)$ for $x > 0$ and $0$ otherwise. On
# $q$'s support $\log q = \log 2 + \log p$, so $s_q = s_p$ and $V = 0$ at every sample of $q$; the particles of
# section 3 would not move, and the Fisher divergence $\mathbb E_q \lVert V\rVert^2$ is zero. Yet
# $\mathrm{KL}(q \,\|\, p) = \mathbb E_q[\log 2] = \log 2$. The ratio $q/p$ is indeed constant where $q$ lives, but
# the constant is 2, not 1: $p$ has mass where $q$ has none, and no sample of $q$ is there to feel its pull.
#
# **With kernels (lessons 02 to 05).** The later fields compare smoothed densities $p_\tau$ and $q_\tau$, which
# are positive everywhere, so the argument above applies when the field vanishes everywhere. For the Gaussian
# kernel one can say more: $V = \tau^2(\nabla \log p_\tau - \nabla \log q_\tau)$ (lesson 03) is real-analytic,
# because $p_\tau$ and $q_\tau$ are positive convolutions with a Gaussian, and an analytic function that is zero
# on an open set, however small, is zero everywhere. So $V = 0$ on any open set already forces $p_\tau = q_\tau$,
# hence $p = q$. A batch of generated samples is not an open set, though, and there the counterexample returns:
#
# - *$q$ collapsed at a mode of $p_\tau$.* If every generated sample sits at one point $m$ with
#   $\nabla p_\tau(m) = 0$, then $q_\tau$ is a Gaussian centred at $m$, so $\nabla \log q_\tau(m) = 0$ as well, and
#   $V = 0$ at every generated sample.
# - *Every sample at the centre of the eight Gaussians.* When the data are unchanged by a turn of $45^\circ$, the
#   pulls of the eight modes cancel at the centre, and samples that coincide push each other nowhere: $V = 0$ at
#   every generated sample, in the population form and in the batch form alike.
#
# Neither $q$ is $p$. A generator whose samples all coincide at such a point gets no gradient at all from the
# field, and one whose samples *nearly* coincide gets a push that depends on how the field grows with their
# spread. At $\tau = 0.2$, a spread of $10^{-3}$ gives $|V|$ up to about $0.1$ at the centre of the eight Gaussians,
# where the samples sit between modes that pull apart, but only about $3 \cdot 10^{-4}$ at a mode, where the pull
# of the data holds them together (the cell below). That is why a start collapsed on a mode needs care; lesson 05
# measures what it takes to leave one.

# %%
gen_demo = torch.Generator().manual_seed(4)


def log_p_half(x):
    """p = N(0, 1) in one dimension; x has shape N x 1."""
    return -0.5 * x[:, 0] ** 2 - 0.5 * math.log(2 * math.pi)


def log_q_half(x):
    """q = p cut to x > 0, so q = 2p there (only valid for x > 0, the only place q's samples are)."""
    return math.log(2.0) + log_p_half(x)


x_half = torch.randn(100_000, 1, generator=gen_demo).abs()  # samples of q
x_grad = x_half[:1000].clone().requires_grad_(True)
v_half = torch.autograd.grad((log_p_half(x_grad) - log_q_half(x_grad)).sum(), x_grad)[0]  # s_p - s_q
d = log_q_half(x_half) - log_p_half(x_half)
print(f"cut normal: max |V| over 1,000 samples of q = {float(v_half.abs().max()):.1e}; Monte Carlo KL(q || p) = "
      f"{float(d.mean()):.4f} (every sample contributes log 2 = {math.log(2):.4f})")

angles = torch.arange(8) * (math.pi / 4)
cos, sin = angles.cos(), angles.sin()
rotations = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)  # 8 x 2 x 2
blob = torch.tensor([2.0, 0.0]) + 0.05 * torch.randn(128, 2, generator=gen_demo)
data8 = torch.cat([blob @ r.T for r in rotations])  # eight turned copies of one blob: symmetric under 45 degrees
centre = torch.zeros(64, 2)  # every generated sample at the centre
nearly = 1e-3 * torch.randn(64, 2, generator=gen_demo)  # nearly so
for tau in (0.05, 0.2, 1.0):
    v_batch = dm.batch_drift_field(centre, data8, None, tau)  # Laplace kernel, double softmax, self-excluded
    v_pop = dm.drift_field(centre, data8, centre, tau, "gaussian")
    v_near = dm.drift_field(nearly, data8, nearly, tau, "gaussian")
    print(f"tau = {tau}: max |V| at the centre: batch form {float(v_batch.abs().max()):.0e}, "
          f"population form {float(v_pop.abs().max()):.0e}; with a spread of 1e-3: {float(v_near.abs().max()):.0e}")

mode = torch.tensor([[2.1, 0.1]])
for _ in range(200):  # mean shift (lesson 03) climbs to a mode of the Gaussian KDE p_tau
    mode = mode + dm.mean_shift(mode, data8, 0.2)
at_mode, near_mode = mode.repeat(64, 1), mode + 1e-3 * torch.randn(64, 2, generator=gen_demo)
print(f"tau = 0.2, every sample at the mode {mode[0].numpy().round(3)} of p_tau: max |V| = "
      f"{float(dm.drift_field(at_mode, data8, at_mode, 0.2, 'gaussian').abs().max()):.0e}; with a spread of 1e-3: "
      f"{float(dm.drift_field(near_mode, data8, near_mode, 0.2, 'gaussian').abs().max()):.0e}")

# %% [markdown]
# ## 5. Gaussians: everything in closed form
#
# For a Gaussian $\mathcal N(\mu, \Sigma)$,
# $\log \mathcal N(x; \mu, \Sigma) = -\tfrac12 (x - \mu)^\top \Sigma^{-1} (x - \mu) - \tfrac12 \log\det(2\pi\Sigma)$,
# so
#
# $$
# s(x) = -\Sigma^{-1}(x - \mu).
# $$
#
# The score is affine in $x$, zero at the mean, and steeper along the directions where $\Sigma$ is small.
#
# ### Exercise 1.1: `gaussian_score(x, mean, cov) -> Tensor`
#
# Return the $N \times D$ matrix whose row $i$ is $-\Sigma^{-1}(x_i - \mu)$. Solve a linear system with
# `torch.linalg.solve` rather than forming the inverse. The checks compare it with the autograd gradient of
# `MultivariateNormal(mean, cov).log_prob` in float64 and test that it is zero at the mean, points towards the
# mean, and is affine in $x$. Run them with `pytest lessons/01 -k ex1_1`.

# %%
check_exercise(ex, "1.1")

# %% [markdown]
# ### Exercise 1.2: `gaussian_kl(mean_q, cov_q, mean_p, cov_p) -> Tensor`
#
# Between two Gaussians the KL has the closed form
#
# $$
# \mathrm{KL}\big(\mathcal N(\mu_q, \Sigma_q) \,\|\, \mathcal N(\mu_p, \Sigma_p)\big)
# = \tfrac12\Big[\operatorname{tr}\big(\Sigma_p^{-1}\Sigma_q\big) + (\mu_p - \mu_q)^\top \Sigma_p^{-1}(\mu_p - \mu_q)
# - D + \log\det\Sigma_p - \log\det\Sigma_q\Big].
# $$
#
# Return it as a 0-dimensional tensor. The checks compare with `torch.distributions.kl_divergence`, and test that
# it is zero for equal arguments and positive otherwise, that it is not symmetric, that it does not change when
# both Gaussians go through the same affine map, and that it agrees with a Monte Carlo estimate on 200,000
# samples. `pytest lessons/01 -k ex1_2`.

# %%
check_exercise(ex, "1.2")

# %% [markdown]
# ### Exercise 1.3: `kl_monte_carlo(x, log_q, log_p) -> (estimate, standard_error)`
#
# With samples $x_i \sim q$ and $d_i = \log q(x_i) - \log p(x_i)$, the mean $\frac1N\sum_i d_i$ is an unbiased
# estimate of $\mathrm{KL}(q\,\|\,p)$ and its standard error is $\operatorname{std}(d)/\sqrt N$ (with the
# unbiased variance). This is how a KL is estimated when only log-densities can be evaluated, and it is our
# check of the closed form. `pytest lessons/01 -k ex1_3`.

# %%
check_exercise(ex, "1.3")

# %%
gen = torch.Generator().manual_seed(0)
mean_q, cov_q = torch.tensor([0.0, 0.0]), torch.tensor([[0.5, 0.2], [0.2, 0.3]])
mean_p, cov_p = torch.tensor([1.0, 0.5]), torch.tensor([[1.0, 0.6], [0.6, 0.8]])
q, p = MultivariateNormal(mean_q, cov_q), MultivariateNormal(mean_p, cov_p)

exact = float(gaussian_kl(mean_q, cov_q, mean_p, cov_p))
reverse = float(gaussian_kl(mean_p, cov_p, mean_q, cov_q))
print(f"closed form     KL(q || p) = {exact:.4f}    KL(p || q) = {reverse:.4f}")
for n in (100, 1_000, 10_000, 100_000):
    x = mean_q + torch.randn(n, 2, generator=gen) @ torch.linalg.cholesky(cov_q).T
    estimate, stderr = kl_monte_carlo(x, q.log_prob, p.log_prob)
    print(f"Monte Carlo, N = {n:>7,}: {float(estimate):.4f} +- {float(stderr):.4f}"
          f"   ({abs(float(estimate) - exact) / float(stderr):.1f} standard errors from the closed form)")

# %% [markdown]
# The two directions of the KL differ: the expectation is over the first argument, and a narrow $q$ inside a
# wide $p$ costs much less than a wide $p$ measured against a narrow $q$. The Monte Carlo estimate lands within
# a couple of standard errors of the closed form, and its error bar shrinks like $1/\sqrt N$.
#
# ### Exercise 1.4: `score_difference(x, mean_q, cov_q, mean_p, cov_p) -> Tensor`
#
# Return $V(x) = s_p(x) - s_q(x) = -\Sigma_p^{-1}(x - \mu_p) + \Sigma_q^{-1}(x - \mu_q)$ at each row of $x$
# (use your `gaussian_score`). The checks compare it with minus the autograd gradient, with respect to $x$, of the
# per-sample KL integrand $\log q(x) - \log p(x)$ (with $q$'s parameters held fixed), and test that it is zero when
# $q = p$, anti-symmetric in $(p, q)$, and that minus its average over samples of $q$ is the gradient of the KL with
# respect to $\mu_q$. `pytest lessons/01 -k ex1_4`.

# %%
check_exercise(ex, "1.4")

# %% [markdown]
# The figure below draws $V$ for the two Gaussians above. Far from both, the two attractions almost cancel
# and $V$ is small; near $q$, the repulsion $-s_q$ spreads $q$ out, and overall the field carries $q$'s mass
# towards $p$.

# %%
def field_on_grid(mean_q, cov_q, mean_p, cov_p, lims=(-3.5, 3.5, -2.5, 3.5), n=17):
    """V = s_p - s_q on an n x n grid, for quiver plots."""
    gx, gy = torch.meshgrid(torch.linspace(lims[0], lims[1], n), torch.linspace(lims[2], lims[3], n), indexing="xy")
    points = torch.stack([gx.flatten(), gy.flatten()], dim=1)
    v = score_difference(points, mean_q, cov_q, mean_p, cov_p)
    return gx, gy, v[:, 0].reshape(n, n), v[:, 1].reshape(n, n)


def draw_gaussian(ax, mean, cov, color, label, levels=(1, 2)):
    """Ellipses of Mahalanobis radius 1 and 2 around the mean."""
    angles = torch.linspace(0, 2 * math.pi, 200)
    circle = torch.stack([angles.cos(), angles.sin()], dim=1)
    chol = torch.linalg.cholesky(cov)
    for k, r in enumerate(levels):
        ring = mean + r * circle @ chol.T
        ax.plot(ring[:, 0], ring[:, 1], color=color, lw=1.5 if k == 0 else 0.8, label=label if k == 0 else None)


def draw_field(ax, gx, gy, vx, vy, clim=None):
    """Arrows of unit length, coloured by log10 |V|, so that both weak and strong regions stay readable."""
    size = torch.sqrt(vx**2 + vy**2).clamp_min(1e-12)
    arrows = ax.quiver(gx, gy, vx / size, vy / size, torch.log10(size), cmap="viridis", scale=28, width=0.004)
    if clim is not None:
        arrows.set_clim(*clim)  # one colour scale shared by several panels
    return arrows


fig, ax = plt.subplots(figsize=(6.2, 5.2))
arrows = draw_field(ax, *field_on_grid(mean_q, cov_q, mean_p, cov_p))
draw_gaussian(ax, mean_q, cov_q, "tab:red", "q (model)")
draw_gaussian(ax, mean_p, cov_p, "black", "p (target)")
fig.colorbar(arrows, ax=ax, label=r"$\log_{10} \|V(x)\|$")
ax.set(title=r"The field $V = s_p - s_q$ (direction; colour = magnitude)", xlabel="$x_1$", ylabel="$x_2$",
       aspect="equal")
ax.legend(loc="lower right")
fig.tight_layout()
plt.show()

# %% [markdown]
# ### Exercise 1.5: `kl_gradient_pathwise(eps, mean_q, chol_q, mean_p, cov_p) -> (grad_mu, grad_L)`
#
# Now the boxed formula of section 2, on a generator we can differentiate by hand: the affine generator
# $x = f_\theta(\varepsilon) = \mu + L\varepsilon$, with parameters $\theta = (\mu, L)$, pushes
# $\mathcal N(0, I)$ forward to $q = \mathcal N(\mu, LL^\top)$. Its Jacobians are $\partial x / \partial \mu = I$ and
# $\partial x_a / \partial L_{bc} = [a = b]\,\varepsilon_c$, so with $g_i = s_q(x_i) - s_p(x_i) = -V(x_i)$,
#
# $$
# \nabla_\mu \mathrm{KL} \approx \frac1N \sum_i g_i, \qquad
# \nabla_L \mathrm{KL} \approx \frac1N \sum_i g_i\,\varepsilon_i^\top .
# $$
#
# Return both. The checks compare them with autograd of the closed-form KL of exercise 1.2 (exactly, on noise whose
# sample mean is $0$ and sample second moment is $I$), and with autograd of the per-sample integrand through
# $x_i = \mu + L\varepsilon_i$ with $q$'s own parameters frozen, which is step 2 without its second term.
# `pytest lessons/01 -k ex1_5`.

# %%
check_exercise(ex, "1.5")

# %% [markdown]
# The demo draws plain noise and watches the estimate approach the exact gradient as $N$ grows. Dropping the
# term $\mathbb E_q[\partial_\theta \log q_\theta]$ costs nothing on average: the estimate stays unbiased.

# %%
mu0, chol0 = torch.tensor([-1.0, 1.5]), torch.tensor([[0.6, 0.0], [0.3, 0.4]])
mu_var, chol_var = mu0.clone().requires_grad_(True), chol0.clone().requires_grad_(True)
exact_mu, exact_chol = torch.autograd.grad(
    torch.distributions.kl_divergence(MultivariateNormal(mu_var, chol_var @ chol_var.T), p), (mu_var, chol_var)
)
print("exact gradient (autograd of the closed form):")
print(f"   grad_mu = {exact_mu.numpy().round(4)},   grad_L = {exact_chol.flatten().numpy().round(4)}")
exact_all = torch.cat([exact_mu, exact_chol.flatten()])
for n in (10, 100, 1_000, 10_000):
    estimates = []
    for _ in range(20):  # 20 independent draws of N noise samples
        grad_mu, grad_chol = kl_gradient_pathwise(torch.randn(n, 2, generator=gen), mu0, chol0, mean_p, cov_p)
        estimates.append(torch.cat([grad_mu, grad_chol.flatten()]))
    estimates = torch.stack(estimates)
    bias = (estimates.mean(dim=0) - exact_all).norm()
    rms = (estimates - exact_all).norm(dim=1).square().mean().sqrt()
    print(f"N = {n:>6,}: root-mean-square error {float(rms):.4f},"
          f" error of the average of the 20 estimates {float(bias):.4f}")

# %% [markdown]
# The root-mean-square error falls by about $\sqrt{10} \approx 3.2$ for every tenfold increase in $N$, and the
# average of 20 estimates is closer still: an unbiased Monte Carlo estimate of the gradient, built from nothing
# but the two scores at the samples.
#
# ### Exercise 1.6: `drift_particles(x0, mean_p, cov_p, step, n_steps) -> (trajectory, kl)`
#
# Section 3 with particles. Start from $N$ particles $x^{(0)}$ and repeat: fit a Gaussian
# $q_t = \mathcal N(\mu_t, \Sigma_t)$ to the current particles (mean, and covariance divided by $N$), record
# $\mathrm{KL}(q_t\,\|\,p)$, and move every particle one explicit Euler step along the field,
#
# $$
# x^{(t+1)}_i = x^{(t)}_i + \eta\, V_t\big(x^{(t)}_i\big), \qquad V_t = s_p - s_{q_t}.
# $$
#
# Return the trajectory (shape `(n_steps + 1, N, D)`, the start included) and the KL history (shape
# `(n_steps + 1,)`). Because $V_t$ is affine in $x$, a Gaussian cloud stays Gaussian, so fitting a Gaussian
# loses nothing here. The checks compare with a float64 reference, and test that the KL never goes up, ends near
# zero, and that the particles' mean and covariance reach $p$'s. `pytest lessons/01 -k ex1_6`.

# %%
check_exercise(ex, "1.6")

# %%
start = torch.tensor([-3.0, 2.0]) + torch.randn(300, 2, generator=gen) @ torch.tensor([[0.3, 0.0], [0.1, 0.2]])
step, n_steps = 0.05, 200
trajectory, kl = drift_particles(start, mean_p, cov_p, step, n_steps)


def fit(x):
    """Mean and covariance (divided by N) of the rows of x."""
    m = x.mean(dim=0)
    return m, (x - m).T @ (x - m) / x.shape[0]


snapshots = (0, 8, n_steps)
fig, axes = plt.subplots(1, 3, figsize=(15, 4.6), sharex=True, sharey=True, layout="constrained")
for ax, t in zip(axes, snapshots):
    m_t, c_t = fit(trajectory[t])
    arrows = draw_field(ax, *field_on_grid(m_t, c_t, mean_p, cov_p), clim=(-3, 2))
    if t == 0:
        for i in range(0, 300, 20):  # a few particles' paths over the whole run
            ax.plot(trajectory[:, i, 0], trajectory[:, i, 1], color="tab:orange", lw=0.7, alpha=0.8)
    draw_gaussian(ax, mean_p, cov_p, "black", "p (target)")
    ax.scatter(trajectory[t, :, 0], trajectory[t, :, 1], s=5, color="tab:red", label="particles", zorder=3)
    ax.set(title=f"step {t}: KL(q_t || p) = {float(kl[t]):.2g}", xlabel="$x_1$", aspect="equal")
axes[0].set_ylabel("$x_2$")
axes[0].plot([], [], color="tab:orange", label="paths of a few particles")
axes[0].legend(loc="lower right", fontsize=8)
fig.colorbar(arrows, ax=axes, label=r"$\log_{10} \|V\|$ ($q_t$ fitted to the particles)", shrink=0.9)
fig.suptitle(r"Particles moved along $V = s_p - s_{q_t}$ (step $\eta$ = 0.05)")
plt.show()

# %% [markdown]
# Now the KL along the run, two ways: the closed form of exercise 1.2 for each fitted $q_t$, and a Monte Carlo
# estimate from 2,000 fresh samples of $q_t$ (exercise 1.3). On the right, the rate at which the KL falls,
# $-(\mathrm{KL}_{t+1} - \mathrm{KL}_t)/\eta$, against the Fisher divergence $\mathbb E_{q_t}\lVert V_t\rVert^2$
# measured on the particles: section 3 says they are equal for an infinitely small step.

# %%
steps = torch.arange(n_steps + 1)
mc_steps = list(range(0, 61, 4))
mc_mean, mc_err = [], []
for t in mc_steps:
    m_t, c_t = fit(trajectory[t])
    q_t = MultivariateNormal(m_t, c_t)
    fresh = m_t + torch.randn(2000, 2, generator=gen) @ torch.linalg.cholesky(c_t).T  # new samples of q_t
    estimate, stderr = kl_monte_carlo(fresh, q_t.log_prob, p.log_prob)
    mc_mean.append(float(estimate))
    mc_err.append(float(stderr))

fisher = []
for t in range(n_steps):
    m_t, c_t = fit(trajectory[t])
    fisher.append(float(score_difference(trajectory[t], m_t, c_t, mean_p, cov_p).square().sum(dim=1).mean()))
rate = -(kl[1:] - kl[:-1]) / step

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.3))
ax1.semilogy(steps, kl, color="black", label="closed form (exercise 1.2)")
ax1.errorbar(mc_steps, mc_mean, yerr=mc_err, fmt="o", ms=4, color="tab:red", capsize=2,
             label="Monte Carlo, 2,000 samples of $q_t$ (exercise 1.3)")
ax1.set(title=r"KL$(q_t \,\|\, p)$ along the drift", xlabel="step $t$", ylabel="KL (log scale)")
ax1.legend()
ax2.semilogy(steps[:-1], rate, color="black", label=r"$-(\mathrm{KL}_{t+1} - \mathrm{KL}_t) / \eta$")
ax2.semilogy(steps[:-1], fisher, "--", color="tab:blue", label=r"Fisher divergence $\mathbb{E}_{q_t} \|V_t\|^2$")
ax2.set(title="The KL falls at the rate of the Fisher divergence", xlabel="step $t$", ylabel="rate (log scale)")
ax2.legend()
fig.tight_layout()
plt.show()

m_end, c_end = fit(trajectory[-1])
print(f"after {n_steps} steps: mean {m_end.numpy().round(4)} (target {mean_p.numpy()}),")
print(f"   covariance {c_end.flatten().numpy().round(4)} (target {cov_p.flatten().numpy()}), KL {float(kl[-1]):.2e}")

# %% [markdown]
# **What the figures show.** At step 0 the particles form a small, narrow cloud far from $p$. Their own score
# $s_{q_0}$ is large, so the field around them mostly says "spread out", while further away the attraction of $p$
# dominates. Within a few steps the cloud has widened and is travelling; by the end it has the shape and place of
# $p$ and the field is tiny everywhere (the colour scale). The KL falls by seven orders of magnitude, the Monte
# Carlo estimates agree with the closed form within two or three error bars, and the rate of decrease tracks the
# Fisher divergence. The two curves on the right differ by up to 15% in the first steps, where the field is
# strong: that is the error of a finite Euler step, and it shrinks with $\eta$.
#
# **What can go wrong.**
#
# - *Forgetting $-s_q$.* With $s_p$ alone every particle climbs to the mode of $p$; the cloud shrinks to a point
#   and the KL goes to infinity (the next cell shows it). The mean still arrives, because $s_q$ averages to zero
#   over the particles; only the spread is lost. This is the mode collapse that the repulsion prevents;
#   the drifting paper's ablation finds the same for its own field: with attraction alone the FID goes from
#   8.46 to 177.14.
# - *A flipped sign.* Moving along $s_q - s_p$ pushes $q$ away from $p$; the KL grows at the Fisher rate.
# - *Too large a step.* Write the update as $x' = x + \eta\,V_t(x)$ with the affine field
#   $V_t(x) = -\Sigma_p^{-1}(x - \mu_p) + \Sigma_t^{-1}(x - \mu_t)$. Averaging over the particles,
#   $\mu' - \mu_p = (I - \eta\Sigma_p^{-1})(\mu_t - \mu_p)$: along an eigenvector of $\Sigma_p$ with eigenvalue
#   $\lambda$ the error of the mean is multiplied by $1 - \eta/\lambda$. Subtracting the mean,
#   $x' - \mu' = M(x - \mu_t)$ with $M = I + \eta(\Sigma_t^{-1} - \Sigma_p^{-1})$, so $\Sigma' = M \Sigma_t M^\top$.
#   Near the target put $\Sigma_t = \Sigma_p + \Delta$; to first order
#   $\Sigma_t^{-1} \approx \Sigma_p^{-1} - \Sigma_p^{-1}\Delta\Sigma_p^{-1}$ and
#   $\Delta' \approx \Delta - \eta(\Sigma_p^{-1}\Delta + \Delta\Sigma_p^{-1})$: in the eigenbasis of $\Sigma_p$ the
#   entry $\Delta_{ab}$ is multiplied by $1 - \eta(1/\lambda_a + 1/\lambda_b)$, at worst $1 - 2\eta/\lambda_{\min}$. The
#   covariance is the stricter of the two. Past $\eta = \lambda_{\min}/2$ its factor is negative: each step
#   overshoots and the error changes sign, though it still shrinks. Past $\eta = \lambda_{\min}$ the factor is below
#   $-1$: the error grows, the spread never settles and the KL stays large. Past $2\lambda_{\min}$ the mean runs
#   off as well. Here $\lambda_{\min} = 0.29$. The next cell tries $\eta = 0.05$ (smooth), $0.2$ and $0.28$
#   (overshooting, still converging), $0.31$ (the spread never settles) and $0.6$ (the mean runs off).
# - *No more particles than dimensions.* $N$ centred points span at most $N - 1$ directions, so the fitted
#   covariance has rank at most $N - 1$ and is singular whenever $N \le D$; then $s_q$ does not exist. This is the
#   first sign of the real difficulty below.

# %%
x = start.clone()
for _ in range(n_steps):
    x = x + step * gaussian_score(x, mean_p, cov_p)  # attraction only: V = s_p, no -s_q
m_bad, c_bad = fit(x)
print(f"attraction only: mean {m_bad.numpy().round(4)}, total variance tr(Sigma) = {float(torch.trace(c_bad)):.1e} "
      f"(target {float(torch.trace(cov_p)):.1f}): the particles collapse onto the mode")

print(f"smallest eigenvalue of Sigma_p: {float(torch.linalg.eigvalsh(cov_p)[0]):.3f}")
for eta in (0.05, 0.2, 0.28, 0.31, 0.6):
    _, kl_eta = drift_particles(start, mean_p, cov_p, eta, 200)
    print(f"step {eta:4.2f}: KL after 200 steps {float(kl_eta[-1]):.1e}, "
          f"largest KL over steps 100 to 200 {float(kl_eta[100:].max()):.1e}")

# %% [markdown]
# ## The obstacle: $s_q$ is unknown
#
# Everything above used $s_q$ in closed form because $q$ was Gaussian, or because we fitted a Gaussian to the
# particles, which is only right when the target is Gaussian too. For a real generator neither holds: $q_\theta$ is
# the pushforward of noise through a network, its density needs $f_\theta^{-1}$ and a Jacobian determinant that we
# do not have (and does not exist when the network maps to a thin set of $\mathbb R^D$), and the data's score
# $s_p$ is not given either. What we do have is samples of both: a batch of generated $x$ and a batch of data
# $y^+$. The rest of the course builds $V$ from samples alone.
#
# ## What comes next
#
# [Lesson 02](../02/) turns samples into scores with kernel density estimates: the score of a Gaussian KDE is a
# softmax-weighted average of displacements towards the samples, and by Tweedie's formula it is the exact score
# of the data blurred by Gaussian noise of scale $\tau$. Lesson 03 then writes $V = V^+ - V^-$ as two mean
# shifts, which for the Gaussian kernel is $\tau^2 (\nabla\log p_\tau - \nabla\log q_\tau)$: this lesson's field,
# for smoothed distributions (Lai et al., 2026).
#
# ## References
#
# - Deng, Li, Li, Du, He. *Generative Modeling via Drifting.* arXiv:2602.04770, 2026. The drift field, its
#   anti-symmetry, the requirement $V = 0$ at $q = p$, and the ablation in which attraction alone raises the
#   ImageNet FID from 8.46 to 177.14.
# - Lai, Nguyen, Murata, Takida, Uesaka, Mitsufuji, Ermon, Tao. *A Unified View of Drifting and Score-Based
#   Models.* arXiv:2603.07514, 2026. The Gaussian-kernel drifting field as a difference of smoothed scores.
# - Yin, Gharbi, Zhang, Shechtman, Durand, Freeman, Park. *One-step Diffusion with Distribution Matching
#   Distillation.* CVPR 2024. A one-step generator trained with the score difference, both scores from diffusion
#   models.
