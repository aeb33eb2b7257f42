"""``tools/train.py --strategy``: rewrite a loaded config for DDP, FSDP or
DeepSpeed ZeRO-2/3 (the way xtuner's ``--deepspeed`` does).

The one owner of the translation. The strategy dicts themselves live in
``configs/_base_/strategies/{fsdp,deepspeed_zero2,deepspeed_zero3}.py`` and
are read from there; this module only moves what the config already says
into the places the chosen strategy reads it from:

* ``ddp``: the config is left as it is (mmengine's ``Runner``; DDP is what
  ``tools/dist_train.sh`` launches).
* ``fsdp``: ``runner_type='FlexibleRunner'`` and ``strategy`` from
  ``fsdp.py``; the optimizer wrapper stays (mmengine's FSDP strategy
  applies ``accumulative_counts``, ``clip_grad`` and AMP itself).
* ``deepspeed_zero2`` / ``deepspeed_zero3``: ``runner_type`` and
  ``strategy`` from the file, then (DeepSpeed ignores the optimizer
  wrapper's own settings, ``_strategy/deepspeed.py``)

  - ``accumulative_counts`` -> ``gradient_accumulation_steps``;
  - ``clip_grad.max_norm`` -> ``gradient_clipping`` (0 = off when the
    config does not clip);
  - ``train_dataloader.batch_size`` -> ``train_micro_batch_size_per_gpu``;
  - precision: ``AmpOptimWrapper(dtype='bfloat16')`` (every 7B config, the
    official recipe) -> ``bf16.enabled=True``; a float32 ``OptimWrapper``
    -> ``bf16.enabled=False`` (the translation does not change the numerics
    a config asks for);
  - the wrapper becomes ``DeepSpeedOptimWrapper`` with the same optimizer;
    a ``paramwise_cfg`` is kept and built by
    :class:`~mmgrounding.engine.grouped_optim_constructor.
    GroupedOptimWrapperConstructor` (same lrs, a few merged groups instead
    of one group per tensor);
  - a ``load_from`` *file* moves into ``model.init_cfg=dict(type=
    'Pretrained', ...)``: DeepSpeed's ``load_checkpoint`` reads only its
    own checkpoint directories (open-mmlab/mmengine#1499), while the
    model's ``init_weights`` runs before ``deepspeed.initialize`` casts and
    partitions the parameters.

Combinations that cannot work raise ``ValueError`` naming the option:
``--amp`` (or an fp16 ``AmpOptimWrapper``) with DeepSpeed, clipping by
value or a non-2 norm, several optimizers, an unknown optimizer wrapper, a
config that already sets its own strategy. Writing ``runner_type`` and
``strategy`` in a config by hand keeps working: :func:`apply_strategy` is
only called for ``--strategy``.
"""
import copy
import os.path as osp
from typing import Optional

from mmengine.config import Config, ConfigDict

#: Names accepted by ``--strategy``.
STRATEGY_NAMES = ('ddp', 'fsdp', 'deepspeed_zero2', 'deepspeed_zero3')

#: ``configs/_base_/strategies`` of this checkout.
STRATEGY_CONFIG_DIR = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs',
    '_base_', 'strategies')

_WRAPPERS = ('OptimWrapper', 'AmpOptimWrapper')
_GROUPED = 'GroupedOptimWrapperConstructor'


def load_strategy_file(name: str) -> Config:
    """``configs/_base_/strategies/<name>.py`` as a Config (bases merged)."""
    path = osp.join(STRATEGY_CONFIG_DIR, f'{name}.py')
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'--strategy {name}: strategy config {path} not found')
    return Config.fromfile(path)


def _deepspeed_precision(optim_wrapper: ConfigDict, amp: bool) -> bool:
    """Whether DeepSpeed runs in bf16 (True) or fp32 (False)."""
    if amp:
        raise ValueError(
            '--amp cannot be combined with a DeepSpeed strategy: DeepSpeed '
            'does the mixed precision itself (bf16, the official recipe, '
            'from an AmpOptimWrapper with dtype="bfloat16" in the config); '
            'drop --amp')
    if optim_wrapper.get('type', 'OptimWrapper') == 'OptimWrapper':
        return False
    dtype = str(optim_wrapper.get('dtype', None)).replace('torch.', '')
    if dtype == 'bfloat16':
        return True
    if dtype == 'float32':
        return False
    raise ValueError(
        f'optim_wrapper: AmpOptimWrapper with dtype={dtype!r} (fp16) cannot '
        'be translated to DeepSpeed: its fp16 mode needs loss scaling and '
        'inputs_to_half for every input; use dtype="bfloat16" (the '
        'official recipe)')


