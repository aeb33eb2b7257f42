"""Tiny GLaMM under ``FlexibleRunner`` + ``GroundingDeepSpeedStrategy``
(ZeRO-2) on every rank of a torchrun gloo group
(``... deepspeed_worker.py OUT_DIR MODE``).

MODE (comma-separated list): ``straight`` trains 4 iterations; ``cut``
trains 2 (checkpoint at 2); ``resume`` resumes the ``cut`` work dir and
continues to 4; ``zero3`` trains 2 iterations under ZeRO-3 (its
checkpoint is what ``merge_lora.py`` must read). All in bf16 (the official
recipe); the strategy and optimizer wrapper are what ``tools/train.py
--strategy deepspeed_zero{2,3}`` makes of a DDP optimizer wrapper
(``AmpOptimWrapper`` bf16, accumulation 2, clipping 1.0). As
``fsdp_worker.py``: LoRA dropout 0.5 and a shuffled ``InfiniteSampler`` make
the per-rank RNG restore matter. Each rank writes
its logged losses; the weights are read from DeepSpeed's checkpoint
directories.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from fsdp_worker import dataset, model_cfg  # noqa: E402


def translated(bf16=True, stage=2):
    """The DeepSpeed side of the config, made by ``--strategy
    deepspeed_zero2``'s translation from a DDP-style optimizer wrapper:
    accumulation 2 and clipping 1.0 move into the strategy."""
    from mmengine.config import Config

    from mmgrounding.engine.strategy_switch import apply_strategy
    wrapper = dict(type='AmpOptimWrapper', dtype='bfloat16') if bf16 else \
        dict(type='OptimWrapper')
    cfg = Config(dict(
        model=dict(type='GLaMM'),
        optim_wrapper=dict(
            optimizer=dict(type='AdamW', lr=1e-2), accumulative_counts=2,
            clip_grad=dict(max_norm=1.0), **wrapper),
        train_dataloader=dict(batch_size=1)))
    return apply_strategy(cfg, f'deepspeed_zero{stage}')


def main(out_dir, mode):
    torch.set_num_threads(1)
    from mmengine.hooks import Hook
    from mmengine.runner import FlexibleRunner

    class LossLog(Hook):
        def __init__(self):
            self.losses = {}

        def after_train_iter(self, runner, batch_idx, data_batch=None,
                             outputs=None):
            self.losses[runner.iter + 1] = outputs['loss'].item()

    tok_dir = os.path.join(out_dir, 'tok')
    log = LossLog()
    stage = 3 if mode == 'zero3' else 2
    work = os.path.join(out_dir, mode if mode in ('straight', 'zero3')
                        else 'cut')
    ds = translated(stage=stage)
    runner = FlexibleRunner(
        model=model_cfg(tok_dir),
        work_dir=work,
        strategy=ds.strategy.to_dict(),
        train_dataloader=dict(
            dataset=dataset(tok_dir),
            sampler=dict(type='InfiniteSampler', shuffle=True),
            batch_size=1,
            num_workers=0,
            collate_fn=lambda items: items[0]),
        train_cfg=dict(by_epoch=False,
                       max_iters=2 if mode in ('cut', 'zero3') else 4),
        optim_wrapper=ds.optim_wrapper.to_dict(),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=2,
                            by_epoch=False),
            logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[
            dict(type='WeightsOnlyCheckpointHook'),
            dict(type='RandomStateCheckpointHook'), log
        ],
        launcher='pytorch',
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
        default_scope='mmgrounding',
        randomness=dict(seed=0),
        resume=mode == 'resume',
        experiment_name=f'ds_{mode}')
    runner.train()
    rank = int(os.environ['RANK'])
    engine = runner.model.model  # MMDeepSpeedEngineWrapper -> engine
    used = dict(
        accumulation=engine.gradient_accumulation_steps(),
        clipping=engine.gradient_clipping(),
        bf16=engine.bfloat16_enabled(),
        stage=engine.zero_optimization_stage(),
        micro_batch=engine.train_micro_batch_size_per_gpu())
    torch.save(dict(losses=log.losses, used=used),
               os.path.join(out_dir, f'{mode}_rank{rank}.pt'))


if __name__ == '__main__':
    for mode in sys.argv[2].split(','):  # e.g. straight,cut
        main(sys.argv[1], mode)
