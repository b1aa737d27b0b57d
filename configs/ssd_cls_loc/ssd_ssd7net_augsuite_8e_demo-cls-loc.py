# Plain SSD (SSD7 base) + the box-aware augmentation suite, 8 epochs.
_base_ = [
    '../_base_/models/ssd7_128.py',
    '../_base_/datasets/demo_cls_loc_augsuite.py',
    '../_base_/schedules/schedule_demo.py',
    '../_base_/default_runtime.py',
]
