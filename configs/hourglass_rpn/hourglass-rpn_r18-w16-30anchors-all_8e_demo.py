# Table 3, all remarks: 30 anchors + dynamic training scale + negative cap + gray.
_base_ = './hourglass-rpn_r18-w16-30anchors-gray_8e_demo.py'
model = dict(train_cfg=dict(rpn=dict(sampler=dict(neg_pos_ub=2))))
train_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='DynamicTrainScale', anchor_range=(12, 68), scale_range=(0.5, 2.0), max_side=256),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]))
