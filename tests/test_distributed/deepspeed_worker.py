"""Tiny GLaMM under ``FlexibleRunner`` + ``GroundingDeepSpeedStrategy``
(ZeRO-2) on every rank of a torchrun gloo group
(``... deepspeed_worker.py OUT_DIR MODE``).

MODE (comma-separated list): ``straight`` trains 4 iterations; ``cut``
trains 2 (checkpoint at 2); ``resume`` resumes the ``cut`` work dir and
continues to 4. As ``fsdp_worker.py``: LoRA dropout 0.5 and a shuffled
``InfiniteSampler`` make the per-rank RNG restore matter. Each rank writes
its logged losses; the weights are read from DeepSpeed's checkpoint
directories.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from fsdp_worker import dataset, model_cfg  # noqa: E402


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
    work = os.path.join(out_dir, 'straight' if mode == 'straight' else 'cut')
    runner = FlexibleRunner(
        model=model_cfg(tok_dir),
        work_dir=work,
        strategy=dict(
            type='GroundingDeepSpeedStrategy',
            zero_optimization=dict(stage=2),
            gradient_clipping=1.0,
            gradient_accumulation_steps=1,
            train_micro_batch_size_per_gpu=1,
            exclude_frozen_parameters=False),
        train_dataloader=dict(
            dataset=dataset(tok_dir),
            sampler=dict(type='InfiniteSampler', shuffle=True),
            batch_size=1,
            num_workers=0,
            collate_fn=lambda items: items[0]),
        train_cfg=dict(by_epoch=False, max_iters=2 if mode == 'cut' else 4),
        optim_wrapper=dict(type='DeepSpeedOptimWrapper',
                           optimizer=dict(type='AdamW', lr=1e-2)),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=2,
                            by_epoch=False),
            logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[dict(type='RandomStateCheckpointHook'), log],
        launcher='pytorch',
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
        default_scope='mmgrounding',
        randomness=dict(seed=0),
        resume=mode == 'resume',
        experiment_name=f'ds_{mode}')
    runner.train()
    rank = int(os.environ['RANK'])
    torch.save(dict(losses=log.losses),
               os.path.join(out_dir, f'{mode}_rank{rank}.pt'))


if __name__ == '__main__':
    for mode in sys.argv[2].split(','):
        main(sys.argv[1], mode)
