"""balancedet: an mmdet 3.x toolbox for training detectors on imbalanced data.

Importing the package registers every component into mmdet's registries, so a
config only needs ``custom_imports=dict(imports=['balancedet'],
allow_failed_imports=False)``.
"""
from . import datasets, engine, evaluation, models  # noqa: F401
from .version import __version__  # noqa: F401
