# Paper schedule (Peng et al., CVPR 2020, sec. 5.2): SGD, momentum 0.9, weight decay 1e-4,
# LR 0.00125 x total batch, "1x" = 7 epochs with LR steps (x0.1) after epochs 4 and 6.
max_epochs = 7
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[4, 6],
         gamma=0.1),
]
# lr = 0.00125 x 16: 8 processes x 2 images; `--auto-scale-lr` rescales for other batches
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.00125 * 16, momentum=0.9, weight_decay=1e-4))
auto_scale_lr = dict(enable=False, base_batch_size=16)
