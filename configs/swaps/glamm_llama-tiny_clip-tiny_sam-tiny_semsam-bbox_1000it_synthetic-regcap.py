# Swap: LLaVA-G's Semantic-SAM prompt encoder serves GLaMM's <bbox> region
# prompts, in place of GLaMM's RoIAlign region encoder. Each region becomes
# a box prompt (SampleVisualPrompts, box only) of the grounding view; the
# encoder's interactive decoder turns it into the <bbox> embedding and adds
# its own losses (mask, IoU score, box; x 0.2). The tiny GLaMM recipe's
# refseg + GCG data gain the synthetic RefCOCOg region captions, and the
# test is region captioning (CIDEr / METEOR). The encoder is built from the
# tiny OpenSeeD parts (Swin, pixel decoder, DINO decoder), as Semantic-SAM
# shares them with the grounding model (llava_g_design.md §2).
_base_ = [
    '../glamm/glamm_llama-tiny_clip-tiny_sam-tiny_1000it_synthetic.py',
    '../_base_/models/tiny_parts/openseed_head.py'
]

model = dict(
    data_preprocessor=dict(prompt_views=('clip', 'grounding')),
    region_encoder=dict(
        _delete_=True,
        type='SemanticSAMPromptEncoder',
        lm_dim={{_base_.llm_hidden}},
        backbone={{_base_.tiny_openseed_head.backbone}},
        pixel_decoder={{_base_.tiny_openseed_head.pixel_decoder}},
        decoder={{_base_.tiny_openseed_head.decoder}},
        embed_dims={{_base_.tiny_openseed_head.embed_dims}},
        num_points=256),  # points of its mask losses
    region_view='grounding_pixels',
    region_prompts='visual_prompts_grounding')

data_root = 'data/synthetic/'
_tokenize = dict(
    type='TokenizeConversation',
    tokenizer=dict(pretrained_model_name_or_path=data_root + 'tokenizer'),
    num_image_tokens={{_base_.num_image_tokens}},
    max_length=384,
    grounding_token='[SEG]',
    region_token='<bbox>')
_box_prompts = dict(type='SampleVisualPrompts', prompt_types=dict(box=1.0))
regcap_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadGroundingAnnotations'),
    _box_prompts,
    dict(type='FormatGroundedConversation', style='glamm'),
    _tokenize,
    dict(type='PackGroundingInputs')
]
regcap_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadGroundingAnnotations'),
    _box_prompts,
    dict(type='FormatGroundedConversation', style='glamm', with_answer=False),
    _tokenize,
    dict(type='PackGroundingInputs')
]
regcap_train = dict(
    type='RegionCaptionDataset',
    data_root=data_root,
    format='refcocog',
    split='train',
    ann_file='annotations/region_caption/finetune_refcocog_train.json',
    data_prefix=dict(img_path='images/'),
    max_regions_per_image=2,
    pipeline=regcap_train_pipeline)
regcap_val = dict(
    type='RegionCaptionDataset',
    data_root=data_root,
    format='refcocog',
    split='val',
    one_per_region=True,
    ann_file='annotations/region_caption/finetune_refcocog_val_captions.json',
    data_prefix=dict(img_path='images/'),
    test_mode=True,
    pipeline=regcap_test_pipeline)

train_dataloader = dict(
    dataset=dict(datasets=[
        {{_base_.refseg_train}}, {{_base_.gcg_train}}, regcap_train]))
val_dataloader = dict(dataset=dict(_delete_=True, **regcap_val))
test_dataloader = val_dataloader
val_evaluator = dict(_delete_=True, type='RegionCaptionMetric')
test_evaluator = val_evaluator
