# Table 3, 30 anchors + gray class: anchors with IoU in [0.25, 0.49] get a third
# label (3-way softmax), floor((fg + bg) / 2) of them per image.
_base_ = './hourglass-rpn_r18-w16-30anchors_8e_demo.py'
model = dict(
    rpn_head=dict(gray_class=True, loss_cls=dict(use_sigmoid=False)),
    train_cfg=dict(rpn=dict(
        assigner=dict(type='GrayBandMaxIoUAssigner', gray_iou_range=(0.25, 0.49)),
        sampler=dict(type='GrayClassSampler', gray_ratio=0.5))))
