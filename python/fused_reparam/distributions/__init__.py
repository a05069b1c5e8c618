"""Drop-in ``torch.distributions`` whose ``rsample`` is one fused kernel.

- :class:`DiagNormal` ``(loc, logvar)``: a diagonal Gaussian with event shape ``[D]``, the
  distribution of ``torch.distributions.Independent(Normal(loc, exp(0.5 * logvar)), 1)``,
  parametrized by the log-variance as VAE encoders emit it. ``rsample`` is
  :func:`fused_reparam.sample_diag`.
- :class:`MultivariateNormal`: a subclass of ``torch.distributions.MultivariateNormal`` whose
  ``rsample`` is :func:`fused_reparam.sample_chol`; everything else is torch's.

``torch.distributions.kl_divergence`` is registered for ``DiagNormal`` against ``DiagNormal``,
``Independent(Normal(...), 1)`` and ``MultivariateNormal`` (both ways); between two
``MultivariateNormal`` torch's own registration applies.
"""

from __future__ import annotations

# _kl registers kl_divergence on import. The closed forms (fused_reparam.nn's eval path) and
# SampleShape stay importable from here, outside __all__ as ever.
from . import _kl  # noqa: F401
from ._closed_forms import chol_kl_to_standard_normal as chol_kl_to_standard_normal
from ._closed_forms import chol_log_q_at_mean as chol_log_q_at_mean
from ._closed_forms import diag_kl_to_standard_normal as diag_kl_to_standard_normal
from ._closed_forms import diag_log_q_at_mean as diag_log_q_at_mean
from ._diag_normal import DiagNormal
from ._fused_sample import SampleShape as SampleShape
from ._multivariate_normal import MultivariateNormal

__all__ = ["DiagNormal", "MultivariateNormal"]

# The classes are defined in private modules; they are named, shown and pickled as this
# module's, where users import them from.
DiagNormal.__module__ = __name__
MultivariateNormal.__module__ = __name__
