# Concurrent softmax on Open Images V6 (train sigma*, test sigma-dagger). r_ij:
#   python tools/analysis_tools/concurrent_rate.py \
#       data/OpenImages/annotations/oidv6-train-annotations-bbox.csv \
#       --label-file data/OpenImages/annotations/class-descriptions-boxable.csv \
#       --hierarchy data/OpenImages/annotations/bbox_labels_600_hierarchy.json \
#       --out data/OpenImages/annotations/concurrent_rate.json
_base_ = './faster-rcnn_r50_fpn_softmax_1x_oi-v6.py'

model = dict(roi_head=dict(bbox_head=dict(loss_cls=dict(
    r_file='data/OpenImages/annotations/concurrent_rate.json',
    train_mode='concurrent', test_mode='concurrent'))))
