"""mmdet 3.3's GroundingDINO BERT wrapper, working with transformers 5.x.

Two things of mmdet's ``BertModel`` / ``BertEncoder`` break on transformers
5 (verified with 5.23):

1. ``forward`` tokenises with ``tokenizer.batch_encode_plus``, which
   transformers 5 removed (``AttributeError: BertTokenizer has no attribute
   batch_encode_plus``);
2. with ``use_sub_sentence_represent=True`` (every GroundingDINO config)
   the attention mask is [B, L, L] (each sub-sentence attends to itself),
   which transformers 5's ``create_bidirectional_mask`` expands as a 2D
   padding mask (``RuntimeError: expand(... [16, 1, 1, 33, 33] ...)``); a
   4D mask is taken as prepared, so it is passed as an additive
   [B, 1, L, L] mask.

:class:`LocalBertModel` is the same module (same ``tokenizer`` and
``language_backbone.body.model`` parts and state-dict keys, so mmdet
GroundingDINO checkpoints load unchanged) with those two fixed. ``name``
must be a local directory (nothing is downloaded here; see
``tools/build_tiny_bert.py``).
"""
from collections import OrderedDict
from typing import Sequence

import torch
from mmdet.models.language_models.bert import (
    BertEncoder, BertModel,
    generate_masks_with_special_tokens_and_transfer_map)
from mmengine.model import BaseModel
from torch import nn
from transformers import AutoTokenizer

from mmgrounding.registry import MODELS


class LocalBertEncoder(BertEncoder):
    """mmdet's ``BertEncoder``; a [B, L, L] mask reaches HF BERT as 4D."""

    def forward(self, x: dict) -> dict:
        mask = x['attention_mask']
        hf_mask = mask
        if mask.dim() == 3:
            dtype = self.model.dtype
            hf_mask = (1.0 - mask[:, None].to(dtype)) * torch.finfo(dtype).min
        outputs = self.model(
            input_ids=x['input_ids'],
            attention_mask=hf_mask,
            position_ids=x['position_ids'],
            token_type_ids=x['token_type_ids'],
            output_hidden_states=True)
        layers = outputs.hidden_states[1:]
        features = torch.stack(layers[-self.num_layers_of_embedded:],
                               1).mean(1) / self.num_layers_of_embedded
        if mask.dim() == 2:
            features = features * mask.unsqueeze(-1).float()
        return dict(embedded=features, masks=mask, hidden=layers[-1])


@MODELS.register_module()
class LocalBertModel(BertModel):
    """mmdet ``BertModel`` for transformers 5 (see the module docstring).

    Args: as mmdet's ``BertModel``; ``name`` is a local directory holding a
    BERT config, weights and a fast tokenizer.
    """

    def __init__(self,
                 name: str,
                 max_tokens: int = 256,
                 pad_to_max: bool = True,
                 use_sub_sentence_represent: bool = False,
                 special_tokens_list: list = None,
                 add_pooling_layer: bool = False,
                 num_layers_of_embedded: int = 1,
                 use_checkpoint: bool = False,
                 **kwargs) -> None:
        BaseModel.__init__(self, **kwargs)  # not BertModel's: no 2nd load
        self.max_tokens = max_tokens
        self.pad_to_max = pad_to_max
        self.tokenizer = AutoTokenizer.from_pretrained(name)
        self.language_backbone = nn.Sequential(
            OrderedDict(body=LocalBertEncoder(
                name,
                add_pooling_layer=add_pooling_layer,
                num_layers_of_embedded=num_layers_of_embedded,
                use_checkpoint=use_checkpoint)))
        self.use_sub_sentence_represent = use_sub_sentence_represent
        if use_sub_sentence_represent:
            if not special_tokens_list:
                raise ValueError('LocalBertModel: special_tokens_list is '
                                 'required with use_sub_sentence_represent')
            self.special_tokens = self.tokenizer.convert_tokens_to_ids(
                special_tokens_list)

    def forward(self, captions: Sequence[str], **kwargs) -> dict:
        """Encode captions.

        Returns:
            mmdet's language dict: ``embedded`` [B, L, C], ``masks``
            ([B, L] or, with sub-sentence representation, [B, L, L] bool),
            ``hidden`` [B, L, C] and, with sub-sentence representation,
            ``position_ids`` [B, L] and ``text_token_mask`` [B, L] bool.
        """
        device = next(self.language_backbone.parameters()).device
        tokenized = self.tokenizer(
            list(captions),
            max_length=self.max_tokens,
            padding='max_length' if self.pad_to_max else 'longest',
            return_special_tokens_mask=True,
            return_tensors='pt',
            truncation=True).to(device)
        if self.use_sub_sentence_represent:
            attention_mask, position_ids = \
                generate_masks_with_special_tokens_and_transfer_map(
                    tokenized, self.special_tokens)
            token_type_ids = tokenized['token_type_ids']
        else:
            attention_mask = tokenized.attention_mask
            position_ids = token_type_ids = None
        features = self.language_backbone(
            dict(input_ids=tokenized.input_ids,
                 attention_mask=attention_mask,
                 position_ids=position_ids,
                 token_type_ids=token_type_ids))
        if self.use_sub_sentence_represent:
            features['position_ids'] = position_ids
            features['text_token_mask'] = tokenized.attention_mask.bool()
        return features
