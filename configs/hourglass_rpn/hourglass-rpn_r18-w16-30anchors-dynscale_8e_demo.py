# Table 3, 30 anchors + dynamic training scale: each training image is resized
# so that a random gt box falls in the anchors' size range (12..68 px).
_base_ = './hourglass-rpn_r18-w16-30anchors_8e_demo.py'
train_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='DynamicTrainScale', anchor_range=(12, 68), scale_range=(0.5, 2.0), max_side=256),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]))
