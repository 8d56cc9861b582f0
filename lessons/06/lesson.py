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
# # Lesson 06: Feature-space kernels
#
# **Where we are.** [Lesson 05](../05/lesson.py) trained a generator on 2D toys with a kernel on raw
# coordinates, and it worked. Images are not 2D. The authors of "Generative Modeling via Drifting" (Deng et al.,
# 2026, [arXiv 2602.04770](https://arxiv.org/abs/2602.04770)) write: "we were unable to make our method work on
# ImageNet without a feature encoder", and ports to CIFAR-10 found the same: on raw pixels the generator
# collapses. This lesson shows why (distances concentrate as the dimension grows), builds the machinery that
# fixes it (multi-scale features of a frozen encoder, a scale per feature, a normalised force per temperature,
# the released implementation's batch loss), and runs both on a CPU, on small images that the code draws.
#
# **Objectives.** By the end you can
#
# 1. measure distance concentration, the ratio of nearest to mean distance, and say what it does to a kernel
#    (exercise 6.1);
# 2. compute the multi-scale statistics of a feature map: patch means and standard deviations, a group per
#    patch (exercise 6.2);
# 3. rescale a feature so that its mean distance is $\sqrt{C}$, and explain why $\sqrt{C}$ and not $C$
#    (exercise 6.3);
# 4. normalise the force of each temperature, with the floor that drops a vanishing one (exercise 6.4);
# 5. write the released batch loss for one feature, its value and gradient (exercise 6.5), and relate it to
#    the batch form of lessons 03 and 04;
# 6. read an experiment that compares a pixel-space and a feature-space kernel with a metric neither of them
#    trains on, and explain the clip inside the released loss and when it hurts.
#
# **Time.** About 120 minutes: 50 to read and derive, 60 for the five exercises, 10 for the experiments.
#
# **What right looks like.** Fill in `lessons/06/exercises.py` and run `pytest lessons/06`; each exercise's line in
# the scoreboard reads `passed` when it is done, and the run ends with `5 of 5 exercises complete`. In the notebook,
# the cell under each exercise runs its checks and prints the grade. The demos print `[demo] using your ...` once
# your function works, and use the reference (`drifting_min`, or the worked solution) before that.
#
# **Notation.** Generated samples $x$ ($N \times D$), data $y^+$ ($M \times D$), temperature $\tau$ (the
# released code calls it $R$). A *feature* $\phi_j$ of an encoder maps a batch of images to a tensor
# $[G, N, C_j]$: $G$ groups, $N$ samples, $C_j$ channels. A kernel only ever compares samples *within* a group.

# %%
import json
import math

import matplotlib.pyplot as plt
import numpy as np
import torch

import drifting_min as dm
from course import check_exercise, learner_or_reference, load_exercises
from course.loader import LESSONS
from drifting_min import feature_demo, features, images, toys

torch.set_num_threads(1)  # the site builds on one core; small problems run as fast on one
ex = load_exercises("06")
solution = load_exercises("06", solutions=True)  # the fallback where drifting_min has no function of that shape
HERE = LESSONS / "06"
CACHE = np.load(HERE / "results.npz")
RESULTS = json.loads((HERE / "results.json").read_text())


def concentration_dm(x):
    return torch.tensor(feature_demo.concentration(x), dtype=x.dtype)


def patch_stats_dm(fmap, p):
    feats = features.multiscale_features([fmap], patch_sizes=(p,))
    return feats[f"s0.p{p}.mean"], feats[f"s0.p{p}.std"]


def released_loss_dm(gen, pos, taus=(0.02, 0.05, 0.2), clip=True):
    return features.released_drift_loss(gen, pos, taus=taus, clip=clip)[0]


concentration_ratio = learner_or_reference(ex.concentration_ratio, concentration_dm)
patch_stats = learner_or_reference(ex.patch_stats, patch_stats_dm)
rescale_features = learner_or_reference(ex.rescale_features, solution.rescale_features)
normalise_drifts = learner_or_reference(ex.normalise_drifts, solution.normalise_drifts)
released_loss = learner_or_reference(ex.released_loss, released_loss_dm)


def show(fig):
    fig.tight_layout()
    plt.show()


# %% [markdown]
# ## 1. Images the code draws
#
# No download: `drifting_min.images.shapes(n, seed)` draws $16 \times 16$ RGB images, each one shape (a disc, a
# square, a triangle or a striped disc) at a random place, size, angle and colour, over a background that is a
# colour gradient in a random direction with a faint texture. The shapes are drawn at twice the resolution and
# averaged down, so their edges are soft like those of a photograph. Four classes, $D = 3 \cdot 16 \cdot 16 = 768$
# numbers an image.

