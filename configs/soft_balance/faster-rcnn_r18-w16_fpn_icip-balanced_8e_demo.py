# ICIP 2017 'balanced' strategy: K images of every class per epoch (K = #images / C).
_base_ = '../faster_rcnn/faster-rcnn_r18-w16_fpn_8e_demo.py'

train_dataloader = dict(
    sampler=dict(_delete_=True, type='ICIPStrategySampler', strategy='balanced'))
