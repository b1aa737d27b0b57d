# Faster R-CNN R-50 FPN, ImageNet-pretrained backbone (mmdet's base: init_cfg
# torchvision://resnet50), with balancedet's multi-label RoI head. The loss is the plain
# softmax here (train_mode/test_mode 'softmax' = the paper's softmax baseline, one label
# per object); the concurrent-softmax rows switch the modes and name r_file.
_base_ = 'mmdet::_base_/models/faster-rcnn_r50_fpn.py'

num_classes = 500
model = dict(
    roi_head=dict(
        type='ConcurrentSoftmaxRoIHead',
        bbox_head=dict(
            type='ConcurrentSoftmaxBBoxHead',
            num_classes=num_classes,
            loss_cls=dict(
                _delete_=True,
                type='ConcurrentSoftmaxLoss',  # num_classes from the bbox head
                r_file=None,
                hierarchy='concurrent',
                train_mode='softmax',
                test_mode='softmax',
                loss_weight=1.0))),
    test_cfg=dict(rcnn=dict(score_thr=0.01)))
