# The three Libra R-CNN components (Pang et al., CVPR 2019) for the R18-w16 FPN
# baseline, as variables the ablation configs plug in with {{_base_.NAME}}:
# IoU-balanced sampling of the R-CNN stage (negatives from 3 IoU bins,
# instance-balanced positives), the Balanced Feature Pyramid (non-local
# refine at the third of five FPN levels) and the balanced L1 loss.
iou_balanced_sampler = dict(
    type='BalancedIoUSampler', num=256, pos_fraction=0.25, floor_thr=-1, floor_fraction=0,
    num_bins=3, pos_balance=True, add_gt_as_proposals=True)
bfp_neck = [
    dict(type='FPN', in_channels=[16, 32, 64, 128], out_channels=64, num_outs=5),
    dict(type='BalancedFeaturePyramid', in_channels=64, num_levels=5, refine_level=2,
         refine_type='non_local'),
]
balanced_l1_loss = dict(type='BalancedL1LossV2', alpha=0.5, gamma=1.5, beta=1.0,
                        loss_weight=1.0)
