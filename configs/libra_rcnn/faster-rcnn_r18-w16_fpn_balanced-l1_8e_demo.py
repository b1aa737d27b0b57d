# Single-component ablation: baseline + balanced L1 loss only (R-CNN box regression).
_base_ = ['../faster_rcnn/faster-rcnn_r18-w16_fpn_8e_demo.py',
          '../_base_/models/libra-components_r18-w16_fpn.py']
model = dict(roi_head=dict(bbox_head=dict(loss_bbox={{_base_.balanced_l1_loss}})))
