"""UPerNet + ConvNeXt V2 on ADE20K at 640×640 (the IN-22K rows of paper Table 7): the 512 recipe of
upernet_cnx2_160k.py with ConvNeXt V1's 640 differences (mmseg's ade20k_640x640.py data: crops of 640, images
resized around 2560×640; 640 sliding windows, stride 426). Values with sources in docs/RECIPES.md "ADE20K at 640"."""
_base_ = './upernet_cnx2_160k.py'
crop_size = (640, 640)
scale = (2560, 640)  # 2048×512 × 1.25, train and test (mmseg ade20k_640x640.py L11, L20)

model = dict(data_preprocessor=dict(size=crop_size),
             test_cfg=dict(crop_size=crop_size, stride=(426, 426)))  # V1 ..._640_160k_ade20k_ss.py L33: 2/3 window
# The 512 pipelines with the 640 sizes; the multi-scale test (tta_scales) multiplies the test Resize when a test
# starts (runtime.evaluation.multi_scale_test): 0.75…1.25 × 2560×640 here.
train_pipeline = [
    dict(t, scale=scale) if t['type'] == 'RandomResize' else dict(t, crop_size=crop_size) if t['type'] == 'RandomCrop'
    else t for t in _base_.train_pipeline]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
test_pipeline = [dict(t, scale=scale) if t['type'] == 'Resize' else t for t in _base_.test_pipeline]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
