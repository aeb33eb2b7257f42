"""``tools/train.py --strategy``: every 7B config, every strategy, checked
against dicts written out by hand from the configs' own comments and the
official recipes (GLaMM: AdamW 3e-4, betas 0.9/0.95, accumulation 10, clip
1.0, bf16, batch 2 per GPU; LLaVA-G: AdamW, 0.1x lr groups, clip 1.0, bf16)
and from ``configs/_base_/strategies/*.py`` as documented in
docs/distributed.md."""
import copy
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mmgrounding.engine.strategy_switch import (STRATEGY_NAMES,
                                                apply_strategy)
from mmgrounding.testing.scripts import REPO_ROOT, load_script

CONFIGS = osp.join(REPO_ROOT, 'configs')

GLAMM_OPT = dict(type='AdamW', lr=3e-4, betas=(0.9, 0.95), weight_decay=0.)
GLAMM_PRE = 'checkpoints/glamm_grand_pretrained_mmgrounding.pth'
LLAVA_KEYS = {
    'grounding_head.backbone': dict(lr_mult=0.1),
    'sampling_offsets': dict(lr_mult=0.1),
    'reference_points': dict(lr_mult=0.1),
}
LLAVA_OPT = dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.)
STAGE1 = 'llava-g_vicuna7b_clipl224_openseed-swint_30k_stage1-flickr-refcoco'
STAGE2 = 'llava-g_vicuna7b_clipl224_openseed-swint_10k_stage2-gvc'

# per config: optimizer, accumulation, clip max_norm, batch per GPU,
# paramwise custom_keys, load_from
GLAMM = dict(optimizer=GLAMM_OPT, accum=10, clip=1.0, batch=2, keys=None,
             load_from=GLAMM_PRE)
EXPECTED = {
    'glamm/glamm_vicuna7b_clipl336_sam-h_10e_grandf-gcg.py': GLAMM,
    'glamm/glamm_vicuna7b_clipl336_sam-h_5e_refcoco-refseg.py': GLAMM,
    'glamm/glamm_vicuna7b_clipl336_sam-h_5e_refcocog-regcap.py': GLAMM,
    'glamm/glamm_vicuna7b_clipl336_sam-h_5e_vg-regcap.py': GLAMM,
    f'llava_grounding/{STAGE1}.py': dict(
        optimizer=LLAVA_OPT, accum=1, clip=1.0, batch=8, keys=LLAVA_KEYS,
        load_from=None),
    f'llava_grounding/{STAGE2}.py': dict(
        optimizer=dict(LLAVA_OPT, lr=2e-5), accum=1, clip=1.0, batch=8,
        keys=LLAVA_KEYS, load_from=f'work_dirs/{STAGE1}/iter_30000.pth'),
    'llava_grounding/llava-g_vicuna7b_clipl224_openseed-swint_20k_'
    'stage3-gvcr.py': dict(
        optimizer=dict(LLAVA_OPT, lr=2e-5), accum=1, clip=1.0, batch=2,
        keys=dict(LLAVA_KEYS, **{'prompt_encoder.backbone':
                                 dict(lr_mult=0.1)}),
        load_from=f'work_dirs/{STAGE2}/iter_10000.pth'),
}
ZERO2 = dict(stage=2, allgather_partitions=True, reduce_scatter=True,
             allgather_bucket_size=500_000_000,
             reduce_bucket_size=500_000_000, overlap_comm=True,
             contiguous_gradients=True)
ZERO3 = dict(stage=3, overlap_comm=True, contiguous_gradients=True,
             reduce_bucket_size=500_000_000,
             stage3_prefetch_bucket_size=50_000_000,
             stage3_param_persistence_threshold=100_000,
             stage3_max_live_parameters=1_000_000_000,
             stage3_gather_16bit_weights_on_model_save=True)
FSDP = dict(type='GroundingFSDPStrategy', state_dict_cfg='full',
            model_wrapper=dict(
                auto_wrap_policy=dict(type='grounded_lmm_wrap_policy'),
                use_orig_params=True))

_LOADED = {}


def load(rel):
    if rel not in _LOADED:
        _LOADED[rel] = Config.fromfile(osp.join(CONFIGS, rel))
    return copy.deepcopy(_LOADED[rel])


def original_wrapper(exp):
    """The config's own optimizer wrapper, by hand."""
    wrapper = dict(type='AmpOptimWrapper', dtype='bfloat16',
                   optimizer=exp['optimizer'],
                   clip_grad=dict(max_norm=exp['clip']))
    if exp['accum'] != 1:
        wrapper['accumulative_counts'] = exp['accum']
    if exp['keys'] is not None:
        wrapper['paramwise_cfg'] = dict(custom_keys=exp['keys'])
    return wrapper


