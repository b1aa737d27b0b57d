# Registered components: one module per technique, imported here so that
# `custom_imports=dict(imports=['balancedet'])` registers them all.
from . import (
    cls_loc_metric,  # noqa: F401
    lvis_metric,  # noqa: F401
    openimages_metric,  # noqa: F401
    proposal_recall,  # noqa: F401
)
