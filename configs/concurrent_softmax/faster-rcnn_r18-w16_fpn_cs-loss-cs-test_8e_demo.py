# Concurrent softmax (Peng et al., CVPR 2020): train with sigma* (eq. 3) on
# multi-hot targets, test with sigma-dagger (eq. 5). Needs the concurrent rates:
#   python tools/analysis_tools/concurrent_rate.py data/demo/annotations/train.json \
#       --out data/demo/concurrent_rate.json --png data/demo/concurrent_rate.png
_base_ = '../faster_rcnn/faster-rcnn_r18-w16_fpn_8e_demo.py'

classes = ('round', 'angular', 'circle', 'ring', 'square', 'tile', 'triangle', 'cross',
           'diamond', 'star')
model = dict(
    roi_head=dict(
        type='ConcurrentSoftmaxRoIHead',
        bbox_head=dict(
            type='ConcurrentSoftmaxBBoxHead',
            loss_cls=dict(
                _delete_=True,
                type='ConcurrentSoftmaxLoss',
                num_classes=10,
                classes=classes,
                r_file='data/demo/concurrent_rate.json',
                hierarchy='concurrent',
                train_mode='concurrent',
                test_mode='concurrent',
                loss_weight=1.0))))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackMultiLabelDetInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
