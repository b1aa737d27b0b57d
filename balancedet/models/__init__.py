from . import backbones, classifiers, dense_heads, detectors, losses, necks, roi_heads, task_modules  # noqa: F401
