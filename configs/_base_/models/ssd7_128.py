# Plain SSD on 128 px inputs: the seven-layer SSD7 base (BN + ELU), heads on
# layers 4-7 (strides 8-64), anchors of 12..116 px for the demo's 12..48 px
# objects. mmdet's SSD head, assigner and hard-negative mining (3:1).
_base_ = 'mmdet::_base_/models/ssd300.py'

num_classes = 8
model = dict(
    data_preprocessor=dict(std=[58.395, 57.12, 57.375]),
    backbone=dict(_delete_=True, type='SSD7Net', channels=(32, 48, 64, 64, 48, 48, 32),
                  out_indices=(3, 4, 5, 6), init_cfg=None),
    neck=None,
    bbox_head=dict(
        type='CompatSSDHead',  # mmdet 3.3's SSDHead cannot predict (balancedet docstring)
        in_channels=(64, 48, 48, 32),
        num_classes=num_classes,
        anchor_generator=dict(
            _delete_=True,
            type='SSDAnchorGenerator',
            scale_major=False,
            input_size=128,
            strides=[8, 16, 32, 64],
            min_sizes=[12, 26, 52, 84],
            max_sizes=[26, 52, 84, 116],
            ratios=[[2], [2], [2], [2]])),
    test_cfg=dict(nms_pre=400, max_per_img=100))
cudnn_benchmark = False
