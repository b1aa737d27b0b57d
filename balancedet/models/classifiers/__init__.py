# A whole classification model (the CLS-LOC track), not a backbone.
from . import res_drop_classifier  # noqa: F401
