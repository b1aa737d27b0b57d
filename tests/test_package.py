"""`custom_imports=['balancedet']` alone registers every component."""
import re
import subprocess
import sys

from conftest import REPO

_DECORATED = re.compile(r'@(\w+)\.register_module\(\)\s*\nclass (\w+)')


def test_import_registers_every_decorated_class():
    found = []
    for path in sorted((REPO / 'balancedet').rglob('*.py')):
        found += _DECORATED.findall(path.read_text())
    assert len(found) > 20, found
    probe = ('import balancedet, mmdet.registry as r\n'
             f'for reg, name in {found!r}:\n'
             '    cls = getattr(r, reg).get(name)\n'
             '    assert cls is not None and cls.__module__.startswith("balancedet"), (reg, name)\n'
             f'print("ok", {len(found)})\n')
    out = subprocess.run([sys.executable, '-c', probe], cwd=REPO, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == f'ok {len(found)}'
