# Every data source of GLaMM and LLaVA-Grounding, read from the synthetic
# world (tools/dataset_converters/make_synthetic.py --out data/synthetic).
#
# One dataset dict per source and model style, named `{source}_{style}`
# (`style` = `glamm` or `llava_g`); each is a complete `dataset=` value, e.g.
#   train_dataloader = dict(dataset={{_base_.gvc_llava_g}}, ...)
# or, to look at one through its pipeline,
#   python tools/analysis_tools/browse_dataset.py \
#       configs/_base_/datasets/synthetic_sources.py \
#       --dataset-key gvc_llava_g --output-dir work_dirs/browse/gvc
# The loaders and file shapes are the official ones (docs/formats.md), so the
# real datasets need only other `data_root` / `ann_file` values
# (docs/datasets.md lists the official files and layouts).
data_root = 'data/synthetic/'
_img_prefix = dict(img_path='images/')
_tokenizer = dict(pretrained_model_name_or_path=data_root + 'tokenizer')
# CLIP patch tokens per image: (128 / 16) ** 2 for the tiny CLIP on the
# synthetic world; GLaMM-7B uses 576 (CLIP-L/14-336) and LLaVA-G-7B 256.
num_image_tokens = 64
max_length = 512

# ---------------------------------------------------------------- pipelines
# GLaMM: `<p> phrase </p> [SEG]` (bare `[SEG]` for refseg), `<bbox>` region
# prompts, the official instruction wordings drawn per sample.
train_pipeline_glamm = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadGroundingAnnotations'),
    dict(
        type='FormatGroundedConversation',
        style='glamm',
        task_templates='default',
        random_template=True),
    dict(
        type='TokenizeConversation',
        tokenizer=_tokenizer,
        num_image_tokens=num_image_tokens,
        max_length=max_length,
        grounding_token='[SEG]',
        region_token='<bbox>'),
    dict(type='PackGroundingInputs')
]
test_pipeline_glamm = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadGroundingAnnotations'),
    dict(
        type='FormatGroundedConversation',
        style='glamm',
        task_templates='default',
        with_answer=False),
    dict(
        type='TokenizeConversation',
        tokenizer=_tokenizer,
        num_image_tokens=num_image_tokens,
        max_length=max_length,
        grounding_token='[SEG]',
        region_token='<bbox>'),
    dict(type='PackGroundingInputs')
]
# LLaVA-G: `<g_s> phrase <g_e> <seg>`, "(with grounding)" requests, `<obj>`
# visual prompts drawn as click / box / scribble / mark (Semantic-SAM style).
_visual_prompts = dict(
    type='SampleVisualPrompts',
    prompt_types=dict(click=1.0, box=1.0, scribble=1.0, mark=1.0))
train_pipeline_llava_g = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadGroundingAnnotations'),
    _visual_prompts,
    dict(
        type='FormatGroundedConversation',
        style='llava_g',
        task_templates='default'),
    dict(
        type='TokenizeConversation',
        tokenizer=_tokenizer,
        num_image_tokens=num_image_tokens,
        max_length=max_length,
        grounding_token='<seg>',
        region_token='<obj>'),
    dict(type='PackGroundingInputs')
]
# Flickr30K Entities has boxes only: the filled box is the target mask.
train_pipeline_llava_g_boxes = [
    train_pipeline_llava_g[0],
    dict(type='LoadGroundingAnnotations', mask_from_box=True),
    *train_pipeline_llava_g[2:]
]
train_pipeline_glamm_boxes = [
    train_pipeline_glamm[0],
    dict(type='LoadGroundingAnnotations', mask_from_box=True),
    *train_pipeline_glamm[2:]
]

# ------------------------------------------------------------------ sources
# RefCOCO-style referring segmentation (GLaMM, LLaVA-G) and referring
# expression comprehension (LLaVA-G: boxes).
_refcoco = dict(
    type='RefCOCOGroundingDataset',
    data_root=data_root,
    ann_file='annotations/instances.json',
    split_file='annotations/refs(unc).p',
    split='train',
    max_refs_per_image=3,
    data_prefix=_img_prefix,
    filter_cfg=dict(filter_empty=True))
refcoco_refseg_glamm = dict(
    _refcoco, task='refseg', pipeline=train_pipeline_glamm)