# %%
real, labels = images.shapes(48, seed=0)
fig, ax = plt.subplots(figsize=(9, 5))
ax.imshow(images.grid(real, 4, 12))
ax.set(title="images.shapes(48, seed=0): " + ", ".join(images.CLASSES), xticks=[], yticks=[])
show(fig)

# %% [markdown]
# ## 2. Why a kernel on pixels fails: distances concentrate
#
# A kernel can only tell near from far when some distances are much smaller than others. Take $x$ and $y$
# independent with $D$ independent coordinates of variance $\sigma^2$. Then
#
# $$\lVert x - y\rVert^2 = \sum_{d=1}^{D} (x_d - y_d)^2, \qquad \mathbb E\lVert x - y\rVert^2 = 2D\sigma^2, \qquad
#   \mathrm{sd}\,\lVert x - y\rVert^2 = O(\sqrt D),$$
#
# a sum of $D$ independent terms: its mean grows like $D$ and its spread like $\sqrt D$, so the *relative* spread of
# distances falls like $1/\sqrt D$. Every point ends up at almost the same distance from every other, and the ratio
#
# $$r = \frac{1}{N}\sum_i \frac{\min_{j\ne i}\lVert x_i - x_j\rVert}{\frac{1}{N-1}\sum_{j\ne i}\lVert x_i - x_j\rVert}$$
#
# climbs towards 1. What that does to the field: the logits $-\lVert x - y_j\rVert/\tau$ of one query differ by
# about (spread of distances)$/\tau$. If the temperature is set relative to the typical distance, as it must be to
# mean the same thing in every feature (section 4), those differences shrink like $1/\sqrt D$: the softmax over
# targets flattens, $V^+$ becomes the mean of the data batch minus $x$, $V^-$ the mean of the generated batch minus
# $x$, and the field only matches the two *means*. The generator gets no signal about the shape of its
# distribution. Lowering $\tau$ does not rescue it: the weights then go to whichever target happens to be nearest,
# and in high dimension the nearest one is nearly a coin toss.
#
# Real images are not independent coordinates: neighbouring pixels are correlated, so pixels concentrate less than
# the count 768 suggests, though far more than the few numbers that say which shape is where. An encoder trained to
# recognise the shapes maps images to features in which images of the same kind are near each other.
#
# ### Exercise 6.1: `concentration_ratio(x) -> Tensor`
#
# Return $r$ for an $N \times D$ set, leaving each point's zero distance to itself out of both the minimum and the
# mean. The checks compare with a float64 transcription, check that equidistant points give exactly 1, that
# rotating, shifting and scaling change nothing, and that float32 input gives float32 output and is left unchanged.

# %%
check_exercise(ex, "6.1")

# %% [markdown]
# Gaussian data of growing dimension, and the shapes: their pixels, and features of the encoder used in
# section 7 (its weights are cached with the experiment; `s1.loc` are the per-location vectors of its second stage,
# `s2.mean` the global mean of its last stage; section 3 names them all).

# %%
rng = torch.Generator().manual_seed(0)
dims = [2, 8, 32, 128, 512, 2048]
gauss = [float(concentration_ratio(torch.randn(400, d, generator=rng, dtype=torch.float64))) for d in dims]
encoder = feature_demo.load_encoder(HERE / "results.npz")
shapes_x, _ = images.shapes(400, seed=1)
with torch.no_grad():
    feats = features.multiscale_features(encoder.feature_maps(shapes_x))
image_sets = {"pixels (D = 768)": shapes_x.flatten(1)}
for key in ("s0.p4.mean", "s1.loc", "s2.loc", "s2.mean"):
    group = feats[key].shape[0] // 2  # one group: the middle location or patch
    image_sets[f"{key} (D = {feats[key].shape[2]})"] = feats[key][group]
image_ratios = {k: float(concentration_ratio(v.double())) for k, v in image_sets.items()}

fig, ax = plt.subplots(figsize=(8, 4))
ax.semilogx(dims, gauss, "o-", c="0.3", label="Gaussian data, D dims")
markers = iter("sD^vP")
for name, r in image_ratios.items():
    d = int(name.split("D = ")[1].rstrip(")"))
    ax.semilogx([d], [r], next(markers), ms=9, label=f"shapes: {name}")
ax.set(xlabel="dimension D", ylabel="nearest / mean distance", ylim=(0, 1), title="distance concentration (400 points)")
ax.legend(fontsize=8, loc="lower right")
show(fig)
for name, r in image_ratios.items():
    print(f"{name:<24} ratio {r:.3f}")

