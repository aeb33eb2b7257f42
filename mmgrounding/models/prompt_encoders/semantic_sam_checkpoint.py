"""Official LLaVA-G ``interactive_model`` -> :class:`SemanticSAMPromptEncoder`.

The release holds the visual-prompt encoder under
``interactive_model.model.`` (652 keys, ``llava_g_design.md`` §3):
``backbone.*`` and ``sem_seg_head.pixel_decoder.*`` laid out exactly as in
``seg_model`` and a predictor (338 keys) whose decoder layers,
``ref_point_head``, ``decoder_norm`` / ``_bbox_embed`` (with their verified
duplicates) and ``mask_embed`` also follow the grounding model. Those parts
go through :func:`convert_openseed_grounding` (the one owner of the
backbone / pixel-decoder / decoder rules); the interactive keys are added
here:

- same names: ``predictor.{iou_prediction_head, mask_tokens, pb_embedding,
  label_enc}.*`` and ``obj_projector.*`` (at the top of
  ``interactive_model.model``);
- dropped (dead in the release): ``predictor.class_embed``,
  ``predictor.class_embed_part`` [256, 512], ``predictor.lang_mapper``
  [512, 256], ``logit_scale`` and ``criterion.empty_weight`` [2].

Every other key must match a rule: an unknown key raises.
"""
from collections import OrderedDict
from typing import Mapping, Tuple

from torch import Tensor

from ..utils.openseed_checkpoint import (PIXEL_DECODER, PREDICTOR,
                                         ConversionReport,
                                         convert_openseed_grounding)

INTERACTIVE_PREFIX = 'interactive_model.model.'

#: Official keys (after ``interactive_model.model.``) with no counterpart.
INTERACTIVE_DROPPED_KEYS = ('criterion.empty_weight', 'logit_scale',
                            PREDICTOR + 'class_embed',
                            PREDICTOR + 'class_embed_part',
                            PREDICTOR + 'lang_mapper')
#: Interactive predictor modules kept under the same name.
_SAME_NAME = ('iou_prediction_head.', 'mask_tokens.', 'pb_embedding.',
              'label_enc.')


def convert_semantic_sam_prompt_encoder(
        official: Mapping[str, Tensor],
        src_prefix: str = INTERACTIVE_PREFIX,
        dst_prefix: str = '',
        num_backbone_levels: int = 3
) -> Tuple['OrderedDict[str, Tensor]', ConversionReport]:
    """Convert the ``src_prefix`` part of an official state dict.

    Args:
        official: the release's tensors (other prefixes are ignored).
        src_prefix: ``'interactive_model.model.'``.
        dst_prefix: prepended to our keys (e.g. ``'prompt_encoder.'``).
        num_backbone_levels: encoder levels read from the backbone (res3-5).

    Returns:
        ``(state_dict, report)`` (report names after ``src_prefix``);
        raises ``ValueError`` on an unknown key, a duplicate that differs
        from its original, or an empty selection.
    """
    selected = OrderedDict((k[len(src_prefix):], v)
                           for k, v in official.items()
                           if k.startswith(src_prefix))
    if not selected:
        raise ValueError(f'no key starts with {src_prefix!r}')
    shared = OrderedDict()
    own: 'OrderedDict[str, Tensor]' = OrderedDict()
    report_own = ConversionReport()
    for key, tensor in selected.items():
        if key in INTERACTIVE_DROPPED_KEYS:
            report_own.dropped.append(key)
        elif key.startswith('obj_projector.'):
            own[key] = tensor
            report_own.mapped[key] = key
        elif key.startswith(PREDICTOR) and key[len(PREDICTOR):].startswith(
                _SAME_NAME):
            own[key[len(PREDICTOR):]] = tensor
            report_own.mapped[key] = key[len(PREDICTOR):]
        elif key.startswith(PREDICTOR + 'enc_output') or (
                not key.startswith(('backbone.', PIXEL_DECODER, PREDICTOR))):
            # two-stage selection is off in the interactive model; any
            # other top-level key is unknown
            raise ValueError(f'official key {src_prefix}{key} matches no '
                             'rule of the interactive model')
        else:
            shared[key] = tensor
    out, report = convert_openseed_grounding(
        shared, src_prefix='', dst_prefix=dst_prefix,
        num_backbone_levels=num_backbone_levels)
    for key, tensor in own.items():
        out[dst_prefix + key] = tensor
    report.mapped.update(report_own.mapped)
    report.dropped.extend(report_own.dropped)
    return out, report


__all__ = [
    'convert_semantic_sam_prompt_encoder', 'INTERACTIVE_PREFIX',
    'INTERACTIVE_DROPPED_KEYS'
]
