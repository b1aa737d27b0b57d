# The demo dataset in single-object localization (ImageNet CLS-LOC) form:
# one class per image, written by `python tools/misc/make_cls_loc_dataset.py`
# into data/demo_cls_loc/ (rule: balancedet/datasets/cls_loc.py). Fixed
# 128x128 inputs (SSD), evaluated with top-1/top-5 classification and
# localization error.
_base_ = './demo_detection.py'

data_root = 'data/demo_cls_loc/'
img_scale = (128, 128)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=False),
    dict(type='LoadAnnotations', with_bbox=True),  # after Resize: gt in original coordinates
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_sampler=None,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = [
    dict(type='CLSLocMetric', topk=(1, 5), iou_thr=0.5),
    dict(type='CocoMetric', ann_file=data_root + 'annotations/val.json', metric='bbox'),
]
test_evaluator = val_evaluator
