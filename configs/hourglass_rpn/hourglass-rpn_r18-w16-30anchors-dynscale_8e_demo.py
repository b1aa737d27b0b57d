# Table 3, 30 anchors + dynamic training scale: each training image is resized
# so that a random gt box falls in the anchors' size range (12..68 px).
_base_ = './hourglass-rpn_r18-w16-30anchors_8e_demo.py'
train_dataloader = dict(dataset=dict(pipeline={{_base_.dynamic_scale_train_pipeline}}))
