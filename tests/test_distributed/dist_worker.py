"""One torchrun launch for several distributed test workers
(``... dist_worker.py OUT_DIR PART [PART ...]``).

Every launch pays for two interpreters importing torch, mmengine, mmdet,
transformers, peft and DeepSpeed; the slow suite shares two launches
instead of one or two per test. PART is ``ddp`` (``ddp_worker``: the DDP
equivalence cases), ``fsdp:MODES`` (``fsdp_worker``) or ``ds:MODES``
(``deepspeed_worker``), run in the order given, each in its own
``OUT_DIR/<worker>/`` with the tokenizer of ``OUT_DIR/tok``. The gloo group
is created once and shared; each worker's runners are built as in a launch
of their own (fixed seeds at every runner, RNG states from checkpoints on
resume), so what they compute does not depend on what ran before them.
"""
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(__file__))


def part_dir(out_dir: str, worker: str) -> str:
    """``OUT_DIR/<worker>`` with a copy of ``OUT_DIR/tok`` (rank 0 copies,
    every rank waits for it)."""
    import torch.distributed as dist
    path = os.path.join(out_dir, worker)
    if dist.get_rank() == 0 and not os.path.isdir(os.path.join(path, 'tok')):
        os.makedirs(path, exist_ok=True)
        shutil.copytree(os.path.join(out_dir, 'tok'),
                        os.path.join(path, 'tok'))
    dist.barrier()
    return path


def main(out_dir: str, parts) -> None:
    import torch
    torch.set_num_threads(1)
    from mmgrounding.engine.distributed import init_cpu_process_group
    init_cpu_process_group(timeout_s=300)
    for part in parts:
        worker, _, modes = part.partition(':')
        path = part_dir(out_dir, worker)
        if worker == 'ddp':
            import ddp_worker
            ddp_worker.main(path, destroy=False)
            continue
        module = __import__(dict(fsdp='fsdp_worker',
                                 ds='deepspeed_worker')[worker])
        for mode in modes.split(','):
            module.main(path, mode)


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2:])
