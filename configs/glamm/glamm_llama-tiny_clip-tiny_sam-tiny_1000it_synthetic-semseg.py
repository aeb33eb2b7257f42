# The tiny synthetic GLaMM with GLaMM's semantic-segmentation source added
# to its training mix, as the official GCG recipe mixes Semantic_Segm
# (ADE20K / COCO-Stuff ...) with the GCG sets: the synthetic world's mmseg
# split (SyntheticSemSegDataset) read by SemanticSegGroundingDataset, up to
# 3 classes per sample, phrase = class name, target = the class's union
# mask ("It is [SEG]."). Tested on synthetic val with the semseg-test
# config (mmseg IoUMetric); everything else is the 1000it demo config.
_base_ = ['./glamm_llama-tiny_clip-tiny_sam-tiny_1000it_synthetic.py']

data_root = 'data/synthetic/'
semseg_train = dict(
    type='SemanticSegGroundingDataset',
    seg_dataset=dict(
        type='SyntheticSemSegDataset',
        data_root=data_root,
        ann_file='semseg/train.txt',
        data_prefix=dict(img_path='images/', seg_map_path='semseg/labels/')),
    max_classes=3,
    pipeline={{_base_.train_pipeline}})
train_dataloader = dict(
    dataset=dict(
        type='ConcatDataset',
        # the mmseg metainfo keys only the semantic source has (mmdet's
        # ConcatDataset indexes the first dataset's metainfo by them)
        ignore_keys=['classes', 'palette', 'label_map', 'reduce_zero_label'],
        datasets=[{{_base_.refseg_train}}, {{_base_.gcg_train}},
                  semseg_train]))
