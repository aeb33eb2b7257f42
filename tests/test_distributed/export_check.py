"""Shared check of ``tools/model_converters/merge_lora.py`` on a checkpoint
written by a real strategy (FSDP full file, DeepSpeed ZeRO-2/3 directory)."""
import os

import torch


def check_merge_lora_export(out_dir, tok_dir, ckpt, state):
    """``merge_lora.py`` on ``ckpt`` into ``out_dir``: the exported HF LM
    (safetensors) gives the logits of the LoRA model loaded from ``state``;
    the other exported weights are ``state``'s."""
    from mmengine.config import Config
    from transformers import AutoModelForCausalLM

    from fsdp_worker import model_cfg
    from mmgrounding.registry import MODELS
    from mmgrounding.testing import load_script
    os.makedirs(out_dir, exist_ok=True)
    cfg_path = str(out_dir / 'export_cfg.py')
    Config(dict(model=model_cfg(str(tok_dir)))).dump(cfg_path)
    merge = load_script('tools/model_converters/merge_lora.py')
    assert merge.main([cfg_path, ckpt, str(out_dir)]) == 0
    assert any(n.endswith('.safetensors')
               for n in os.listdir(out_dir / 'language_model'))

    model = MODELS.build(model_cfg(str(tok_dir))).eval()
    missing = model.load_state_dict(state, strict=False)
    assert not missing.unexpected_keys
    merged = AutoModelForCausalLM.from_pretrained(
        str(out_dir / 'language_model')).eval()
    ids = torch.randint(0, 60, (2, 9),
                        generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = model.language_model(model.language_model.embed(ids)).logits
        got = merged(input_ids=ids).logits
    assert torch.allclose(got, want, atol=1e-5)
    rest = torch.load(out_dir / 'glamm_weights.pth',
                      weights_only=True)['state_dict']
    trained = [k for k in state if not k.startswith('language_model.')]
    assert trained
    for key in trained:
        assert torch.equal(rest[key], state[key].to(rest[key].dtype)), key
