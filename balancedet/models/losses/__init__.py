# Registered components: one module per technique, imported here so that
# `custom_imports=dict(imports=['balancedet'])` registers them all.
from .balanced_l1_loss import BalancedL1LossV2  # noqa: F401
from .concurrent_softmax_loss import ConcurrentSoftmaxLoss  # noqa: F401