# %% [markdown]
# Gaussian data follow the argument above: the ratio is 0.06 in 2 dimensions, above 0.9 from 512 on. The shapes'
# pixels sit far below the Gaussian curve at $D = 768$ (about 0.55, where Gaussian data give above 0.9): 768 correlated
# numbers carry far fewer independent directions. The encoder's features are less concentrated still (about 0.2 to 0.35)
# although they have 16 to 64 dimensions: an encoder trained to tell the shapes apart puts images with something in
# common near each other, which is what a kernel needs. A ratio of 0.5 is not hopeless on its own; section 7 shows what
# it costs a generator.
#
# ## 3. Multi-scale features of a frozen encoder
#
# The published method applies the drift loss not to the image but to many features of a frozen encoder: for
# every stage of the encoder (the paper takes one every two blocks, plus each stage's output) a feature map
# $[B, C, H, W]$ gives
#
# * **per-location vectors**: at each location $(h, w)$ the $C$ numbers of that location, a group per location
#   ($G = HW$), so the kernel compares samples *at the same place* of the image;
# * **global mean and standard deviation** over the locations: $G = 1$, $C$ numbers each;
# * **means and standard deviations of $2 \times 2$ and $4 \times 4$ patches**: a group per patch.
#
# and the raw input is one more feature (the image flattened, one group). The paper's ablation: more statistics,
# better FID (9.58, then 9.10, then 8.46 on ImageNet). Each feature $j$ becomes one call of the loss on a tensor
# $[G_j, N, C_j]$, all its groups at once. For a patch of side $p$ at patch row $a$ and column $b$, group
# $g = a\,(W/p) + b$, sample $n$, channel $c$:
#
# $$\mu_{g n c} = \frac{1}{p^2}\sum_{(h, w) \in \text{patch}} f_{n c h w}, \qquad
#   \sigma_{g n c} = \sqrt{\frac{1}{p^2}\sum_{(h, w) \in \text{patch}} (f_{n c h w} - \mu_{g n c})^2 + 10^{-6}} .$$
#
# The $10^{-6}$ keeps the gradient of $\sqrt{\cdot}$ finite where a patch is flat (the derivative of $\sqrt v$ is
# infinite at $v = 0$, and a generated image can have flat patches).
#
# ### Exercise 6.2: `patch_stats(fmap, p) -> (mean, std)`
#
# Both shaped $[G, B, C]$ with $G = (H/p)(W/p)$ in row-major order of patches. Hint: `reshape` to
# $[B, C, H/p, p, W/p, p]$. The checks compare with `drifting_min.features.multiscale_features` for $p$ = 2, 4 and
# the whole map, read the patch order off a map whose values encode their position, and check the flat patch.

# %%
check_exercise(ex, "6.2")

# %% [markdown]
# The features that the experiment of section 7 uses, for a batch of 8 images: every one is a $[G, N, C]$ tensor.
# (Stage 0's 256 per-location vectors are left out there: on a CPU they would cost two thirds of a step.)

# %%
with torch.no_grad():
    maps = encoder.feature_maps(shapes_x[:8])
mean2, std2 = patch_stats(maps[0], 2)
print("stage maps:", [tuple(m.shape) for m in maps])
print("your 2x2 patch statistics of stage 0:", tuple(mean2.shape), tuple(std2.shape))
print(f"{'feature':<12} {'[G, N, C]':>14}")
for name, f in feature_demo.image_features(encoder, shapes_x[:8]).items():
    print(f"{name:<12} {list(f.shape)!s:>14}")