def test_every_7b_config_has_an_expectation():
    found = {osp.relpath(p, CONFIGS)
             for p in glob.glob(osp.join(CONFIGS, '**', '*7b*.py'),
                                recursive=True)
             if '_base_' not in p}
    assert found == set(EXPECTED)


@pytest.mark.parametrize('rel', sorted(EXPECTED))
@pytest.mark.parametrize('name', STRATEGY_NAMES)
def test_translation_of_7b_configs(rel, name):
    exp = EXPECTED[rel]
    cfg = load(rel)
    before = cfg.to_dict()
    assert cfg.optim_wrapper.to_dict() == original_wrapper(exp)
    out = apply_strategy(cfg, name).to_dict()
    if name == 'ddp':
        assert out == before  # mmengine's Runner, config as written
        assert 'runner_type' not in out and 'strategy' not in out
        return
    assert out['runner_type'] == 'FlexibleRunner'
    if name == 'fsdp':
        assert out['strategy'] == FSDP
        # FSDPStrategy applies accumulation, clipping and AMP itself
        assert out['optim_wrapper'] == original_wrapper(exp)
        assert out['load_from'] == exp['load_from']
        assert out == dict(before, runner_type='FlexibleRunner',
                           strategy=FSDP)
        return
    assert out['strategy'] == dict(
        type='GroundingDeepSpeedStrategy',
        zero_optimization=ZERO2 if name == 'deepspeed_zero2' else ZERO3,
        bf16=dict(enabled=True),
        gradient_clipping=exp['clip'],
        gradient_accumulation_steps=exp['accum'],
        train_micro_batch_size_per_gpu=exp['batch'],
        exclude_frozen_parameters=False)
    wrapper = dict(type='DeepSpeedOptimWrapper', optimizer=exp['optimizer'])
    if exp['keys'] is not None:
        wrapper.update(paramwise_cfg=dict(custom_keys=exp['keys']),
                       constructor='GroupedOptimWrapperConstructor')
    assert out['optim_wrapper'] == wrapper
    if exp['load_from'] is None:
        assert out['load_from'] is None and 'init_cfg' not in out['model']
    else:  # DeepSpeed reads only its directories: loaded by init_weights
        assert out['load_from'] is None
        assert out['model']['init_cfg'] == dict(
            type='Pretrained', checkpoint=exp['load_from'])
    # nothing else changed
    rest = {k: v for k, v in out.items()
            if k not in ('runner_type', 'strategy', 'optim_wrapper',
                         'load_from', 'model')}
    assert rest == {k: v for k, v in before.items()
                    if k not in ('optim_wrapper', 'load_from', 'model')}
    model = dict(out['model'])
    model.pop('init_cfg', None)
    assert model == before['model']


def tiny_cfg(**optim_wrapper):
    return Config(dict(
        model=dict(type='X'),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1),
                           **optim_wrapper),
        train_dataloader=dict(batch_size=3)))


def test_deepspeed_fp32_and_no_clipping():
    out = apply_strategy(tiny_cfg(type='OptimWrapper'), 'deepspeed_zero2')
    assert out.strategy.bf16 == dict(enabled=False)
    assert out.strategy.gradient_clipping == 0.  # DeepSpeed's "off"
    assert out.strategy.gradient_accumulation_steps == 1
    assert out.strategy.train_micro_batch_size_per_gpu == 3
    assert out.optim_wrapper.to_dict() == dict(
        type='DeepSpeedOptimWrapper', optimizer=dict(type='SGD', lr=0.1))


@pytest.mark.parametrize('cfg, amp, match', [
    (tiny_cfg(type='AmpOptimWrapper', dtype='bfloat16'), True, '--amp'),
    (tiny_cfg(type='AmpOptimWrapper'), False, 'fp16'),
    (tiny_cfg(type='AmpOptimWrapper', dtype='float16'), False, 'fp16'),
    (tiny_cfg(clip_grad=dict(type='value', clip_value=1.)), False,
     'by value'),
    (tiny_cfg(clip_grad=dict(max_norm=1., norm_type=1)), False, 'L2'),
    (tiny_cfg(type='MyWrapper'), False, "optim_wrapper.type='MyWrapper'"),
    (Config(dict(optim_wrapper=dict(a=dict(optimizer=dict(type='SGD'))),
                 train_dataloader=dict(batch_size=1))), False,
     'single optimizer'),
    (Config(dict(optim_wrapper=dict(optimizer=dict(type='SGD')),
                 train_dataloader=dict())), False, 'batch_size'),
])
def test_deepspeed_refuses_what_cannot_work(cfg, amp, match):
    with pytest.raises(ValueError, match=match):
        apply_strategy(cfg, 'deepspeed_zero3', amp=amp)


def test_fsdp_and_ddp_keep_amp():
    for name in ('ddp', 'fsdp'):
        cfg = tiny_cfg(type='AmpOptimWrapper', dtype='bfloat16')
        assert apply_strategy(cfg, name, amp=True).optim_wrapper.type == \
            'AmpOptimWrapper'


