"""Two real processes (torchrun, gloo on CPU) draw disjoint shares of one epoch."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

WORKER = textwrap.dedent('''
    import json, os, sys
    import torch.distributed as dist
    dist.init_process_group('gloo')
    from balancedet.datasets.samplers.soft_balance_sampler import SoftBalanceSampler
    from balancedet.datasets.samplers.icip_samplers import ICIPStrategySampler

    class Toy:
        metainfo = dict(classes=('a', 'b', 'c', 'd'))
        labels = [[0]] * 40 + [[1]] * 12 + [[2, 0]] * 5 + [[3]] * 2
        def __len__(self):
            return len(self.labels)
        def get_cat_ids(self, i):
            return self.labels[i]

    out = {}
    for name, make in [('soft', lambda: SoftBalanceSampler(Toy(), lam=0.5)),  # seed synced
                       ('balanced', lambda: ICIPStrategySampler(Toy(), 'balanced', 7, seed=3))]:
        s = make()
        for epoch in (0, 1):
            s.set_epoch(epoch)
            out[f'{name}/{epoch}'] = dict(share=list(s), glob=s.global_indices().tolist(),
                                          seed=s.seed)
    with open(os.path.join(sys.argv[1], f'rank{dist.get_rank()}.json'), 'w') as f:
        json.dump(out, f)
    dist.barrier()
    dist.destroy_process_group()
''')


def test_two_real_processes(tmp_path):
    script = tmp_path / 'worker.py'
    script.write_text(WORKER)
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    proc = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
         str(script), str(tmp_path)], env=env, capture_output=True, text=True, timeout=180,
        check=False)
    if proc.returncode != 0:
        pytest.fail(f'torchrun failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}')
    r0, r1 = (json.loads((tmp_path / f'rank{r}.json').read_text()) for r in (0, 1))
    for key in r0:
        a, b = r0[key], r1[key]
        assert a['seed'] == b['seed']  # seed=None is broadcast from rank 0
        assert a['glob'] == b['glob']  # one global sequence
        glob = a['glob']
        total = len(a['share']) + len(b['share'])
        assert len(a['share']) == len(b['share']) == (len(glob) + 1) // 2
        merged = [(a, b)[p % 2]['share'][p // 2] for p in range(total)]
        assert merged == (glob * 2)[:total]
    assert r0['soft/0']['glob'] != r0['soft/1']['glob']
    assert r0['balanced/0']['glob'] != r0['balanced/1']['glob']
    assert len(r0['soft/0']['glob']) == 60  # 59 images, rounded up to 2 ranks
    assert len(r0['balanced/0']['glob']) == 28  # K=7 x 4 classes
