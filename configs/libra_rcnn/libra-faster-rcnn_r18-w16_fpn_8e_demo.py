# Libra Faster R-CNN (Pang et al., CVPR 2019) on the demo dataset: IoU-balanced
# sampling + Balanced Feature Pyramid (inherited) + balanced L1 loss - the last
# row of the paper's Table 2 ladder.
_base_ = './faster-rcnn_r18-w16_fpn-bfp_iou-balanced-sampler_8e_demo.py'
model = dict(roi_head=dict(bbox_head=dict(loss_bbox={{_base_.balanced_l1_loss}})))
