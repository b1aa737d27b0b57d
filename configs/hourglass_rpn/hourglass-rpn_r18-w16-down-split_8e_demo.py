# Table 2, "+ split anchors": no up path, anchors split over strides 4 / 8 / 16.
_base_ = './hourglass-rpn_r18-w16_8e_demo.py'
model = dict(neck=dict(up_path=False))
