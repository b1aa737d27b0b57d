# Concurrent softmax (Peng et al., CVPR 2020): train with sigma* (eq. 3) on
# multi-hot targets, test with sigma-dagger (eq. 5). Needs the concurrent rates:
#   python tools/analysis_tools/concurrent_rate.py data/demo/annotations/train.json \
#       --out data/demo/concurrent_rate.json --png data/demo/concurrent_rate.png
# The loss takes num_classes from the bbox head, and the file's classes are
# mapped onto the dataset's (metainfo['classes']) before training and testing.
_base_ = '../faster_rcnn/faster-rcnn_r18-w16_fpn_8e_demo.py'

model = dict(
    roi_head=dict(
        type='ConcurrentSoftmaxRoIHead',
        bbox_head=dict(
            type='ConcurrentSoftmaxBBoxHead',
            loss_cls=dict(
                _delete_=True,
                type='ConcurrentSoftmaxLoss',
                r_file='data/demo/concurrent_rate.json',
                hierarchy='concurrent',
                train_mode='concurrent',
                test_mode='concurrent',
                loss_weight=1.0))))

# every label of a box reaches the RoI head: only the packing step changes
train_pipeline = [*_base_.train_pipeline[:-1], dict(type='PackMultiLabelDetInputs')]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
