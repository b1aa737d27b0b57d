# Registered components: one module per technique, imported here so that
# `custom_imports=dict(imports=['balancedet'])` registers them all.
from . import gray_class_sampling  # noqa: F401
from .iou_balanced_sampler import BalancedIoUSampler  # noqa: F401
