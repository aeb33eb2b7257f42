"""Launch-time fixes that let mmengine 0.10.7 runners train on CPU ranks.

With ``--launcher pytorch`` and no accelerator, mmengine 0.10.7 fails in two
places (``shared/reference/scale_out.md``):

* ``init_dist`` calls ``torch.cuda.set_device(LOCAL_RANK)`` before creating
  the process group (dist/utils.py:130);
* ``Runner.wrap_model`` and ``DDPStrategy`` pass
  ``device_ids=[LOCAL_RANK]`` to DDP, which refuses device ids for CPU
  modules.

:func:`prepare_distributed` runs before the runner is built: on a machine
without CUDA it creates the gloo process group from the torchrun environment
(the runner then skips ``init_dist``) and sets ``device_ids=None`` in the DDP
wrapper config. On a GPU machine it changes nothing, so the same
``tools/dist_train.sh`` command line works on both.
"""
import os
from datetime import timedelta

import torch
import torch.distributed as torch_dist
from mmengine.config import Config, ConfigDict

#: DDP wrapper for CPU ranks (``device_ids=None``: the module's device).
CPU_DDP_WRAPPER = dict(
    type='MMDistributedDataParallel', device_ids=None,
    broadcast_buffers=False)


def init_cpu_process_group(timeout_s: float = 1800.) -> bool:
    """Create the gloo process group from ``RANK``/``WORLD_SIZE``/
    ``MASTER_ADDR``/``MASTER_PORT`` (torchrun's variables).

    Returns:
        True if this call created it, False if one already existed.
    """
    if torch_dist.is_initialized():
        return False
    torch_dist.init_process_group(
        backend='gloo',
        rank=int(os.environ['RANK']),
        world_size=int(os.environ['WORLD_SIZE']),
        timeout=timedelta(seconds=timeout_s))
    return True


def prepare_distributed(cfg: Config) -> Config:
    """Make ``cfg`` (with ``cfg.launcher`` set) runnable on CPU ranks.

    A no-op for ``launcher='none'`` or when CUDA is available. Otherwise:
    gloo process group created, ``env_cfg.dist_cfg.backend='gloo'``, and
    the DDP wrapper (``model_wrapper_cfg`` for ``Runner``,
    ``strategy.model_wrapper`` for a ``FlexibleRunner`` DDP strategy) built
    with ``device_ids=None``. FSDP strategies get their CPU handling from
    :class:`mmgrounding.engine.strategies.GroundingFSDPStrategy`.
    """
    if cfg.get('launcher', 'none') == 'none' or torch.cuda.is_available():
        return cfg
    if cfg.launcher != 'pytorch':
        raise NotImplementedError(
            f'CPU ranks are supported with --launcher pytorch (torchrun), '
            f'got {cfg.launcher!r}')
    env_cfg = cfg.setdefault('env_cfg', ConfigDict())
    dist_cfg = env_cfg.setdefault('dist_cfg', ConfigDict())
    dist_cfg['backend'] = 'gloo'
    timeout = dist_cfg.get('timeout', 1800)
    init_cpu_process_group(float(timeout))
    strategy = cfg.get('strategy')
    if cfg.get('runner_type') == 'FlexibleRunner' and strategy is not None:
        if 'DDP' in str(strategy.get('type', '')):
            wrapper = strategy.setdefault('model_wrapper', ConfigDict())
            for key, value in CPU_DDP_WRAPPER.items():
                wrapper.setdefault(key, value)
            wrapper['device_ids'] = None
        return cfg
    wrapper = cfg.get('model_wrapper_cfg')
    if wrapper is None:
        wrapper = ConfigDict(CPU_DDP_WRAPPER)
        # mmengine reads find_unused_parameters only without a wrapper cfg
        wrapper['find_unused_parameters'] = cfg.get('find_unused_parameters',
                                                    False)
        cfg.model_wrapper_cfg = wrapper
    else:
        wrapper['device_ids'] = None
    return cfg
