# Peer: mmengine's ClassBalancedDataset (repeat-factor sampling, Gupta et al., LVIS 2019):
# r(c) = max(1, sqrt(t / f(c))), f(c) the fraction of images with class c. t = 0.1 suits the
# demo's 10 classes (the rarest is in ~1 % of the images, so it is repeated ~3x).
_base_ = '../faster_rcnn/faster-rcnn_r18-w16_fpn_8e_demo.py'

train_dataloader = dict(dataset=dict(
    _delete_=True, type='ClassBalancedDataset', oversample_thr=0.1,
    dataset={{_base_.train_dataloader.dataset}}))
