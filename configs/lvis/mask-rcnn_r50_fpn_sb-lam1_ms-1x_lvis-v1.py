# Soft-balance sampling (Peng et al., CVPR 2020, eqs. 6-8) with lambda = 1.0.
_base_ = './mask-rcnn_r50_fpn_random-ms-1x_lvis-v1.py'
train_dataloader = dict(sampler=dict(_delete_=True, type='SoftBalanceSampler', lam=1.0))
