"""Drop-in ``torch.distributions`` whose ``rsample`` is one fused kernel.

- :class:`DiagNormal` ``(loc, logvar)``: a diagonal Gaussian with event shape ``[D]``, the
  distribution of ``torch.distributions.Independent(Normal(loc, exp(0.5 * logvar)), 1)``,
  parametrized by the log-variance as VAE encoders emit it. ``rsample`` is
  :func:`fused_reparam.sample_diag`.
- :class:`Normal` ``(loc, scale)``: a subclass of ``torch.distributions.Normal`` whose
  ``rsample`` is :func:`fused_reparam.sample_diag` with ``scale="std"`` (one call for any
  ``sample_shape``); everything else is torch's, ``kl_divergence`` included.
- :class:`LogNormal` ``(loc, scale)``: a subclass of ``torch.distributions.LogNormal`` over
  the fused :class:`Normal`, so ``rsample`` is the exp of one fused sample.
- :class:`MultivariateNormal`: a subclass of ``torch.distributions.MultivariateNormal`` whose
  ``rsample`` is :func:`fused_reparam.sample_chol`; everything else is torch's.

``torch.distributions.kl_divergence`` is registered for ``DiagNormal`` against ``DiagNormal``,
``Independent(Normal(...), 1)`` and ``MultivariateNormal`` (both ways); between two
``MultivariateNormal``, and for ``Normal`` (against torch's ``Normal`` or this one), torch's
own registrations apply, as to any subclass.
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
from ._log_normal import LogNormal
from ._multivariate_normal import MultivariateNormal
from ._normal import Normal

__all__ = ["DiagNormal", "LogNormal", "MultivariateNormal", "Normal"]

# The classes are defined in private modules; they are named, shown and pickled as this
# module's, where users import them from.
DiagNormal.__module__ = __name__
LogNormal.__module__ = __name__
MultivariateNormal.__module__ = __name__
Normal.__module__ = __name__