# %% [markdown]
# ## 4. One scale per feature: mean distance $\sqrt{C}$
#
# Features differ in size by orders of magnitude (a global mean over 64 channels, a patch's standard deviation, raw
# pixels in $[0, 1]$), and a temperature only means something relative to the distances it divides. So each call of
# the loss measures its feature's scale on the batch, the mean generated-to-target distance over the targets
# $t = [x \mid y^+]$ (the generated samples are targets too, as negatives),
#
# $$s = \frac{1}{G N (N + M)} \sum_g \sum_i \sum_j \lVert x_{g i} - t_{g j}\rVert \qquad (\text{no gradient}),$$
#
# and works in the coordinates $\tilde x = x / (s/\sqrt{C})$, in which the mean distance is exactly $\sqrt{C}$:
# the typical length of a vector whose $C$ coordinates have unit size (two independent points with unit-variance
# coordinates are about $\sqrt{2C}$ apart, so coordinates of variance $\tfrac12$ have that mean distance). The
# released code writes the logits
# as $-\lVert x - t\rVert / (s R)$. In the rescaled coordinates that is
#
# $$-\frac{\lVert x - t\rVert}{s R} = -\frac{\lVert \tilde x - \tilde t\rVert}{R\sqrt{C}},$$
#
# a Laplace kernel at temperature $\tau = R\sqrt{C}$: the temperatures $R \in \{0.02, 0.05, 0.2\}$ are fractions of
# the mean distance, the same fractions in every feature. A community port that rescaled to a mean distance of $C$
# (temperature $R\,C$) had, at $C = 512$, a kernel $\sqrt{512} \approx 23$ times too wide: flat, the collapse of
# section 2 again. Because $s$ is a statistic of the batch it carries no gradient: with one, moving one sample would
# rescale all the others.
#
# ### Exercise 6.3: `rescale_features(gen, pos) -> (gen / (s/sqrt(C)), pos / (s/sqrt(C)), s)`
#
# The checks compare $s$ with a float64 transcription and with `drifting_min`, check that the rescaled mean
# distance is $\sqrt{C}$, that multiplying the features by 50 changes nothing, and that $s$ carries no gradient.

# %%
check_exercise(ex, "6.3")

# %% [markdown]
# How flat is the kernel? The *effective number of targets* of a query, $\exp$ of the entropy of its softmax over
# the targets, for the per-location vectors of stage 1 ($C = 32$) at $R = 0.05$: with the $\sqrt{C}$ rescaling, and
# with the wrong $C$.

# %%
with torch.no_grad():
    f_gen = feats["s1.loc"][:, :64].double()
    f_pos = feats["s1.loc"][:, 64:192].double()
g_s, p_s, s = rescale_features(f_gen, f_pos)
c = f_gen.shape[2]
dist = torch.cdist(g_s, torch.cat([g_s, p_s], 1))
dist = dist + 1e9 * torch.eye(64, 192, dtype=dist.dtype)  # a sample is not its own target
for name, temp in (("tau = R sqrt(C)", 0.05 * math.sqrt(c)), ("tau = R C (wrong)", 0.05 * c)):
    w = torch.softmax(-dist / temp, dim=2)
    eff = (-(w * w.clamp_min(1e-300).log()).sum(2)).exp().mean()
    print(f"{name:<18} effective number of targets {float(eff):6.1f} of {dist.shape[2] - 1}")
mean_distance = float(torch.cdist(g_s, torch.cat([g_s, p_s], 1)).mean())
print(f"scale s = {float(s):.3f}; mean distance after rescaling = {mean_distance:.3f}"
      f" (sqrt(C) = {math.sqrt(c):.3f})")

# %% [markdown]
# With $\tau = R\sqrt C$ a query spreads its weight over about 20 of the 191 targets: the kernel is local. With
# $\tau = R\,C$ the same query spreads it over more than two thirds of them: nearly the flat kernel of section 2,
# whose field only matches means.
#
# ## 5. One force per temperature, each of unit size
#
# For each temperature $R$ the released code computes a force $F_R$ (section 6), in the rescaled coordinates. Their
# raw sizes need not agree: a small temperature looks at a few neighbours, a large one at everything, and where
# every target is far (relative to the temperature) the force is tiny. As in lessons
# 04 and 05, each is divided by its root mean square before they are summed, so that every temperature pulls
# equally hard:
#
# $$F = \sum_R \frac{F_R}{\sqrt{\max\big(\overline{F_R^2},\ 10^{-8}\big)}}, \qquad
#   \overline{F_R^2} = \frac{1}{G N C}\sum_{g, i, c} F_{R, g i c}^2 .$$
#
# The floor is on the mean square, so on the root it is $10^{-4}$: a temperature whose force is vanishingly small
# (all its targets far away) is not blown up to unit size but, in effect, dropped; and a zero force gives zero, not
# $0/0$. (The rescaled coordinates have a typical distance $\sqrt C$, so $10^{-4}$ really is small.) Since the goal
# is $\tilde x + F$, the loss $\overline{(\tilde x - \mathrm{stopgrad}(\tilde x + F))^2} = \overline{F^2}$ lies
# between 0 (forces that cancel) and $T^2$ for $T$ temperatures (all of them pointing the same way), whatever the
# samples: section 6's demo prints 7.02 with three. As in lesson 05 it is no progress measure; the raw
# $\overline{F_R^2}$ is what to log.
#
# ### Exercise 6.4: `normalise_drifts(forces) -> Tensor`
#
# The checks compare with a float64 transcription and check unit mean square for one force, that multiplying one
# force by 1000 changes nothing, that a zero force gives no NaN, that a force of RMS $10^{-6}$ is divided by the
# floor, and that float32 stays float32 and the inputs are left unchanged.

