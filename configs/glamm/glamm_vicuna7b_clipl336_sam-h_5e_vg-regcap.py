# GLaMM-RegCap on Visual Genome (official finetune_glamm_reg_vg.sh): the
# RefCOCOg region-captioning recipe (5 epochs x 500 optimizer steps from
# GranD-pretrained GLaMM, METEOR/CIDEr) with the VG region captions.
_base_ = ['./glamm_vicuna7b_clipl336_sam-h_5e_refcocog-regcap.py']
vg_root = 'data/visual_genome/'

train_dataloader = dict(
    dataset=dict(
        format='vg',
        data_root=vg_root,
        ann_file='train.json',
        data_prefix=dict(img_path='images/')))
val_dataloader = dict(
    dataset=dict(
        format='vg',
        split='test',
        data_root=vg_root,
        ann_file='test_caption.json',
        data_prefix=dict(img_path='images/')))
test_dataloader = val_dataloader
