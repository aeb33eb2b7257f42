"""An mmdet detector proposes boxes; a grounded LMM captions each box."""
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from mmdet.apis import inference_detector
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.model import BaseModel
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData

from mmgrounding.apis import build_grounding_inferencer, build_mmdet_detector
from mmgrounding.datasets.region_caption import REGION_EVAL_QUESTION
from mmgrounding.registry import MODELS

ConfigType = Union[str, Config, dict]


def select_detections(instances: InstanceData, score_thr: float,
                      topk: int) -> InstanceData:
    """The ``topk`` highest-scoring detections with ``score >= score_thr``.

    Args:
        instances: mmdet ``pred_instances`` (``bboxes`` [N, 4] xyxy,
            ``scores`` [N], ``labels`` [N]).
        score_thr: minimum score kept (inclusive).
        topk: at most this many are kept (``-1``: no limit).

    Returns:
        The kept instances, by decreasing score (ties keep detector order).
    """
    if topk == 0 or topk < -1:
        raise ValueError(f'select_detections: topk must be -1 or >= 1, got '
                         f'{topk}')
    scores = instances.scores
    keep = torch.nonzero(scores >= score_thr).flatten()
    order = torch.sort(scores[keep], descending=True, stable=True).indices
    keep = keep[order]
    if topk > 0:
        keep = keep[:topk]
    return instances[keep]


@MODELS.register_module()
class DetectThenDescribe(BaseModel):
    """Dense region captioning = an mmdet detector + a grounded LMM.

    Both parts are built from their own config and checkpoint in
    ``__init__`` and frozen (eval mode, no gradients); the model itself has
    nothing to train, so ``tools/test.py`` runs it with any checkpoint that
    holds its state dict (or none: see the project README).

    Per image: the detector (``mmdet.apis.inference_detector`` under the
    ``mmdet`` scope, its own test pipeline and data preprocessor) runs on the
    raw image; its ``topk`` boxes with ``score >= score_thr`` each become one
    GLaMM region prompt (GLaMM's region-caption evaluation question with
    ``<bbox>``), answered through the LMM's public ``GroundingInferencer``
    (the LMM config's own test pipeline, ``model.test_step``), so the
    ``<bbox>`` box travels as ``region_bboxes`` in original pixels (data
    contract §2.6).

    Args:
        detector: ``dict(config=..., checkpoint=..., cfg_options=None)``;
            any mmdet detector config (path, ``Config`` or dict).
        lmm: ``dict(config=..., checkpoint=...)``; an mmgrounding config
            whose model answers ``<bbox>`` prompts (GLaMM).
        score_thr: detections below this score are not described.
        topk: at most this many boxes per image are described (``-1``: all
            above ``score_thr``).
        question: region prompt; ``<bbox>`` is the placeholder of the box.
        lmm_batch_size: region prompts per LMM forward.
        max_new_tokens: override the LMM's ``generation_cfg``.
        data_preprocessor: mmengine's ``BaseDataPreprocessor`` by default
            (inputs stay uint8 images; each part normalises its own view).

    Predictions (per data sample): ``pred_instances`` (``bboxes`` [K, 4]
    xyxy original pixels, ``scores`` [K], ``labels`` [K] detector classes),
    ``pred_region_captions`` (list[str], one per box) and
    ``pred_region_texts`` (raw LMM answers).
    """

    def __init__(self,
                 detector: dict,
                 lmm: dict,
                 score_thr: float = 0.3,
                 topk: int = 10,
                 question: str = REGION_EVAL_QUESTION.replace(
                     '<region>', '<bbox>'),
                 lmm_batch_size: int = 16,
                 max_new_tokens: Optional[int] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        if question.count('<bbox>') != 1:
            raise ValueError('DetectThenDescribe: question must hold exactly '
                             f'one <bbox> placeholder, got {question!r}')
        if topk == 0 or topk < -1:
            raise ValueError('DetectThenDescribe: topk must be -1 or >= 1, '
                             f'got {topk}')
        self.score_thr = float(score_thr)
        self.topk = int(topk)
        self.question = question
        self.lmm_batch_size = int(lmm_batch_size)
        self.max_new_tokens = max_new_tokens
        self.detector, self._det_pipeline = build_mmdet_detector(**detector)
        self._lmm = build_grounding_inferencer(**lmm)
        self.lmm = self._lmm.model  # registered: moves with .to(device)
        for module in (self.detector, self.lmm):
            module.eval()
            module.requires_grad_(False)

    def train(self, mode: bool = True) -> 'DetectThenDescribe':
        """Both parts stay in eval mode (frozen BN, no dropout)."""
        super().train(mode)
        self.detector.eval()
        self.lmm.eval()
        return self

    # ---------------------------------------------------------- inference
    @staticmethod
    def _bgr(image: torch.Tensor) -> np.ndarray:
        """CHW uint8 BGR tensor (mmdet ``PackDetInputs``) -> HWC array."""
        if image.dim() != 3 or image.shape[0] != 3:
            raise ValueError('DetectThenDescribe: expected CHW images with 3 '
                             f'channels, got shape {tuple(image.shape)}')
        return np.ascontiguousarray(image.permute(1, 2, 0).cpu().numpy())

    def detect(self, images: Sequence[np.ndarray]) -> List[InstanceData]:
        """Detector boxes of each HWC BGR image, after score/top-k."""
        with DefaultScope.overwrite_default_scope('mmdet'):
            dets = inference_detector(self.detector, list(images),
                                      test_pipeline=self._det_pipeline)
        return [
            select_detections(d.pred_instances, self.score_thr, self.topk)
            for d in dets
        ]

    def describe(self, image: np.ndarray,
                 boxes: torch.Tensor) -> List[DetDataSample]:
        """One LMM answer per box (xyxy original pixels) of one image."""
        if len(boxes) == 0:
            return []
        with DefaultScope.overwrite_default_scope('mmgrounding'):
            return self._lmm(
                [image] * len(boxes), [self.question] * len(boxes),
                boxes=[[b] for b in boxes.cpu().tolist()],
                task='chat',
                batch_size=self.lmm_batch_size,
                max_new_tokens=self.max_new_tokens,
                return_datasamples=True)

    @torch.no_grad()
    def predict(self, inputs: List[torch.Tensor],
                data_samples: List[DetDataSample]) -> List[DetDataSample]:
        """Fill ``pred_instances``, ``pred_region_captions`` and
        ``pred_region_texts`` of every data sample."""
        images = [self._bgr(img) for img in inputs]
        for image, sample, dets in zip(images, data_samples,
                                       self.detect(images)):
            answers = self.describe(image, dets.bboxes)
            pred = InstanceData()
            pred.bboxes = dets.bboxes.float().cpu()
            pred.scores = dets.scores.float().cpu()
            pred.labels = dets.labels.cpu()
            sample.pred_instances = pred
            sample.pred_region_captions = [
                a.get('pred_caption', '') for a in answers
            ]
            sample.pred_region_texts = [
                a.get('pred_text', '') for a in answers
            ]
        return data_samples

    def forward(self,
                inputs: List[torch.Tensor],
                data_samples: Optional[List[DetDataSample]] = None,
                mode: str = 'predict') -> Union[Dict, List[DetDataSample]]:
        """Only ``'predict'``: both parts are frozen, there is no loss."""
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        raise RuntimeError(f'DetectThenDescribe: mode {mode!r} is not '
                           'supported (frozen detector and LMM; only '
                           '"predict")')
