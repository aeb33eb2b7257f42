"""A grounded LMM answers; GroundingDINO grounds each of its phrases."""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.model import BaseModel
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData

from mmgrounding.apis import build_grounding_inferencer, build_mmdet_detector
from mmgrounding.registry import MODELS
from mmgrounding.structures.markup import parse_markup
from .phrases import phrases_to_prompt, top_box_per_phrase

ConfigType = Union[str, Config, dict]
#: How the phrases to ground are obtained.
MODES = ('lmm', 'direct')


def answer_phrases(text: str, style: str,
                   expression: Optional[str] = None) -> List[str]:
    """One phrase per grounding token of an LMM answer.

    The shared markup parser (``structures.markup.parse_markup`` with
    ``bare_tokens=True``) gives a plain-text span per grounding token; a
    bare token (GLaMM's "It is [SEG].") has an empty span and stands for
    the expression the question asked about, so it takes ``expression``
    (without one it is dropped).
    """
    plain, spans = parse_markup(text, style, bare_tokens=True)
    phrases = []
    for start, end in spans:
        phrase = plain[start:end].strip()
        if phrase:
            phrases.append(phrase)
        elif expression and expression.strip():
            phrases.append(expression.strip())
    return phrases


@MODELS.register_module()
class GroundingDINOPhraseGrounder(BaseModel):
    """Phrase grounding by a frozen mmdet GroundingDINO behind a grounded LMM.

    ``mode='lmm'``: per image the LMM (built from its config + checkpoint,
    run through the public ``GroundingInferencer``) answers ``question``
    (``{expr}`` = the sample's ``text``, the referring expression); the
    phrase of each grounding token of the answer (:func:`answer_phrases`)
    becomes one entity of GroundingDINO's prompt (``text`` +
    ``tokens_positive``, ``custom_entities=True``: no NER), and the
    detector's top box per phrase is the grounding output.

    ``mode='direct'`` (REC: the expression is the phrase): the expression
    goes straight to the detector in its REC mode (``tokens_positive=-1``,
    the whole expression is one entity); the ``rec_topk`` best boxes are
    kept, ranked by score (precision@k). No LMM is built.

    Both parts are frozen (eval mode, no gradients); ``tools/test.py`` runs
    the model with a checkpoint that holds its state dict
    (``projects/detect_then_describe/tools/compose_checkpoint.py``).

    Args:
        detector: ``dict(config=..., checkpoint=..., cfg_options=None)``, a
            GroundingDINO / MM-Grounding-DINO config (path, Config or dict).
        lmm: ``dict(config=..., checkpoint=...)`` of an mmgrounding grounded
            LMM; required for ``mode='lmm'``, ignored otherwise.
        mode: ``'lmm'`` or ``'direct'``.
        question: the LMM's question, with one ``{expr}`` field.
        rec_topk: boxes kept in direct mode.
        max_new_tokens: override the LMM's ``generation_cfg``.
        lmm_batch_size: questions per LMM forward.

    Predictions per sample: ``pred_instances`` (``bboxes`` [M, 4] xyxy
    original pixels, ``scores`` [M], ``labels`` [M] = phrase index),
    ``pred_phrases`` (list[str], the grounded phrases) and, in LMM mode,
    ``pred_text`` (the raw answer).
    """

    def __init__(self,
                 detector: dict,
                 lmm: Optional[dict] = None,
                 mode: str = 'lmm',
                 question: str = 'Please locate the {expr} in this image.',
                 rec_topk: int = 1,
                 max_new_tokens: Optional[int] = None,
                 lmm_batch_size: int = 16,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        if mode not in MODES:
            raise ValueError(f'GroundingDINOPhraseGrounder: mode must be one '
                             f'of {MODES}, got {mode!r}')
        if mode == 'lmm' and not lmm:
            raise ValueError('GroundingDINOPhraseGrounder: mode "lmm" needs '
                             'an lmm=dict(config=..., checkpoint=...)')
        if question.count('{expr}') != 1:
            raise ValueError('GroundingDINOPhraseGrounder: question must hold '
                             f'one {{expr}} field, got {question!r}')
        if rec_topk < 1:
            raise ValueError('GroundingDINOPhraseGrounder: rec_topk must be '
                             f'>= 1, got {rec_topk}')
        self.mode = mode
        self.question = question
        self.rec_topk = int(rec_topk)
        self.max_new_tokens = max_new_tokens
        self.lmm_batch_size = int(lmm_batch_size)
        self.detector, self._det_pipeline = build_mmdet_detector(**detector)
        self._lmm = None
        if mode == 'lmm':
            self._lmm = build_grounding_inferencer(**lmm)
            self.lmm = self._lmm.model  # registered: moves with .to(device)
        self.train(False)
        self.requires_grad_(False)

    def train(self, mode: bool = True) -> 'GroundingDINOPhraseGrounder':
        """The parts stay in eval mode (frozen BN, no dropout)."""
        super().train(mode)
        for module in self.children():
            module.eval()
        return self

    # ---------------------------------------------------------- inference
    @staticmethod
    def _bgr(image: torch.Tensor) -> np.ndarray:
        """CHW uint8 BGR tensor (mmdet ``PackDetInputs``) -> HWC array."""
        if image.dim() != 3 or image.shape[0] != 3:
            raise ValueError('GroundingDINOPhraseGrounder: expected CHW '
                             f'images with 3 channels, got shape '
                             f'{tuple(image.shape)}')
        return np.ascontiguousarray(image.permute(1, 2, 0).cpu().numpy())

    def detect(self, images: Sequence[np.ndarray], texts: Sequence[str],
               tokens_positive: Sequence) -> List[InstanceData]:
        """GroundingDINO on each HWC BGR image with its prompt.

        ``tokens_positive[i]`` is ``-1`` (REC: the text is one entity) or
        one list of ``[start, end]`` char spans per entity.

        One image per detector call: in mmdet 3.3's GroundingDINO the
        result of an image depends on the other prompts of its batch (a
        shorter prompt padded next to it changes its scores; measured on
        the tiny config, see ``tests/projects/test_grounding_dino_head.py``),
        so a prediction must not depend on how the dataloader batches.
        """
        preds = []
        with DefaultScope.overwrite_default_scope('mmdet'):
            for image, text, tp in zip(images, texts, tokens_positive):
                out = self._det_pipeline(dict(img=image, img_id=0))
                # set here, whatever the config's PackDetInputs meta_keys
                out['data_samples'].set_metainfo(
                    dict(text=text, custom_entities=True,
                         tokens_positive=tp))
                with torch.no_grad():
                    result = self.detector.test_step(
                        dict(inputs=[out['inputs']],
                             data_samples=[out['data_samples']]))
                preds.append(result[0].pred_instances)
        return preds

    def answer(self, images: Sequence[np.ndarray],
               expressions: Sequence[str]) -> List[str]:
        """The LMM's raw answer (with markup) to ``question`` per image."""
        with DefaultScope.overwrite_default_scope('mmgrounding'):
            answers = self._lmm(
                list(images),
                [self.question.format(expr=e) for e in expressions],
                task='chat',
                batch_size=self.lmm_batch_size,
                max_new_tokens=self.max_new_tokens,
                return_datasamples=True)
        return [a.get('pred_text', '') for a in answers]

    @staticmethod
    def _empty() -> InstanceData:
        return InstanceData(bboxes=torch.zeros(0, 4),
                            scores=torch.zeros(0),
                            labels=torch.zeros(0, dtype=torch.long))

    def _rec_topk(self, instances: InstanceData) -> InstanceData:
        order = torch.sort(instances.scores, descending=True,
                           stable=True).indices[:self.rec_topk]
        kept = instances[order]
        kept.labels = torch.zeros_like(kept.labels)
        return kept

    @torch.no_grad()
    def predict(self, inputs: List[torch.Tensor],
                data_samples: List[DetDataSample]) -> List[DetDataSample]:
        """Fill ``pred_instances`` and ``pred_phrases`` (and ``pred_text``)
        of every sample; ``text`` of a sample is its expression."""
        images = [self._bgr(img) for img in inputs]
        exprs = [str(s.metainfo.get('text', '')) for s in data_samples]
        if self.mode == 'direct':
            phrases = [[e] for e in exprs]
            prompts: List[Tuple[str, object]] = [(e, -1) for e in exprs]
        else:
            texts = self.answer(images, exprs)
            style = self._lmm.model.answer_style
            phrases = [answer_phrases(t, style, e)
                       for t, e in zip(texts, exprs)]
            for sample, text in zip(data_samples, texts):
                sample.pred_text = text
            prompts = [
                phrases_to_prompt(p, record=s.metainfo.get('img_id'))
                if p else None for p, s in zip(phrases, data_samples)
            ]
        todo = [i for i, p in enumerate(prompts) if p is not None]
        dets = self.detect([images[i] for i in todo],
                           [prompts[i][0] for i in todo],
                           [prompts[i][1] for i in todo])
        found: Dict[int, InstanceData] = dict(zip(todo, dets))
        for i, sample in enumerate(data_samples):
            sample.pred_phrases = phrases[i]
            if i not in found:
                pred = self._empty()
            elif self.mode == 'direct':
                pred = self._rec_topk(found[i])
            else:
                pred = top_box_per_phrase(found[i], len(phrases[i]))
            sample.pred_instances = InstanceData(
                bboxes=pred.bboxes.float().cpu(),
                scores=pred.scores.float().cpu(),
                labels=pred.labels.long().cpu())
        return data_samples

    def forward(self,
                inputs: List[torch.Tensor],
                data_samples: Optional[List[DetDataSample]] = None,
                mode: str = 'predict') -> Union[Dict, List[DetDataSample]]:
        """Only ``'predict'``: both parts are frozen, there is no loss."""
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        raise RuntimeError(f'GroundingDINOPhraseGrounder: mode {mode!r} is '
                           'not supported (frozen detector and LMM; only '
                           '"predict")')
