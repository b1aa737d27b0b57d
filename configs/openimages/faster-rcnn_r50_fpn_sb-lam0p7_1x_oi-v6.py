# Soft-balance sampling, lambda = 0.7, on Open Images V6.
_base_ = './faster-rcnn_r50_fpn_softmax_1x_oi-v6.py'

train_dataloader = dict(sampler=dict(_delete_=True, type='SoftBalanceSampler', lam=0.7))
