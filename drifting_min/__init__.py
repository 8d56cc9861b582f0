"""drifting_min: a minimal, readable implementation of drifting models.

One module per idea: ``kernels`` (distances, kernels), ``kde`` (densities and scores), ``drift`` (mean shift
and the drift field, population and batch forms), ``loss`` (the drift loss), ``features`` (the released batch loss and
multi-scale features, lesson 06).
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
