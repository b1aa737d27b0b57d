"""Carry every label of a box into ``gt_instances.multi_labels``.

Plumbing for the concurrent softmax of Peng et al., "Large-Scale Object
Detection in the Wild from Imbalanced Multi-Labels", CVPR 2020 (eq. 3 needs
the multi-hot label ``y`` of each box): ``BalancedCocoDataset`` gives each
instance a ``multi_labels`` list (all labels annotated on the same box of the
same image); :class:`PackMultiLabelDetInputs` packs them as
``gt_instances.multi_labels``, a ``(num_gt, K)`` int64 tensor padded with
``-1``, so that :class:`~balancedet.models.roi_heads.ConcurrentSoftmaxRoIHead`
can give every RoI matched to a ground truth its multi-hot target.

Duplicated boxes stay separate instances (one per label), so the evaluation
still counts every label of a box as a ground truth of its class.

Use it in place of ``PackDetInputs``; it accepts the same ``meta_keys``.
Transforms that drop boxes (``RandomCrop``, ``FilterAnnotations``...) do not
know about ``gt_multi_labels``: put :class:`PackMultiLabelDetInputs` in
pipelines that keep every loaded box (load, resize, flip, pad).  A mismatch
between the loaded boxes and the instances is detected and reported.
"""
from typing import ClassVar

import numpy as np
from mmdet.datasets.transforms import PackDetInputs
from mmdet.registry import TRANSFORMS

from ..same_object import object_label_sets


def pad_multi_labels(label_lists) -> np.ndarray:
    """List of label lists -> ``(N, K)`` int64 array padded with -1."""
    k = max([1, *map(len, label_lists)])
    out = np.full((len(label_lists), k), -1, dtype=np.int64)
    for i, labels in enumerate(label_lists):
        out[i, :len(labels)] = labels
    return out


@TRANSFORMS.register_module()
class PackMultiLabelDetInputs(PackDetInputs):
    """``PackDetInputs`` that also packs ``gt_instances.multi_labels``.

    Reads ``results['gt_multi_labels']`` when a previous transform set it,
    otherwise builds it from ``results['instances'][k]['multi_labels']``;
    instances without it (mmdet's ``CocoDataset`` / ``OpenImagesDataset``,
    one instance per label) get the label set of their object by the
    same-object rule (:mod:`balancedet.datasets.same_object`: identical boxes
    of the image), so a Dog + Animal box still arrives multi-hot.  Instances
    are aligned with the loaded
    ``gt_bboxes_labels`` (``LoadAnnotations`` loads them in order); a count
    mismatch or a ``multi_labels`` list lacking the box's own label raises
    ``ValueError``.
    """

    mapping_table: ClassVar[dict] = {**PackDetInputs.mapping_table,
                                     'gt_multi_labels': 'multi_labels'}

    def transform(self, results: dict) -> dict:
        if 'gt_multi_labels' not in results and 'gt_bboxes_labels' in results:
            results['gt_multi_labels'] = self._multi_labels_from_instances(results)
        return super().transform(results)

    @staticmethod
    def _multi_labels_from_instances(results: dict) -> np.ndarray:
        labels = np.asarray(results['gt_bboxes_labels']).reshape(-1)
        instances = results.get('instances')
        if instances is None:
            raise ValueError('PackMultiLabelDetInputs: results has gt_bboxes_labels but no '
                             '"instances"; use a dataset that provides instances '
                             '(BalancedCocoDataset) or set results["gt_multi_labels"]')
        if len(instances) != len(labels):
            raise ValueError(
                f'PackMultiLabelDetInputs: {len(labels)} loaded boxes but {len(instances)} '
                f'instances in {results.get("img_path", "the sample")}; a transform before it '
                'dropped or added boxes. Keep box-filtering transforms out of multi-label '
                'pipelines or set results["gt_multi_labels"] yourself')
        own = [inst.get('bbox_label', lab) for inst, lab in zip(instances, labels.tolist())]
        # e.g. mmdet's OpenImagesDataset / CocoDataset: one instance per label; the
        # same-object rule (identical boxes) recovers each object's label set
        sets = object_label_sets([inst['bbox'] for inst in instances], own) \
            if any('multi_labels' not in inst for inst in instances) \
            and all('bbox' in inst for inst in instances) else [[lab] for lab in own]
        lists = [[int(x) for x in inst.get('multi_labels', ml)]
                 for inst, ml in zip(instances, sets)]
        for ml, lab in zip(lists, labels.tolist()):
            if lab not in ml:
                raise ValueError(
                    f'PackMultiLabelDetInputs: instance with label {lab} has multi_labels '
                    f'{ml} without its own label in {results.get("img_path", "the sample")}; '
                    'instances and loaded boxes are out of order')
        return pad_multi_labels(lists)
