# Softmax in training and test: the baseline, through the concurrent-softmax head.
_base_ = './faster-rcnn_r18-w16_fpn_softmax-loss-cs-test_8e_demo.py'

model = dict(roi_head=dict(bbox_head=dict(loss_cls=dict(test_mode='softmax'))))
