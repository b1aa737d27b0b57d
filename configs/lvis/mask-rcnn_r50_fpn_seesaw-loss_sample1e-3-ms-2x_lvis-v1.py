# Baseline: Seesaw loss (Wang et al., CVPR 2021; p=0.8, q=2, normalised linear classifier) with
# repeat-factor sampling and the 2x schedule (mmdet::seesaw_loss/..._sample1e-3-ms-2x_lvis-v1.py).
_base_ = './mask-rcnn_r50_fpn_sample1e-3_ms-1x_lvis-v1.py'
model = dict(roi_head=dict(bbox_head=dict(
    cls_predictor_cfg=dict(type='NormedLinear', tempearture=20),
    loss_cls=dict(type='SeesawLoss', p=0.8, q=2.0, num_classes=1203, loss_weight=1.0))))
train_cfg = dict(max_epochs=24, val_interval=24)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=24, by_epoch=True, milestones=[16, 22], gamma=0.1)]
