# Libra Faster R-CNN R-50 FPN 1x on COCO 2017 (Pang et al., CVPR 2019; 38.3 box AP in mmdet's
# model zoo): resolves to mmdet::libra_rcnn/libra-faster-rcnn_r50_fpn_1x_coco.py with
# balancedet's components (tested key by key). Sampling: floor_thr=0 reproduces the published
# training -- mmdet's IoUBalancedNegSampler(floor_thr=-1) rewrites itself to floor_thr=0 after
# its first call, so from then on IoU-0 negatives only refill a shortfall.
_base_ = './faster-rcnn_r50_fpn_iou-balanced-sampler_1x_coco.py'
model = dict(
    neck=[dict(type='FPN', in_channels=[256, 512, 1024, 2048], out_channels=256, num_outs=5),
          dict(type='BalancedFeaturePyramid', in_channels=256, num_levels=5, refine_level=2,
               refine_type='non_local')],
    roi_head=dict(bbox_head=dict(loss_bbox=dict(
        _delete_=True, type='BalancedL1LossV2', alpha=0.5, gamma=1.5, beta=1.0,
        loss_weight=1.0))),
    train_cfg=dict(rpn=dict(sampler=dict(neg_pos_ub=5), allowed_border=-1)))
