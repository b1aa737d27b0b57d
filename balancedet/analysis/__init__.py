"""Dataset analyses (statistics estimated from annotation files)."""
from .concurrent_rate import estimate_concurrent_rate  # noqa: F401
from .effective_number import effective_number_weights  # noqa: F401
from .sampling_stats import sampling_stats  # noqa: F401
