# Table 3, the paper's 30 anchors: ratios {0.15, 0.5, 1, 2, 6.7} x 6 sizes
# growing by sqrt(2) (x2 in the paper, 16..512), two sizes per level.
_base_ = './hourglass-rpn_r18-w16_8e_demo.py'
model = dict(rpn_head=dict(anchor_generator=dict(ratios=[0.15, 0.5, 1.0, 2.0, 6.7])))
