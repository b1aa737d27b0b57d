# Baseline of the toolbox: Faster R-CNN R18-w16 FPN, 8 epochs on the demo dataset.
_base_ = [
    '../_base_/models/faster-rcnn_r18-w16_fpn.py',
    '../_base_/datasets/demo_detection.py',
    '../_base_/schedules/schedule_demo.py',
    '../_base_/default_runtime.py',
]
