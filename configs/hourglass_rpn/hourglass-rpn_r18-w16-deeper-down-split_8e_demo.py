# Table 2, "deeper down-sample + split anchors": no up path, anchors split over
# the deeper maps of strides 8 / 16 / 32.
_base_ = './hourglass-rpn_r18-w16_8e_demo.py'
model = dict(
    neck=dict(up_path=False, out_indices=(1, 2, 3)),
    rpn_head=dict(anchor_generator=dict(strides=[8, 16, 32])))
