"""Key mapping between the official GLaMM release and mmgrounding's ``GLaMM``.

The released GLaMM checkpoints (``MBZUAI/GLaMM-*``, HF directories of
``pytorch_model-*.bin`` shards) store one LoRA-merged ``GLaMMForCausalLM``
state dict (see ``shared/reference/official_releases.md`` §1.2):

- ``model.embed_tokens|layers|norm.*``, ``lm_head.*`` (the HF causal LM) ->
  ``language_model.model.`` + [``base_model.model.``, with LoRA] + same key;
- ``model.mm_projector.{0,2}.*`` -> ``projector.layers.{0,2}.*``;
- ``model.region_encoder.*`` -> ``region_encoder.*`` (same layout);
- ``model.grounding_encoder.*`` (segment-anything ``Sam``) ->
  ``grounding_head.sam.*`` (``transformers.SamModel``, renamed below);
- ``model.text_hidden_fcs.0.{0,2}.*`` -> ``seg_projector.layers.{0,2}.*``;
- ``model.vision_tower.vision_tower.vision_model.*`` ->
  ``vision_encoder.model.*`` (CLIP; absent from the releases).

Two layouts of the language model are supported:

- ``lora_target_modules=('q_proj', 'v_proj')`` (default, the official recipe):
  our ``HFCausalLM`` is wrapped by peft, so the LM lives under
  ``base_model.model.`` and each targeted linear keeps its weight in
  ``<module>.base_layer.weight``. The merged official weights become the base
  weights; the adapters are not in the checkpoint and keep their
  initialisation (``lora_B = 0``), so the loaded model computes exactly the
  released function and fine-tuning starts from it.
- ``lora_target_modules=None``: a config with ``lora=None`` (plain HF names).

Our vocabulary has one more row than the release (``<image>``, added after
``</p>``; official ids 32000-32006 keep their rows): :func:`append_vocab_rows`
adds rows equal to the mean of the existing ones to ``embed_tokens`` and
``lm_head``, the same initialisation ``HFCausalLM`` gives new tokens.

SAM: segment-anything names -> ``transformers.SamModel`` names (the facts of
transformers' own ``convert_sam_to_hf.py``): ``image_encoder`` ->
``vision_encoder``, ``blocks`` -> ``layers``, ``norm*`` -> ``layer_norm*``,
``patch_embed.proj`` -> ``patch_embed.projection``, numbered ``neck``,
``mask_downscaling`` and ``output_upscaling`` Sequentials -> named layers,
the 3-layer MLPs' ``layers.{0,1,2}`` -> ``proj_in``, ``layers.0``,
``proj_out``, ``point_embeddings`` -> ``point_embed``, and the prompt
encoder's random Fourier matrix feeds both ``shared_image_embedding`` and
``prompt_encoder.shared_embedding``. The ViT attention keeps its fused
``qkv`` and ``rel_pos_{h,w}`` in both layouts, so no tensor is split.
"""
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch

#: Keys of the release that carry no weight of ours (recomputed buffers).
IGNORED_KEY_PATTERNS = (re.compile(r'.*\.rotary_emb\.inv_freq$'), )

#: Placeholders usable in the rule patterns below.
_PLACEHOLDERS = {
    'i': r'(?P<i>\d+)',
    'n': r'(?P<n>\d+)',
    'p': r'(?P<p>weight|bias)',
    'rest': r'(?P<rest>.+)',
}

