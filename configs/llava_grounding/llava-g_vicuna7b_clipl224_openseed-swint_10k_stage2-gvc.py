# LLaVA-G stage 2 (official scripts/finetune.sh): the LLM, the projector and
# OpenSeeD train (lr 2e-5 for all: the script's value; the paper says 1e-4
# for the grounding model), grounding losses x 0.1, 10,000 steps of 64
# samples (8 per GPU x 8 GPUs); grounded visual chat (GVC,
# grounded_visual_chat_data.json), Flickr30K Entities and LLaVA-Instruct-150K.
# The script's per-step totals are flickr 6 and COCO-instruct 64 (GVC and
# LLaVA-Instruct share the COCO images): sample rates 29 : 6 : 29 here.
_base_ = [
    './llava-g_vicuna7b_clipl224_openseed-swint_30k_stage1-flickr-refcoco.py'
]
# start from the stage-1 model
load_from = 'work_dirs/llava-g_vicuna7b_clipl224_openseed-swint_30k_' \
    'stage1-flickr-refcoco/iter_30000.pth'
model = dict(
    language_model=dict(trainable='all'),
    grounding_head=dict(criterion=dict(loss_weight_multiplier=0.1)))

max_iters = 10000
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=max_iters + 1)
optim_wrapper = dict(optimizer=dict(lr=2e-5))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=300),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=300, end=max_iters,
         T_max=max_iters - 300, eta_min=0.)
]

gvc_train = dict(
    type='GVCDataset',
    data_root='data/coco/',
    ann_file='llava_g/grounded_visual_chat_data.json',
    instances_file='llava_g/instances_train2017_gvc.json',
    data_prefix=dict(img_path='train2017/'),
    pipeline={{_base_.llava_g_train_pipeline}})
llava_instruct_train = dict(
    type='LLaVAInstructDataset',
    data_root='data/coco/',
    ann_file='llava/llava_instruct_150k.json',
    data_prefix=dict(img_path='train2017/'),
    pipeline={{_base_.llava_g_train_pipeline}})
train_dataloader = dict(
    sampler=dict(type='RandomSourceSampler', source_ratio=[29, 6, 29]),
    dataset=dict(
        type='ConcatDataset',
        _delete_=True,
        datasets=[gvc_train, {{_base_.flickr_train}}, llava_instruct_train]))
auto_scale_lr = dict(enable=False, base_batch_size=64)
