from .checks import check_choice, check_number, check_numbers  # noqa: F401
