# Hybrid schedule (Peng et al., CVPR 2020, sec. 4.2, Table 4): natural sampling, then
# soft-balance lambda = 0.7. Our reading on the 7-epoch 1x: natural for epochs 0-3 (up to
# the first LR step), soft-balance for epochs 4-6 with the LR steps of the 1x unchanged.
_base_ = './faster-rcnn_r50_fpn_softmax_1x_oi-challenge2019.py'

custom_hooks = [dict(
    type='HybridScheduleHook', switch_epoch=4,
    sampler=dict(type='SoftBalanceSampler', lam=0.7))]
