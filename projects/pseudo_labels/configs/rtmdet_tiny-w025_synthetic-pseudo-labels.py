# The detect_then_describe tiny RTMDet (same model, schedule, pipeline) with
# its training annotations replaced by GLaMM GCG pseudo-labels
# (results_to_instances.py output); validated / tested on the real synthetic
# val GT like the original.
#   python tools/train.py <this config>
_base_ = '../../detect_then_describe/configs/rtmdet_tiny-w025_synthetic.py'

# relative to data_root ('data/synthetic/'): work_dirs/pl_glamm/ of the
# working directory, where the pseudo-label config writes
pseudo_ann_file = '../../work_dirs/pl_glamm/instances_train_pseudo.json'
train_dataloader = dict(
    dataset=dict(ann_file=pseudo_ann_file, data_prefix=dict(img='images/')))
