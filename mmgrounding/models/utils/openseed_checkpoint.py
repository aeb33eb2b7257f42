"""Official LLaVA-Grounding OpenSeeD weights -> :class:`OpenSeeDGroundingHead`.

The release (``Haozhangcx/llava_grounding_gd_vp``) holds the grounding model
under ``seg_model.model.``: ``backbone.*`` (detectron2 Swin with the original
Swin key names), ``sem_seg_head.pixel_decoder.*`` (``encoder_deform``),
``sem_seg_head.predictor.*`` (``openseed_decoder``) and
``criterion.empty_weight``. Key table: ``llava_g_design.md`` §3.

- backbone: mmdet's ``swin_converter`` (renames, and reorders the patch
  merging channels for mmdet's ``nn.Unfold``);
- pixel decoder / predictor: the rename rules below (official level order is
  kept, so no per-level rows are permuted);
- verified duplicates (same tensor saved under several names):
  ``predictor.decoder.norm.*`` = ``predictor.decoder_norm.*`` and
  ``predictor.{,decoder.}bbox_embed.{i}.*`` = ``predictor._bbox_embed.*``;
  a duplicate that differs raises;
- explicit drop list: ``criterion.empty_weight`` (no-object weight of an
  unused CE loss) and ``predictor.lang_mapper`` (only in a 0-weight term).

Every other key must match a rule: an unknown key raises.
"""
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Tuple

import torch
from mmdet.models.backbones.swin import swin_converter
from torch import Tensor

SEG_MODEL_PREFIX = 'seg_model.model.'
PIXEL_DECODER = 'sem_seg_head.pixel_decoder.'
PREDICTOR = 'sem_seg_head.predictor.'

#: Official keys (after ``seg_model.model.``) that have no counterpart.
DROPPED_KEYS = ('criterion.empty_weight', PREDICTOR + 'lang_mapper')

_ENC_LAYER = {
    'norm1': 'norms.0',
    'norm2': 'norms.1',
    'linear1': 'ffn.layers.0.0',
    'linear2': 'ffn.layers.1',
}
# Official decoder layer: self-attn -> norm2 -> cross-attn -> norm1 -> FFN
# -> norm3; mmdet numbers its norms in the order they are applied.
_DEC_LAYER = {
    'norm2': 'norms.0',
    'norm1': 'norms.1',
    'norm3': 'norms.2',
    'linear1': 'ffn.layers.0.0',
    'linear2': 'ffn.layers.1',
}


@dataclass
class ConversionReport:
    """What happened to each official key (names after the source prefix)."""
    mapped: Dict[str, str] = field(default_factory=dict)
    duplicates: Dict[str, str] = field(default_factory=dict)
    dropped: List[str] = field(default_factory=list)


def _pixel_decoder_key(key: str, num_backbone_levels: int) -> Optional[str]:
    m = re.fullmatch(r'input_proj\.(\d+)\.([01])\.(weight|bias)', key)
    if m:
        idx, part, kind = int(m[1]), m[2], m[3]
        sub = 'conv' if part == '0' else 'gn'
        if idx < num_backbone_levels:
            return f'input_convs.{idx}.{sub}.{kind}'
        return f'extra_convs.{idx - num_backbone_levels}.{sub}.{kind}'
    if key == 'transformer.level_embed':
        return 'level_encoding.weight'
    m = re.fullmatch(r'transformer\.encoder\.layers\.(\d+)\.(\w+)\.(.+)', key)
    if m:
        layer, module, rest = m[1], m[2], m[3]
        if module == 'self_attn':
            return f'encoder.layers.{layer}.self_attn.{rest}'
        if module in _ENC_LAYER:
            return f'encoder.layers.{layer}.{_ENC_LAYER[module]}.{rest}'
        return None
    m = re.fullmatch(r'(adapter|layer)_1\.(weight|norm\.weight|norm\.bias)',
                     key)
    if m:
        convs = 'lateral_convs' if m[1] == 'adapter' else 'output_convs'
        part = 'conv.weight' if m[2] == 'weight' else m[2].replace(
            'norm.', 'gn.')
        return f'{convs}.0.{part}'
    m = re.fullmatch(r'mask_features\.(weight|bias)', key)
    if m:
        return f'mask_feature.{m[1]}'
    return None


