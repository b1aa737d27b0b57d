# Baseline: mmdet's ClassAwareSampler (class-aware sampling, Shen et al. 2016), one image per
# drawn class.
_base_ = './faster-rcnn_r50_fpn_random-ms-1x_lvis-v1.py'
train_dataloader = dict(sampler=dict(_delete_=True, type='ClassAwareSampler', num_sample_class=1))