@pytest.mark.parametrize('name', STRATEGY_NAMES)
def test_hand_written_strategy_is_kept_and_not_mixed(name):
    cfg = tiny_cfg()
    cfg.runner_type = 'FlexibleRunner'
    cfg.strategy = dict(type='DeepSpeedStrategy')
    assert apply_strategy(cfg, None) is cfg  # no --strategy: untouched
    assert cfg.strategy == dict(type='DeepSpeedStrategy')
    with pytest.raises(ValueError, match='not both'):
        apply_strategy(cfg, name)
    with pytest.raises(ValueError, match='choose from'):
        apply_strategy(tiny_cfg(), 'zero2')


def test_load_from_placement(tmp_path):
    # a resume path (a DeepSpeed directory) stays load_from
    cfg = tiny_cfg()
    cfg.resume, cfg.load_from = True, 'work/iter_2.pth'
    out = apply_strategy(cfg, 'deepspeed_zero2')
    assert out.load_from == 'work/iter_2.pth' and 'init_cfg' not in out.model
    # an existing DeepSpeed checkpoint directory stays load_from
    cfg = tiny_cfg()
    cfg.load_from = str(tmp_path)
    assert apply_strategy(cfg, 'deepspeed_zero2').load_from == str(tmp_path)
    # a model that already has an init_cfg cannot take the file
    cfg = tiny_cfg()
    cfg.load_from = 'a.pth'
    cfg.model.init_cfg = dict(type='Pretrained', checkpoint='b.pth')
    with pytest.raises(ValueError, match='init_cfg is already set'):
        apply_strategy(cfg, 'deepspeed_zero2')


def test_train_py_parses_strategy_and_refuses_amp(tmp_path):
    train = load_script('tools/train.py')
    cfg_file = osp.join(CONFIGS, 'glamm',
                        'glamm_vicuna7b_clipl336_sam-h_5e_vg-regcap.py')
    import sys
    argv = sys.argv
    try:
        sys.argv = ['train.py', cfg_file, '--strategy', 'deepspeed_zero2',
                    '--work-dir', str(tmp_path)]
        cfg = train.build_cfg(train.parse_args())
        assert cfg.runner_type == 'FlexibleRunner'
        assert cfg.strategy.gradient_accumulation_steps == 10
        sys.argv += ['--amp']
        with pytest.raises(ValueError, match='--amp'):
            train.build_cfg(train.parse_args())
        sys.argv = ['train.py', cfg_file, '--strategy', 'zero9']
        with pytest.raises(SystemExit):
            train.parse_args()
    finally:
        sys.argv = argv


def test_grouped_constructor_keeps_llava_g_lr_groups(tmp_path):
    """The translated stage-1 optimizer wrapper, built by mmengine on a tiny
    LLaVA-G: the same lr for every parameter as mmengine's default
    constructor gives it, in 2 groups (1e-4, 1e-5) of trainable tensors."""
    from mmengine.optim import build_optim_wrapper

    from mmgrounding.registry import MODELS
    from mmgrounding.testing import build_tiny_tokenizer
    from mmgrounding.testing.llava_g import tiny_llava_g_cfg
    from mmgrounding.utils import register_all_modules
    register_all_modules()
    build_tiny_tokenizer(str(tmp_path / 'tok'))
    model = MODELS.build(tiny_llava_g_cfg(str(tmp_path / 'tok')))
    cfg = apply_strategy(load(f'llava_grounding/{STAGE1}.py'),
                         'deepspeed_zero2')
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    assert type(wrapper).__name__ == 'DeepSpeedOptimWrapper'
    groups = wrapper.optimizer.param_groups
    assert [g['lr'] for g in groups] == pytest.approx([1e-4, 1e-5])
    names = {id(p): n for n, p in model.named_parameters()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    got = {names[id(p)]: g['lr'] for g in groups for p in g['params']}
    assert set(got) == trainable  # every trained tensor once, no frozen one
    slow = {n for n in trainable if 'grounding_head.backbone' in n
            or 'sampling_offsets' in n or 'reference_points' in n}
    assert slow and slow != trainable
    for name, lr in got.items():
        assert lr == pytest.approx(1e-5 if name in slow else 1e-4), name
    # mmengine's own constructor: a group per tensor (frozen ones too),
    # the same lrs
    plain = build_optim_wrapper(model, dict(
        type='OptimWrapper', optimizer=cfg.optim_wrapper.optimizer,
        paramwise_cfg=cfg.optim_wrapper.paramwise_cfg))
    assert len(plain.optimizer.param_groups) > 50
    for group in plain.optimizer.param_groups:
        (param, ) = group['params']
        if param.requires_grad:
            assert group['lr'] == pytest.approx(got[names[id(param)]])
    assert isinstance(groups[0]['params'][0], torch.nn.Parameter)
