# Registered components: one module per technique, imported here so that
# `custom_imports=dict(imports=['balancedet'])` registers them all.
from . import concurrent_softmax_head  # noqa: F401
