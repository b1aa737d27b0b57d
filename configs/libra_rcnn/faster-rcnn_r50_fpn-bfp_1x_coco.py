# Libra R-CNN ablation on COCO: baseline + Balanced Feature Pyramid only (non-local refine
# at the third of five FPN levels).
_base_ = './faster-rcnn_r50_fpn_1x_coco.py'
model = dict(neck=[
    dict(type='FPN', in_channels=[256, 512, 1024, 2048], out_channels=256, num_outs=5),
    dict(type='BalancedFeaturePyramid', in_channels=256, num_levels=5, refine_level=2,
         refine_type='non_local'),
])
