# Concurrent softmax in training (eq. 3), plain softmax at test time.
_base_ = './faster-rcnn_r18-w16_fpn_cs-loss-cs-test_8e_demo.py'

model = dict(roi_head=dict(bbox_head=dict(loss_cls=dict(test_mode='softmax'))))