# %%
check_exercise(ex, "6.4")

# %% [markdown]
# The three raw forces for one group of a feature (the location in the middle of stage 2's map, 64 generated and
# 128 real images), computed with lesson 03's batch field at the temperatures $\tau = R s$ (section 6 shows why that
# is the same force up to a factor), and what the normalisation makes of them:

# %%
x_g, y_g = feats["s2.loc"][5, :64].double(), feats["s2.loc"][5, 64:192].double()
_, _, s_g = rescale_features(x_g[None], y_g[None])
raw = [dm.batch_drift_field(x_g, y_g, None, r * float(s_g)) for r in (0.02, 0.05, 0.2)]
total = normalise_drifts([v[None] for v in raw])
for r, v in zip((0.02, 0.05, 0.2), raw):
    print(f"R = {r:<5} raw RMS {float(v.square().mean().sqrt()):.3e}")
print(f"normalised and summed: RMS {float(total.square().mean().sqrt()):.3f} "
      "(at most 3, when the three agree in direction)")

# %% [markdown]
# Here the three raw forces happen to be of similar size, and the normalisation changes little but the units. It
# matters where they are not: from a collapsed start, far from the data, or in a feature whose distances are
# spread over several orders of magnitude.

# %% [markdown]
# ## 6. The released batch loss
#
# Put together, for one feature $[G, N, D]$ with positives $[G, M, D]$ (the released code's `drift_loss`; here
# without its extra negatives and per-sample weights, which `drifting_min.features.released_drift_loss` has), with
# no gradient except where said:
#
# 1. targets $t = [x \mid y^+]$ per group, the scale $s$ and the coordinates $\tilde x = x/(s/\sqrt D)$ (section 4);
# 2. distances relative to the scale, $\tilde d_{gij} = \lVert x_{gi} - t_{gj}\rVert / s$, and $+100$ on each
#    sample's distance to itself, so that after dividing by $R \le 0.2$ its logit is below $-500$, about $e^{-500}$
#    times the weight of any target within a few scales: the course's $-\infty$ self-mask, up to that factor. With
#    the clip of step 3 on, that entry is floored like every other, to an affinity of $10^{-3}$: it moves nothing
#    (its displacement is $x_i - x_i = 0$) but it adds $10^{-3}$ to the row sum of $A^-$, which weights the
#    attraction;
# 3. for each $R$: logits $\ell = -\tilde d / R$, the double softmax of lesson 03 with a **clip**,
#    $A = \sqrt{\max(\mathrm{softmax}_j(\ell)\,\mathrm{softmax}_i(\ell),\ 10^{-6})}$, split into $A^-$ (the first $N$
#    columns) and $A^+$, cross-weighted $W^+ = A^+ \cdot \mathrm{rowsum}(A^-)$, $W^- = A^- \cdot \mathrm{rowsum}(A^+)$,
#    and $F_R = W^+ \tilde t^+ - W^- \tilde t^- - (\mathrm{rowsum}\,W^+ - \mathrm{rowsum}\,W^-)\,\tilde x$ (the last
#    term is zero: both row sums equal $\mathrm{rowsum}A^+ \cdot \mathrm{rowsum}A^-$);
# 4. $F = \sum_R F_R / \mathrm{rms}(F_R)$ with the floor (section 5); the goal $\tilde x + F$ is a constant;
# 5. $L = \frac{1}{G N D}\sum_{g,i,d} \big(x_{gid}/(s/\sqrt D) - \mathrm{goal}_{gid}\big)^2$.
#
# So $L = \overline{F^2}$ and $\partial L / \partial x_{gi} = -\frac{2}{G N D}\,\frac{F_{gi}}{s/\sqrt D}$: as in
# lesson 04 the samples are pushed along the force, now in every feature at once, and through the encoder into the
# pixels. Relation with the canonical batch form: with one group, no clip and no extra negatives, the logits are the
# course's Laplace logits at $\tau = R s$, so $F_R$ is the batch field $V_{\tau = Rs}$ in rescaled coordinates, the
# normalisation removes the factor, and $L$ is lesson 04's loss on $\sum_\tau V_\tau/\mathrm{rms}(V_\tau)$ divided by
# $D$ (a mean over dimensions instead of a sum). `drifting_min/features.py` states this and its tests check it.
#
# **Numerics.** At $R = 0.02$ a logit is $-\tilde d/0.02$: a target three scales away has $\ell = -150$, and
# $e^{-150}$ underflows in float32 (below about $10^{-38}$). A column of the softmax over generated samples whose
# entries all underflow gives $0/0$. Take both softmaxes with `log_softmax`, add them, halve, and exponentiate; the
# clip is then a `clamp_min` at $\log 10^{-6}$ in log space. Distances and softmaxes stay in float32 even under
# bf16 autocast (`drifting_min` turns autocast off for them).
#
# ### Exercise 6.5: `released_loss(gen, pos, taus, clip) -> Tensor`
#
# Use your 6.3 and 6.4. The checks compare value and gradient with `drifting_min.features.released_drift_loss`
# with its two floors off (`min_sq_distance=0, scale_floor=0`: the release's distances of at least $10^{-4}$ and
# scale of at least $10^{-3}$, which matter only for features far smaller than these; see `docs/notation.md`)
# (several groups, 1 to 64 dimensions, clip on and off), check that one temperature gives exactly $L = 1$, that
# scaling and shifting the features changes nothing, and that at $R = 0.02$ in float32, with a positive far from
# every sample, the gradient is finite and agrees with float64 and no gradient reaches the positives. Like the
# released code, your loss computes bfloat16 (or float16) features in float32 and returns a float32 loss: the
# checks give it bfloat16 features, a generated sample far from every target (with the clip on it must still move
# toward the data), inputs on another device and inputs far from the origin.

