"""GCG (grounded conversation generation) scoring functions.

These reproduce ``eval/gcg/evaluate.py`` of GLaMM (mbzuai-oryx/groundingLMM)
on already-decoded inputs: IoU matrices, similarity matrices and RLE lists.
The functions are pure; :class:`~mmgrounding.evaluation.GCGMetric` and the
official-JSON loader both call them.
"""
import contextlib
import io
from typing import Any, Dict, List, Sequence, Tuple, Union

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from .mask_ops import RLE, rle_area

ImgId = Union[int, str]


def greedy_miou(iou: np.ndarray) -> float:
    """Official GCG per-image mIoU by greedy one-to-one pairing.

    Args:
        iou: IoU matrix [num_pred, num_gt] (rows = predictions). NaN marks a
            pair of empty masks (0/0).

    Repeatedly takes ``np.argmax`` (ties: first entry in row-major order,
    i.e. lowest prediction then lowest GT index), records it and deletes its
    row and column, while the matrix is non-empty and ``max > 0``. A NaN
    anywhere makes ``np.max`` NaN and stops the loop at once. Unmatched GT and
    extra predictions are not penalised. Greedy is not optimal:
    ``[[1/3, 1/3], [1/3, 1/11]]`` gives ``(1/3 + 1/11) / 2``.

    Returns:
        float: mean of the recorded IoUs, 0.0 when none was recorded.
    """
    mat = np.array(iou, dtype=np.float64)
    paired = []
    while mat.size > 0 and np.max(mat) > 0:
        r, c = np.unravel_index(np.argmax(mat), mat.shape)
        paired.append(mat[r, c])
        mat = np.delete(np.delete(mat, r, axis=0), c, axis=1)
    return float(np.mean(paired)) if paired else 0.0


def recall_matches_official(ious: np.ndarray, text_sims: np.ndarray,
                            iou_thr: float = 0.5,
                            text_thr: float = 0.5) -> int:
    """Official GCG recall matching for one image; returns #matches.

    Args:
        ious: [num_gt_masks, num_pred_masks] (rows = GT). NaN allowed.
        text_sims: [num_gt_phrases, num_pred_phrases] cosine similarities.

    Loop: ``argmax`` of ``ious`` (first NaN if any, else first maximum);
    stop at the *first* candidate with ``iou < iou_thr`` or
    ``sim < text_thr`` (so 0.5 passes and a NaN IoU passes the IoU test);
    otherwise count it and zero its row and column in both matrices.

    Raises:
        IndexError: exactly where the official code raises it: the picked
            cell has IoU >= ``iou_thr`` (or NaN) and lies outside
            ``text_sims`` (#masks != #phrases). The caller decides what it
            means (the official script then drops the image's matches).
    """
    ious = np.array(ious, dtype=np.float64)
    sims = np.array(text_sims, dtype=np.float64)
    matches = 0
    while ious.size > 0:
        idx = np.unravel_index(np.argmax(ious), ious.shape)
        if ious[idx] < iou_thr or sims[idx] < text_thr:
            break
        matches += 1
        ious[idx[0], :] = 0
        ious[:, idx[1]] = 0
        sims[idx[0], :] = 0
        sims[:, idx[1]] = 0
    return matches


def recall_matches_strict(ious: np.ndarray, text_sims: np.ndarray,
                          iou_thr: float = 0.5,
                          text_thr: float = 0.5) -> int:
    """Corrected GCG recall matching for one image; returns #matches.

    Differences from :func:`recall_matches_official`: a failing candidate is
    skipped instead of ending the search; a NaN IoU (two empty masks) never
    matches; a mask without a phrase (``#masks != #phrases``) cannot match
    instead of raising. Candidates are still taken greedily by decreasing
    IoU, ties in row-major order, one-to-one.

    Args:
        ious: [num_gt_masks, num_pred_masks].
        text_sims: [num_gt_phrases, num_pred_phrases]; cell (i, j) is used
            for mask pair (i, j) when both indices exist.
    """
    ious = np.nan_to_num(np.array(ious, dtype=np.float64), nan=0.0)
    sims = np.full(ious.shape, -np.inf)
    rows = min(ious.shape[0], text_sims.shape[0])
    cols = min(ious.shape[1], text_sims.shape[1])
    sims[:rows, :cols] = np.asarray(text_sims)[:rows, :cols]
    flat = np.argsort(-ious, axis=None, kind='stable')
    used_r, used_c = set(), set()
    matches = 0
    for f in flat:
        r, c = np.unravel_index(f, ious.shape)
        if ious[r, c] < iou_thr:
            break
        if r in used_r or c in used_c or sims[r, c] < text_thr:
            continue
        used_r.add(r)
        used_c.add(c)
        matches += 1
    return matches


def coco_mask_ap50(images: Sequence[Dict[str, Any]],
                   gt_rles: Sequence[Sequence[RLE]],
                   pred_rles: Sequence[Sequence[RLE]]) -> float:
    """Class-agnostic mask AP at IoU 0.5 exactly as the GCG script runs it.

    Every GT and prediction is category 1 and every prediction has score
    1.0, so COCOeval's stable mergesort ranks predictions by sorted image id
    and then by their order inside the image: AP depends on mask order.
    Returns ``stats[1]`` of ``COCOeval(..., 'segm')`` (AP@0.5, area all,
    maxDets 100) as a fraction in [0, 1]; -1 if no GT exists; 0.0 when no
    image has a predicted mask (the official script crashes there).

    Args:
        images: one dict per image with ``id``, ``height``, ``width``.
        gt_rles: GT RLEs per image, in file/token order.
        pred_rles: predicted RLEs per image, in output order.
    """
    gt_anns, dt_anns = [], []
    for img, gts, dts in zip(images, gt_rles, pred_rles):
        for rle in gts:
            gt_anns.append(
                dict(
                    id=len(gt_anns) + 1,
                    image_id=img['id'],
                    category_id=1,
                    segmentation=rle,
                    area=float(rle_area([rle])[0]),
                    bbox=_rle_bbox(rle),
                    iscrowd=0))
        for rle in dts:
            dt_anns.append(
                dict(
                    image_id=img['id'],
                    category_id=1,
                    segmentation=rle,
                    score=1.0))
    if not dt_anns:
        return 0.0
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet):
        coco_gt = COCO()
        coco_gt.dataset = dict(
            images=[dict(img) for img in images],
            annotations=gt_anns,
            categories=[dict(id=1, name='object')])
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(dt_anns)
        coco_eval = COCOeval(coco_gt, coco_dt, 'segm')
        coco_eval.params.catIds = [1]
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return float(coco_eval.stats[1])


def _rle_bbox(rle: RLE) -> List[float]:
    from pycocotools import mask as mask_utils
    return [float(v) for v in mask_utils.toBbox(rle)]


def normalise_image_ids(ids: Sequence[ImgId]) -> Tuple[List[ImgId], bool]:
    """Return COCO-usable image ids: kept as they are when all ids share one
    type (so COCOeval sorts them like the official script), else ``str``.

    Returns:
        tuple: (ids, changed) where ``changed`` says ids were stringified.
    """
    types = {type(i) for i in ids}
    if len(types) <= 1:
        return list(ids), False
    return [str(i) for i in ids], True
