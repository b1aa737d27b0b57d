"""Refuse to train a model that would silently reduce multi-label targets.

The concurrent softmax (Peng et al., "Large-Scale Object Detection in the Wild
from Imbalanced Multi-Labels", CVPR 2020, eq. 3) needs each object's
multi-hot label ``y``.  A multi-label dataset
(:class:`~balancedet.datasets.OpenImagesMultiLabelDataset`, ``metainfo
['multi_label']``) gives every object a ``multi_labels`` list; the dataset
itself refuses a packer that would drop it (mmdet's ``PackDetInputs``), and
:func:`check_multi_label_model` refuses a model whose RoI head, bbox head or
classification loss cannot use it -- mmdet's ``StandardRoIHead`` /
``Shared2FCBBoxHead`` / ``CrossEntropyLoss`` would train on one label per
object without a word.  The one allowed single-label path is the explicit
softmax baseline, ``ConcurrentSoftmaxLoss(train_mode='softmax')`` (the
paper's "softmax" rows), which is logged.

:class:`MultiLabelTargetCheckHook` runs the check in ``before_train`` (after
the build, before the first iteration) and maps the concurrent rates of a
``ConcurrentSoftmaxLoss`` onto the dataset's class order before training and
before testing; ``balancedet.apis.build_runner``
(``tools/train.py``) registers it once for every config, and balancedet's
default runtime lists it in ``default_hooks`` for runners built otherwise.
"""
from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.logging import print_log


def _base_datasets(dataset):
    """The leaf datasets under mmengine's dataset wrappers."""
    if hasattr(dataset, 'datasets'):
        for d in dataset.datasets:
            yield from _base_datasets(d)
    elif hasattr(dataset, 'dataset') and not hasattr(dataset, 'load_data_list'):
        yield from _base_datasets(dataset.dataset)
    else:
        yield dataset


def check_multi_label_model(model, dataset) -> None:
    """Raise ``TypeError`` naming the component when ``dataset`` holds
    multi-label objects that ``model`` cannot train on as multi-hot targets."""
    from balancedet.models.losses import ConcurrentSoftmaxLoss
    from balancedet.models.roi_heads import concurrent_softmax_head as heads
    multi, name = 0, None
    for ds in _base_datasets(dataset):
        if (getattr(ds, 'metainfo', None) or {}).get('multi_label'):
            multi += int(ds._count_multi()) if hasattr(ds, '_count_multi') else sum(
                sum(len(x.get('multi_labels', ())) > 1 for x in
                    ds.get_data_info(i).get('instances', ())) for i in range(len(ds)))
            name = type(ds).__name__
    if not multi:
        return
    model = getattr(model, 'module', model)
    fix = ('use roi_head=dict(type="ConcurrentSoftmaxRoIHead", bbox_head=dict('
           'type="ConcurrentSoftmaxBBoxHead", loss_cls=dict(type="ConcurrentSoftmaxLoss", ...)))'
           ' (configs/openimages/), or ConcurrentSoftmaxLoss(train_mode="softmax") to train the '
           'softmax baseline on one label per object knowingly')
    what = f'{name} has {multi} object(s) with several labels'
    roi_head = getattr(model, 'roi_head', None)
    if roi_head is None:
        raise TypeError(f'{what}, but {type(model).__name__} has no RoI head that can carry '
                        f'multi-hot targets; they would be reduced to one label each. {fix}')
    if not isinstance(roi_head, heads.ConcurrentSoftmaxRoIHead):
        raise TypeError(f'{what}, but the RoI head {type(roi_head).__name__} drops '
                        f'gt_instances.multi_labels (one label per object reaches the loss). '
                        f'{fix}')
    bbox_head = roi_head.bbox_head
    if not isinstance(bbox_head, heads.ConcurrentSoftmaxBBoxHead):
        raise TypeError(f'{what}, but the bbox head {type(bbox_head).__name__} cannot build '
                        f'multi-hot targets. {fix}')
    loss = bbox_head.loss_cls
    if getattr(loss, 'use_multi_hot', False):
        return
    if isinstance(loss, ConcurrentSoftmaxLoss) and loss.train_mode == 'softmax':
        print_log(f'{what}; ConcurrentSoftmaxLoss(train_mode="softmax") trains on one label '
                  'per object (its bbox_label, the most specific one): the softmax baseline',
                  logger='current')
        return
    raise TypeError(f'{what}, but the classification loss {type(loss).__name__} takes one '
                    f'integer label per RoI. {fix}')


def bind_dataset_classes(model, dataset) -> None:
    """Map every ``ConcurrentSoftmaxLoss`` of ``model`` onto the class order of
    ``dataset`` (``metainfo['classes']``), see
    :meth:`~balancedet.models.losses.ConcurrentSoftmaxLoss.bind_classes`."""
    from balancedet.models.losses import ConcurrentSoftmaxLoss
    classes = (getattr(next(_base_datasets(dataset)), 'metainfo', None) or {}).get('classes')
    if not classes:
        return
    for m in model.modules():
        if isinstance(m, ConcurrentSoftmaxLoss):
            m.bind_classes(classes)


@HOOKS.register_module()
class MultiLabelTargetCheckHook(Hook):
    """Run :func:`check_multi_label_model` before the first iteration, and
    :func:`bind_dataset_classes` before training and before testing."""

    priority = 'VERY_HIGH'

    def before_train(self, runner) -> None:
        check_multi_label_model(runner.model, runner.train_dataloader.dataset)
        bind_dataset_classes(runner.model, runner.train_dataloader.dataset)

    def before_test(self, runner) -> None:
        bind_dataset_classes(runner.model, runner.test_dataloader.dataset)
