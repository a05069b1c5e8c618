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
- :class:`Laplace`, :class:`Gumbel` ``(loc, scale)``: subclasses of torch's ``Laplace`` and
  ``Gumbel`` whose ``rsample`` is one :func:`fused_reparam.sample_diag` call with
  ``scale="std"`` and ``noise="laplace"`` / ``"gumbel"`` (``loc + scale * eps``, ``eps`` the
  standard variate made in the kernel); everything else is torch's.
- :class:`Logistic` ``(loc, scale)``: the logistic distribution (torch has none: ``log_prob``,
  ``cdf`` = sigmoid, ``icdf`` = logit, ``entropy`` and the moments in closed form), sampled by
  ``sample_diag`` with ``noise="logistic"``.
- :class:`TanhNormal` ``(loc, s)``: a SAC policy's tanh-squashed diagonal Gaussian (event
  ``[D]``), whose ``rsample_and_log_prob`` is :func:`fused_reparam.sample_tanh_normal` (the
  action and its exact log-density from one fused kernel).

The univariate classes (``Normal``, ``Laplace``, ``Gumbel``, ``Logistic``) carry ``generator``
and ``backend`` through ``expand``, and pickle with them.

``torch.distributions.kl_divergence`` is registered for ``DiagNormal`` against ``DiagNormal``,
``Independent(Normal(...), 1)`` and ``MultivariateNormal`` (both ways); between two
``MultivariateNormal``, and for ``Normal`` (against torch's ``Normal`` or this one), torch's
own registrations apply, as to any subclass.

Pyro, with no dependency on it: where Pyro is installed, the classes are also Pyro
distributions (``pyro.sample("z", Normal(loc, scale).to_event(1))``, ``expand_by``, ``mask``...)
without importing Pyro until it is used (``_pyro.py``). A last base, ``PyroCompat``, gives them
the methods of Pyro's ``TorchDistributionMixin``, each calling Pyro's own; ``PyroCompat`` is
registered as a virtual subclass of that mixin (for the ``isinstance`` checks of plates and
reparameterizers) when Pyro defines it, by an import hook watching that one module, or at once
if Pyro is already imported. Pyro's ``Independent``, ``MaskedDistribution`` and
``ExpandedDistribution`` sample through their base, so draws stay fused. ``LocScaleReparam``
rebuilds ``type(d)(loc=..., scale=...)``: it takes the univariate classes but ``LogNormal``
(``shape_params=("generator", "backend")`` keeps those); :class:`DiagNormal` is ``(loc,
logvar)``, so reparameterize ``Normal(loc, scale).to_event(1)`` instead. Without Pyro, none of
this is added.
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
from ._gumbel import Gumbel
from ._laplace import Laplace
from ._log_normal import LogNormal
from ._logistic import Logistic
from ._multivariate_normal import MultivariateNormal
from ._normal import Normal
from ._pyro import PYRO_BASES, register_with_pyro
from ._tanh_normal import TanhNormal

__all__ = [
    "DiagNormal",
    "Gumbel",
    "Laplace",
    "LogNormal",
    "Logistic",
    "MultivariateNormal",
    "Normal",
    "TanhNormal",
]

# The classes are defined in private modules; they are named, shown and pickled as this
# module's, where users import them from.
for _cls in (
    DiagNormal,
    Gumbel,
    Laplace,
    LogNormal,
    Logistic,
    MultivariateNormal,
    Normal,
    TanhNormal,
):
    _cls.__module__ = __name__
del _cls

if PYRO_BASES:
    register_with_pyro()
