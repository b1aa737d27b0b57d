# Loss-level peer: class-balanced loss weights from the effective number of samples
# (Cui et al., CVPR 2019), beta = 0.999, background weight 1. Regenerate with
#   python tools/analysis_tools/effective_num_weights.py data/demo/annotations/train.json \
#       --beta 0.999 --background-weight 1.0
_base_ = '../faster_rcnn/faster-rcnn_r18-w16_fpn_8e_demo.py'

model = dict(roi_head=dict(bbox_head=dict(loss_cls=dict(class_weight=[
    0.1288, 0.1979, 0.0442, 0.5341, 0.1731, 0.1542, 0.2287, 1.4918, 2.3538, 4.6935, 1.0000]))))
