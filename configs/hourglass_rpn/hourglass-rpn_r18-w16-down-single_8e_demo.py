# Table 2, "down-sample alone": no up path, every anchor (6 sizes x 3 ratios)
# on the stride-16 map of the down path.
_base_ = './hourglass-rpn_r18-w16_8e_demo.py'
model = dict(
    neck=dict(up_path=False, out_indices=(2, )),
    rpn_head=dict(anchor_generator=dict(
        strides=[16], base_sizes=[12], scales=[1.0, 17 / 12, 2.0, 34 / 12, 4.0, 68 / 12])))
