# Short (CPU ablation) version of the hybrid schedule: 2 natural + 1 soft-balance epoch.
_base_ = './faster-rcnn_r18-w16_fpn_hybrid-6e-sb-lam0p5_8e_demo.py'

train_cfg = dict(max_epochs=3, val_interval=3)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='MultiStepLR', begin=0, end=2, by_epoch=True, milestones=[2], gamma=0.1)]
custom_hooks = [dict(
    type='HybridScheduleHook', switch_epoch=2,
    sampler=dict(type='SoftBalanceSampler', lam=0.5),
    param_scheduler=[dict(type='ConstantLR', factor=0.1, by_epoch=True, begin=0, end=1)])]
