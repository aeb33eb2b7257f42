# LLaVA-G stage 3 (official scripts/finetune_visual_prompt.sh): only the
# Semantic-SAM visual-prompt encoder and its obj_projector train (the LLM and
# OpenSeeD are frozen; no grounding loss, prompt-encoder losses x 0.2); lr
# 2e-5, cosine, 20,000 steps of 16 samples (2 per GPU x 8 GPUs); GVC-R
# (llava_instruct_150k_visual_prompt.json), the RefCOCO interactive file
# (grounding_train2017_instruct.json) and Flickr30K Entities at the script's
# equal per-source totals (64 each).
_base_ = ['./llava-g_vicuna7b_clipl224_openseed-swint_10k_stage2-gvc.py']
load_from = 'work_dirs/llava-g_vicuna7b_clipl224_openseed-swint_10k_' \
    'stage2-gvc/iter_10000.pth'
model = dict(
    data_preprocessor=dict(prompt_views=('clip', 'grounding')),
    language_model=dict(trainable=()),
    projector=dict(trainable=False),
    grounding_head=dict(trainable=False),
    prompt_encoder=dict(type='SemanticSAMPromptEncoder', lm_dim=4096),
    grounding_loss=False)

max_iters = 20000
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=max_iters + 1)
optim_wrapper = dict(
    optimizer=dict(lr=2e-5),
    paramwise_cfg=dict(
        custom_keys={'prompt_encoder.backbone': dict(lr_mult=0.1)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=600),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=600, end=max_iters,
         T_max=max_iters - 600, eta_min=0.)
]

gvc_r_train = dict(
    type='GVCDataset',
    data_root='data/coco/',
    ann_file='llava_g/llava_instruct_150k_visual_prompt.json',
    instances_file='annotations/instances_train2017.json',
    task='gvc_r',
    data_prefix=dict(img_path='train2017/'),
    pipeline={{_base_.llava_g_vp_train_pipeline}})
refcoco_interactive_train = dict(
    gvc_r_train,
    ann_file='llava_g/grounding_train2017_instruct.json',
    instances_file='llava_g/instances_train2017_refcoco.json',
    max_convs_per_image=3)
train_dataloader = dict(
    batch_size=2,
    sampler=dict(type='RandomSourceSampler', source_ratio=[1, 1, 1]),
    dataset=dict(
        type='ConcatDataset',
        _delete_=True,
        datasets=[gvc_r_train, refcoco_interactive_train,
                  {{_base_.flickr_train}}]))
auto_scale_lr = dict(enable=False, base_batch_size=16)
