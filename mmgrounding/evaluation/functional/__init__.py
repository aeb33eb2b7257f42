"""Pure scoring functions shared by the metrics and the offline tools."""
from .caption import (CAPTION_METRICS, get_meteor, ptb_tokenize,
                      score_captions)
from .gcg import (coco_mask_ap50, greedy_miou, normalise_image_ids,
                  recall_matches_official, recall_matches_strict)
from .mask_ops import encode_rle, rle_area, rle_iou_matrix, to_bool_masks
from .refseg import intersection_union, refseg_scores
from .table import log_metric_table

__all__ = [
    'CAPTION_METRICS', 'get_meteor', 'ptb_tokenize',
    'score_captions', 'coco_mask_ap50', 'greedy_miou', 'normalise_image_ids',
    'recall_matches_official', 'recall_matches_strict', 'encode_rle',
    'rle_area', 'rle_iou_matrix', 'to_bool_masks', 'intersection_union',
    'refseg_scores', 'log_metric_table'
]