#: segment-anything (``Sam``) key -> ``transformers.SamModel`` key(s).
#: Each rule is (official pattern, ours pattern[, more ours patterns]); the
#: first ours pattern is the one the inverse mapping reads.
SAM_RULES: Tuple[Tuple[str, ...], ...] = (
    # image encoder (ViT)
    ('image_encoder.pos_embed', 'vision_encoder.pos_embed'),
    ('image_encoder.patch_embed.proj.{p}',
     'vision_encoder.patch_embed.projection.{p}'),
    ('image_encoder.blocks.{i}.norm{n}.{p}',
     'vision_encoder.layers.{i}.layer_norm{n}.{p}'),
    ('image_encoder.blocks.{i}.attn.{rest}',
     'vision_encoder.layers.{i}.attn.{rest}'),
    ('image_encoder.blocks.{i}.mlp.{rest}',
     'vision_encoder.layers.{i}.mlp.{rest}'),
    ('image_encoder.neck.0.{p}', 'vision_encoder.neck.conv1.{p}'),
    ('image_encoder.neck.1.{p}', 'vision_encoder.neck.layer_norm1.{p}'),
    ('image_encoder.neck.2.{p}', 'vision_encoder.neck.conv2.{p}'),
    ('image_encoder.neck.3.{p}', 'vision_encoder.neck.layer_norm2.{p}'),
    # prompt encoder
    ('prompt_encoder.pe_layer.positional_encoding_gaussian_matrix',
     'shared_image_embedding.positional_embedding',
     'prompt_encoder.shared_embedding.positional_embedding'),
    ('prompt_encoder.point_embeddings.{i}.{p}',
     'prompt_encoder.point_embed.{i}.{p}'),
    ('prompt_encoder.not_a_point_embed.{p}',
     'prompt_encoder.not_a_point_embed.{p}'),
    ('prompt_encoder.no_mask_embed.{p}', 'prompt_encoder.no_mask_embed.{p}'),
    ('prompt_encoder.mask_downscaling.0.{p}',
     'prompt_encoder.mask_embed.conv1.{p}'),
    ('prompt_encoder.mask_downscaling.1.{p}',
     'prompt_encoder.mask_embed.layer_norm1.{p}'),
    ('prompt_encoder.mask_downscaling.3.{p}',
     'prompt_encoder.mask_embed.conv2.{p}'),
    ('prompt_encoder.mask_downscaling.4.{p}',
     'prompt_encoder.mask_embed.layer_norm2.{p}'),
    ('prompt_encoder.mask_downscaling.6.{p}',
     'prompt_encoder.mask_embed.conv3.{p}'),
    # mask decoder
    ('mask_decoder.iou_token.{p}', 'mask_decoder.iou_token.{p}'),
    ('mask_decoder.mask_tokens.{p}', 'mask_decoder.mask_tokens.{p}'),
    ('mask_decoder.transformer.layers.{i}.norm{n}.{p}',
     'mask_decoder.transformer.layers.{i}.layer_norm{n}.{p}'),
    ('mask_decoder.transformer.layers.{i}.self_attn.{rest}',
     'mask_decoder.transformer.layers.{i}.self_attn.{rest}'),
    ('mask_decoder.transformer.layers.{i}.cross_attn_token_to_image.{rest}',
     'mask_decoder.transformer.layers.{i}.cross_attn_token_to_image.{rest}'),
    ('mask_decoder.transformer.layers.{i}.cross_attn_image_to_token.{rest}',
     'mask_decoder.transformer.layers.{i}.cross_attn_image_to_token.{rest}'),
    ('mask_decoder.transformer.layers.{i}.mlp.{rest}',
     'mask_decoder.transformer.layers.{i}.mlp.{rest}'),
    ('mask_decoder.transformer.final_attn_token_to_image.{rest}',
     'mask_decoder.transformer.final_attn_token_to_image.{rest}'),
    ('mask_decoder.transformer.norm_final_attn.{p}',
     'mask_decoder.transformer.layer_norm_final_attn.{p}'),
    ('mask_decoder.output_upscaling.0.{p}', 'mask_decoder.upscale_conv1.{p}'),
    ('mask_decoder.output_upscaling.1.{p}',
     'mask_decoder.upscale_layer_norm.{p}'),
    ('mask_decoder.output_upscaling.3.{p}', 'mask_decoder.upscale_conv2.{p}'),
    # SAM's 3-layer MLPs: layers.0 / .1 / .2 -> proj_in / layers.0 / proj_out
    ('mask_decoder.output_hypernetworks_mlps.{i}.layers.0.{p}',
     'mask_decoder.output_hypernetworks_mlps.{i}.proj_in.{p}'),
    ('mask_decoder.output_hypernetworks_mlps.{i}.layers.1.{p}',
     'mask_decoder.output_hypernetworks_mlps.{i}.layers.0.{p}'),
    ('mask_decoder.output_hypernetworks_mlps.{i}.layers.2.{p}',
     'mask_decoder.output_hypernetworks_mlps.{i}.proj_out.{p}'),
    ('mask_decoder.iou_prediction_head.layers.0.{p}',
     'mask_decoder.iou_prediction_head.proj_in.{p}'),
    ('mask_decoder.iou_prediction_head.layers.1.{p}',
     'mask_decoder.iou_prediction_head.layers.0.{p}'),
    ('mask_decoder.iou_prediction_head.layers.2.{p}',
     'mask_decoder.iou_prediction_head.proj_out.{p}'),
)

