# Registered components: one module per technique, imported here so that
# `custom_imports=dict(imports=['balancedet'])` registers them all.
from . import (
    compat_ssd_head,  # noqa: F401
    hourglass_rpn_head,  # noqa: F401
)
