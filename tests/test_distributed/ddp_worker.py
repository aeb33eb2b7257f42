"""One SGD step of a tiny GLaMM through mmengine's ``Runner``, on 1 process
or on every rank of a torchrun gloo group (``python -m torch.distributed.run
--nproc_per_node 2 ddp_worker.py OUT_DIR``).

SGD with ``lr=1``, no momentum, weight decay or clipping: the step moves
every trainable weight by exactly minus its (DDP-averaged) gradient, so the
weights after one step compare gradients. Dropout is 0 (LoRA) and the
``[SEG]`` projector has no BatchNorm: BN1d normalises with per-rank batch
statistics under DDP (a real difference from 1 process; ``sync_bn`` is the
GPU fix), which would hide what this test checks.

Cases (each rank r gets ``BATCHES[case][r]`` via ``DefaultSampler
(shuffle=False)``, which gives rank r dataset indices r::2):

* ``equal``: a 4-sample batch split in halves with identical token counts,
  answer-token counts, ``[SEG]`` and ``<bbox>`` counts per rank;
* ``mixed``: rank 0 has ``<bbox>`` and ``[SEG]`` samples, rank 1 plain text
  without any grounding token (its region encoder, ``[SEG]`` projector and
  SAM decoder get no real gradient: must not hang).
"""
import copy
import os
import sys
import tempfile

import torch

LORA = dict(r=4, lora_alpha=8, lora_dropout=0.0,
            target_modules=['q_proj', 'v_proj'])
BOX = [4., 4., 40., 40.]
EQUAL = dict(
    prompts=['Describe <bbox> please.'] * 4,
    answers=[
        '<p> a red circle </p> [SEG] on the left.',
        '<p> a blue square </p> [SEG] on the right.',
        '<p> a green circle </p> [SEG] on the right.',
        '<p> a red square </p> [SEG] on the left.'
    ])
GROUNDED = dict(
    prompts=['Describe <bbox> please.', 'Segment it.'],
    answers=['<p> a red circle </p> [SEG] on the left.', 'It is [SEG].'],
    boxes=[[BOX], []])
PLAIN = dict(
    prompts=['Describe the image.', 'What is it?'],
    answers=['It is a red circle on the left.', 'A blue square.'],
    boxes=[[], []])


def model_cfg(tok_dir: str) -> dict:
    from mmgrounding.testing import tiny_glamm_cfg
    cfg = tiny_glamm_cfg(tok_dir, lora=LORA, seg_norm=None)
    cfg['data_preprocessor'] = dict(type='BaseDataPreprocessor')
    return cfg


def _slice(batch, sl):
    inputs, samples = batch
    return ({k: v[sl] for k, v in inputs.items()}, samples[sl])


def _make(model, prompts, answers, boxes, seed):
    from mmgrounding.testing import make_glamm_batch
    return make_glamm_batch(
        model, prompts, answers, seed=seed,
        region_boxes=[torch.tensor(b).reshape(-1, 4) for b in boxes])


def batches(tok_dir: str) -> dict:
    """``{case: [batch of rank 0, batch of rank 1]}`` and the 1-process
    references ``{'equal_full': 4-sample batch}``; deterministic."""
    from mmgrounding.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(model_cfg(tok_dir))
    full = _make(model, EQUAL['prompts'], EQUAL['answers'], [[BOX]] * 4, 1)
    assert full[0]['attention_mask'].all(), 'equal case must not pad'
    return dict(
        equal=[_slice(full, slice(0, 2)), _slice(full, slice(2, 4))],
        equal_full=full,
        mixed=[
            _make(model, seed=2, **GROUNDED),
            _make(model, seed=3, **PLAIN)
        ])


def _loss_log():
    """A hook recording the (local) losses of each iteration."""
    from mmengine.hooks import Hook

    class LossLog(Hook):

        def __init__(self):
            self.losses = []

        def after_train_iter(self, runner, batch_idx, data_batch=None,
                             outputs=None):
            self.losses.append({k: v.item() for k, v in outputs.items()})

    return LossLog()


def one_step(tok_dir, dataset, work_dir, name, distributed=False):
    """Build a Runner on ``dataset`` (a list of whole batches), train one
    iteration; return ``(losses, weights before, weights after)``."""
    from mmengine.runner import Runner

    from mmgrounding.engine.distributed import CPU_DDP_WRAPPER
    log = _loss_log()
    kwargs = dict(
        launcher='pytorch',
        # Runner reads the wrapper from its config (runner.py:892-911)
        cfg=dict(model_wrapper_cfg=copy.deepcopy(CPU_DDP_WRAPPER)),
        env_cfg=dict(dist_cfg=dict(backend='gloo'))) if distributed else {}
    runner = Runner(
        model=model_cfg(tok_dir),
        work_dir=work_dir,
        train_dataloader=dict(
            dataset=dataset,
            sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=1,
            num_workers=0,
            collate_fn=lambda items: items[0]),
        train_cfg=dict(by_epoch=False, max_iters=1),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=1.0)),
        default_hooks=dict(checkpoint=None,
                           logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[log],
        default_scope='mmgrounding',
        randomness=dict(seed=0),
        experiment_name=name,
        **kwargs)
    model = runner.model.module if distributed else runner.model

    def trainable():
        return {
            k: p.detach().clone()
            for k, p in model.named_parameters() if p.requires_grad
        }

    before = trainable()
    runner.train()
    return log.losses, before, trainable()


def main(out_dir: str, destroy: bool = True) -> None:
    """Run both cases on this rank; ``destroy=False`` leaves the gloo group
    to the next worker of a shared launch (``dist_worker.py``)."""
    torch.set_num_threads(1)
    from mmgrounding.engine.distributed import init_cpu_process_group
    init_cpu_process_group(timeout_s=120)
    import torch.distributed as dist
    rank = dist.get_rank()
    tok_dir = os.path.join(out_dir, 'tok')
    data = batches(tok_dir)
    for case in ('equal', 'mixed'):
        work = tempfile.mkdtemp(prefix=f'{case}{rank}_')
        losses, before, after = one_step(tok_dir, data[case], work,
                                         f'ddp_{case}', distributed=True)
        torch.save(dict(losses=losses, before=before, after=after),
                   os.path.join(out_dir, f'{case}_rank{rank}.pt'))
    if destroy:
        dist.destroy_process_group()


if __name__ == '__main__':
    main(sys.argv[1])