refcoco_refseg_llava_g = dict(
    _refcoco, task='refseg', pipeline=train_pipeline_llava_g)
refcoco_rec_llava_g = dict(
    _refcoco, task='rec', pipeline=train_pipeline_llava_g)

# Flickr30K Entities, MDETR "separateGT" files (LLaVA-G phrase grounding).
flickr30k_entities_llava_g = dict(
    type='Flickr30kEntitiesDataset',
    data_root=data_root,
    ann_file='annotations/flickr/final_flickr_separateGT_train.json',
    split='train',
    data_prefix=_img_prefix,
    pipeline=train_pipeline_llava_g_boxes)

# LLaVA-G grounded visual chat (answers grounded with <seg>).
gvc_llava_g = dict(
    type='GVCDataset',
    data_root=data_root,
    ann_file='annotations/llava_g/grounded_visual_chat_data_train.json',
    instances_file='annotations/instances.json',
    data_prefix=_img_prefix,
    pipeline=train_pipeline_llava_g)
# GVC-R: visual prompts (<obj>) in the questions; chat file ...
gvc_r_llava_g = dict(
    type='GVCDataset',
    data_root=data_root,
    ann_file='annotations/llava_g/llava_instruct_visual_prompt_train.json',
    instances_file='annotations/instances.json',
    task='gvc_r',
    data_prefix=_img_prefix,
    pipeline=train_pipeline_llava_g)
# ... and the RefCOCO-style file (one ref per entry, packed per image as the
# official `coco_interactive_refcoco` mapper does).
gvc_r_refcoco_llava_g = dict(
    gvc_r_llava_g,
    ann_file='annotations/llava_g/grounding_train_instruct.json',
    max_convs_per_image=3)

# GLaMM grounded conversation generation: GranDf training file and the
# evaluator's ground truth (caption + mask files).
gcg_grandf_glamm = dict(
    type='GCGDataset',
    data_root=data_root,
    format='grandf',
    split='train',
    ann_file='annotations/gcg/GranDf_HA_GCG_train.json',
    data_prefix=_img_prefix,
    pipeline=train_pipeline_glamm)
gcg_grandf_llava_g = dict(gcg_grandf_glamm, pipeline=train_pipeline_llava_g)
gcg_eval_glamm = dict(
    type='GCGDataset',
    data_root=data_root,
    format='eval',
    split='val',
    ann_file='annotations/gcg/val_gcg_coco_caption_gt.json',
    mask_file='annotations/gcg/val_gcg_coco_mask_gt.json',
    data_prefix=_img_prefix,
    test_mode=True,
    pipeline=test_pipeline_glamm)

# GLaMM region captioning (<bbox> -> caption): MDETR RefCOCOg and
# Visual-Genome-style files.
region_caption_refcocog_glamm = dict(
    type='RegionCaptionDataset',
    data_root=data_root,
    format='refcocog',
    split='train',
    ann_file='annotations/region_caption/finetune_refcocog_train.json',
    data_prefix=_img_prefix,
    pipeline=train_pipeline_glamm)
region_caption_vg_glamm = dict(
    region_caption_refcocog_glamm,
    format='vg',
    ann_file='annotations/region_caption/vg_train.json')
# The same regions as LLaVA-G <obj> visual prompts.
region_caption_refcocog_llava_g = dict(
    region_caption_refcocog_glamm,
    region_token='<obj>',
    pipeline=train_pipeline_llava_g)

# Plain visual chat (both models train on LLaVA-Instruct-150K): questions
# about counts, colours, shapes, sizes and positions, no grounding markup.
# The val images' chat is `llava_instruct_150k_val.json`.
llava_instruct_glamm = dict(
    type='LLaVAInstructDataset',
    data_root=data_root,
    ann_file='annotations/llava_instruct/llava_instruct_150k.json',
    data_prefix=_img_prefix,
    pipeline=train_pipeline_glamm)
llava_instruct_llava_g = dict(
    llava_instruct_glamm, pipeline=train_pipeline_llava_g)

# GLaMM pretraining on GranD (grounded dense captions + referring
# expressions per image): one GranD-shaped file per train image.
grand_pretrain_glamm = dict(
    type='GranDPretrainDataset',
    data_root=data_root,
    ann_file='annotations/grand/',
    tasks=('caption', 'refer'),
    data_prefix=_img_prefix,
    pipeline=train_pipeline_glamm)
