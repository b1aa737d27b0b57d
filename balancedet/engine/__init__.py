from . import safe_checkpoint  # noqa: F401
from .rng_state_hook import RNGStateHook  # noqa: F401
