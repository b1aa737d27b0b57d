# Single-component ablation: baseline + Balanced Feature Pyramid only
# (non-local refine at the third of five FPN levels).
_base_ = '../faster_rcnn/faster-rcnn_r18-w16_fpn_8e_demo.py'
model = dict(neck=[
    dict(type='FPN', in_channels=[16, 32, 64, 128], out_channels=64, num_outs=5),
    dict(type='BalancedFeaturePyramid', in_channels=64, num_levels=5, refine_level=2,
         refine_type='non_local'),
])
