"""Region-level captioning: METEOR and CIDEr (RefCOCOg, Visual Genome)."""
from typing import Any, Dict, List, Optional, Sequence

from mmengine.evaluator import BaseMetric

from mmgrounding.registry import METRICS
from ..functional.caption import CAPTION_METRICS, score_captions
from ..functional.sample_utils import (get_field, predicted_caption,
                                       sample_id, str_list)
from ..functional.table import log_metric_table


@METRICS.register_module()
class RegionCaptionMetric(BaseMetric):
    """METEOR and CIDEr of region captions, as GLaMM's region captioning.

    GLaMM evaluates one caption per region (each GT "image" entry is one
    region) with pycocoevalcap ``COCOEvalCap`` (PTB tokenizer, METEOR corpus
    score, CIDEr-D); see :func:`score_captions`. Every sample is one scored
    item with its own references, also when two samples share an
    ``id_key`` value (several regions of one image): nothing is merged or
    dropped, and mmengine's ``collect_results`` already removes distributed
    padding. The caption is ``pred_caption`` (else the GLaMM-cleaned
    ``pred_text``); references are ``gt_captions``.

    Args:
        caption_metrics: subset of ``('METEOR', 'CIDEr')``.
        id_key: data-sample field that names a region in error messages.
        scale: factor applied to the reported numbers.
    """
    default_prefix: Optional[str] = 'region_caption'

    def __init__(self,
                 caption_metrics: Sequence[str] = CAPTION_METRICS,
                 id_key: str = 'img_id',
                 scale: float = 100.0,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        unknown = set(caption_metrics) - set(CAPTION_METRICS)
        if unknown or not caption_metrics:
            raise ValueError('RegionCaptionMetric: caption_metrics must be a '
                             f'non-empty subset of {CAPTION_METRICS}, got '
                             f'{list(caption_metrics)}')
        self.caption_metrics = tuple(caption_metrics)
        self.id_key = id_key
        self.scale = scale

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Keep the region id, the predicted caption and the references."""
        for sample in data_samples:
            region = sample_id(sample, self.id_key)
            refs = str_list(
                get_field(sample, 'gt_captions'),
                f'region caption sample {self.id_key}={region!r}',
                'gt_captions')
            self.results.append(
                dict(
                    id=region,
                    caption=predicted_caption(sample),
                    references=refs))

    def compute_metrics(self, results: List[Dict]) -> Dict[str, float]:
        """Score one hypothesis per sample (keyed by its position)."""
        missing = [r['id'] for r in results if not r['references']]
        if missing:
            raise ValueError('RegionCaptionMetric: no gt_captions for '
                             f'{self.id_key} {missing[:5]}')
        refs: Dict[Any, List[str]] = {
            i: r['references']
            for i, r in enumerate(results)
        }
        hyps = {i: r['caption'] for i, r in enumerate(results)}
        corpus, _ = score_captions(refs, hyps, self.caption_metrics)
        metrics = {k: v * self.scale for k, v in corpus.items()}
        log_metric_table(f'Region captioning ({len(hyps)} regions)', metrics)
        return metrics
