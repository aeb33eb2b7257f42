"""Train a model with an mmgrounding (or any mmdet) config.

Same arguments as mmdet's ``tools/train.py``, plus ``--strategy
{ddp,fsdp,deepspeed_zero2,deepspeed_zero3}`` which rewrites the config for
that strategy (``mmgrounding.engine.strategy_switch``); mmgrounding is
imported first so its registries and the safe checkpoint globals are in
place.
"""
import argparse
import os
import os.path as osp

# No hub access, ever: huggingface_hub and transformers read these once, at
# import time, so they are set before anything imports them (the same
# variables as mmgrounding.utils.hf_loading.OFFLINE_ENV).
os.environ['HF_HUB_OFFLINE'] = '1'
os.environ['TRANSFORMERS_OFFLINE'] = '1'

from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.registry import RUNNERS  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import mmgrounding  # noqa: E402,F401  (registers modules, checkpoint globals)


def parse_args() -> argparse.Namespace:
    from mmgrounding.engine.strategy_switch import STRATEGY_NAMES
    parser = argparse.ArgumentParser(description='Train a grounding model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--amp', action='store_true', help='enable automatic-mixed-precision')
    parser.add_argument(
        '--auto-scale-lr', action='store_true', help='enable auto-scale-lr')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from this checkpoint, or from the latest checkpoint in '
        'the work dir when no path is given')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, key=value pairs')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument(
        '--strategy',
        choices=STRATEGY_NAMES,
        default=None,
        help='rewrite the config for this training strategy (default: as '
        'the config says; see mmgrounding/engine/strategy_switch.py and '
        'docs/distributed.md)')
    # torch.distributed.launch passes --local-rank, torchrun sets LOCAL_RANK
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def build_cfg(args: argparse.Namespace) -> Config:
    """Load the config and apply the command-line overrides."""
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        optim_wrapper = cfg.optim_wrapper.type
        if optim_wrapper == 'AmpOptimWrapper':
            print('AMP training is already enabled in your config.')
        else:
            assert optim_wrapper == 'OptimWrapper', (
                '`--amp` is only supported when the optimizer wrapper type is '
                f'`OptimWrapper`, but got {optim_wrapper}.')
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'
    if args.auto_scale_lr:
        if 'auto_scale_lr' in cfg and 'enable' in cfg.auto_scale_lr and \
                'base_batch_size' in cfg.auto_scale_lr:
            cfg.auto_scale_lr.enable = True
        else:
            raise RuntimeError('Can not find "auto_scale_lr" or '
                               '"auto_scale_lr.enable" or '
                               '"auto_scale_lr.base_batch_size" in your'
                               ' configuration file.')
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    # last: it reads the final optim wrapper, batch size, resume, load_from
    from mmgrounding.engine.strategy_switch import apply_strategy
    return apply_strategy(cfg, args.strategy, amp=args.amp)


def main() -> None:
    args = parse_args()
    cfg = build_cfg(args)
    from mmgrounding.engine.distributed import prepare_distributed
    prepare_distributed(cfg)  # CPU ranks: gloo, DDP device_ids=None
    if 'runner_type' not in cfg:
        runner = Runner.from_cfg(cfg)
    else:
        runner = RUNNERS.build(cfg)
    runner.train()


if __name__ == '__main__':
    main()
