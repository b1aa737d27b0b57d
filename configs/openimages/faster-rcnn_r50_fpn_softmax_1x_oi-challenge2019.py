# Softmax baseline on Open Images Challenge 2019 (Peng et al., CVPR 2020, sec. 5.2 setting):
# Faster R-CNN R-50 FPN (ImageNet init), natural sampling, softmax loss and softmax test
# (Table 2, row "softmax / softmax"), 7-epoch 1x.
_base_ = [
    '../_base_/models/faster-rcnn_r50_fpn_oi.py',
    '../_base_/datasets/openimages_challenge2019.py',
    '../_base_/schedules/schedule_oi_1x.py',
    '../_base_/default_runtime.py',
]
