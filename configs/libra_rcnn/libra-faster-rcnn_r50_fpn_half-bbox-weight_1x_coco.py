# Weighted-component loss ablation on COCO: Libra Faster R-CNN with the R-CNN
# box-regression term weighted 0.5 (every other term keeps weight 1).
_base_ = './libra-faster-rcnn_r50_fpn_1x_coco.py'
model = dict(_delete_=True, type='WeightedLossDetector', detector={{_base_.model}},
             loss_weights=dict(loss_bbox=0.5))
