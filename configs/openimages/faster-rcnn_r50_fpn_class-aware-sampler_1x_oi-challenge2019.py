# Class-aware sampling (Shen et al. 2016, the paper's CAS baseline) with mmdet's sampler.
_base_ = './faster-rcnn_r50_fpn_softmax_1x_oi-challenge2019.py'

train_dataloader = dict(sampler=dict(_delete_=True, type='ClassAwareSampler'))
