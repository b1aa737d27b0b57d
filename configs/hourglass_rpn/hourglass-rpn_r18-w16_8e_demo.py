# Hourglass RPN (Table 2 "hourglass", 18 split anchors) on the demo dataset,
# evaluated by proposal recall: AR@10/100/300/500/1000, Recall@0.5@300.
_base_ = [
    '../_base_/models/hourglass-rpn_r18-w16.py',
    '../_base_/datasets/demo_detection.py',
    '../_base_/schedules/schedule_demo.py',
    '../_base_/default_runtime.py',
]
val_evaluator = dict(
    _delete_=True,
    type='ProposalRecallMetric',
    proposal_nums=(10, 100, 300, 500, 1000),
    recall_at=((0.5, 300), ))
test_evaluator = val_evaluator
