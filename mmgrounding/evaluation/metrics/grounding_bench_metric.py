"""LLaVA-Grounding's Grounding-Bench: grounded R/P/F1 and chat scores."""
import math
from collections import defaultdict
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from mmdet.evaluation.functional import bbox_overlaps
from mmengine.evaluator import BaseMetric

from mmgrounding.registry import METRICS
from ..builder import build_task_util
from ..functional.mask_ops import rle_iou_matrix
from ..functional.sample_utils import (as_numpy, boxes_array, get_field,
                                       image_shape, instance_field,
                                       masks_to_rles, predicted_caption,
                                       sample_id, str_list)
from ..functional.table import log_metric_table


@METRICS.register_module()
class GroundingBenchMetric(BaseMetric):
    """Grounding-Bench (LLaVA-Grounding, Sec. 2.5) with a pluggable judge.

    **Grounded response scores** (paper: on grounded detailed descriptions).
    Every predicted box (or mask, ``iou_type='mask'``) with its phrase is a
    grounding; every GT instance of the image is an entity. A grounding is
    correct when its IoU with a GT instance is > ``iou_thr`` (0.5) *and*
    the judge says its phrase refers to that instance's label. Then

    * precision P = #correct groundings / #predicted groundings,
    * recall R = #GT instances with at least one correct grounding / #GT,
    * F1 = 2PR / (P + R),

    summed over the whole benchmark (the paper's example: 4 of 7 groundings
    correct, 3 of 12 entities found: P 0.57, R 0.25, F1 0.35).

    **Chat scores** (LLaVA-Bench protocol): the judge grades the reference
    answer and the model's answer (markup removed: ``pred_caption``) 1-10;
    per category the score is ``100 * sum(answer) / sum(reference)``, plus
    ``chat_all`` over every rated item. Unparseable ratings are left out.

    Data sample fields: ``pred_instances.bboxes``/``masks``, optional
    ``pred_instances.phrase_ids`` (else prediction i has phrase i),
    ``pred_phrases``; ``gt_instances.bboxes``/``masks`` with one label each
    from ``gt_label_key`` (``gt_instances.<key>`` or the sample's ``<key>``,
    default ``gt_phrases``); chat: ``question`` (else ``prompt``),
    ``reference_answer`` (else the first ``gt_captions``), ``category``
    (e.g. ``conv``/``detail``/``complex``) and ``context`` (else the GT
    captions and labelled boxes).

    Args:
        judge: a ``TASK_UTILS`` judge config (``OpenAIJudge`` as the paper's
            GPT-4, ``EmbeddingJudge`` offline) or object.
        iou_type: ``'bbox'`` or ``'mask'``.
        iou_thr: IoU must be strictly greater.
        grounding_categories: categories scored for grounding (``None``:
            all samples; samples without a category always count).
        gt_label_key: where each GT instance's label is read.
        scale: factor applied to the grounded R/P/F1 (chat scores are
            already relative percentages).
    """
    default_prefix: Optional[str] = 'grounding_bench'

    def __init__(self,
                 judge: Union[dict, Any] = dict(type='EmbeddingJudge'),
                 iou_type: str = 'bbox',
                 iou_thr: float = 0.5,
                 grounding_categories: Optional[Sequence[str]] = None,
                 gt_label_key: str = 'gt_phrases',
                 scale: float = 100.0,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if iou_type not in ('bbox', 'mask'):
            raise ValueError(f'iou_type must be bbox or mask, got {iou_type}')
        self.judge_cfg = judge
        self._judge = None
        self.iou_type = iou_type
        self.iou_thr = iou_thr
        self.grounding_categories = (
            None if grounding_categories is None else
            set(grounding_categories))
        self.gt_label_key = gt_label_key
        self.scale = scale

    @property
    def judge(self):
        """The judge, built on first use."""
        if self._judge is None:
            self._judge = build_task_util(self.judge_cfg, 'judge')
        return self._judge

    # ------------------------------------------------------------------ #
    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Reduce each sample to IoU-passing candidate pairs and chat text."""
        for sample in data_samples:
            self.results.append(self.reduce_sample(sample))

    def reduce_sample(self, sample: Any) -> Dict[str, Any]:
        """Compact record: counts, candidate (phrase, label) pairs, chat."""
        img_id = sample_id(sample)
        where = f'Grounding-Bench sample img_id={img_id!r}'
        category = get_field(sample, 'category')
        record: Dict[str, Any] = dict(
            category=None if category is None else str(category),
            grounding=None,
            chat=None)
        gt_inst = get_field(sample, 'gt_instances')
        if gt_inst is not None and (self.grounding_categories is None
                                    or category is None or str(category)
                                    in self.grounding_categories):
            record['grounding'] = self._grounding(sample, gt_inst, where)
        reference = get_field(sample, 'reference_answer')
        captions = str_list(get_field(sample, 'gt_captions'), where,
                            'gt_captions')
        if reference is None and captions:
            reference = captions[0]
        if reference is not None:
            question = get_field(sample, 'question')
            if question is None:
                question = get_field(sample, 'prompt') or ''
            context = get_field(sample, 'context')
            if context is None:
                context = self._default_context(captions, record)
            record['chat'] = dict(
                context=str(context),
                question=str(question),
                reference=str(reference),
                answer=predicted_caption(sample))
        return record

    def _grounding(self, sample: Any, gt_inst: Any,
                   where: str) -> Dict[str, Any]:
        pred_inst = get_field(sample, 'pred_instances')
        labels = instance_field(gt_inst, self.gt_label_key)
        if labels is None:
            labels = get_field(sample, self.gt_label_key)
        labels = str_list(labels, where, self.gt_label_key)
        if self.iou_type == 'bbox':
            gt = boxes_array(instance_field(gt_inst, 'bboxes'))
            pred = boxes_array(instance_field(pred_inst, 'bboxes'))
            ious = bbox_overlaps(pred, gt) if len(pred) and len(gt) else \
                np.zeros((len(pred), len(gt)))
            gt_boxes = gt.tolist()
        else:
            shape = image_shape(sample)
            gt = masks_to_rles(
                instance_field(gt_inst, 'masks'), shape, where,
                'gt_instances.masks')
            pred = masks_to_rles(
                instance_field(pred_inst, 'masks'), shape, where,
                'pred_instances.masks')
            ious = np.nan_to_num(rle_iou_matrix(pred, gt), nan=0.0)
            gt_boxes = boxes_array(instance_field(gt_inst,
                                                  'bboxes')).tolist()
        if len(labels) != len(gt):
            raise ValueError(f'{where}: {len(gt)} GT instances but '
                             f'{len(labels)} labels in {self.gt_label_key}')
        phrases = str_list(
            get_field(sample, 'pred_phrases'), where, 'pred_phrases')
        phrase_ids = instance_field(pred_inst, 'phrase_ids')
        phrase_ids = np.arange(len(pred)) if phrase_ids is None else \
            as_numpy(phrase_ids, np.int64)
        pred_phrases = [
            phrases[j] if 0 <= j < len(phrases) else '' for j in phrase_ids
        ]
        cand = [(int(p), int(g)) for p, g in zip(*np.nonzero(
            ious > self.iou_thr))]
        return dict(
            num_pred=len(pred),
            num_gt=len(gt),
            candidates=[(p, g, pred_phrases[p], labels[g]) for p, g in cand],
            gt_labels=labels,
            gt_boxes=gt_boxes)

    @staticmethod
    def _default_context(captions: List[str], record: Dict) -> str:
        lines = list(captions)
        grounding = record.get('grounding')
        if grounding:
            for label, box in zip(grounding['gt_labels'],
                                  grounding['gt_boxes']):
                lines.append(f'{label}: [' +
                             ', '.join(f'{v:.1f}' for v in box) + ']')
        return '\n'.join(lines)

    # ------------------------------------------------------------------ #
    def compute_metrics(self, results: List[Dict]) -> Dict[str, float]:
        """Grounded P/R/F1 and relative chat scores (every sample counts;
        mmengine's ``collect_results`` already drops distributed padding)."""
        metrics: Dict[str, float] = {}
        grounded = [r['grounding'] for r in results if r['grounding']]
        if grounded:
            metrics.update(self._grounded_scores(grounded))
        chats = [(r['category'], r['chat']) for r in results if r['chat']]
        if chats:
            metrics.update(self._chat_scores(chats))
        if not metrics:
            raise ValueError('GroundingBenchMetric: no sample carried '
                             'gt_instances or a reference answer')
        log_metric_table(
            f'Grounding-Bench ({len(results)} samples; judge: '
            f'{getattr(self.judge, "name", type(self.judge).__name__)}; '
            f'IoU>{self.iou_thr} on {self.iou_type})', metrics)
        return metrics

    def _grounded_scores(self, grounded: List[Dict]) -> Dict[str, float]:
        pairs = sorted({(c[2], c[3]) for g in grounded
                        for c in g['candidates']})
        verdict = dict(zip(pairs, self.judge.match_phrases(pairs)))
        tp_pred = tp_gt = n_pred = n_gt = 0
        for g in grounded:
            n_pred += g['num_pred']
            n_gt += g['num_gt']
            good = [(p, gi) for p, gi, phrase, label in g['candidates']
                    if verdict[(phrase, label)]]
            tp_pred += len({p for p, _ in good})
            tp_gt += len({gi for _, gi in good})
        precision = tp_pred / n_pred if n_pred else 0.0
        recall = tp_gt / n_gt if n_gt else 0.0
        f1 = (2 * precision * recall / (precision + recall)
              if precision + recall > 0 else 0.0)
        return dict(
            grounded_recall=recall * self.scale,
            grounded_precision=precision * self.scale,
            grounded_F1=f1 * self.scale)

    def _chat_scores(self, chats: List[Tuple[Optional[str], Dict]]
                     ) -> Dict[str, float]:
        ratings = self.judge.rate_answers([c for _, c in chats])
        sums: Dict[str, List[float]] = defaultdict(lambda: [0.0, 0.0])
        for (category, _), (ref, ans) in zip(chats, ratings):
            if math.isnan(ref) or math.isnan(ans):
                continue
            for name in {category or 'all', 'all'}:
                sums[name][0] += ref
                sums[name][1] += ans
        return {
            f'chat_{name}': (100.0 * ans / ref if ref > 0 else 0.0)
            for name, (ref, ans) in sorted(sums.items())
        }
