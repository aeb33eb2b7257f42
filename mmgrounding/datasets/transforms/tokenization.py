"""Tokenise a templated grounded conversation: in one call, or as the
official GLaMM release does (slow Llama rules with image-token splicing)."""
import re
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmdet.structures.mask import BitmapMasks
from mmengine.logging import print_log

from mmgrounding.registry import TRANSFORMS
from mmgrounding.structures import GroundingDataError

IGNORE_INDEX = -100


@TRANSFORMS.register_module()
class TokenizeConversation(BaseTransform):
    """Token ids, labels and grounding targets of a formatted conversation.

    Runs after :class:`FormatGroundedConversation`. With
    ``tokenization='single_call'`` (default) the whole ``text`` is tokenised
    in ONE call with ``return_offsets_mapping=True`` (BOS prepended once).
    ``tokenization='official'`` reproduces the id stream the released GLaMM
    checkpoints were trained and evaluated with (official_releases.md §1.6:
    the transformers-4.28 slow Llama tokenizer behind ``tokenizer_image_token``):

    1. the text is split at the image token; each chunk is tokenised on its
       own and the chunks are joined with the image token id; BOS once, at
       the start;
    2. inside a chunk the text is cut at added tokens (``<im_start>``,
       ``[SEG]``, ``</s>`` ...); whitespace next to an added token that is
       not bos/eos/unk/pad is stripped (slow tokenizers strip both sides of
       tokens added by ``add_tokens``), so ``"<p> a dog </p> [SEG]"`` is
       ``<p> ▁a ▁dog </p> [SEG]``;
    3. every text piece is encoded separately by the SentencePiece model,
       which gives each piece the dummy prefix ``▁`` (``"[SEG]."`` ends in
       ``▁.``, ``"</s>USER"`` in ``▁USER``);
    4. a chunk that starts with an added token starts with a lone ``▁``
       (Vicuna id 29871): the released ids read ``<im_start> <image> ▁
       <im_end>`` (GLaMM issue #32).

    The tokenizer must be a fast SentencePiece-style tokenizer (Llama's
    ``tokenizer.json``: prepend-``▁`` normaliser) holding the ``▁`` piece;
    each piece is encoded with it, so offsets stay exact. Everything else is
    derived from character offsets:

    - ``labels``: the token id where the token overlaps an assistant answer
      span (answer text and its ``</s>``), -100 elsewhere;
    - the single image token is expanded to exactly ``num_image_tokens``
      copies (labels -100), one per vision feature;
    - the i-th grounding token pairs with the i-th target: its mask is the
      union of the phrase's instance masks (GLaMM's single target) and its
      instance ids are kept as a set (LLaVA-G's matching targets).

    Checks (each raises :class:`GroundingDataError` naming source, img_id and
    field): exactly one image token; #grounding tokens == #grounding spans of
    the formatter == #targets; #region tokens == #regions; every target
    phrase has instances with masks.

    Truncation: when the expanded sequence is longer than ``max_length``,
    ``truncation='drop_rounds'`` (default) drops whole trailing
    user+assistant rounds, so a grounding token is never separated from its
    phrase, and the phrases, regions and visual prompts of the dropped rounds
    go with them; a warning is logged. If even the first round does not fit,
    or in predict mode (the prompt cannot lose its question), or with
    ``truncation='error'``, an error is raised.

    Added keys: ``input_ids``, ``labels`` (LongTensor [L]),
    ``grounding_token_index`` (LongTensor [M], positions in ``input_ids``),
    ``region_token_index`` (LongTensor [R]), ``grounding_masks``
    (BitmapMasks [M, H, W]), ``grounding_instance_ids`` (list[list[int]]),
    ``gt_phrases`` (list[str]).

    Args:
        tokenizer (dict): Keyword arguments of
            ``transformers.AutoTokenizer.from_pretrained`` (must include
            ``pretrained_model_name_or_path``; a local path). A fast tokenizer
            is required (offsets). Built lazily, once per process, and not
            pickled, so the transform can be sent to dataloader workers.
        num_image_tokens (int): Number of vision features per image.
        max_length (int, optional): Maximum length after image expansion.
        image_token (str): Image placeholder token.
        grounding_token (str): ``'[SEG]'`` (GLaMM) or ``'<seg>'`` (LLaVA-G).
        region_token (str): ``'<bbox>'`` (GLaMM) or ``'<obj>'`` (LLaVA-G).
        special_tokens (Sequence[str], optional): Tokens added (as special
            tokens, in this order) when the tokenizer lacks them; must match
            what the language model adds.
        add_bos (bool): Prepend the tokenizer's BOS token.
        truncation (str): ``'drop_rounds'`` or ``'error'``.
        tokenization (str): ``'single_call'`` or ``'official'`` (the
            released GLaMM id stream; use it with converted releases).
    """

    #: the SentencePiece dummy-prefix / word-boundary piece
    SPIECE_UNDERLINE = '\u2581'

    def __init__(self,
                 tokenizer: dict,
                 num_image_tokens: int,
                 max_length: Optional[int] = None,
                 image_token: str = '<image>',
                 grounding_token: str = '[SEG]',
                 region_token: str = '<bbox>',
                 special_tokens: Optional[Sequence[str]] = None,
                 add_bos: bool = True,
                 truncation: str = 'drop_rounds',
                 tokenization: str = 'single_call') -> None:
        if 'pretrained_model_name_or_path' not in tokenizer:
            raise ValueError('tokenizer needs pretrained_model_name_or_path')
        if num_image_tokens < 1:
            raise ValueError(f'num_image_tokens must be >= 1, got '
                             f'{num_image_tokens}')
        if truncation not in ('drop_rounds', 'error'):
            raise ValueError("truncation must be 'drop_rounds' or 'error', "
                             f'got {truncation!r}')
        if tokenization not in ('single_call', 'official'):
            raise ValueError("tokenization must be 'single_call' or "
                             f"'official', got {tokenization!r}")
        self.tokenization = tokenization
        self.tokenizer_cfg = dict(tokenizer)
        self.num_image_tokens = num_image_tokens
        self.max_length = max_length
        self.image_token = image_token
        self.grounding_token = grounding_token
        self.region_token = region_token
        self.special_tokens = list(special_tokens or [])
        self.add_bos = add_bos
        self.truncation = truncation
        self._tokenizer = None
        self._ids = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state['_tokenizer'] = None
        state['_ids'] = None
        return state

    @property
    def tokenizer(self):
        """The HF fast tokenizer, built on first use."""
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            from mmgrounding.utils.hf_loading import from_pretrained_local
            cfg = dict(self.tokenizer_cfg)
            path = cfg.pop('pretrained_model_name_or_path')
            cfg.setdefault('use_fast', True)
            tok = from_pretrained_local(
                AutoTokenizer, path,
                'TokenizeConversation.tokenizer.pretrained_model_name_or_path',
                **cfg)
            if not tok.is_fast:
                raise ValueError(f'tokenizer at {path!r} is not a fast '
                                 'tokenizer; offsets are needed')
            missing = [t for t in self.special_tokens
                       if t not in tok.get_vocab()]
            if missing:
                tok.add_tokens(missing, special_tokens=True)
            ids = {}
            for name in ('image_token', 'grounding_token', 'region_token'):
                token = getattr(self, name)
                encoded = tok(token, add_special_tokens=False)['input_ids']
                if len(encoded) != 1 or encoded[0] == tok.unk_token_id:
                    raise ValueError(
                        f'{name} {token!r} is not a single token of the '
                        f'tokenizer at {path!r} (encodes to {encoded}); add '
                        'it as a special token')
                ids[name] = encoded[0]
            if self.add_bos and tok.bos_token_id is None:
                raise ValueError(f'tokenizer at {path!r} has no BOS token; '
                                 'set add_bos=False')
            if self.tokenization == 'official':
                ids['spiece'] = tok.convert_tokens_to_ids(
                    self.SPIECE_UNDERLINE)
                if ids['spiece'] in (None, tok.unk_token_id):
                    raise ValueError(
                        f"tokenization='official' needs a SentencePiece "
                        f"tokenizer with the {self.SPIECE_UNDERLINE!r} "
                        f'piece; the tokenizer at {path!r} has none')
            self._ids = ids
            self._tokenizer = tok
        return self._tokenizer

    # ------------------------------------------------------------------ steps
    def _encode(self, text: str):
        if self.tokenization == 'official':
            return self._encode_official(text)
        tok = self.tokenizer
        enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = list(enc['input_ids'])
        offsets = [tuple(o) for o in enc['offset_mapping']]
        if self.add_bos:
            ids.insert(0, tok.bos_token_id)
            offsets.insert(0, (0, 0))
        return np.asarray(ids, dtype=np.int64), np.asarray(
            offsets, dtype=np.int64).reshape(-1, 2)

    def _encode_official(self, text: str):
        """Ids and char offsets by the official rules (class docstring)."""
        tok = self.tokenizer
        added = sorted((t for t in tok.get_added_vocab()
                        if t != self.image_token), key=len, reverse=True)
        keep_space = {tok.bos_token, tok.eos_token, tok.unk_token,
                      tok.pad_token}
        split = re.compile('|'.join(map(re.escape, added))) if added \
            else None
        ids: List[int] = []
        offsets: List[Tuple[int, int]] = []
        if self.add_bos:
            ids.append(tok.bos_token_id)
            offsets.append((0, 0))
        start = 0
        for c, chunk in enumerate(text.split(self.image_token)):
            if c > 0:
                ids.append(self._ids['image_token'])
                offsets.append((start - len(self.image_token), start))
            pieces = []  # [start, end, is_added] within the chunk
            last = 0
            for m in (split.finditer(chunk) if split else ()):
                if m.start() > last:
                    pieces.append([last, m.start(), False])
                pieces.append([m.start(), m.end(), True])
                last = m.end()
            if last < len(chunk):
                pieces.append([last, len(chunk), False])

            def strips(k):
                return (0 <= k < len(pieces) and pieces[k][2]
                        and chunk[pieces[k][0]:pieces[k][1]] not in keep_space)

            for k, piece in enumerate(pieces):
                if piece[2]:
                    continue
                if strips(k - 1):
                    while piece[0] < piece[1] and chunk[piece[0]].isspace():
                        piece[0] += 1
                if strips(k + 1):
                    while piece[1] > piece[0] and chunk[piece[1] - 1].isspace():
                        piece[1] -= 1
            if pieces and pieces[0][2]:  # the chunk's lone dummy prefix
                ids.append(self._ids['spiece'])
                offsets.append((start, start))
            for s, e, is_added in pieces:
                if s >= e:
                    continue
                if is_added:
                    ids.append(tok.convert_tokens_to_ids(chunk[s:e]))
                    offsets.append((start + s, start + e))
                    continue
                enc = tok(chunk[s:e], add_special_tokens=False,
                          return_offsets_mapping=True)
                ids.extend(enc['input_ids'])
                offsets.extend((start + s + a, start + s + b)
                               for a, b in enc['offset_mapping'])
            start += len(chunk) + len(self.image_token)
        return np.asarray(ids, dtype=np.int64), np.asarray(
            offsets, dtype=np.int64).reshape(-1, 2)

    def _truncate(self, results: dict, ids: np.ndarray,
                  offsets: np.ndarray):
        length = len(ids) - 1 + self.num_image_tokens
        if self.max_length is None or length <= self.max_length:
            return ids, offsets
        why = (f'{length} tokens (with {self.num_image_tokens} image tokens) '
               f'> max_length {self.max_length}')
        if self.truncation == 'error' or not results.get('with_answer', True):
            raise GroundingDataError.from_results(results, 'text', why)
        first = 1 if self.add_bos else 0
        keep_tok = keep_round = None
        for r, (_, _, end) in enumerate(results['round_spans']):
            n = first + int(np.sum(offsets[first:, 0] < end))
            if n - 1 + self.num_image_tokens > self.max_length:
                break
            keep_tok, keep_round = n, r
        if keep_round is None:
            raise GroundingDataError.from_results(
                results, 'text', f'{why} and the first round alone does not '
                'fit; raise max_length')
        cut = results['round_spans'][keep_round][2]
        kept = [i for i, s in enumerate(results['grounding_spans'])
                if s[1] <= cut]
        results['text'] = results['text'][:cut]
        results['round_spans'] = results['round_spans'][:keep_round + 1]
        results['prompt'] = results['text'][:results['round_spans'][-1][1]]
        results['answer_spans'] = [
            s for s in results['answer_spans'] if s[1] <= cut
        ]
        results['grounding_spans'] = [
            results['grounding_spans'][i] for i in kept
        ]
        results['grounding_phrase_ids'] = [
            results['grounding_phrase_ids'][i] for i in kept
        ]
        results['target_phrase_ids'] = list(results['grounding_phrase_ids'])
        ids, offsets = ids[:keep_tok], offsets[:keep_tok]
        n_regions = int(np.sum(ids == self._ids['region_token']))
        for key in ('regions', 'visual_prompts'):
            if results.get(key) is not None:
                results[key] = list(results[key])[:n_regions]
        print_log(
            f'{results.get("source")}/{results.get("img_id")}: {why}; kept '
            f'{keep_round + 1} of the rounds', logger='current',
            level=30)
        return ids, offsets

    def _check_counts(self, results: dict, ids: np.ndarray,
                      offsets: np.ndarray) -> np.ndarray:
        n_image = int(np.sum(ids == self._ids['image_token']))
        if n_image != 1:
            raise GroundingDataError.from_results(
                results, 'conversations',
                f'{n_image} {self.image_token!r} tokens in the text; exactly '
                'one per image is required')
        positions = np.flatnonzero(ids == self._ids['grounding_token'])
        spans = results.get('grounding_spans', [])
        n_targets = len(results.get('grounding_phrase_ids', []))
        if len(positions) != len(spans) or len(spans) != n_targets:
            raise GroundingDataError.from_results(
                results, 'phrases',
                f'{len(positions)} {self.grounding_token!r} tokens in the '
                f'text but {n_targets} grounding targets (phrases)')
        for k, (pos, (s, e)) in enumerate(zip(positions, spans)):
            ts, te = offsets[pos]
            if not (ts < e and te > s):
                raise GroundingDataError.from_results(
                    results, 'phrases',
                    f'grounding token {k} is at chars [{ts}, {te}) but the '
                    f'formatter placed it at [{s}, {e})')
        n_region_tokens = int(np.sum(ids == self._ids['region_token']))
        n_regions = len(results.get('regions') or [])
        if n_region_tokens != n_regions:
            raise GroundingDataError.from_results(
                results, 'regions',
                f'{n_region_tokens} {self.region_token!r} tokens in the text '
                f'but {n_regions} regions')
        return positions

    def _labels(self, results: dict, ids: np.ndarray,
                offsets: np.ndarray) -> np.ndarray:
        inside = np.zeros(len(ids), dtype=bool)
        for a0, a1 in results.get('answer_spans', []):
            inside |= (offsets[:, 0] < a1) & (offsets[:, 1] > a0)
        if self.add_bos:
            inside[0] = False
        inside &= ids != self._ids['image_token']
        return np.where(inside, ids, IGNORE_INDEX)

    def _targets(self, results: dict):
        phrases = results.get('phrases') or []
        target_ids = results.get('target_phrase_ids', [])
        gt_masks = results.get('gt_masks')
        if gt_masks is not None:
            height, width = gt_masks.height, gt_masks.width
        else:
            height, width = results.get('ori_shape', (results.get('height'),
                                                      results.get('width')))
        valid = results.get('gt_mask_valid')
        masks: List[np.ndarray] = []
        instance_ids: List[List[int]] = []
        names: List[str] = []
        for j in target_ids:
            phrase = phrases[j]
            inst = list(phrase.get('instance_ids') or [])
            if not inst:
                raise GroundingDataError.from_results(
                    results, 'phrases', f'phrase {j} has no instance_ids')
            if gt_masks is None:
                raise GroundingDataError.from_results(
                    results, 'instances', 'grounding targets need gt_masks; '
                    'put LoadGroundingAnnotations before this transform')
            bad = [i for i in inst if not 0 <= i < len(gt_masks)]
            if bad:
                raise GroundingDataError.from_results(
                    results, 'phrases',
                    f'phrase {j} names instances {bad} but the record has '
                    f'{len(gt_masks)} instances')
            if valid is not None and not all(valid[i] for i in inst):
                raise GroundingDataError.from_results(
                    results, 'instances',
                    f'phrase {j} needs instances {inst}, some have no mask '
                    '(set mask_from_box=True to use their boxes)')
            masks.append(gt_masks.masks[inst].any(axis=0))
            instance_ids.append(inst)
            names.append(phrase.get('text', ''))
        if masks:
            array = np.stack(masks).astype(np.uint8)
        else:
            array = np.zeros((0, int(height), int(width)), dtype=np.uint8)
        return (BitmapMasks(array, int(height), int(width)), instance_ids,
                names)

    def transform(self, results: dict) -> dict:
        if 'text' not in results:
            raise GroundingDataError.from_results(
                results, 'text',
                'no text; put FormatGroundedConversation before this')
        ids, offsets = self._encode(results['text'])
        ids, offsets = self._truncate(results, ids, offsets)
        positions = self._check_counts(results, ids, offsets)
        labels = self._labels(results, ids, offsets)

        image_pos = int(np.flatnonzero(ids == self._ids['image_token'])[0])
        extra = self.num_image_tokens - 1
        image_ids = np.full(self.num_image_tokens, ids[image_pos])
        ignore = np.full(self.num_image_tokens, IGNORE_INDEX)
        ids = np.concatenate([ids[:image_pos], image_ids, ids[image_pos + 1:]])
        labels = np.concatenate(
            [labels[:image_pos], ignore, labels[image_pos + 1:]])

        def shift(pos: np.ndarray) -> np.ndarray:
            return np.where(pos > image_pos, pos + extra, pos)

        region_pos = np.flatnonzero(ids == self._ids['region_token'])
        masks, instance_ids, names = self._targets(results)

        results['input_ids'] = torch.from_numpy(ids.astype(np.int64))
        results['labels'] = torch.from_numpy(labels.astype(np.int64))
        results['grounding_token_index'] = torch.from_numpy(
            shift(positions).astype(np.int64))
        results['region_token_index'] = torch.from_numpy(
            region_pos.astype(np.int64))
        results['grounding_masks'] = masks
        results['grounding_instance_ids'] = instance_ids
        results['gt_phrases'] = names
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}('
                f'tokenizer={self.tokenizer_cfg!r}, '
                f'num_image_tokens={self.num_image_tokens}, '
                f'max_length={self.max_length}, '
                f'grounding_token={self.grounding_token!r}, '
                f'truncation={self.truncation!r}, '
                f'tokenization={self.tokenization!r})')
