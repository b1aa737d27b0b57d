"""FastOpenImagesMetric across 2 real processes (torchrun, gloo on CPU): the result gathered by
mmengine's BaseMetric.evaluate / collect_results equals the single-process one."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import REPO
from oi_metric_data import make_meta, make_samples

from balancedet.evaluation.openimages_metric import FastOpenImagesMetric

NUM_IMGS = 75  # odd: DefaultSampler pads rank 1's share, collect_results must drop the pad

WORKER = textwrap.dedent('''
    import json, os, sys
    import numpy as np
    import torch.distributed as dist
    dist.init_process_group('gloo')
    from mmengine.dataset import DefaultSampler
    from balancedet.evaluation.openimages_metric import FastOpenImagesMetric
    from oi_metric_data import make_meta, make_samples

    rng = np.random.default_rng(21)
    meta, _ = make_meta(30, rng)
    samples = make_samples(int(sys.argv[2]), 30, rng, tie_decimals=2)
    share = list(DefaultSampler(samples, shuffle=False))
    m = FastOpenImagesMetric(iou_thrs=[0.5, 0.7], ioa_thrs=[0.5, 0.5])
    m.dataset_meta = meta
    for i in range(0, len(share), 4):
        m.process({}, [samples[j] for j in share[i:i + 4]])
    res = m.evaluate(len(samples))
    with open(os.path.join(sys.argv[1], f'rank{dist.get_rank()}.json'), 'w') as f:
        json.dump(dict(res=res, share=share, world=dist.get_world_size()), f)
    dist.barrier()
    dist.destroy_process_group()
''')


def test_two_process_gather_equals_single(tmp_path):
    script = tmp_path / 'worker.py'
    script.write_text(WORKER)
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1',
               PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / 'tests'),
                                           os.environ.get('PYTHONPATH', '')]))
    proc = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
         str(script), str(tmp_path), str(NUM_IMGS)], env=env, capture_output=True, text=True,
        timeout=300, check=False, cwd=str(REPO))
    if proc.returncode != 0:
        pytest.fail(f'torchrun failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}')
    r0, r1 = (json.loads((tmp_path / f'rank{r}.json').read_text()) for r in (0, 1))
    assert r0['world'] == r1['world'] == 2
    assert len(r0['share']) == len(r1['share']) == (NUM_IMGS + 1) // 2
    assert r1['share'][-1] == 0  # the padded duplicate

    rng = np.random.default_rng(21)
    meta, _ = make_meta(30, rng)
    samples = make_samples(NUM_IMGS, 30, rng, tie_decimals=2)
    m = FastOpenImagesMetric(iou_thrs=[0.5, 0.7], ioa_thrs=[0.5, 0.5])
    m.dataset_meta = meta
    m.process({}, samples)
    single = m.evaluate(NUM_IMGS)
    assert r0['res'] == r1['res']  # broadcast from rank 0
    assert set(r0['res']) == set(single)
    for k, v in single.items():
        assert r0['res'][k] == pytest.approx(v, abs=1e-12), k
    # the pad matters: evaluating the padded list differs from the dataset
    m.results = []
    m.process({}, samples + samples[:1])
    padded = m.evaluate(NUM_IMGS + 1)
    assert padded != single
