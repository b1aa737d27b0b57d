"""Class index on an Open-Images-sized dataset object vs mmdet's ClassAwareSampler.

Writes (once, into ``--dir``, default ``/tmp/oi_sampler_bench``) a V6 box CSV of
``--images`` images (default 1.74 M) and ``--boxes`` rows (default 3 M), its metas
pickle and the real label / hierarchy files (no image files: nothing reads them),
builds ``OpenImagesMultiLabelDataset`` on it once, then times on **that same object**:

* ours: ``ClassImageIndex.from_dataset`` (what every balancedet sampler builds) and
  the whole ``SoftBalanceSampler(lam=0.5)`` construction;
* reference: mmdet's ``ClassAwareSampler`` construction (its per-class image dict,
  built through ``get_cat_ids``).

Target (issue 11): ours at least as fast as the reference; the ratio reference / ours
is printed (> 1 = ours faster).  Run:
``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_oi_sampler_index.py``
(``--images 174000 --boxes 300000`` for a quick run).
"""
import argparse
import importlib.util
import json
import os
import os.path as osp
import pickle
import shutil
import sys
import time
import warnings

import numpy as np

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)


def _gen_module():
    spec = importlib.util.spec_from_file_location(
        'bench_cr', osp.join(REPO, 'benchmarks', 'bench_concurrent_rate.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def prepare(root, num_images, num_boxes):
    from balancedet.datasets.openimages_generator import HIERARCHY_FILE, LABEL_FILE
    meta = osp.join(root, 'bench.json')
    want = {'images': num_images, 'boxes': num_boxes}
    if osp.isfile(meta) and json.load(open(meta)) == want:
        return
    os.makedirs(root, exist_ok=True)
    _, ids = _gen_module().generate(osp.join(root, 'train-bbox.csv'), num_boxes, num_images)
    hexs = [f'{int(x):016x}' for x in ids.view(np.uint64)]
    with open(osp.join(root, 'train-metas.pkl'), 'wb') as f:
        pickle.dump([dict(filename=f'train/{h}.jpg', ori_shape=(480, 640, 3)) for h in hexs], f)
    shutil.copyfile(LABEL_FILE, osp.join(root, 'class-descriptions-boxable.csv'))
    shutil.copyfile(HIERARCHY_FILE, osp.join(root, 'bbox_labels_600_hierarchy.json'))
    json.dump(want, open(meta, 'w'))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--dir', default='/tmp/oi_sampler_bench')
    parser.add_argument('--images', type=int, default=1_740_000)
    parser.add_argument('--boxes', type=int, default=3_000_000)
    args = parser.parse_args()
    t0 = time.perf_counter()
    prepare(args.dir, args.images, args.boxes)
    print(f'data ready in {time.perf_counter() - t0:.1f} s')

    from mmdet.datasets.samplers import ClassAwareSampler
    from mmengine.registry import init_default_scope

    from balancedet.datasets import OpenImagesMultiLabelDataset
    from balancedet.datasets.samplers.class_index import ClassImageIndex
    from balancedet.datasets.samplers.soft_balance_sampler import SoftBalanceSampler
    init_default_scope('mmdet')
    t0 = time.perf_counter()
    ds = OpenImagesMultiLabelDataset(
        data_root=args.dir + '/', ann_file='train-bbox.csv', data_prefix=dict(img='train/'),
        label_file='class-descriptions-boxable.csv',
        hierarchy_file='bbox_labels_600_hierarchy.json', meta_file='train-metas.pkl',
        pipeline=[])
    print(f'OpenImagesMultiLabelDataset: {len(ds)} images built in '
          f'{time.perf_counter() - t0:.1f} s')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        t0 = time.perf_counter()
        index = ClassImageIndex.from_dataset(ds)
        t_index = time.perf_counter() - t0
        t0 = time.perf_counter()
        SoftBalanceSampler(ds, lam=0.5, seed=0)
        t_sb = time.perf_counter() - t0
        t0 = time.perf_counter()
        cas = ClassAwareSampler(ds, seed=0)
        t_ref = time.perf_counter() - t0
    same = all(sorted(cas.cat_dict.get(c, [])) == index.images_of(c).tolist()
               for c in range(0, index.num_classes, 50))
    print(f'ours: ClassImageIndex.from_dataset {t_index:.3f} s, SoftBalanceSampler '
          f'{t_sb:.3f} s; mmdet ClassAwareSampler {t_ref:.2f} s')
    print(f'ratio reference / ours: index {t_ref / t_index:.1f}x, sampler {t_ref / t_sb:.1f}x '
          f'(target >= 1); same per-class image lists (every 50th class): {same}')


if __name__ == '__main__':
    main()
