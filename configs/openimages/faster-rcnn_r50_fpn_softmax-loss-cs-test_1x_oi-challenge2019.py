# Concurrent softmax, Table 2 (Peng et al., CVPR 2020): train softmax / test concurrent.
# r_ij from the training boxes (same-object rule, hierarchy DAG):
#   python tools/analysis_tools/concurrent_rate.py \
#       data/OpenImages/challenge2019/challenge-2019-train-detection-bbox.txt \
#       --label-file data/OpenImages/challenge2019/cls-label-description.csv \
#       --hierarchy data/OpenImages/challenge2019/class_label_tree.np \
#       --out data/OpenImages/challenge2019/concurrent_rate.json
_base_ = './faster-rcnn_r50_fpn_softmax_1x_oi-challenge2019.py'

model = dict(roi_head=dict(bbox_head=dict(loss_cls=dict(
    r_file='data/OpenImages/challenge2019/concurrent_rate.json',
    train_mode='softmax', test_mode='concurrent'))))
