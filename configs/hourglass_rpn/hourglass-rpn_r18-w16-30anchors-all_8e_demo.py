# Table 3, all remarks: 30 anchors + dynamic training scale + negative cap + gray.
_base_ = './hourglass-rpn_r18-w16-30anchors-gray_8e_demo.py'
model = dict(train_cfg=dict(rpn=dict(sampler=dict(neg_pos_ub=2))))
train_dataloader = dict(dataset=dict(pipeline={{_base_.dynamic_scale_train_pipeline}}))
