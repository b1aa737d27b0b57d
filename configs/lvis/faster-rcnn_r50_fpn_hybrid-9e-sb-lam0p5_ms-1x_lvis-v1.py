# Hybrid schedule (Peng et al., CVPR 2020, sec. 4.2): 9 epochs of natural sampling, then 3 of
# soft-balance (lambda = 0.5) with the LR restarted at 0.1x and dropped to 0.01x for the last
# epoch -- the LR trajectory of the 1x schedule, so only the last 3 epochs' sampler differs.
_base_ = './faster-rcnn_r50_fpn_random-ms-1x_lvis-v1.py'
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=9, by_epoch=True, milestones=[8], gamma=0.1)]
custom_hooks = [dict(
    type='HybridScheduleHook', switch_epoch=9, sampler=dict(type='SoftBalanceSampler', lam=0.5),
    param_scheduler=[  # 0.1x from the switch (milestone 0), 0.01x for the last epoch
        dict(type='MultiStepLR', by_epoch=True, begin=0, end=3, milestones=[0, 2], gamma=0.1)])]
