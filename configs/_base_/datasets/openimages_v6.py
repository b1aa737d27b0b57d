# Open Images V6 (601 boxable classes) read by OpenImagesMultiLabelDataset: one instance
# per object with all its labels (`multi_labels`), IsGroupOf and the image-level labels;
# the files of mmdet's Open Images docs (data/OpenImages/annotations/, images in
# data/OpenImages/OpenImages/{train,validation}/). Metas: mmdet's get_image_metas.py.
_base_ = './openimages_challenge2019.py'

dataset_type = 'OpenImagesMultiLabelDataset'
train_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        ann_file='annotations/oidv6-train-annotations-bbox.csv',
        data_prefix=dict(img='OpenImages/train/'),
        label_file='annotations/class-descriptions-boxable.csv',
        hierarchy_file='annotations/bbox_labels_600_hierarchy.json',
        meta_file='annotations/train-image-metas.pkl'))
val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        ann_file='annotations/validation-annotations-bbox.csv',
        data_prefix=dict(img='OpenImages/validation/'),
        label_file='annotations/class-descriptions-boxable.csv',
        hierarchy_file='annotations/bbox_labels_600_hierarchy.json',
        meta_file='annotations/validation-image-metas.pkl',
        image_level_ann_file='annotations/validation-annotations-human-imagelabels-boxable.csv'))
test_dataloader = val_dataloader
