# Shared base of the LVIS v1 detection rows: Faster R-CNN R-50 FPN, multi-scale 1x, 1,203
# classes, up to 300 detections per image, natural sampling ("random"); boxes only.
_base_ = [
    'mmdet::_base_/models/faster-rcnn_r50_fpn.py', '../_base_/datasets/lvis_v1_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py', 'mmdet::_base_/default_runtime.py'
]
model = dict(roi_head=dict(bbox_head=dict(num_classes=1203)),
             test_cfg=dict(rcnn=dict(score_thr=0.0001, max_per_img=300)))