#: Prefixes of our ``GLaMM`` submodules.
LM_PREFIX = 'language_model.model.'
LORA_LM_PREFIX = 'language_model.model.base_model.model.'
SAM_PREFIX = 'grounding_head.sam.'
CLIP_PREFIX = 'vision_encoder.model.'
OFFICIAL_SAM_PREFIX = 'model.grounding_encoder.'
OFFICIAL_CLIP_PREFIX = 'model.vision_tower.vision_tower.vision_model.'

#: Official GLaMM (non-LM, non-SAM) key -> ours.
GLAMM_RULES: Tuple[Tuple[str, str], ...] = (
    ('model.mm_projector.{i}.{p}', 'projector.layers.{i}.{p}'),
    ('model.region_encoder.{rest}', 'region_encoder.{rest}'),
    ('model.text_hidden_fcs.0.{i}.{p}', 'seg_projector.layers.{i}.{p}'),
    (OFFICIAL_CLIP_PREFIX + '{rest}', CLIP_PREFIX + '{rest}'),
)

#: Keys of the HF causal LM (identical names in the release and in HF).
_LM_KEY = re.compile(r'^(model\.(embed_tokens|layers|norm)\.|lm_head\.)')
_VOCAB_KEYS = ('model.embed_tokens.weight', 'lm_head.weight')


def _compile(pattern: str) -> 're.Pattern':
    """``'a.{i}.{p}'`` -> an anchored regex with named groups."""
    out, pos = [], 0
    for match in re.finditer(r'\{(\w+)\}', pattern):
        out.append(re.escape(pattern[pos:match.start()]))
        out.append(_PLACEHOLDERS[match.group(1)])
        pos = match.end()
    out.append(re.escape(pattern[pos:]))
    return re.compile('^' + ''.join(out) + '$')


def _fill(template: str, groups: Mapping[str, str]) -> str:
    return re.sub(r'\{(\w+)\}', lambda m: groups[m.group(1)], template)


class _RuleSet:
    """Bidirectional rename rules (first target = inverse source)."""

    def __init__(self, rules: Sequence[Sequence[str]]) -> None:
        self.forward = [(_compile(r[0]), tuple(r[1:])) for r in rules]
        self.backward = [(_compile(r[1]), r[0]) for r in rules]
        self.aliases = [_compile(t) for r in rules for t in r[2:]]

    def apply(self, key: str) -> Optional[Tuple[str, ...]]:
        for regex, targets in self.forward:
            match = regex.match(key)
            if match:
                return tuple(_fill(t, match.groupdict()) for t in targets)
        return None

    def invert(self, key: str) -> Optional[str]:
        """Official key of ours; '' for alias keys (dropped); None if none."""
        for regex, source in self.backward:
            match = regex.match(key)
            if match:
                return _fill(source, match.groupdict())
        if any(regex.match(key) for regex in self.aliases):
            return ''
        return None


_SAM = _RuleSet(SAM_RULES)
_GLAMM = _RuleSet(GLAMM_RULES)


def sam_official_to_hf(key: str) -> Optional[Tuple[str, ...]]:
    """segment-anything key (no prefix) -> ``SamModel`` key(s), or None.

    >>> sam_official_to_hf('image_encoder.blocks.3.norm1.weight')
    ('vision_encoder.layers.3.layer_norm1.weight',)
    """
    return _SAM.apply(key)


def sam_hf_to_official(key: str) -> Optional[str]:
    """``SamModel`` key -> segment-anything key; '' for the duplicate of the
    positional matrix in the prompt encoder; None when unknown."""
    return _SAM.invert(key)


def _is_lora_target(module: str, targets: Sequence[str]) -> bool:
    """peft's suffix rule: ``'a.b.q_proj'`` matches target ``'q_proj'``."""
    return any(module == t or module.endswith('.' + t) for t in targets)


