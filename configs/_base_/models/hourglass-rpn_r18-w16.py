# Hourglass RPN (Li et al., ICIP 2017): ResNet-18 at base width 16 as the down
# path, HourglassNeck (deconvolution up path, eq. 1 merges, 64 channels) and
# HourglassRPNHead with anchors split by depth, for 128 px demo images.
# Demo objects are 12..48 px, so the paper's split {16,32}/{64,128}/{256,512}
# (x2 per size) is shifted to sizes {12,17}/{24,34}/{48,68} on strides 4 / 8 / 16:
# mmdet's AnchorGenerator with one base size per level and the scales shared.
model = dict(
    type='HourglassRPN',
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=32),
    backbone=dict(
        type='ResNet',
        depth=18,
        base_channels=16,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        style='pytorch',
        init_cfg=None),
    neck=dict(
        type='HourglassNeck',
        in_channels=[16, 32, 64, 128],
        out_channels=64,
        out_indices=(0, 1, 2),
        up_path=True),
    rpn_head=dict(
        type='HourglassRPNHead',
        in_channels=64,
        feat_channels=64,
        per_level_norm=True,
        anchor_generator=dict(
            type='AnchorGenerator',
            strides=[4, 8, 16],
            base_sizes=[12, 24, 48],
            scales=[1.0, 17 / 12],
            ratios=[0.5, 1.0, 2.0]),
        bbox_coder=dict(
            type='DeltaXYWHBBoxCoder',
            target_means=[.0, .0, .0, .0],
            target_stds=[1.0, 1.0, 1.0, 1.0]),
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
        loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
    # training / testing defaults from the authors' code (zoom_network):
    # fg IoU >= 0.6, bg IoU < 0.15; per-scale NMS 0.7, inter-scale NMS 0.5.
    train_cfg=dict(
        rpn=dict(
            assigner=dict(
                type='MaxIoUAssigner',
                pos_iou_thr=0.6,
                neg_iou_thr=0.15,
                min_pos_iou=0.3,
                match_low_quality=True,
                ignore_iof_thr=-1),
            sampler=dict(
                type='RandomSampler',
                num=256,
                pos_fraction=0.5,
                neg_pos_ub=-1,
                add_gt_as_proposals=False),
            allowed_border=-1,
            pos_weight=-1,
            debug=False)),
    test_cfg=dict(
        rpn=dict(
            nms_pre=1000,
            score_thr=0.0,
            max_per_img=1000,
            nms=dict(type='nms', iou_threshold=0.7),
            min_bbox_size=0)),
    # multi-scale inference: shorter side 256 / 192 / 128 / 96 px (the paper
    # uses 1400..200 for full-size images), then inter-scale NMS 0.5.
    test_scales=[256, 192, 128, 96],
    test_scale_mode='short_side',
    inter_scale_nms=dict(type='nms', iou_threshold=0.5),
    max_per_img=1000)

# Remark (b), dynamic training scale: the training pipeline of the ablations that
# use it (each image resized so a random gt box falls in the anchors' 12..68 px).
dynamic_scale_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='DynamicTrainScale', anchor_range=(12, 68), scale_range=(0.5, 2.0), max_side=256),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
