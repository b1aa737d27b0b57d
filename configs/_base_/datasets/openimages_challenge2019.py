# Open Images Challenge 2019 (500 classes) read by OpenImagesChallengeMultiLabelDataset:
# one instance per object with all its labels (`multi_labels`), group-of flags and the
# human-verified image-level labels; the files and layout of mmdet's Open Images docs
# (data/OpenImages/challenge2019/, images in data/OpenImages/OpenImages/{train,validation}/).
# Paper setting (Peng et al., CVPR 2020, sec. 5.2): shorter side 800 / longer <= 1333, flip.
dataset_type = 'OpenImagesChallengeMultiLabelDataset'
data_root = 'data/OpenImages/'
img_scale = (1333, 800)
backend_args = None

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    # carries every label of an object to the concurrent-softmax head
    dict(type='PackMultiLabelDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    # the metric reads the ground truths (one instance per label) and image-level labels
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor',
                    'instances', 'image_level_labels')),
]
train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='challenge2019/challenge-2019-train-detection-bbox.txt',
        data_prefix=dict(img='OpenImages/'),
        label_file='challenge2019/cls-label-description.csv',
        hierarchy_file='challenge2019/class_label_tree.np',
        meta_file='challenge2019/challenge-2019-train-metas.pkl',
        pipeline=train_pipeline,
        backend_args=backend_args))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='challenge2019/challenge-2019-validation-detection-bbox.txt',
        data_prefix=dict(img='OpenImages/'),
        label_file='challenge2019/cls-label-description.csv',
        hierarchy_file='challenge2019/class_label_tree.np',
        meta_file='challenge2019/challenge-2019-validation-metas.pkl',
        image_level_ann_file='challenge2019/challenge-2019-validation-detection-'
        'human-imagelabels.csv',
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader

# Open Images evaluation (hierarchy expansion, group-of, image-level labels); the
# type and arguments mirror mmdet's OpenImagesMetric.
val_evaluator = dict(
    type='FastOpenImagesMetric',
    iou_thrs=0.5,
    ioa_thrs=0.5,
    use_group_of=True,
    get_supercategory=True)
test_evaluator = val_evaluator
