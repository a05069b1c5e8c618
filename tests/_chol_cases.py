"""The backends that the Cholesky op tests of every backend (test_chol_values.py,
test_chol_ops.py, test_chol_errors.py) parametrize over: every one that has the op on each
device, and the fused ones among them."""

from __future__ import annotations

import fused_reparam
from conftest import DEVICES

OP = "chol_rsample"
DEVICE_BACKENDS = [(d, b) for d in DEVICES for b in fused_reparam.available_backends(d, OP)]
FUSED = [(d, b) for d, b in DEVICE_BACKENDS if b != "reference"]
