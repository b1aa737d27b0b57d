"""No double re-balancing: class-based samplers refuse ``ClassBalancedDataset``.

mmengine's ``ClassBalancedDataset`` (repeat-factor sampling, Gupta et al.,
LVIS, CVPR 2019: an image is repeated ``r = max(1, sqrt(t / f_c))`` times)
already re-balances the classes. A class-based sampler
(``SoftBalanceSampler``, ``ICIPStrategySampler``) over it would count the
repeated copies as extra images -- one image of a rare class becomes
``n_i = 4`` at ``oversample_thr=0.3`` -- and stack a second re-balancing on
the first. The samplers therefore refuse the wrapper when they are built
(and ``HybridScheduleHook`` checks its phase-2 sampler before training),
with a message naming the wrapper and where it sits, and the fix: drop it
(``train_dataloader.dataset = <its inner dataset>``) to use the sampler
alone, or keep it with ``DefaultSampler`` for repeat-factor sampling alone.

Wrappers that do not re-balance are seen through: ``ConcatDataset`` (each
image of each part counted once) and ``RepeatDataset`` (every copy counted,
so all ``n_i`` scale by ``times`` and the class probabilities are
unchanged; an epoch is ``times`` dataset lengths). Any other object that
has neither ``get_data_info`` nor ``get_cat_ids`` is refused too.
"""
from __future__ import annotations

from mmengine.dataset import ClassBalancedDataset

#: wrapper classes that re-balance by themselves
REBALANCING_WRAPPERS = (ClassBalancedDataset, )


def check_no_rebalancing_wrapper(dataset, sampler_name: str) -> None:
    """Raise ``ValueError`` if ``dataset`` is or contains a re-balancing wrapper."""
    stack = [(dataset, 'train_dataloader.dataset')]
    while stack:
        ds, where = stack.pop()
        name = type(ds).__name__
        if isinstance(ds, REBALANCING_WRAPPERS) or name in ('ClassBalancedDataset', ):
            thr = getattr(ds, 'oversample_thr', None)
            raise ValueError(
                f'{sampler_name} over {name}(oversample_thr={thr}) at {where} would re-balance '
                f'twice: {name} already repeats the images of rare classes, and {sampler_name} '
                f'would count the copies as extra images. Drop the {name} wrapper (set {where} '
                f'to its inner `dataset` config) to use {sampler_name} alone, or keep it with '
                "sampler=dict(type='DefaultSampler', shuffle=True) for repeat-factor sampling "
                'alone')
        if not hasattr(ds, 'get_data_info') and not hasattr(ds, 'get_cat_ids'):
            raise ValueError(
                f'{sampler_name} cannot see through {name} at {where}: it has neither '
                'get_data_info() nor get_cat_ids(), so the images of each class are unknown; '
                f'put {sampler_name} on the inner dataset or give {name} get_cat_ids(idx)')
        if isinstance(getattr(ds, 'datasets', None), (list, tuple)):
            stack.extend((d, f'{where}.datasets[{i}]') for i, d in enumerate(ds.datasets))
        elif getattr(ds, 'dataset', None) is not None:
            stack.append((ds.dataset, f'{where}.dataset'))
