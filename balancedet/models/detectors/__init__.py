# Registered components: one module per technique, imported here so that
# `custom_imports=dict(imports=['balancedet'])` registers them all.
from . import hourglass_rpn  # noqa: F401
from .weighted_loss_detector import WeightedLossDetector  # noqa: F401
