# Plain SSD baseline (SSD7 base) on the CLS-LOC demo dataset, 8 epochs.
_base_ = [
    '../_base_/models/ssd7_128.py',
    '../_base_/datasets/demo_cls_loc.py',
    '../_base_/schedules/schedule_demo.py',
    '../_base_/default_runtime.py',
]
