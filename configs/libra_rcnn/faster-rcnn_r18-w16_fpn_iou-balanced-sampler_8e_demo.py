# Ablation ladder (Libra R-CNN Table 2, row 2): baseline + IoU-balanced sampling.
_base_ = ['../faster_rcnn/faster-rcnn_r18-w16_fpn_8e_demo.py',
          '../_base_/models/libra-components_r18-w16_fpn.py']
model = dict(train_cfg=dict(rcnn=dict(sampler={{_base_.iou_balanced_sampler}})))
