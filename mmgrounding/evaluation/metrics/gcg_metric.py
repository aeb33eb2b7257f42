"""GCG metric: METEOR, CIDEr, mask AP50, mIoU and mask recall of GLaMM."""
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from mmgrounding.registry import METRICS
from ..functional.caption import CAPTION_METRICS, score_captions
from ..functional.gcg import (coco_mask_ap50, greedy_miou,
                              normalise_image_ids, recall_matches_official,
                              recall_matches_strict)
from ..functional.mask_ops import rle_iou_matrix
from ..functional.sample_utils import (get_field, image_shape,
                                       instance_field, masks_to_rles,
                                       predicted_caption, sample_id, str_list)
from ..functional.table import log_metric_table
from ..text_encoders import build_text_encoder, cosine_matrix


@METRICS.register_module()
class GCGMetric(BaseMetric):
    """Grounded conversation generation metrics (GLaMM, GranD-f val/test).

    Definitions equal ``eval/gcg/evaluate.py`` of mbzuai-oryx/groundingLMM:

    * **METEOR**, **CIDEr**: pycocoevalcap on PTB-tokenised text; METEOR is
      the jar's corpus score; references = all ``gt_captions`` of the image.
    * **AP50**: COCOeval ``segm`` AP at IoU 0.5, everything category 1,
      every prediction score 1.0 (ranking = sorted image id, then mask
      order).
    * **mIoU**: per image, greedy one-to-one pairing on the [pred, gt] IoU
      matrix (:func:`greedy_miou`: row-major ties, stops at max <= 0 or at
      any NaN = two empty masks); image score = mean paired IoU or 0.0;
      averaged over all images (no prediction gives 0.0).
    * **recall**: TP / #GT phrases. A match needs mask IoU >= ``iou_thr``
      and text similarity >= ``text_sim_thr`` between the GT phrase and the
      predicted phrase of the same index. With ``official_quirks=True`` the
      official loop is reproduced: the search stops at the first failing
      highest-IoU candidate, a NaN IoU passes, and when #pred masks !=
      #pred phrases (or #GT masks != #GT phrases) an out-of-range pick loses
      all matches of the image while its positives still count. With
      ``official_quirks=False`` failing candidates are skipped, NaN never
      matches and masks without a phrase cannot match
      (:func:`recall_matches_strict`).

    Recall depends on the text encoder: the official one is
    ``bert-base-uncased`` mean-pooled over all tokens
    (``text_encoder=dict(type='HFTextEncoder', model_path=<local bert>)``);
    the default is the offline all-MiniLM-L6-v2 package. The encoder name is
    printed with the results. All numbers are reported x``scale`` (100:
    the papers' tables).

    Data sample fields read: ``img_id``, ``ori_shape``, ``pred_caption`` (or
    ``pred_text``), ``pred_phrases``, ``pred_instances.masks``,
    ``gt_instances.masks`` (one per GT phrase, token order), ``gt_phrases``,
    ``gt_captions``. Every sample is scored, also when two share an
    ``img_id`` (GCG sets built from RefCOCOg or Flickr30K captions have
    several captions per image): for AP50 such samples become distinct
    COCO images, ranked by ``img_id`` then order of arrival (the official
    sets have one sample per image, where nothing changes). mmengine's
    ``collect_results`` already drops distributed padding.

    Args:
        caption_metrics: subset of ``('METEOR', 'CIDEr')`` (``()`` skips the
            Java scorers).
        text_encoder: config of a ``TASK_UTILS`` text encoder, or an object
            with ``encode(list[str]) -> [N, D]`` and ``name``.
        iou_thr: recall mask-IoU threshold (inclusive).
        text_sim_thr: recall text-similarity threshold (inclusive).
        official_quirks: reproduce the official recall loop (see above).
        scale: factor applied to every reported number.
    """
    default_prefix: Optional[str] = 'gcg'

    def __init__(self,
                 caption_metrics: Sequence[str] = CAPTION_METRICS,
                 text_encoder: Union[dict, Any, None] = dict(
                     type='HFTextEncoder'),
                 iou_thr: float = 0.5,
                 text_sim_thr: float = 0.5,
                 official_quirks: bool = True,
                 scale: float = 100.0,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        unknown = set(caption_metrics) - set(CAPTION_METRICS)
        if unknown:
            raise ValueError(f'GCGMetric: unknown caption metrics '
                             f'{sorted(unknown)}; use {CAPTION_METRICS}')
        self.caption_metrics = tuple(caption_metrics)
        self.text_encoder_cfg = text_encoder
        self._text_encoder = None
        self.iou_thr = iou_thr
        self.text_sim_thr = text_sim_thr
        self.official_quirks = official_quirks
        self.scale = scale

    @property
    def text_encoder(self):
        """The text encoder, built on first use."""
        if self._text_encoder is None:
            self._text_encoder = build_text_encoder(self.text_encoder_cfg)
        return self._text_encoder

    def encoder_name(self) -> str:
        """Name of the recall text encoder (without loading it if unused)."""
        if self._text_encoder is not None:
            return str(
                getattr(self._text_encoder, 'name',
                        type(self._text_encoder).__name__))
        cfg = self.text_encoder_cfg
        if isinstance(cfg, dict):
            return str(
                cfg.get('name') or cfg.get('model_path') or cfg.get('type'))
        return str(getattr(cfg, 'name', type(cfg).__name__))

    # ------------------------------------------------------------------ #
    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Reduce each sample to RLE masks, phrases and captions."""
        for sample in data_samples:
            self.results.append(self.reduce_sample(sample))

    @staticmethod
    def reduce_sample(sample: Any) -> Dict[str, Any]:
        """Compact, picklable GCG record of one data sample."""
        img_id = sample_id(sample)
        where = f'GCG sample img_id={img_id!r}'
        shape = image_shape(sample)
        pred = get_field(sample, 'pred_instances')
        gt = get_field(sample, 'gt_instances')
        gt_rles = masks_to_rles(
            instance_field(gt, 'masks'), shape, where, 'gt_instances.masks')
        pred_rles = masks_to_rles(
            instance_field(pred, 'masks'), shape or _rle_shape(gt_rles),
            where, 'pred_instances.masks')
        if shape is None:
            shape = _rle_shape(gt_rles) or _rle_shape(pred_rles) or (0, 0)
        return dict(
            img_id=img_id,
            height=shape[0],
            width=shape[1],
            caption=predicted_caption(sample),
            references=str_list(
                get_field(sample, 'gt_captions'), where, 'gt_captions'),
            pred_phrases=str_list(
                get_field(sample, 'pred_phrases'), where, 'pred_phrases'),
            gt_phrases=str_list(
                get_field(sample, 'gt_phrases'), where, 'gt_phrases'),
            pred_rles=pred_rles,
            gt_rles=gt_rles)

    # ------------------------------------------------------------------ #
    def compute_metrics(self, results: List[Dict[str, Any]]) -> Dict[str,
                                                                    float]:
        """Aggregate the per-image records into the five GCG numbers."""
        if not results:
            raise ValueError('GCGMetric: no sample to evaluate')
        metrics: Dict[str, float] = {}
        notes: List[str] = []

        if self.caption_metrics:
            metrics.update(self._caption_scores(results))
        metrics['AP50'] = self._ap50(results)
        metrics['mIoU'] = float(
            np.mean([
                greedy_miou(rle_iou_matrix(r['pred_rles'], r['gt_rles']))
                for r in results
            ]))
        recall, skipped = self._recall(results)
        metrics['recall'] = recall
        if skipped:
            notes.append(
                f'GCGMetric: {skipped} image(s) lost their recall matches '
                'to the official #masks != #phrases IndexError '
                '(official_quirks=True)')
        metrics = {k: float(v) * self.scale for k, v in metrics.items()}
        encoder = self.encoder_name()
        log_metric_table(
            f'GCG ({len(results)} images; recall text encoder: {encoder}, '
            f'official_quirks={self.official_quirks})', metrics, notes)
        return metrics

    def _caption_scores(self, results: List[Dict]) -> Dict[str, float]:
        refs, hyps = {}, {}
        for i, r in enumerate(results):
            if not r['references']:
                raise ValueError(f'GCGMetric: img_id={r["img_id"]!r} has no '
                                 '`gt_captions` for METEOR/CIDEr')
            refs[i] = r['references']
            hyps[i] = r['caption']
        corpus, _ = score_captions(refs, hyps, self.caption_metrics)
        return corpus

    @staticmethod
    def _ap50(results: List[Dict]) -> float:
        ids, changed = normalise_image_ids([r['img_id'] for r in results])
        if changed:
            print_log(
                'GCGMetric: mixed img_id types; AP50 ranks images by '
                'str(img_id)', logger='current')
        if len(set(ids)) < len(ids):
            # distinct COCO images, ranked as (img_id, occurrence): stable
            # sort of one-type ids, then integer ids in that order
            order = sorted(range(len(ids)), key=lambda j: ids[j])
            rank = {j: r for r, j in enumerate(order)}
            print_log(
                f'GCGMetric: {len(ids) - len(set(ids))} sample(s) share an '
                'img_id with an earlier one; AP50 scores each as its own '
                'image', logger='current')
            ids = [rank[j] for j in range(len(ids))]
        images = [
            dict(id=i, height=r['height'], width=r['width'])
            for i, r in zip(ids, results)
        ]
        if not any(r['pred_rles'] for r in results):
            print_log(
                'GCGMetric: no predicted mask in the whole split; AP50 = 0 '
                '(the official script crashes here)',
                logger='current',
                level=30)
        return coco_mask_ap50(images, [r['gt_rles'] for r in results],
                              [r['pred_rles'] for r in results])

    def _recall(self, results: List[Dict]):
        """Return (recall fraction, #images hit by the official IndexError)."""
        texts = sorted({
            t
            for r in results for t in r['gt_phrases'] + r['pred_phrases']
        })
        index = {t: i for i, t in enumerate(texts)}
        vectors = (
            self.text_encoder.encode(texts) if texts else np.zeros((0, 0)))
        tp = positives = skipped = 0
        for r in results:
            positives += len(r['gt_phrases'])
            ious = rle_iou_matrix(r['gt_rles'], r['pred_rles'])
            sims = cosine_matrix(
                vectors[[index[t] for t in r['gt_phrases']]],
                vectors[[index[t] for t in r['pred_phrases']]])
            if self.official_quirks:
                try:
                    tp += recall_matches_official(ious, sims, self.iou_thr,
                                                  self.text_sim_thr)
                except IndexError:
                    skipped += 1
            else:
                tp += recall_matches_strict(ious, sims, self.iou_thr,
                                            self.text_sim_thr)
        return (tp / positives if positives > 0 else 0.0), skipped


def _rle_shape(rles: List[Dict]) -> Optional[tuple]:
    return tuple(rles[0]['size']) if rles else None
