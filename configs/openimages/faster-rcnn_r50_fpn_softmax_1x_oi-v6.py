# Softmax baseline on Open Images V6 (601 boxable classes), the paper's sec. 5.2 setting:
# Faster R-CNN R-50 FPN (ImageNet init), natural sampling, softmax loss and test, 1x.
_base_ = [
    '../_base_/models/faster-rcnn_r50_fpn_oi.py',
    '../_base_/datasets/openimages_v6.py',
    '../_base_/schedules/schedule_oi_1x.py',
    '../_base_/default_runtime.py',
]

num_classes = 601
model = dict(roi_head=dict(bbox_head=dict(num_classes=num_classes)))
