# Peer: mmdet's ClassAwareSampler (class-aware sampling, Shen et al. 2016).
_base_ = '../faster_rcnn/faster-rcnn_r18-w16_fpn_8e_demo.py'

train_dataloader = dict(sampler=dict(_delete_=True, type='ClassAwareSampler', num_sample_class=1))
