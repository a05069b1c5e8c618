"""fused_reparam: reparameterized Gaussian sampling as single fused kernels for PyTorch.

``sample_diag(mu, logvar)`` draws ``z = mu + exp(0.5 * logvar) * eps`` (other scales and
noises by keyword), ``sample_chol(mu, scale_tril)`` draws ``z = mu + L @ eps`` and
``sample_tanh_normal(mu, log_std)`` a SAC policy's squashed action with its log-density, with
the noise made inside the kernel and regenerated in backward. See README.md and
docs/design.md.
"""

from . import distributions, nn
from ._backend import BACKENDS, available_backends
from ._extension import has_extension
from ._sample import ReparamSample
from .chol import sample_chol
from .diag import sample_diag
from .tanh import TanhSample, sample_tanh_normal

__version__ = "0.1.0"

__all__ = [
    "BACKENDS",
    "ReparamSample",
    "TanhSample",
    "__version__",
    "available_backends",
    "distributions",
    "has_extension",
    "nn",
    "sample_chol",
    "sample_diag",
    "sample_tanh_normal",
]