def _predictor_key(key: str) -> Tuple[Optional[str], Optional[str]]:
    """(our key, None) for a mapped key, (None, official original) for a
    duplicate, (None, None) if unknown."""
    m = re.fullmatch(r'(?:decoder\.)?bbox_embed\.\d+\.(layers\.\d+\.\w+)',
                     key)
    if m:
        return None, f'_bbox_embed.{m[1]}'
    m = re.fullmatch(r'decoder\.norm\.(weight|bias)', key)
    if m:
        return None, f'decoder_norm.{m[1]}'
    simple = {
        'class_embed': 'similarity.class_embed',
        'logit_scale': 'similarity.logit_scale',
    }
    if key in simple:
        return simple[key], None
    for src, dst in (('decoder_norm.', 'decoder.norm.'),
                     ('_bbox_embed.', 'reg_branch.'),
                     ('mask_embed.', 'mask_embed.'),
                     ('enc_output_norm.', 'memory_trans_norm.'),
                     ('enc_output.', 'memory_trans_fc.'),
                     ('decoder.ref_point_head.', 'decoder.ref_point_head.')):
        if key.startswith(src):
            return dst + key[len(src):], None
    m = re.fullmatch(r'decoder\.layers\.(\d+)\.(\w+)\.(.+)', key)
    if m:
        layer, module, rest = m[1], m[2], m[3]
        if module == 'self_attn':
            return f'decoder.layers.{layer}.self_attn.attn.{rest}', None
        if module == 'cross_attn':
            return f'decoder.layers.{layer}.cross_attn.{rest}', None
        if module in _DEC_LAYER:
            return f'decoder.layers.{layer}.{_DEC_LAYER[module]}.{rest}', None
    return None, None


def convert_openseed_grounding(
        official: Mapping[str, Tensor],
        src_prefix: str = SEG_MODEL_PREFIX,
        dst_prefix: str = '',
        num_backbone_levels: int = 3
) -> Tuple['OrderedDict[str, Tensor]', ConversionReport]:
    """Convert the ``src_prefix`` part of an official state dict.

    Args:
        official: the release's tensors (other prefixes are ignored).
        src_prefix: ``'seg_model.model.'`` for the grounding model.
        dst_prefix: prepended to our keys (e.g. ``'grounding_head.'``).
        num_backbone_levels: encoder levels read from the backbone (res3-5).

    Returns:
        ``(state_dict, report)``; raises ``ValueError`` on an unknown key,
        a duplicate that differs from its original, or an empty selection.
    """
    selected = OrderedDict((k[len(src_prefix):], v)
                           for k, v in official.items()
                           if k.startswith(src_prefix))
    if not selected:
        raise ValueError(f'no key starts with {src_prefix!r}')
    report = ConversionReport()
    out: 'OrderedDict[str, Tensor]' = OrderedDict()
    unknown = []
    backbone = OrderedDict((k[len('backbone.'):], v)
                           for k, v in selected.items()
                           if k.startswith('backbone.'))
    converted = swin_converter(backbone)
    if len(converted) != len(backbone):
        raise ValueError('swin_converter dropped backbone keys')
    for (old, _), (new, tensor) in zip(backbone.items(), converted.items()):
        report.mapped['backbone.' + old] = new
        out[dst_prefix + new] = tensor
    duplicates = []
    for key, tensor in selected.items():
        if key.startswith('backbone.'):
            continue
        if key in DROPPED_KEYS:
            report.dropped.append(key)
            continue
        new = None
        if key.startswith(PIXEL_DECODER):
            sub = _pixel_decoder_key(key[len(PIXEL_DECODER):],
                                     num_backbone_levels)
            new = None if sub is None else 'pixel_decoder.' + sub
        elif key.startswith(PREDICTOR):
            new, original = _predictor_key(key[len(PREDICTOR):])
            if original is not None:
                duplicates.append((key, PREDICTOR + original))
                continue
        if new is None:
            unknown.append(key)
            continue
        report.mapped[key] = new
        out[dst_prefix + new] = tensor
    if unknown:
        raise ValueError(f'{len(unknown)} official keys match no rule: '
                         f'{unknown[:10]}')
    for key, original in duplicates:
        if original not in selected:
            raise ValueError(f'duplicate {key} has no original {original}')
        if not torch.equal(selected[key], selected[original]):
            raise ValueError(f'duplicate {key} differs from {original}')
        report.duplicates[key] = original
    return out, report


__all__ = [
    'convert_openseed_grounding', 'ConversionReport', 'DROPPED_KEYS',
    'SEG_MODEL_PREFIX'
]