def lm_official_to_ours(
        key: str,
        lora_target_modules: Optional[Sequence[str]] = None) -> str:
    """HF causal-LM key -> ours (peft ``base_layer`` names with LoRA)."""
    if lora_target_modules is None:
        return LM_PREFIX + key
    module, _, name = key.rpartition('.')
    if _is_lora_target(module, lora_target_modules):
        key = f'{module}.base_layer.{name}'
    return LORA_LM_PREFIX + key


def official_key_to_ours(
    key: str,
    lora_target_modules: Optional[Sequence[str]] = None
) -> Optional[Tuple[str, ...]]:
    """One official key -> our key(s); () for ignored keys; None: unknown."""
    if any(p.match(key) for p in IGNORED_KEY_PATTERNS):
        return ()
    if _LM_KEY.match(key):
        return (lm_official_to_ours(key, lora_target_modules), )
    if key.startswith(OFFICIAL_SAM_PREFIX):
        sam = sam_official_to_hf(key[len(OFFICIAL_SAM_PREFIX):])
        return None if sam is None else tuple(SAM_PREFIX + k for k in sam)
    return _GLAMM.apply(key)


def ours_key_to_official(key: str) -> Optional[str]:
    """Our key -> official key (inverse of :func:`official_key_to_ours`).

    Returns '' for keys with no official counterpart by design (LoRA
    adapters, the prompt encoder's copy of the positional matrix) and None
    for keys no rule knows.
    """
    for prefix in (LORA_LM_PREFIX, LM_PREFIX):
        if key.startswith(prefix):
            sub = key[len(prefix):]
            if '.lora_' in sub or sub.startswith('lora_'):
                return ''
            return sub.replace('.base_layer.', '.')
    if key.startswith(SAM_PREFIX):
        sam = sam_hf_to_official(key[len(SAM_PREFIX):])
        return sam if not sam else OFFICIAL_SAM_PREFIX + sam
    return _GLAMM.invert(key)


@torch.no_grad()
def append_vocab_rows(weight: torch.Tensor, num_rows: int) -> torch.Tensor:
    """``weight`` [V, C] -> [V + num_rows, C], new rows = mean of the rows.

    The mean is taken in float32 and cast back to ``weight.dtype``.
    """
    if num_rows < 0:
        raise ValueError(f'num_rows must be >= 0, got {num_rows}')
    if num_rows == 0:
        return weight
    mean = weight.float().mean(0, keepdim=True).to(weight.dtype)
    return torch.cat([weight, mean.expand(num_rows, -1)], 0)


@dataclass
class ConversionReport:
    """What a conversion did, key by key.

    Attributes:
        mapped: official key -> our key(s).
        ignored: official keys dropped on purpose (``rotary_emb.inv_freq``).
        unknown: official keys no rule knows (not converted).
        vocab: our vocabulary keys -> (rows before, rows after).
    """
    mapped: Dict[str, Tuple[str, ...]] = field(default_factory=OrderedDict)
    ignored: List[str] = field(default_factory=list)
    unknown: List[str] = field(default_factory=list)
    vocab: Dict[str, Tuple[int, int]] = field(default_factory=OrderedDict)


def convert_official_glamm(
    state_dict: Mapping[str, torch.Tensor],
    lora_target_modules: Optional[Sequence[str]] = ('q_proj', 'v_proj'),
    extra_vocab_rows: int = 1,
    dtype: Optional[torch.dtype] = None,
) -> Tuple['OrderedDict[str, torch.Tensor]', ConversionReport]:
    """Official GLaMM state dict -> state dict of our ``GLaMM``.

    Args:
        state_dict: the release's keys (all shards merged).
        lora_target_modules: modules our LM wraps with LoRA (the config's
            ``language_model.lora.target_modules``); None for ``lora=None``.
        extra_vocab_rows: rows our vocabulary has beyond the release's
            (1: ``<image>``); appended to ``embed_tokens`` and ``lm_head``
            as the mean row.
        dtype: cast floating tensors to this dtype (None keeps the
            release's mixed bf16/fp32 dtypes).

    Returns:
        ``(converted, report)``. Unknown keys are left out and listed in
        ``report.unknown``; ignored ones in ``report.ignored``.
    """
    converted: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
    report = ConversionReport()
    for key, value in state_dict.items():
        targets = official_key_to_ours(key, lora_target_modules)
        if targets is None:
            report.unknown.append(key)
            continue
        if not targets:
            report.ignored.append(key)
            continue
        if key in _VOCAB_KEYS and extra_vocab_rows:
            rows = value.shape[0]
            value = append_vocab_rows(value, extra_vocab_rows)
            for target in targets:
                report.vocab[target] = (rows, value.shape[0])
        if dtype is not None and value.is_floating_point():
            value = value.to(dtype)
        for target in targets:
            if target in converted:
                raise ValueError(f'two official keys map to {target!r} '
                                 f'(the second is {key!r})')
            converted[target] = value
        report.mapped[key] = targets
    return converted, report


