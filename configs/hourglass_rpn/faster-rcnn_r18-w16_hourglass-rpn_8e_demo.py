# Faster R-CNN whose RPN is the hourglass proposal network: the FPN of the
# baseline is replaced by HourglassNeck (strides 4 / 8 / 16) and the RPN head by
# HourglassRPNHead with depth-split anchors; everything else is the baseline's.
_base_ = '../faster_rcnn/faster-rcnn_r18-w16_fpn_8e_demo.py'
model = dict(
    neck=dict(_delete_=True, type='HourglassNeck', in_channels=[16, 32, 64, 128],
              out_channels=64, out_indices=(0, 1, 2)),
    rpn_head=dict(
        type='HourglassRPNHead',
        anchor_generator=dict(strides=[4, 8, 16], base_sizes=[12, 24, 48],
                              scales=[1.0, 17 / 12])),
    roi_head=dict(bbox_roi_extractor=dict(featmap_strides=[4, 8, 16])))
