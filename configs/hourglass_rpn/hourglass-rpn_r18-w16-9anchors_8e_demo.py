# Table 3, 9 anchors: one size per level x 3 ratios on the hourglass.
_base_ = './hourglass-rpn_r18-w16_8e_demo.py'
model = dict(rpn_head=dict(anchor_generator=dict(base_sizes=[14, 28, 57], scales=[1.0])))