def glamm_to_official(
    state_dict: Mapping[str, torch.Tensor],
    extra_vocab_rows: int = 1,
    include_clip: bool = False,
) -> 'OrderedDict[str, torch.Tensor]':
    """Our ``GLaMM`` state dict -> the official layout (inverse mapping).

    LoRA adapters are dropped, so merge them first (``merge_lora``) or keep
    ``lora_B = 0``; the last ``extra_vocab_rows`` vocabulary rows are cut;
    CLIP is dropped unless ``include_clip``. Used by the tests to synthesise
    a release-shaped checkpoint and usable to export to the official code.

    Raises:
        KeyError: for a key no rule knows.
    """
    out: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
    for key, value in state_dict.items():
        if key.startswith(CLIP_PREFIX) and not include_clip:
            continue
        official = ours_key_to_official(key)
        if official is None:
            raise KeyError(f'no official GLaMM key for {key!r}')
        if not official:
            continue
        if official in _VOCAB_KEYS and extra_vocab_rows:
            value = value[:value.shape[0] - extra_vocab_rows]
        out[official] = value
    return out


@dataclass
class KeyCheck:
    """A converted state dict against a model's ``state_dict()``.

    Attributes:
        matched: keys present in both with equal shapes.
        missing: model keys absent from the checkpoint.
        unexpected: checkpoint keys the model does not have.
        shape_mismatch: key -> (checkpoint shape, model shape).
    """
    matched: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    shape_mismatch: Dict[str, Tuple[tuple, tuple]] = field(
        default_factory=OrderedDict)

    @staticmethod
    def expected_missing(key: str) -> bool:
        """Missing by design: LoRA adapters (keep their zero-B init), CLIP
        (loaded from its own directory at build time)."""
        return '.lora_' in key or key.startswith('vision_encoder.')

    @property
    def ok(self) -> bool:
        """No shape mismatch, no unexpected key, nothing missing but the
        keys missing by design."""
        return not (self.shape_mismatch or self.unexpected or any(
            not self.expected_missing(k) for k in self.missing))


def check_keys(checkpoint: Mapping[str, torch.Tensor],
               model_state: Mapping[str, torch.Tensor]) -> KeyCheck:
    """Compare a checkpoint's keys and shapes with a model's state dict
    (works on meta tensors)."""
    result = KeyCheck()
    for key, value in checkpoint.items():
        if key not in model_state:
            result.unexpected.append(key)
        elif tuple(value.shape) != tuple(model_state[key].shape):
            result.shape_mismatch[key] = (tuple(value.shape),
                                          tuple(model_state[key].shape))
        else:
            result.matched.append(key)
    result.missing = [k for k in model_state if k not in checkpoint]
    return result


def summarize_check(check: KeyCheck) -> str:
    """Per top-level module table: matched / missing / unexpected / shape."""
    rows: Dict[str, List[int]] = OrderedDict()

    def bump(key: str, col: int) -> None:
        top = key.split('.', 1)[0]
        rows.setdefault(top, [0, 0, 0, 0])[col] += 1

    for key in check.matched:
        bump(key, 0)
    for key in check.missing:
        bump(key, 1)
    for key in check.unexpected:
        bump(key, 2)
    for key in check.shape_mismatch:
        bump(key, 3)
    head = f"{'module':<16}{'matched':>9}{'missing':>9}{'unexpected':>12}" \
        f"{'shape':>7}"
    lines = [head, '-' * len(head)]
    for top, (a, b, c, d) in rows.items():
        lines.append(f'{top:<16}{a:>9}{b:>9}{c:>12}{d:>7}')
    lines.append('-' * len(head))
    lines.append(f"{'total':<16}{len(check.matched):>9}"
                 f'{len(check.missing):>9}{len(check.unexpected):>12}'
                 f'{len(check.shape_mismatch):>7}')
    by_design = [k for k in check.missing if check.expected_missing(k)]
    if by_design:
        lines.append(f'{len(by_design)} missing keys are missing by design '
                     '(LoRA adapters keep lora_B = 0; CLIP loads from its '
                     'own directory)')
    for title, keys in (('missing', [
            k for k in check.missing if not check.expected_missing(k)
    ]), ('unexpected', check.unexpected), ('shape mismatch',
                                           list(check.shape_mismatch))):
        for key in keys[:20]:
            extra = f' {check.shape_mismatch[key]}' \
                if title == 'shape mismatch' else ''
            lines.append(f'  {title}: {key}{extra}')
        if len(keys) > 20:
            lines.append(f'  ... {len(keys) - 20} more {title} keys')
    return '\n'.join(lines)


