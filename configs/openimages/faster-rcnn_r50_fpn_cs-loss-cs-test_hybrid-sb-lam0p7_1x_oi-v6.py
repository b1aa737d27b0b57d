# Concurrent softmax + hybrid soft-balance lambda = 0.7 on Open Images V6 (natural for
# epochs 0-3, soft-balance for epochs 4-6; see the Challenge 2019 config).
_base_ = './faster-rcnn_r50_fpn_cs-loss-cs-test_1x_oi-v6.py'

custom_hooks = [dict(
    type='HybridScheduleHook', switch_epoch=4,
    sampler=dict(type='SoftBalanceSampler', lam=0.7))]
