"""Count code lines of Python files: lines holding a token, minus docstrings.

Blank lines, comment-only lines and module/class/function docstrings do not
count. The size figures of issue #15 were counted this way::

    python tools/misc/count_code.py balancedet            # total
    python tools/misc/count_code.py balancedet --per-file
    python tools/misc/count_code.py balancedet --rev 2752b66   # a git revision
"""
import argparse
import ast
import io
import subprocess
import sys
import tokenize
from pathlib import Path

_SKIP = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
         tokenize.ENDMARKER}
_DOC_OWNERS = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def count_code_lines(src: str) -> int:
    """Lines of ``src`` that hold a token and are not part of a docstring."""
    doc = set()
    for node in ast.walk(ast.parse(src)):
        body = getattr(node, 'body', None) if isinstance(node, _DOC_OWNERS) else None
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            doc.update(range(body[0].lineno, body[0].end_lineno + 1))
    code = set()
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type not in _SKIP:
            code.update(range(tok.start[0], tok.end[0] + 1))
    return len(code - doc)


def _sources(path: str, rev: str | None):
    if rev is None:
        for p in sorted(Path(path).rglob('*.py')):
            yield str(p), p.read_text()
        return
    names = subprocess.run(['git', 'ls-tree', '-r', '--name-only', rev, path], check=True,
                           capture_output=True, text=True).stdout.split()
    for name in sorted(n for n in names if n.endswith('.py')):
        yield name, subprocess.run(['git', 'show', f'{rev}:{name}'], check=True,
                                   capture_output=True, text=True).stdout


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('path', help='a folder (or, with --rev, a path inside the repository)')
    parser.add_argument('--rev', help='count the files of this git revision instead')
    parser.add_argument('--per-file', action='store_true', help='one line per file')
    args = parser.parse_args(argv)
    total = 0
    for name, src in _sources(args.path, args.rev):
        n = count_code_lines(src)
        total += n
        if args.per_file:
            print(f'{n:6d} {name}')
    print(f'TOTAL {total}')


if __name__ == '__main__':
    sys.exit(main())