def _load_weight_file(path: str) -> Dict[str, torch.Tensor]:
    """One ``.safetensors`` or torch pickle (``.bin``/``.pth``) file, read
    with ``weights_only=True`` (memory-mapped when the format allows)."""
    if path.endswith('.safetensors'):
        from safetensors.torch import load_file
        return load_file(path, device='cpu')
    try:
        obj = torch.load(
            path, map_location='cpu', weights_only=True, mmap=True)
    except RuntimeError:  # legacy (non-zip) format cannot be mmap-ed
        obj = torch.load(path, map_location='cpu', weights_only=True)
    if isinstance(obj, Mapping) and 'state_dict' in obj and not isinstance(
            obj.get('state_dict'), torch.Tensor):
        obj = obj['state_dict']
    if not isinstance(obj, Mapping):
        raise ValueError(f'{path}: expected a state dict, got '
                         f'{type(obj).__name__}')
    return dict(obj)


#: Weight files of a HF checkpoint directory, in the order they are tried.
HF_INDEX_FILES = ('model.safetensors.index.json',
                  'pytorch_model.bin.index.json')
HF_SINGLE_FILES = ('model.safetensors', 'pytorch_model.bin')


def load_hf_state_dict(src: str) -> 'OrderedDict[str, torch.Tensor]':
    """All tensors of a HF checkpoint (directory of shards or one file).

    A directory is read through its ``*.index.json`` (``weight_map``) when
    there is one, else from its single ``model.safetensors`` /
    ``pytorch_model.bin``. Nothing is unpickled beyond tensors.

    Raises:
        FileNotFoundError: when ``src`` holds no known weight file, or a
            shard named by the index is absent.
    """
    import json
    import os.path as osp
    if osp.isfile(src):
        return OrderedDict(_load_weight_file(src))
    if not osp.isdir(src):
        raise FileNotFoundError(f'{src}: no such file or directory')
    for name in HF_INDEX_FILES:
        index = osp.join(src, name)
        if not osp.isfile(index):
            continue
        with open(index) as f:
            weight_map = json.load(f).get('weight_map')
        if not weight_map:
            raise ValueError(f'{index}: no weight_map')
        out: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
        for shard in sorted(set(weight_map.values())):
            path = osp.join(src, shard)
            if not osp.isfile(path):
                raise FileNotFoundError(f'{index} names shard {shard}, '
                                        f'which is not in {src}')
            out.update(_load_weight_file(path))
        absent = [k for k in weight_map if k not in out]
        if absent:
            raise ValueError(f'{index} lists {len(absent)} keys that its '
                             f'shards lack, e.g. {absent[:3]}')
        return out
    for name in HF_SINGLE_FILES:
        path = osp.join(src, name)
        if osp.isfile(path):
            return OrderedDict(_load_weight_file(path))
    raise FileNotFoundError(
        f'{src} holds none of {HF_INDEX_FILES + HF_SINGLE_FILES}')


__all__ = [
    'SAM_RULES', 'GLAMM_RULES', 'IGNORED_KEY_PATTERNS', 'ConversionReport',
    'KeyCheck', 'sam_official_to_hf', 'sam_hf_to_official',
    'lm_official_to_ours', 'official_key_to_ours', 'ours_key_to_official',
    'append_vocab_rows', 'convert_official_glamm', 'glamm_to_official',
    'check_keys', 'summarize_check', 'load_hf_state_dict'
]
