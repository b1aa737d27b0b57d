# Classification variant: ResDropNet base (quarter width) + GAP + three dense
# layers of width num_classes (25 % dropout on the first two); top-1/top-5
# classification error on the CLS-LOC demo dataset.
_base_ = [
    '../_base_/datasets/demo_cls_loc.py',
    '../_base_/schedules/schedule_demo.py',
    '../_base_/default_runtime.py',
]
model = dict(
    type='ResDropClassifier',
    backbone=dict(type='ResDropNet', widen_factor=0.25, stem_dropout=0.1, init_cfg=None),
    in_channels=128,
    num_classes=8,
    dropout=0.25)
val_evaluator = dict(_delete_=True, type='CLSLocMetric', topk=(1, 5))
test_evaluator = val_evaluator
