# Ablation ladder (Libra R-CNN Table 2, row 2): baseline + IoU-balanced sampling of the
# R-CNN stage (negatives from 3 IoU bins, instance-balanced positives).
_base_ = '../faster_rcnn/faster-rcnn_r18-w16_fpn_8e_demo.py'
model = dict(train_cfg=dict(rcnn=dict(sampler=dict(
    _delete_=True, type='BalancedIoUSampler', num=256, pos_fraction=0.25,
    floor_thr=-1, floor_fraction=0, num_bins=3, pos_balance=True,
    add_gt_as_proposals=True))))
