"""Save a DetectThenDescribe model (detector + LMM weights) as one checkpoint.

``DetectThenDescribe`` loads its detector and LMM from their own checkpoints
in ``__init__``; ``tools/test.py`` wants one checkpoint for the whole model.
This builds the model from the config and saves its state dict, so that
``tools/test.py CONFIG OUT`` loads exactly those weights (strict key match).

    python projects/detect_then_describe/tools/compose_checkpoint.py \
        CONFIG OUT.pth [--cfg-options model.topk=5 ...]
"""
import argparse
import os
import os.path as osp

import torch
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope
from mmengine.utils import import_modules_from_strings

import mmgrounding  # noqa: F401  (registers modules)
from mmgrounding.registry import MODELS


def compose(cfg: Config, out: str) -> str:
    """Build ``cfg.model`` and write ``{'state_dict', 'meta'}`` to ``out``."""
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    init_default_scope(cfg.get('default_scope', 'mmgrounding'))
    model = MODELS.build(cfg.model)
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    torch.save(
        dict(
            state_dict=model.state_dict(),
            meta=dict(
                detector=cfg.model.detector, lmm=cfg.model.lmm,
                dataset_meta=getattr(model.detector, 'dataset_meta', None))),
        out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('out')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    print(compose(cfg, args.out))


if __name__ == '__main__':
    main()
