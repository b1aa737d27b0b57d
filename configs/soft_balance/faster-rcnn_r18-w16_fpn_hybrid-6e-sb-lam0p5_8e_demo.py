# Hybrid schedule (Peng et al., CVPR 2020, sec. 4.2, their "20+7"): 6 epochs of natural
# sampling, then 2 epochs of soft-balance fine-tuning (lambda = 0.5) with the LR schedule
# restarted at 0.1x the base LR -- the same LR trajectory as the 8e baseline, so only the
# sampler of the last 2 epochs differs.
_base_ = '../faster_rcnn/faster-rcnn_r18-w16_fpn_8e_demo.py'

param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='MultiStepLR', begin=0, end=6, by_epoch=True, milestones=[6], gamma=0.1)]
custom_hooks = [dict(
    type='HybridScheduleHook', switch_epoch=6,
    sampler=dict(type='SoftBalanceSampler', lam=0.5),
    param_scheduler=[dict(type='ConstantLR', factor=0.1, by_epoch=True, begin=0, end=2)])]
