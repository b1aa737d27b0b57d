# Softmax cross-entropy in training, concurrent softmax (eq. 5) at test time.
_base_ = './faster-rcnn_r18-w16_fpn_cs-loss-cs-test_8e_demo.py'

model = dict(roi_head=dict(bbox_head=dict(loss_cls=dict(train_mode='softmax'))))
