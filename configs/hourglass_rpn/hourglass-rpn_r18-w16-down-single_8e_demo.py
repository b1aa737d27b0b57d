# Table 2, "down-sample alone": no up path, every anchor (6 sizes x 3 ratios)
# on the stride-16 map of the down path.
_base_ = './hourglass-rpn_r18-w16_8e_demo.py'
model = dict(
    neck=dict(up_path=False, out_indices=(2, )),
    rpn_head=dict(anchor_generator=dict(
        strides=[16], level_sizes=[[12, 17, 24, 34, 48, 68]])))
