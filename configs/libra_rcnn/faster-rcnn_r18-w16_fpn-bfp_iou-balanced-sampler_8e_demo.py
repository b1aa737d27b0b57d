# Ablation ladder (Libra R-CNN Table 2, row 3): IoU-balanced sampling plus
# the Balanced Feature Pyramid (non-local refine at the third of five levels).
_base_ = './faster-rcnn_r18-w16_fpn_iou-balanced-sampler_8e_demo.py'
model = dict(neck=[
    dict(type='FPN', in_channels=[16, 32, 64, 128], out_channels=64, num_outs=5),
    dict(type='BalancedFeaturePyramid', in_channels=64, num_levels=5, refine_level=2,
         refine_type='non_local'),
])
