# CLS-LOC demo dataset + the box-aware augmentation suite for small datasets:
# flip, crop, shift, rotate, shear, brightness, contrast, drop-pixels (mmdet's
# transforms + balancedet's DropPixels). Boxes a geometric step leaves with no
# area are removed; a sample left with no box is skipped, i.e. the dataset
# draws another image (FilterAnnotations(keep_empty=True) returns None).
_base_ = './demo_cls_loc.py'

geo = dict(img_border_value=0, interpolation='bilinear')
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(128, 128), keep_ratio=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomApply', prob=0.5,
         transforms=[dict(type='RandomCrop', crop_size=(0.75, 0.75), crop_type='relative_range'),
                     dict(type='Resize', scale=(128, 128), keep_ratio=False)]),
    dict(type='RandomShift', prob=0.3, max_shift_px=16),
    dict(type='Rotate', prob=0.3, max_mag=15.0, **geo),
    dict(type='ShearX', prob=0.3, max_mag=10.0, **geo),
    dict(type='Brightness', prob=0.3, min_mag=0.6, max_mag=1.4),
    dict(type='Contrast', prob=0.3, min_mag=0.6, max_mag=1.4),
    dict(type='DropPixels', prob=0.3, fraction=(0.0, 0.05)),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1, 1), keep_empty=True),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
