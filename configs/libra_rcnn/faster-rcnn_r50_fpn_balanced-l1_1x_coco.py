# Libra R-CNN ablation on COCO: baseline + balanced L1 loss for the R-CNN box regression
# (alpha=0.5, gamma=1.5, beta=1).
_base_ = './faster-rcnn_r50_fpn_1x_coco.py'
model = dict(roi_head=dict(bbox_head=dict(loss_bbox=dict(
    _delete_=True, type='BalancedL1LossV2', alpha=0.5, gamma=1.5, beta=1.0,
    loss_weight=1.0))))
