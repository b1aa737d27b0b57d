"""Benchmark of the CLS-LOC track's components (CPU, one process).

Prints, from one run (medians of interleaved repetitions; every ratio compares
numbers measured in this same run):

1. Base networks, forward + backward on 8 x 3 x 128 x 128: ResDropNet (full
   width, and the quarter width of the configs) and SSD7Net, each vs mmdet's
   ResNet-50 (full width, and base width 16), the reference the study
   compares ResDropNet with.
2. SSD training step (loss + backward) of the modified SSD (ResDropNet-w25)
   vs the plain SSD (SSD7), built from the configs, on a synthetic batch.
3. ``DropPixels`` per 128 px image vs mmdet's ``Brightness`` (the cheapest
   photometric transform of the suite).
4. ``CLSLocMetric`` vs mmdet's ``CocoMetric`` (pycocotools) on the same
   1,000 synthetic images with 100 detections each.

Usage::

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python benchmarks/bench_cls_loc.py [--quick]
"""
import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from timing import median_times  # benchmarks/timing.py

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))




def fwd_bwd(model, x):
    def step():
        outs = model(x)
        sum(o.float().mean() for o in outs).backward()
    return step


def bench_backbones(reps):
    from mmdet.registry import MODELS
    torch.manual_seed(0)
    x = torch.rand(8, 3, 128, 128)
    nets = {
        'ResNet-50 (mmdet)': dict(type='ResNet', depth=50, out_indices=(3, ), init_cfg=None),
        'ResNet-50 w16 (mmdet)': dict(type='ResNet', depth=50, base_channels=16,
                                      out_indices=(3, ), init_cfg=None),
        'ResDropNet': dict(type='ResDropNet'),
        'ResDropNet w0.25': dict(type='ResDropNet', widen_factor=0.25),
        'SSD7Net': dict(type='SSD7Net'),
    }
    models = {k: MODELS.build(v) for k, v in nets.items()}
    for m in models.values():
        m.train()
    times = dict(zip(models, median_times([fwd_bwd(m, x) for m in models.values()], reps)))
    print('\n1. Base networks, forward+backward, batch 8 x 128 px')
    print(f'{"network":24s} {"params":>9s} {"ms":>8s} {"vs ResNet-50":>13s} {"vs R50-w16":>11s}')
    for k, m in models.items():
        n = sum(p.numel() for p in m.parameters())
        print(f'{k:24s} {n / 1e6:8.2f}M {1e3 * times[k]:8.1f} '
              f'{times[k] / times["ResNet-50 (mmdet)"]:12.2f}x '
              f'{times[k] / times["ResNet-50 w16 (mmdet)"]:10.2f}x')


def bench_ssd_step(reps):
    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample
    from mmengine.config import Config
    from mmengine.structures import InstanceData
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    samples = []
    for _ in range(8):
        ds = DetDataSample(metainfo=dict(img_shape=(128, 128), pad_shape=(128, 128),
                                         batch_input_shape=(128, 128), scale_factor=(1., 1.)))
        xy = rng.uniform(0, 80, (2, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(12, 48, (2, 2))], 1).clip(0, 128)
        ds.gt_instances = InstanceData(bboxes=torch.tensor(boxes, dtype=torch.float32),
                                       labels=torch.tensor(rng.integers(0, 8, 2)))
        samples.append(ds)
    x = torch.rand(8, 3, 128, 128)
    models = {}
    for name in ('ssd_ssd7net_8e_demo-cls-loc', 'ssd_resdropnet-w25_8e_demo-cls-loc'):
        cfg = Config.fromfile(str(REPO / f'configs/ssd_cls_loc/{name}.py'))
        models[name] = MODELS.build(cfg.model)
        models[name].train()

    def step(model):
        def run():
            losses = model(x, samples, mode='loss')
            sum(v.sum() for k, v in losses.items() if 'loss' in k
                for v in (v if isinstance(v, list) else [v])).backward()
        return run
    t = median_times([step(m) for m in models.values()], reps)
    print('\n2. SSD training step (loss + backward), batch 8 x 128 px')
    for (name, m), ti in zip(models.items(), t):
        print(f'{name:40s} {1e3 * ti:8.1f} ms  {ti / t[0]:5.2f}x plain SSD7')


