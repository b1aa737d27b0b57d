# Single-component ablation: baseline + balanced L1 loss only, for the R-CNN
# box regression (alpha=0.5, gamma=1.5, beta=1).
_base_ = '../faster_rcnn/faster-rcnn_r18-w16_fpn_8e_demo.py'
model = dict(roi_head=dict(bbox_head=dict(loss_bbox=dict(
    _delete_=True, type='BalancedL1LossV2', alpha=0.5, gamma=1.5, beta=1.0,
    loss_weight=1.0))))
