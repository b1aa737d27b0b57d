"""Reading training results back from mmengine work dirs."""
import glob
import json
import os.path as osp


def read_scalars(work_dir: str) -> list[dict]:
    """Rows of the newest ``<work_dir>/<timestamp>/vis_data/scalars.json``.

    Raises ``SystemExit`` naming the work dir when there is none (the config
    was not trained there)."""
    files = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not files:
        raise SystemExit(f'{work_dir}: no */vis_data/scalars.json; train the config first')
    with open(files[-1]) as f:
        return [json.loads(line) for line in f if line.strip()]


def last_row_with(rows: list[dict], key: str, work_dir: str) -> dict:
    """The last of ``rows`` (read from ``work_dir``) that holds ``key``."""
    hits = [r for r in rows if key in r]
    if not hits:
        raise SystemExit(f'{work_dir}: no validation row with {key!r}')
    return hits[-1]


def last_validation(work_dir: str, key: str) -> dict:
    """The last row of ``work_dir``'s scalars that holds ``key``."""
    return last_row_with(read_scalars(work_dir), key, work_dir)
