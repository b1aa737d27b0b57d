from .arrays import to_numpy  # noqa: F401
from .checks import check_choice, check_nms_cfg, check_number, check_numbers  # noqa: F401
