"""tools/misc/count_code.py: the code-line count quoted in the closing notes."""
import runpy
import textwrap

from conftest import REPO

count_code_lines = runpy.run_path(str(REPO / 'tools/misc/count_code.py'))['count_code_lines']


def test_docstrings_comments_and_blank_lines_do_not_count():
    src = textwrap.dedent('''\
        """Module docstring,
        two lines."""
        import os  # a comment


        # a comment line
        def f(x):
            """Function docstring."""
            s = """a string that is
            code, not a docstring"""
            return (x +
                    1)


        class A:
            """Class docstring."""
            y = 1
        ''')
    # import, def, s = (2 lines), return (2 lines), class, y = 1
    assert count_code_lines(src) == 8


def test_empty_source_counts_zero():
    assert count_code_lines('') == 0
    assert count_code_lines('"""Only a docstring."""\n') == 0