# %%
check_exercise(ex, "6.5")

# %% [markdown]
# Your loss (or the reference) on one feature, and its gradient: the rescaled gradient is minus the summed force,
# whose mean square is the loss.

# %%
f_gen = feats["s2.loc"][:, :32].double().clone().requires_grad_(True)
f_pos = feats["s2.loc"][:, 32:96].double()
loss = released_loss(f_gen, f_pos, (0.02, 0.05, 0.2), True)
(grad,) = torch.autograd.grad(loss, f_gen)
_, info = features.released_drift_loss(f_gen, f_pos, min_sq_distance=0, scale_floor=0)  # as 6.5 defines it
g, n, d = f_gen.shape
force = -grad * g * n * d / 2 * (info["scale"] / math.sqrt(d))
print(f"s2.loc: [G, N, D] = {[g, n, d]}, loss = {float(loss.detach()):.4f}, mean square of the recovered force = "
      f"{float(force.square().mean()):.4f}")
print("raw mean square force per temperature (what to log):", [f"{v:.3g}" for v in info["raw_drift_sq"]])

# %% [markdown]
# ## 7. Pixels against features, measured
#
# The experiment, cached in `lessons/06/results.npz` and `results.json` (about seven minutes on one core,
# ten on a busy machine; regenerate with `python -m drifting_min.feature_demo --out lessons/06/results.npz`):
#
# * **the kernel's encoder**: three stages of $3\times3$ convolutions with group normalisation ($16\times16$ with 16
#   channels, $8\times8$ with 32, $4\times4$ with 64), trained as a shape classifier, then frozen;
# * **one generator, two kernels**: the same convolutional generator (noise of 32 numbers to $4\times4$, $8\times8$,
#   $16\times16\times3$, a sigmoid), the same initial weights, noise and real batches (64 + 64 a step), Adam, the same
#   number of steps; trained with the released loss either on raw pixels (one feature, $D = 768$) or on the raw
#   pixels *plus* the encoder's multi-scale features (section 3);
# * **the metric, from an independent judge**: a second classifier of another architecture ($5\times5$ convolutions,
#   max-pooling, a 64-unit hidden layer, ReLU), another seed, other training images. It never touches the training of
#   either generator. Reported: the Fréchet distance between Gaussians fitted to its hidden layer on 2,000 generated
#   and 2,000 real images (FD; two real sets give the floor), the share of samples it assigns to each class, and its
#   mean confidence (top softmax probability). Measuring with the kernel's own encoder would reward feature space by
#   construction.

# %%
q = RESULTS["quality"]
print(f"kernel's encoder accuracy {RESULTS['encoder_accuracy']:.3f}; judge accuracy {RESULTS['judge_accuracy']:.3f} "
      f"(held-out images); torch {RESULTS['torch']}\n")
print(f"{'samples':<22} {'FD (judge)':>10} {'confidence':>10} {'steps':>6} {'seconds':>8}   "
      f"class shares ({', '.join(images.CLASSES)})")
rows = (("real", "real (second set)"), ("pixels", "pixel-space kernel"), ("pixels_no_clip", "pixels, no clip"),
        ("pixels_no_clip_long", "pixels, no clip, 3x"), ("features", "feature-space kernel"))
