# Faster R-CNN R-50 FPN 1x on COCO 2017 -- mmdet's config (37.4 box AP in mmdet's model zoo)
# with balancedet's validating BalancedCocoDataset: the baseline row of the Libra ablation.
_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['balancedet'], allow_failed_imports=False)

dataset_type = 'BalancedCocoDataset'
train_dataloader = dict(dataset=dict(type=dataset_type))
val_dataloader = dict(dataset=dict(type=dataset_type))
test_dataloader = val_dataloader
