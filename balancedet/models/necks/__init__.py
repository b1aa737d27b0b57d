# Registered components: one module per technique, imported here so that
# `custom_imports=dict(imports=['balancedet'])` registers them all.
from . import hourglass_neck  # noqa: F401
from .balanced_feature_pyramid import BalancedFeaturePyramid  # noqa: F401
