# Soft-balance sampling (Peng et al., CVPR 2020, eqs. 6-8), lambda = 0.3 (Table 3).
_base_ = './faster-rcnn_r50_fpn_softmax_1x_oi-challenge2019.py'

train_dataloader = dict(sampler=dict(_delete_=True, type='SoftBalanceSampler', lam=0.3))
