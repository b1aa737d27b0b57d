# LVIS v1 instance segmentation: mmdet's settings (mmdet::_base_/datasets/lvis_v1_instance.py,
# multi-scale training 640-800 px) with balancedet's BalancedLVISDataset and BalancedLVISMetric,
# which need no `lvis` package (it fails on numpy >= 1.24). Unlike mmdet's fragment the training
# set is NOT wrapped in ClassBalancedDataset: the repeat-factor baseline adds the wrapper itself,
# and the class-based samplers refuse it (no double re-balancing).
_base_ = 'mmdet::_base_/datasets/lvis_v1_instance.py'
custom_imports = dict(imports=['balancedet'], allow_failed_imports=False)

dataset_type = 'BalancedLVISDataset'
data_root = 'data/lvis_v1/'
train_dataloader = dict(dataset=dict(
    _delete_=True, type=dataset_type, data_root=data_root,
    ann_file='annotations/lvis_v1_train.json', data_prefix=dict(img=''),
    filter_cfg=dict(filter_empty_gt=True, min_size=32), pipeline={{_base_.train_pipeline}},
    backend_args={{_base_.backend_args}}))
val_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
test_dataloader = val_dataloader

val_evaluator = dict(_delete_=True, type='BalancedLVISMetric', metric=['bbox', 'segm'],
                     ann_file=data_root + 'annotations/lvis_v1_val.json',
                     backend_args={{_base_.backend_args}})
test_evaluator = val_evaluator