def bench_drop_pixels(reps):
    from mmdet.registry import TRANSFORMS
    img = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    drop = TRANSFORMS.build(dict(type='DropPixels', fraction=0.05))
    bright = TRANSFORMS.build(dict(type='Brightness', prob=1.0))
    t = median_times([lambda: drop(dict(img=img.copy())),
                      lambda: bright(dict(img=img.copy()))], reps * 20)
    print('\n3. Per-image augmentation cost, 128 px')
    print(f'DropPixels {1e6 * t[0]:8.1f} us   Brightness (mmdet) {1e6 * t[1]:8.1f} us   '
          f'ratio {t[0] / t[1]:.2f}x')


def bench_metric(n_img):
    from mmdet.registry import METRICS
    rng = np.random.default_rng(0)
    classes = tuple(f'c{i}' for i in range(8))
    images, anns, samples = [], [], []
    for i in range(n_img):
        images.append(dict(id=i + 1, file_name=f'{i}.png', width=128, height=128))
        c = int(rng.integers(0, 8))
        xy = rng.uniform(0, 80, 2)
        wh = rng.uniform(12, 48, 2)
        anns.append(dict(id=i + 1, image_id=i + 1, category_id=c + 1, bbox=[*xy, *wh],
                         area=float(wh[0] * wh[1]), iscrowd=0))
        pxy = rng.uniform(0, 100, (100, 2))
        pb = np.concatenate([pxy, pxy + rng.uniform(8, 48, (100, 2))], 1)
        pb[0] = [*xy, *(xy + wh)]
        samples.append(dict(
            img_id=i + 1, ori_shape=(128, 128),
            gt_instances=dict(bboxes=torch.tensor([[*xy, *(xy + wh)]]), labels=torch.tensor([c])),
            pred_instances=dict(bboxes=torch.tensor(pb, dtype=torch.float32),
                                scores=torch.tensor(rng.uniform(0, 1, 100), dtype=torch.float32),
                                labels=torch.tensor(rng.integers(0, 8, 100)))))
    with tempfile.TemporaryDirectory() as tmp:
        ann_file = os.path.join(tmp, 'val.json')
        with open(ann_file, 'w') as f:
            json.dump(dict(images=images, annotations=anns, categories=[
                dict(id=i + 1, name=n) for i, n in enumerate(classes)]), f)

        def run(cfg):
            def go():
                m = METRICS.build(cfg)
                m.dataset_meta = dict(classes=classes)
                m.process({}, samples)
                m.compute_metrics(m.results)
            return go
        with contextlib.redirect_stdout(io.StringIO()):
            t = median_times([run(dict(type='CLSLocMetric', topk=(1, 5))),
                              run(dict(type='CocoMetric', ann_file=ann_file, metric='bbox'))],
                             reps=3, warmup=1)
    print(f'\n4. Evaluation of {n_img} images x 100 detections')
    print(f'CLSLocMetric {t[0]:7.3f} s   CocoMetric (mmdet) {t[1]:7.3f} s   '
          f'ratio {t[0] / t[1]:.4f}x')


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--quick', action='store_true', help='fewer repetitions')
    args = parser.parse_args()
    from mmdet.utils import register_all_modules

    import balancedet  # noqa: F401
    register_all_modules(init_default_scope=True)
    from mmengine.logging import MMLogger
    MMLogger.get_instance('bench_cls_loc', log_level='WARNING')  # quiet CocoMetric
    reps = 3 if args.quick else 7
    print(f'torch {torch.__version__}, threads {torch.get_num_threads()}')
    bench_backbones(reps)
    bench_ssd_step(reps)
    bench_drop_pixels(reps)
    bench_metric(300 if args.quick else 1000)


if __name__ == '__main__':
    main()
