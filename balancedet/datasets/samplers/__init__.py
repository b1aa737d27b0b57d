# Registered components: one module per technique, imported here so that
# `custom_imports=dict(imports=['balancedet'])` registers them all.
from .icip_samplers import ICIPStrategySampler  # noqa: F401
from .soft_balance_sampler import SoftBalanceSampler  # noqa: F401
