# ICIP 2017 'balanced' strategy (Li et al., Table 4): K images of every class per epoch
# (K = #images / C).
_base_ = './mask-rcnn_r50_fpn_random-ms-1x_lvis-v1.py'
train_dataloader = dict(
    sampler=dict(_delete_=True, type='ICIPStrategySampler', strategy='balanced'))
