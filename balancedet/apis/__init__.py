"""Entry-point logic shared by ``tools/train.py`` and ``tools/test.py``."""
from .runner_setup import build_runner, load_config  # noqa: F401
