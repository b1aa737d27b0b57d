# Reference classifier: ResNet-50 (mmdet's, base width 16) with the same head.
_base_ = './resdrop-classifier_resdropnet-w25_8e_demo-cls-loc.py'

model = dict(
    backbone=dict(_delete_=True, type='ResNet', depth=50, base_channels=16, out_indices=(3, ),
                  norm_eval=False, init_cfg=None),
    in_channels=512)
