# Libra R-CNN ablation on COCO: baseline + IoU-balanced sampling of the R-CNN stage (3 IoU
# bins, instance-balanced positives). floor_thr=0 is how the published model sampled: mmdet's
# IoUBalancedNegSampler(floor_thr=-1) rewrites itself to floor_thr=0 after its first call, so
# IoU-0 negatives are drawn only to refill. (floor_thr=-1 here bins IoU-0 negatives too, on
# every call -- balancedet's sampler keeps no state.)
_base_ = './faster-rcnn_r50_fpn_1x_coco.py'
model = dict(train_cfg=dict(rcnn=dict(sampler=dict(
    _delete_=True, type='BalancedIoUSampler', num=512, pos_fraction=0.25,
    floor_thr=0, floor_fraction=0, num_bins=3, pos_balance=True,
    add_gt_as_proposals=True))))
