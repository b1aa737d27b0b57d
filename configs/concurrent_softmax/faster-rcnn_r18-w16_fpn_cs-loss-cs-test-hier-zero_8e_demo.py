# As the main concurrent-softmax config, with the paper's literal r_ij = 0 for
# parent/child pairs (hierarchy members then suppress each other). Not run.
_base_ = './faster-rcnn_r18-w16_fpn_cs-loss-cs-test_8e_demo.py'

model = dict(roi_head=dict(bbox_head=dict(loss_cls=dict(hierarchy='zero'))))
