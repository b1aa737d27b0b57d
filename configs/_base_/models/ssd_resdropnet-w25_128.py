# Modified SSD on 128 px inputs: ResDropNet base (7x7 stem + BN + 10 % dropout
# + 2x2 max-pool, bottleneck stages 64-64-128, 64-64-256 x3, 128-128-512 x4,
# here at a quarter of the widths for CPU; output at stride 8) + SSD's extra
# layers (SSDNeck, strides 16-64) and heads; anchors as in ssd7_128.py.
_base_ = './ssd7_128.py'

model = dict(
    backbone=dict(_delete_=True, type='ResDropNet', widen_factor=0.25, stem_dropout=0.1,
                  out_indices=(2, ), init_cfg=None),
    neck=dict(_delete_=True, type='SSDNeck', in_channels=(128, ), out_channels=(128, 128, 64, 64),
              level_strides=(2, 2, 2), level_paddings=(1, 1, 1), l2_norm_scale=None,
              norm_cfg=dict(type='BN')),
    bbox_head=dict(in_channels=(128, 128, 64, 64)))
