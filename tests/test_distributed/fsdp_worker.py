"""Tiny GLaMM under ``FlexibleRunner`` + ``GroundingFSDPStrategy`` on every
rank of a torchrun gloo group (``... fsdp_worker.py OUT_DIR MODE``).

MODE (comma-separated list): ``straight`` trains 4 iterations; ``cut``
trains 2 (checkpoint at 2); ``resume`` resumes the ``cut`` work dir and continues to 4. LoRA dropout 0.5
and a shuffled ``InfiniteSampler`` (rank r draws its own batches) make the
RNG restore per rank matter; gradients are clipped to norm 0.1. Each rank
writes its logged losses and gradient norms; rank 0's
full-state checkpoints (``state_dict_cfg='full'``) hold the weights.
"""
import os
import sys

import torch

LORA = dict(r=4, lora_alpha=8, lora_dropout=0.5,
            target_modules=['q_proj', 'v_proj'])
PROMPTS = ['Describe <bbox> please.', 'Segment it.']
ANSWERS = ['<p> a red circle </p> [SEG] on the left.', 'It is [SEG].']


def model_cfg(tok_dir):
    from mmgrounding.testing import tiny_glamm_cfg
    cfg = tiny_glamm_cfg(tok_dir, lora=LORA, seg_norm=None)
    cfg['data_preprocessor'] = dict(type='BaseDataPreprocessor')
    return cfg


def dataset(tok_dir):
    from mmgrounding.registry import MODELS
    from mmgrounding.testing import make_glamm_batch
    torch.manual_seed(0)
    model = MODELS.build(model_cfg(tok_dir))
    out = []
    for seed in range(4):
        inputs, samples = make_glamm_batch(
            model, PROMPTS, ANSWERS, seed=seed,
            region_boxes=[torch.tensor([[4., 4., 40., 40.]]),
                          torch.zeros(0, 4)])
        out.append(dict(inputs=inputs, data_samples=samples))
    return out


def main(out_dir, mode):
    torch.set_num_threads(1)
    from mmengine.hooks import Hook
    from mmengine.runner import FlexibleRunner

    class LossLog(Hook):
        def __init__(self):
            self.losses = {}
            self.grad_norms = {}

        def after_train_iter(self, runner, batch_idx, data_batch=None,
                             outputs=None):
            self.losses[runner.iter + 1] = outputs['loss'].item()
            self.grad_norms[runner.iter + 1] = runner.message_hub.get_scalar(
                'train/grad_norm').current()

    tok_dir = os.path.join(out_dir, 'tok')
    log = LossLog()
    work = os.path.join(out_dir, 'straight' if mode == 'straight' else 'cut')
    runner = FlexibleRunner(
        model=model_cfg(tok_dir),
        work_dir=work,
        strategy=dict(
            type='GroundingFSDPStrategy',
            state_dict_cfg='full',
            model_wrapper=dict(
                auto_wrap_policy=dict(type='grounded_lmm_wrap_policy'),
                use_orig_params=True)),
        train_dataloader=dict(
            dataset=dataset(tok_dir),
            sampler=dict(type='InfiniteSampler', shuffle=True),
            batch_size=1,
            num_workers=0,
            collate_fn=lambda items: items[0]),
        train_cfg=dict(by_epoch=False, max_iters=2 if mode == 'cut' else 4),
        # clipping active (tiny max_norm): the norm must be the global one
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-2),
                           clip_grad=dict(max_norm=0.1)),
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
        experiment_name=f'fsdp_{mode}')
    runner.train()
    rank = int(os.environ['RANK'])
    units = sum(1 for m in runner.model.modules()
                if type(m).__name__.endswith('FullyShardedDataParallel'))
    torch.save(dict(losses=log.losses, grad_norms=log.grad_norms,
                    units=units),
               os.path.join(out_dir, f'{mode}_rank{rank}.pt'))


if __name__ == '__main__':
    for mode in sys.argv[2].split(','):  # e.g. straight,cut
        main(sys.argv[1], mode)
