"""The LLM side of the LLaVA-G release -> a local HF LLaMA dir + projector.

A tiny fake release is written from the key list below, typed from the
release description (official_releases.md §4.1-4.2: HF LLaVA-Llama, untied
``lm_head``, ``model.mm_projector`` one Linear, ``<g_s> <g_e> <seg>`` after
the base vocabulary, placeholder id 1273) -- not from the converter. Sizes:
hidden 32, 2 layers, 4 heads, base vocabulary 1280 (so id 1273 exists) + 3.
"""
import json
import os
import os.path as osp

import pytest
import torch

from mmgrounding.structures import GroundingDataError
from mmgrounding.structures.markup import (official_obj_prompt_to_ours,
                                           ours_obj_prompt_to_official)
from mmgrounding.testing import build_tiny_tokenizer, load_script

HIDDEN, LAYERS, HEADS, FFN, BASE, CLIP = 32, 2, 4, 64, 1280, 16
ROWS = BASE + 3  # <g_s>=1280, <g_e>=1281, <seg>=1282
OURS = ('<g_s>', '<g_e>', '<seg>', '<obj>', '<image>')


def official_key_shapes():
    """The release's LM/projector keys at tiny sizes (+ one key of each
    other part, which the LLM conversion must leave alone)."""
    keys = {
        'model.embed_tokens.weight': (ROWS, HIDDEN),
        'model.norm.weight': (HIDDEN, ),
        'lm_head.weight': (ROWS, HIDDEN),
        'model.mm_projector.weight': (HIDDEN, CLIP),
        'model.mm_projector.bias': (HIDDEN, ),
        'model.vision_tower.vision_tower.vision_model.post_layernorm.weight':
        (CLIP, ),
        'seg_model.model.sem_seg_head.predictor.class_embed': (8, HIDDEN),
        'interactive_model.model.obj_projector.weight': (HIDDEN, 8),
        'interactive_model.model.obj_projector.bias': (HIDDEN, ),
    }
    for n in range(LAYERS):
        p = f'model.layers.{n}.'
        for name in ('q_proj', 'k_proj', 'v_proj', 'o_proj'):
            keys[p + f'self_attn.{name}.weight'] = (HIDDEN, HIDDEN)
        keys[p + 'mlp.gate_proj.weight'] = (FFN, HIDDEN)
        keys[p + 'mlp.up_proj.weight'] = (FFN, HIDDEN)
        keys[p + 'mlp.down_proj.weight'] = (HIDDEN, FFN)
        keys[p + 'input_layernorm.weight'] = (HIDDEN, )
        keys[p + 'post_attention_layernorm.weight'] = (HIDDEN, )
        # transformers-4.31-era buffer, possibly persisted
        keys[p + 'self_attn.rotary_emb.inv_freq'] = (HIDDEN // HEADS // 2, )
    return keys


def write_fake_release(root: str):
    """Two ``.bin`` shards + index + LLaVA config + tokenizer whose id 1273
    is ``%``. Returns the tensors."""
    gen = torch.Generator().manual_seed(0)
    tensors = {
        k: torch.randn(s, generator=gen) * 0.5
        for k, s in official_key_shapes().items()
    }
    keys = sorted(tensors)
    shards = {
        'pytorch_model-00001-of-00002.bin': keys[::2],
        'pytorch_model-00002-of-00002.bin': keys[1::2]
    }
    weight_map = {}
    for name, names in shards.items():
        torch.save({k: tensors[k] for k in names}, osp.join(root, name))
        weight_map.update({k: name for k in names})
    with open(osp.join(root, 'pytorch_model.bin.index.json'), 'w') as f:
        json.dump(dict(metadata={}, weight_map=weight_map), f)
    config = dict(
        architectures=['LlavaLlamaForCausalLM_joint_2st_it_only_ref_instr'],
        model_type='llava',
        hidden_size=HIDDEN,
        intermediate_size=FFN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=HEADS,
        hidden_act='silu',
        max_position_embeddings=64,
        rms_norm_eps=1e-6,
        vocab_size=ROWS,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        tie_word_embeddings=False,
        torch_dtype='float32',
        mm_hidden_size=CLIP,
        mm_use_im_patch_token=False,
        mm_use_im_start_end=False,
        mm_vision_select_layer=-2,
        mm_vision_tower='openai/clip-vit-large-patch14')
    with open(osp.join(root, 'config.json'), 'w') as f:
        json.dump(config, f)
    # 4 base specials, then v0..v1268 (ids 4..1272), '%' = 1273, filler
    tok = build_tiny_tokenizer(root,
                               words=[f'v{i}' for i in range(1269)] + ['%'],
                               include_model_tokens=False,
                               vocab_size=BASE)
    assert tok.convert_tokens_to_ids('%') == 1273
    tok.add_tokens(['<g_s>', '<g_e>', '<seg>'], special_tokens=True)
    tok.save_pretrained(root)
    return tensors, config


def fake_llama(tensors, config):
    """The release's LM as a plain HF Llama (strict load of the fake)."""
    from transformers import LlamaConfig, LlamaForCausalLM
    cfg = LlamaConfig(
        **{
            k: v
            for k, v in config.items()
            if k not in ('architectures', 'model_type')
        })
    model = LlamaForCausalLM(cfg).eval()
    lm = {
        k: v
        for k, v in tensors.items()
        if k.startswith(('model.embed_tokens', 'model.layers', 'model.norm',
                         'lm_head')) and 'inv_freq' not in k
    }
    model.load_state_dict(lm, strict=True)
    return model


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    src = str(tmp_path_factory.mktemp('release'))
    tensors, config = write_fake_release(src)
    dst = str(tmp_path_factory.mktemp('out'))
    tool = load_script('tools/model_converters/llava_g_to_mmgrounding.py')
    rc = tool.main([
        src,
        osp.join(dst, 'ckpt.pth'), '--llm-only', '--llm-dst',
        osp.join(dst, 'llm')
    ])
    assert rc == 0
    return tensors, config, dst


def test_rows_copied_and_new_rows_initialised(converted):
    from safetensors.torch import load_file
    tensors, _, dst = converted
    state = load_file(osp.join(dst, 'llm', 'model.safetensors'))
    assert not any('inv_freq' in k for k in state)
    for key in ('model.embed_tokens.weight', 'lm_head.weight'):
        src, out = tensors[key], state[key]
        assert out.shape == (BASE + 5, HIDDEN)
        assert torch.equal(out[:ROWS], src)  # incl. 1280..1282
        assert torch.equal(out[1280], src[1280])  # <g_s>
        assert torch.equal(out[1282], src[1282])  # <seg>
        assert torch.equal(out[1283], src[1273])  # <obj> = placeholder
        mean = sum(src[i] for i in range(BASE)) / BASE  # not the 3 new rows
        assert torch.allclose(out[1284], mean, atol=1e-6)
        assert not torch.allclose(out[1284], src.mean(0), atol=1e-6)
    for n in range(LAYERS):
        key = f'model.layers.{n}.mlp.down_proj.weight'
        assert torch.equal(state[key], tensors[key])


def test_projector_keys_in_the_mmengine_checkpoint(converted):
    tensors, _, dst = converted
    ckpt = torch.load(osp.join(dst, 'ckpt.pth'), weights_only=False)
    sd = ckpt['state_dict']
    assert sorted(sd) == [
        'projector.layers.0.bias', 'projector.layers.0.weight'
    ]
    assert torch.equal(sd['projector.layers.0.weight'],
                       tensors['model.mm_projector.weight'])
    assert torch.equal(sd['projector.layers.0.bias'],
                       tensors['model.mm_projector.bias'])
    from mmgrounding.models.projectors import MLPProjector
    proj = MLPProjector(CLIP, HIDDEN, num_layers=1)
    proj.load_state_dict({
        k[len('projector.'):]: v
        for k, v in sd.items()
    },
                         strict=True)


def test_hfcausallm_loads_locally_with_identical_logits(converted):
    from mmgrounding.models.language_models import HFCausalLM
    tensors, config, dst = converted
    llm_dir = osp.join(dst, 'llm')
    lm = HFCausalLM(pretrained_model_name_or_path=llm_dir,
                    tokenizer=dict(pretrained_model_name_or_path=llm_dir),
                    special_tokens=OURS,
                    lora=None).eval()
    assert lm.token_ids == {
        '<g_s>': 1280,
        '<g_e>': 1281,
        '<seg>': 1282,
        '<obj>': 1283,
        '<image>': 1284
    }
    assert lm.vocab_size == BASE + 5
    assert lm.tokenizer.convert_tokens_to_ids('%') == 1273
    ids = torch.tensor([[1, 7, 1273, 400, 1281, 1282, 9, 2]])
    with torch.no_grad():
        ours = lm.model(input_ids=ids).logits
        ref = fake_llama(tensors, config)(input_ids=ids).logits
    assert torch.allclose(ours[..., :ROWS], ref, atol=1e-5)
    # <obj>'s output row copies 1273's: same logit; argmax keeps 1273
    assert torch.allclose(ours[..., 1283], ref[..., 1273], atol=1e-5)
    assert torch.equal(ours[..., :1284].argmax(-1), ref.argmax(-1))
    text = lm.tokenizer.decode([1283, 1284])
    assert '<obj>' in text and '<image>' in text


def test_bad_release_is_refused(tmp_path):
    from mmgrounding.models.utils.llava_g_llm_checkpoint import (
        convert_llava_g_projector, extend_vocab_rows)
    with pytest.raises(ValueError, match='1283 rows'):
        extend_vocab_rows(torch.zeros(1283, 4), base_vocab=1281)
    with pytest.raises(ValueError, match='obj_source_id'):
        extend_vocab_rows(torch.zeros(1283, 4),
                          base_vocab=1280,
                          obj_source_id=1280)
    with pytest.raises(KeyError, match='mm_projector.bias'):
        convert_llava_g_projector(
            {'model.mm_projector.weight': torch.zeros(4, 2)})
    # a tokenizer whose ids do not line up with the release's rows
    src = str(tmp_path)
    tensors, _ = write_fake_release(src)
    tensors['model.embed_tokens.weight'] = torch.zeros(ROWS + 1, HIDDEN)
    from transformers import AutoTokenizer

    from mmgrounding.models.utils.llava_g_llm_checkpoint import \
        write_llava_g_llm
    tok = AutoTokenizer.from_pretrained(src, local_files_only=True)
    with open(osp.join(src, 'config.json')) as f:
        config = json.load(f)
    with pytest.raises(ValueError, match='do not match the release'):
        write_llava_g_llm(tensors, config, tok, osp.join(src, 'llm'))
    assert not osp.exists(osp.join(src, 'llm'))


def test_official_placeholder_text_to_obj_token():
    # the release's training replacement: '<obj>' -> '% '
    assert ours_obj_prompt_to_official('What is <obj> doing?') == \
        'What is %  doing?'
    assert official_obj_prompt_to_ours('What is %  doing?') == \
        'What is <obj> doing?'
    # demo-typed placeholders
    assert official_obj_prompt_to_ours('What is %?') == 'What is <obj>?'
    assert official_obj_prompt_to_ours('% and % differ') == \
        '<obj> and <obj> differ'
    assert official_obj_prompt_to_ours('Describe % ') == 'Describe <obj>'
    assert official_obj_prompt_to_ours('a %\tb') == 'a <obj>\tb'
    # a % glued to a word is not the ▁% token: literal
    assert official_obj_prompt_to_ours('50% of %  is red', 1) == \
        '50% of <obj> is red'
    # a free-standing literal % is ambiguous: caught by the prompt count
    with pytest.raises(GroundingDataError, match='gvc.json.*7.*question'):
        official_obj_prompt_to_ours('is % x 100 % sure?',
                                    1,
                                    file='/a/gvc.json',
                                    record=7,
                                    field='question')


def test_converted_parts_build_a_llava_g(converted):
    """The LLM dir and the projector keys fit our ``LLaVAGrounding``."""
    from mmengine.runner import load_checkpoint

    from mmgrounding.registry import MODELS
    from mmgrounding.testing.llava_g import tiny_llava_g_cfg
    tensors, _, dst = converted
    llm_dir = osp.join(dst, 'llm')
    cfg = tiny_llava_g_cfg(llm_dir, clip_hidden=CLIP, llm_hidden=HIDDEN)
    cfg['language_model'] = dict(
        type='HFCausalLM',
        pretrained_model_name_or_path=llm_dir,
        tokenizer=dict(pretrained_model_name_or_path=llm_dir),
        special_tokens=OURS,
        lora=None)
    model = MODELS.build(cfg)
    load_checkpoint(model, osp.join(dst, 'ckpt.pth'), strict=False)
    assert torch.equal(model.projector.layers[0].weight,
                       tensors['model.mm_projector.weight'])
    emb = model.language_model.model.get_input_embeddings().weight
    assert torch.equal(emb[1283], tensors['model.embed_tokens.weight'][1273])


def test_sharded_output_loads(tmp_path):
    """A 7B LM is written in shards + index; HF reads them back."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mmgrounding.models.utils.llava_g_llm_checkpoint import \
        write_llava_g_llm
    src = str(tmp_path / 'release')
    os.makedirs(src)
    tensors, config = write_fake_release(src)
    tok = AutoTokenizer.from_pretrained(src, local_files_only=True)
    dst = str(tmp_path / 'llm')
    write_llava_g_llm(tensors,
                      config,
                      tok,
                      dst,
                      max_shard_size='100KB',
                      dtype=torch.float16)
    with open(osp.join(dst, 'model.safetensors.index.json')) as f:
        assert len(set(json.load(f)['weight_map'].values())) > 1
    model = AutoModelForCausalLM.from_pretrained(dst, local_files_only=True)
    emb = model.get_input_embeddings().weight
    assert emb.dtype == torch.float16
    assert torch.equal(emb[1283],
                       tensors['model.embed_tokens.weight'][1273].half())
    assert torch.equal(model.lm_head.weight[:ROWS],
                       tensors['lm_head.weight'].half())
