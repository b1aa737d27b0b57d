# Table 5 ladder, last rung reproducible here: concurrent softmax (train and test) +
# hybrid soft-balance lambda = 0.7 (the paper's larger backbones, multi-scale testing and
# ensembles are not part of balancedet).
_base_ = './faster-rcnn_r50_fpn_cs-loss-cs-test_1x_oi-challenge2019.py'

custom_hooks = [dict(
    type='HybridScheduleHook', switch_epoch=4,
    sampler=dict(type='SoftBalanceSampler', lam=0.7))]
