from . import samplers, transforms  # noqa: F401
from .balanced_coco import BalancedCocoDataset, DatasetError  # noqa: F401
from .hierarchy import ClassHierarchy, HierarchyError  # noqa: F401
from .lvis import BalancedLVISDataset  # noqa: F401
from .openimages import (  # noqa: F401
    OpenImagesChallengeMultiLabelDataset,
    OpenImagesMultiLabelDataset,
)
