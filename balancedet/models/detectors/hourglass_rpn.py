"""Multi-scale proposal inference of Li et al., ICIP 2017, section 3.

Li et al., "Do we really need more training data for object localization",
ICIP 2017: at test time the proposal network is run at several input scales
(1400 down to 200 pixels in steps of 200 in the paper). At every scale the
proposals of all levels are concatenated and suppressed with one NMS (IoU 0.7,
done by ``HourglassRPNHead``, which keeps its ``max_per_img``, 3,000 in the
authors' code); the proposals of all scales are then merged, suppressed again
with the inter-scale NMS (IoU 0.5) and the top ``max_per_img`` are kept.

``HourglassRPN`` is mmdet's ``RPN`` detector with that test-time procedure;
training is unchanged (single scale, whatever the pipeline gives, e.g.
``DynamicTrainScale``). With ``test_scales=None`` it predicts like mmdet's RPN.
"""
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from mmcv.ops import nms
from mmdet.models.detectors import RPN
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample, SampleList
from mmengine.structures import InstanceData
from torch import Tensor

from balancedet.utils import check_choice, check_nms_cfg, check_number, check_numbers

_MODES = ('short_side', 'factor')


@MODELS.register_module()
class HourglassRPN(RPN):
    """RPN detector with multi-scale inference and inter-scale NMS.

    Args:
        test_scales (list[float], optional): input scales at test time. With
            ``test_scale_mode='short_side'`` each is the target length in
            pixels of the shorter side of the (pipeline-resized) image, as in
            the paper (1400, 1200, ..., 200); with ``'factor'`` each is a
            resize factor of that image. None: single scale.
        test_scale_mode (str): 'short_side' or 'factor'.
        inter_scale_nms (dict): NMS across scales. Defaults to
            ``dict(type='nms', iou_threshold=0.5)``.
        max_per_img (int): proposals kept after the inter-scale NMS.
        size_divisor (int): pad every rescaled input to a multiple of it.
        **kwargs: as mmdet's ``RPN``.
    """

    def __init__(self,
                 *args,
                 test_scales: Optional[Sequence[float]] = None,
                 test_scale_mode: str = 'short_side',
                 inter_scale_nms: dict = dict(type='nms', iou_threshold=0.5),
                 max_per_img: int = 1000,
                 size_divisor: int = 32,
                 **kwargs) -> None:
        check_choice(test_scale_mode, 'test_scale_mode', _MODES, owner='HourglassRPN')
        if test_scales is not None:
            if isinstance(test_scales, (int, float)):
                test_scales = [test_scales]
            if isinstance(test_scales, (list, tuple)) and not test_scales:
                raise ValueError('HourglassRPN: test_scales is empty; give at '
                                 'least one scale, or None for single scale')
            test_scales = check_numbers(test_scales, 'test_scales', owner='HourglassRPN',
                                        low=0, low_open=True)
        if not isinstance(inter_scale_nms, dict):
            raise TypeError('HourglassRPN: inter_scale_nms must be a dict like '
                            "dict(type='nms', iou_threshold=0.5)")
        check_nms_cfg(dict(nms=inter_scale_nms), 'HourglassRPN.inter_scale')
        check_number(max_per_img, 'max_per_img', owner='HourglassRPN', integer=True, low=1)
        super().__init__(*args, **kwargs)
        check_nms_cfg(self.test_cfg['rpn'], 'HourglassRPN.test_cfg.rpn')
        out_indices = getattr(self.neck, 'out_indices', None)
        levels = getattr(self.bbox_head.prior_generator, 'num_levels', None)
        if out_indices is not None and levels is not None and len(out_indices) != levels:
            raise ValueError(
                f'HourglassRPN: the neck returns {len(out_indices)} levels '
                f'(out_indices={tuple(out_indices)}) but the anchor generator has '
                f'{levels} (strides); give one stride and one list of anchor sizes '
                'per returned level')
        self.test_scales = test_scales
        self.test_scale_mode = test_scale_mode
        self.inter_scale_iou = float(inter_scale_nms.get(
            'iou_threshold', inter_scale_nms.get('iou_thr')))
        self.max_per_img = max_per_img
        self.size_divisor = size_divisor

    def _predict_one_scale(self, img: Tensor, sample: DetDataSample,
                           factor: float, rescale: bool) -> InstanceData:
        h, w = img.shape[-2:]
        nh, nw = max(1, int(round(h * factor))), max(1, int(round(w * factor)))
        x = img if (nh, nw) == (h, w) else F.interpolate(
            img, size=(nh, nw), mode='bilinear', align_corners=False)
        d = self.size_divisor
        ph, pw = -(-nh // d) * d, -(-nw // d) * d
        x = F.pad(x, (0, pw - nw, 0, ph - nh))
        meta = dict(sample.metainfo, img_shape=(nh, nw), pad_shape=(ph, pw),
                    batch_input_shape=(ph, pw))
        # rescale: boxes in the original frame, else in the pipeline-resized one
        sf = meta.get('scale_factor', (1.0, 1.0)) if rescale else (1.0, 1.0)
        meta['scale_factor'] = (sf[0] * (nw / w), sf[1] * (nh / h))
        feats = self.extract_feat(x)
        return self.bbox_head.predict(
            feats, [DetDataSample(metainfo=meta)], rescale=True)[0]

    def predict(self,
                batch_inputs: Tensor,
                batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        if self.test_scales is None:
            return super().predict(batch_inputs, batch_data_samples, rescale)
        results_list = []
        for i, sample in enumerate(batch_data_samples):
            h, w = sample.metainfo['img_shape'][:2]
            img = batch_inputs[i:i + 1, :, :h, :w]
            short_side = self.test_scale_mode == 'short_side'
            per_scale = [self._predict_one_scale(img, sample, s / min(h, w) if short_side else s,
                                                 rescale) for s in self.test_scales]
            results_list.append(self._merge_scales(per_scale))
        return self.add_pred_to_datasample(batch_data_samples, results_list)

    def _merge_scales(self, per_scale) -> InstanceData:
        merged = InstanceData.cat(per_scale)
        # nms returns the kept boxes sorted by score
        _, keep = nms(merged.bboxes, merged.scores, self.inter_scale_iou,
                      max_num=self.max_per_img)
        merged = merged[keep]
        merged.labels = merged.scores.new_zeros(len(merged), dtype=torch.long)
        return merged