for key, name in rows:
    r = q[key]
    secs = f"{r['steps']:6d} {r['seconds']:8.0f}" if "seconds" in r else f"{'':>15}"
    shares = " ".join(f"{v:.2f}" for v in r["class_shares"])
    print(f"{name:<22} {r['frechet']:>10.2f} {r['confidence']:>10.3f} {secs}   {shares}")

# %%
fig, axes = plt.subplots(1, 5, figsize=(20, 4.6))
panels = {"samples_real": "real images", "samples_pixels": "pixel-space kernel",
          "samples_pixels_no_clip": "pixels, no clip", "samples_pixels_no_clip_long": "pixels, no clip, 3x steps",
          "samples_features": "feature-space kernel"}
for ax, (key, title) in zip(axes, panels.items()):
    ax.imshow(images.grid(torch.from_numpy(CACHE[key]), 8, 8))
    ax.set(title=title, xticks=[], yticks=[])
show(fig)

# %% [markdown]
# **What the table shows** (800 steps each but the 3x row; one run per kernel and one seed, so a difference of a few
# FD points would be noise, and the ones that matter here are much larger). With the released loss on raw pixels every
# sample is the same flat grey: the mean image. That is not only concentration. The generator starts with every output
# near 0.5, a collapsed start close to the data's mean, and the clip of section 8 then pulls every sample to that mean;
# the judge calls them all one class with low confidence, and the FD is the worst of the table. Without the clip the
# pixel kernel does move: colourful blurry blobs with gradients like the backgrounds, no shapes, about half the FD. The
# feature-space kernel (raw pixels plus the encoder's features, clip on) is the only one that draws shapes: solid blobs
# with edges, which the judge reads with the confidence it has on real images (0.79 against 0.78), and the lowest FD by
# a factor of two. It is far from the data all the same (the floor is 0.1): one colour of shape dominates, the triangles
# and squares are rough, stripes are nearly missing. That is as far as 800 CPU steps of a small generator got here;
# lesson 07 trains for longer on a GPU. A feature step costs about three times a pixel step here (the encoder's forward
# and backward pass and 21 feature calls). Given about the same time, three times the steps (2,400), the pixel kernel
# without the clip barely moves (FD 135 against 137): its blobs do not turn into shapes with more training.
#
# ## 8. The clip, and when it hurts
#
# The clip in step 3 floors every affinity at $\sqrt{10^{-6}} = 10^{-3}$, and the affinity matrix is then
# cross-weighted, so every positive gets a weight of at least $10^{-3}\cdot\mathrm{rowsum}(A^-)$, however far it is:
# and so does every negative. Where the true weights are larger, nothing changes. Now take a query far from every
# positive and near its fellow generated samples. Its positive affinities all sit on the floor, $A^+_j = 10^{-3}$,
# while its negatives keep their true affinities $A^-_i$. With $c = 10^{-3} M\,\mathrm{rowsum}(A^-)$,
#
# $$W^+ \tilde y^+ - \mathrm{rowsum}(W^+)\,\tilde x = c\,(\bar{\tilde y}^+ - \tilde x), \qquad
#   W^- \tilde y^- - \mathrm{rowsum}(W^-)\,\tilde x = c\,(\bar{\tilde x}^-_A - \tilde x), \qquad
#   F = c\,\big(\bar{\tilde y}^+ - \bar{\tilde x}^-_A\big),$$
#
# with $\bar{\tilde y}^+$ the plain mean of the positives and $\bar{\tilde x}^-_A$ the affinity-weighted mean of the
# query's neighbours. The force no longer depends on where the data are, only on their mean: it holds the generated
# samples at the mean of the data. Start a generator collapsed at the origin of the eight Gaussians (radius 2,
# standard deviation 0.05): the data's mean is the origin, so that is where it stays. Each temperature's force is
# normalised to unit size, so this one is as strong as any other.
#
# The share of samples whose force points inward ($F\cdot x < 0$), at the start, per temperature, from the gradient
# of your loss with one temperature at a time:

# %%
torch.manual_seed(0)
x0 = 0.02 * torch.randn(256, 2, dtype=torch.float64)
y8 = toys.eight_gaussians(256, seed=1).double()


def inward(x, y, tau, clip):
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(released_loss(x[None], y[None], (tau,), clip), x)
    return float(((-grad * x.detach()).sum(1) < 0).double().mean())


print(f"{'temperature':<12} {'clip on':>8} {'clip off':>9}")
for tau in (0.02, 0.05, 0.2):
    print(f"{tau:<12} {inward(x0, y8, tau, True):>8.2f} {inward(x0, y8, tau, False):>9.2f}")

