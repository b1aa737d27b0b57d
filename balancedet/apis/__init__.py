"""Entry-point logic shared by ``tools/train.py`` and ``tools/test.py``."""
from .runner_setup import (  # noqa: F401
                           ConfigOptionError,
                           StrictWeightsHook,
                           add_runner_arguments,
                           build_runner,
                           check_cfg_options,
                           check_deferred_arguments,
                           load_config,
)
