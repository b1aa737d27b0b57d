# Table 3, 30 anchors + negatives capped at 2x positives.
_base_ = './hourglass-rpn_r18-w16-30anchors_8e_demo.py'
model = dict(train_cfg=dict(rpn=dict(sampler=dict(neg_pos_ub=2))))