def _deepspeed_clipping(optim_wrapper: ConfigDict) -> float:
    """``clip_grad`` as DeepSpeed's ``gradient_clipping`` (0: no clipping)."""
    clip = optim_wrapper.get('clip_grad', None)
    if not clip:
        return 0.
    clip = dict(clip)
    if clip.pop('type', 'norm') != 'norm':
        raise ValueError(
            'optim_wrapper.clip_grad: DeepSpeed clips the global gradient '
            f'norm only, not by value (got {optim_wrapper.clip_grad})')
    if float(clip.pop('norm_type', 2.)) != 2.:
        raise ValueError(
            'optim_wrapper.clip_grad: DeepSpeed clips the L2 norm only '
            f'(got {optim_wrapper.clip_grad})')
    if 'max_norm' not in clip:
        raise ValueError(f'optim_wrapper.clip_grad has no max_norm: '
                         f'{optim_wrapper.clip_grad}')
    max_norm = float(clip.pop('max_norm'))
    clip.pop('error_if_nonfinite', None)
    if clip:
        raise ValueError(f'optim_wrapper.clip_grad: DeepSpeed cannot honour '
                         f'{sorted(clip)}')
    return max_norm


def _to_deepspeed(cfg: Config, strategy: dict, amp: bool) -> None:
    """Fill ``strategy`` and replace ``cfg.optim_wrapper`` (see the module
    docstring)."""
    optim_wrapper = cfg.get('optim_wrapper', None)
    if optim_wrapper is None or 'optimizer' not in optim_wrapper:
        raise ValueError(
            'optim_wrapper: DeepSpeed drives a single optimizer; the config '
            'has none or several (an OptimWrapperDict)')
    wrapper_type = optim_wrapper.get('type', 'OptimWrapper')
    if wrapper_type not in _WRAPPERS:
        raise ValueError(f'optim_wrapper.type={wrapper_type!r}: only '
                         f'{_WRAPPERS} can be translated to DeepSpeed')
    loader = cfg.get('train_dataloader', None)
    if loader is None or loader.get('batch_size', None) is None:
        raise ValueError('train_dataloader.batch_size is needed for '
                         'DeepSpeed train_micro_batch_size_per_gpu')
    strategy['bf16'] = dict(
        enabled=_deepspeed_precision(optim_wrapper, amp))
    strategy['gradient_accumulation_steps'] = int(
        optim_wrapper.get('accumulative_counts', 1))
    strategy['gradient_clipping'] = _deepspeed_clipping(optim_wrapper)
    strategy['train_micro_batch_size_per_gpu'] = int(loader.batch_size)

    new = dict(type='DeepSpeedOptimWrapper',
               optimizer=copy.deepcopy(optim_wrapper.optimizer))
    constructor = optim_wrapper.get('constructor', None)
    paramwise = optim_wrapper.get('paramwise_cfg', None)
    if paramwise:
        new['paramwise_cfg'] = copy.deepcopy(paramwise)
        if constructor in (None, 'DefaultOptimWrapperConstructor'):
            constructor = _GROUPED
    if constructor is not None:
        new['constructor'] = constructor
    cfg.optim_wrapper = ConfigDict(new)

    load_from = cfg.get('load_from', None)
    if load_from and not cfg.get('resume', False) \
            and not osp.isdir(load_from):
        model = cfg.model
        if model.get('init_cfg', None):
            raise ValueError(
                f'load_from={load_from!r} must move into model.init_cfg for '
                'DeepSpeed (it reads only its checkpoint directories), but '
                f'model.init_cfg is already set: {model.init_cfg}')
        model.init_cfg = ConfigDict(type='Pretrained', checkpoint=load_from)
        cfg.load_from = None


def apply_strategy(cfg: Config,
                   name: Optional[str],
                   amp: bool = False) -> Config:
    """Rewrite ``cfg`` in place for strategy ``name`` (``None``: unchanged).

    Args:
        cfg: a loaded config (``--cfg-options`` already merged).
        name: one of :data:`STRATEGY_NAMES` or None.
        amp: ``--amp`` was given (refused with DeepSpeed).

    Returns:
        ``cfg``.
    """
    if name is None:
        return cfg
    if name not in STRATEGY_NAMES:
        raise ValueError(f'--strategy {name!r}: choose from {STRATEGY_NAMES}')
    if cfg.get('strategy', None) is not None or \
            cfg.get('runner_type', None) == 'FlexibleRunner':
        raise ValueError(
            f'--strategy {name}: the config already sets runner_type='
            f'{cfg.get("runner_type")!r} / strategy='
            f'{dict(cfg.get("strategy") or {}).get("type")!r}; use either the '
            'config\'s own strategy or --strategy, not both')
    if name == 'ddp':
        return cfg
    base = load_strategy_file(name)
    strategy = copy.deepcopy(base.strategy.to_dict())
    if name.startswith('deepspeed'):
        _to_deepspeed(cfg, strategy, amp)
    cfg.runner_type = base.runner_type
    cfg.strategy = ConfigDict(strategy)
    return cfg
