"""drifting_min: a minimal, readable implementation of drifting models.

One module per idea:

* ``kernels``   distances and kernels (lesson 02);
* ``kde``       kernel density estimates, scores, Tweedie (lesson 02);
* ``drift``     mean shift and the drift field, population and batch forms (lesson 03), the two-sided
  (Sinkhorn) coupling (lesson 08);
* ``loss``      the drift loss: ``drift_regression_loss`` for a given field, ``drifting_loss`` for a batch (lesson 04);
* ``features``  the released batch loss and multi-scale features (lesson 06); ``images`` and ``feature_demo``,
  lesson 06's small images and experiments;
* ``toys``      2D toys: data, generator, training, metrics, ablations, ``python -m drifting_min.toys`` (lesson 05);
* ``cifar``     the CIFAR-10 trainer, ``python -m drifting_min.cifar`` (lesson 07);
* ``cli``       command-line options made from a config dataclass; ``runtime``, CPU threads (one by default).
"""

from .drift import batch_drift_field, drift_field, mean_shift, multi_temperature_drift
from .features import feature_drift_loss, multiscale_features, released_drift_loss
from .kde import kde_log_density, kde_score, laplace_log_potential, laplace_preconditioner, tweedie_denoise
from .kernels import kernel_logits, kernel_matrix, pairwise_distances
from .loss import drift_regression_loss, drifting_loss

__all__ = [
    "batch_drift_field",
    "drift_field",
    "drift_regression_loss",
    "drifting_loss",
    "feature_drift_loss",
    "kde_log_density",
    "kde_score",
    "kernel_logits",
    "kernel_matrix",
    "laplace_log_potential",
    "laplace_preconditioner",
    "mean_shift",
    "multi_temperature_drift",
    "multiscale_features",
    "pairwise_distances",
    "released_drift_loss",
    "tweedie_denoise",
]
