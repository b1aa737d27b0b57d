# Baseline: repeat-factor sampling (Gupta et al., LVIS 2019) with mmengine's ClassBalancedDataset,
# oversample_thr=1e-3 -- mmdet's LVIS recipe.
_base_ = './mask-rcnn_r50_fpn_random-ms-1x_lvis-v1.py'
train_dataloader = dict(dataset=dict(
    _delete_=True, type='ClassBalancedDataset', oversample_thr=1e-3,
    dataset={{_base_.train_dataloader.dataset}}))