# %% [markdown]
# And trained (cached from the same command: an MLP generator with its last layer shrunk to 1% so that every sample
# starts within a few hundredths of the origin, 256 + 256 samples a step, Adam $10^{-3}$, the released loss at
# $R \in \{0.02, 0.05, 0.2\}$), with the clip and without:

# %%
clip = RESULTS["clip"]
fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
data8 = toys.eight_gaussians(2000, seed=5)
for ax, name in zip(axes[:2], ("clip_on", "clip_off")):
    s8 = CACHE[f"{name}_samples"]
    ax.scatter(*data8.T, s=2, c="0.75", label="data")
    ax.scatter(*s8.T, s=2, c="tab:orange", label="generated")
    ax.set(title=f"{name.replace('_', ' ')}: {clip[name]['modes_covered']}/8 modes covered", xlim=(-2.6, 2.6),
           ylim=(-2.6, 2.6), aspect="equal", xlabel="$x_1$", ylabel="$x_2$")
axes[0].legend(loc="lower left", markerscale=4, fontsize=8)
for name, colour in (("clip_on", "tab:red"), ("clip_off", "tab:blue")):
    h = CACHE[f"{name}_history"]  # columns: step, mean radius, share inward at each temperature
    axes[2].semilogy(h[:, 0], h[:, 1], c=colour, marker="o", ms=3, label=name.replace("_", " "))
axes[2].axhline(2.0, c="0.6", ls="--", label="radius of the data")
axes[2].set(xlabel="step", ylabel="mean distance from the origin", title="how far the samples got")
axes[2].legend(fontsize=8)
show(fig)

# %%
h = CACHE["clip_on_history"]
print("clip on, share of samples whose force points inward, over the", len(h), "snapshots (every 50 steps):")
for k, tau in enumerate(RESULTS["config"]["taus"]):
    print(f"  R = {tau}: mean {h[:, 2 + k].mean():.2f}, at least 0.95 in {int((h[:, 2 + k] >= 0.95).sum())} snapshots")
print("modes covered (5% of the samples within 0.15 of a centre):",
      {k: v["modes_covered"] for k, v in clip.items()})

# %% [markdown]
# With the clip the generator never leaves the origin: its samples stay within a few hundredths of it for all 600
# steps. Far from the data all three temperatures sit on the floor (at $R = 0.2$ a positive two scales away has a
# product of softmaxes near $10^{-9}$), so the three forces are nearly the same vector for every sample, the pull
# towards the batch's data mean minus the pull towards the generated mean: the cloud moves as a whole and is pulled
# back whenever it drifts off the origin. In 6 of the 13 snapshots at least 95% of the forces point inward (an
# earlier run of the same setting found 99%). At the very first step, in the live probe above, about half do: the
# mean of one batch of 256 data points misses the origin by about $2/\sqrt{256} \approx 0.1$, more than the size of
# the collapsed cloud, and one common direction points inward for half of a cloud centred on the origin.
#
# Without the clip the samples reach the circle in 50 steps and spread along it; after 600 steps they cover the
# circle with mass still strung between the modes (2 of 8 modes hold 5% of the samples within 0.15 of their centre).
# Where a query has some target within a scale or two, its true weights exceed the floor and the clip changes little.
# It hurts where every weight is small: a collapsed start far from most data, which is also what sank the pixel
# kernel of section 7 (its samples start as one grey image).
#
# ## 9. What can go wrong
#
# * **A flat kernel.** Temperatures relative to the wrong scale ($C$ instead of $\sqrt C$, or no rescaling) give
#   weights that barely depend on distance: the generator matches means and collapses. Print the effective number of
#   targets (section 4) for each feature once.
# * **Underflow.** Softmaxes written as `exp / sum`, or computed in bf16, give zeros and NaN at $R = 0.02$. Work in
#   log space, in float32.
# * **The loss as a progress measure.** With the per-temperature normalisation the loss sits near a constant. Log
#   the raw mean squares per temperature, and measure samples with a metric the kernel does not train on.
# * **A gradient through the scale or the goal.** Both are constants of the step; with a graph through them the
#   gradient is no longer the force.
# * **The clip from a collapsed start.** Section 8: far from the data every weight sits on the floor and the force
#   points to the data's mean. Start from a generator whose samples already spread, or turn the clip off.
#
# ## Next
#
# [Lesson 07](../07/lesson.py) puts these pieces into the CIFAR-10 trainer: an encoder trained on CIFAR-10 first,
# the multi-scale features of its stages, the released loss per feature, bf16 autocast with the field in float32,
# EMA, checkpoints and FID.
