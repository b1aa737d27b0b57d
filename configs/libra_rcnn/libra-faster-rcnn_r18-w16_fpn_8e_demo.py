# Libra Faster R-CNN (Pang et al., CVPR 2019) on the demo dataset: IoU-balanced
# sampling + Balanced Feature Pyramid (inherited) + balanced L1 loss (added
# here) - the last row of the paper's Table 2 ladder.
_base_ = './faster-rcnn_r18-w16_fpn-bfp_iou-balanced-sampler_8e_demo.py'
model = dict(roi_head=dict(bbox_head=dict(loss_bbox=dict(
    _delete_=True, type='BalancedL1LossV2', alpha=0.5, gamma=1.5, beta=1.0,
    loss_weight=1.0))))
