# GLaMM GCG on the synthetic *train* images, exported as pseudo-labels:
# COCO results (bbox + segm, phrase -> shape category) by mmdet's CocoMetric
# (scored against the real train GT, see the README) and ODVG grounding
# records by mmdet's DumpODVGResults. The GLaMM is the tiny `make demo` one
# (configs/glamm/..._1000it_synthetic.py, its checkpoint as the argument):
#   python tools/test.py <this config> work_dirs/glamm_tiny_demo/iter_1000.pth
#   python projects/pseudo_labels/tools/results_to_instances.py \
#       work_dirs/pl_glamm/gcg_train.segm.json \
#       --images data/synthetic/annotations/instances_train.json \
#       --out work_dirs/pl_glamm/instances_train_pseudo.json
_base_ = [
    '../../../configs/glamm/glamm_llama-tiny_clip-tiny_sam-tiny_1000it_synthetic.py'  # noqa: E501
]
custom_imports = dict(
    imports=['mmgrounding', 'projects.pseudo_labels.pseudo_labels'],
    allow_failed_imports=False)

data_root = 'data/synthetic/'
classes = ('circle', 'square', 'triangle')
out_dir = 'work_dirs/pl_glamm/'

# the GCG question on every train image (GranDf file: one entry per image);
# the answer in the file is never shown to the model (with_answer=False)
test_dataloader = dict(
    batch_size=16,
    dataset=dict(
        type='GCGDataset',
        data_root=data_root,
        format='grandf',
        split='train',
        ann_file='annotations/gcg/GranDf_HA_GCG_train.json',
        data_prefix=dict(img_path='images/'),
        test_mode=True,
        pipeline={{_base_.test_pipeline}}))
test_evaluator = [
    dict(
        type='PseudoLabelCocoMetric',
        classes=classes,
        ann_file=data_root + 'annotations/instances_train.json',
        metric=['bbox', 'segm'],
        outfile_prefix=out_dir + 'gcg_train'),
    dict(
        type='GCGDumpODVGResults',
        outfile_path=out_dir + 'gcg_train_odvg.jsonl',
        img_prefix=data_root + 'images/',
        score_thr=0.1),
]
