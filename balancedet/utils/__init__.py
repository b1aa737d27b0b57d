from .checks import check_choice, check_nms_cfg, check_number, check_numbers  # noqa: F401
