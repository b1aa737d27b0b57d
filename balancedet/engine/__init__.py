from . import safe_checkpoint  # noqa: F401
from .hybrid_schedule_hook import HybridScheduleHook  # noqa: F401
from .rng_state_hook import RNGStateHook  # noqa: F401
from .safetensors_checkpoint import SafetensorsCheckpointHook  # noqa: F401
