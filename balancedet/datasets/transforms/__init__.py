# Registered components: one module per technique, imported here so that
# `custom_imports=dict(imports=['balancedet'])` registers them all.
from . import (
    drop_pixels,  # noqa: F401
    dynamic_train_scale,  # noqa: F401
    multi_label_packing,  # noqa: F401
)
