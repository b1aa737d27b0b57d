# Single-component ablation: baseline + Balanced Feature Pyramid only.
_base_ = ['../faster_rcnn/faster-rcnn_r18-w16_fpn_8e_demo.py',
          '../_base_/models/libra-components_r18-w16_fpn.py']
model = dict(neck={{_base_.bfp_neck}})
