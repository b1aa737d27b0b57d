# Ablation ladder (Libra R-CNN Table 2, row 3): IoU-balanced sampling + BFP.
_base_ = './faster-rcnn_r18-w16_fpn_iou-balanced-sampler_8e_demo.py'
model = dict(neck={{_base_.bfp_neck}})
