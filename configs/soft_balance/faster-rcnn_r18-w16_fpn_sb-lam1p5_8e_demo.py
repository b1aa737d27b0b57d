# Soft-balance sampling (Peng et al., CVPR 2020, eqs. 6-8) with lambda = 1.5.
_base_ = '../faster_rcnn/faster-rcnn_r18-w16_fpn_8e_demo.py'

train_dataloader = dict(sampler=dict(_delete_=True, type='SoftBalanceSampler', lam=1.5))
