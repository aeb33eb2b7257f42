"""Time GCG evaluation on a synthetic split (default 1,000 images x 5
phrases).

Builds random rectangle/ellipse masks, jittered predictions, random phrases
and captions as data-sample dicts, then times ``GCGMetric.process`` (RLE
encoding) and each part of ``compute_metrics`` (METEOR + CIDEr with Java
started once, AP50, mIoU, recall with the text encoder). Prints a table.

    python tools/analysis_tools/benchmark_metrics.py --images 1000 --phrases 5
"""
import argparse
import os
import sys
import time
from typing import Dict, List, Optional

os.environ.setdefault('HF_HUB_OFFLINE', '1')

import numpy as np  # noqa: E402
import torch  # noqa: E402
from mmengine.utils import ProgressBar  # noqa: E402
from terminaltables import AsciiTable  # noqa: E402

WORDS = ('man woman child dog cat car bus tree road house window door red '
         'blue green small large old young wooden white black sitting '
         'standing walking near behind under beside holding wearing '
         'shirt hat bag table chair grass sky building street bicycle '
         'horse field water boat bird flower wall sign light').split()


def synthetic_samples(num_images: int, num_phrases: int, height: int,
                      width: int, seed: int = 0) -> List[Dict]:
    """Data-sample dicts as a GCG model + dataset would produce them."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    samples = []
    for i in range(num_images):
        gt = np.zeros((num_phrases, height, width), dtype=bool)
        pred = np.zeros_like(gt)
        for k in range(num_phrases):
            cy, cx = rng.uniform(0.2, 0.8) * height, rng.uniform(0.2,
                                                                 0.8) * width
            ry, rx = rng.uniform(0.05, 0.3) * height, rng.uniform(
                0.05, 0.3) * width
            gt[k] = ((yy - cy) / ry)**2 + ((xx - cx) / rx)**2 <= 1
            dy, dx = rng.normal(0, 0.2) * ry, rng.normal(0, 0.2) * rx
            pred[k] = ((yy - cy - dy) / ry)**2 + (
                (xx - cx - dx) / rx)**2 <= 1
        phrases = [
            ' '.join(rng.choice(WORDS, size=rng.integers(1, 4)))
            for _ in range(num_phrases)
        ]
        pred_phrases = [
            p if rng.random() < 0.7 else ' '.join(rng.choice(WORDS, size=2))
            for p in phrases
        ]

        def caption(parts):
            return ' '.join(
                f'the {p} is {" ".join(rng.choice(WORDS, size=3))}'
                for p in parts) + '.'

        samples.append(
            dict(
                img_id=f'img_{i:06d}',
                ori_shape=(height, width),
                pred_caption=caption(pred_phrases),
                pred_phrases=pred_phrases,
                pred_instances=dict(masks=torch.from_numpy(pred)),
                gt_instances=dict(masks=torch.from_numpy(gt)),
                gt_phrases=phrases,
                gt_captions=[caption(phrases)]))
    return samples


def run(num_images: int = 1000,
        num_phrases: int = 5,
        height: int = 480,
        width: int = 640,
        text_encoder: Optional[dict] = None) -> Dict[str, float]:
    """Return seconds per stage (and the metric values under ``metric/``)."""
    from mmgrounding.evaluation import GCGMetric
    from mmgrounding.evaluation.functional import (greedy_miou,
                                                   rle_iou_matrix)
    samples = synthetic_samples(num_images, num_phrases, height, width)
    metric = GCGMetric(text_encoder=text_encoder or dict(
        type='HFTextEncoder'))
    times: Dict[str, float] = {}
    bar = ProgressBar((len(samples) + 15) // 16, file=sys.stderr)
    t0 = time.perf_counter()
    for start in range(0, len(samples), 16):
        metric.process({}, samples[start:start + 16])
        bar.update()  # microseconds next to a chunk's RLE encoding
    times['process (RLE encode)'] = time.perf_counter() - t0
    sys.stderr.write('\n')
    results = metric.results
    t = time.perf_counter()
    captions = metric._caption_scores(results)
    times['METEOR + CIDEr (Java)'] = time.perf_counter() - t
    t = time.perf_counter()
    ap50 = metric._ap50(results)
    times['AP50 (COCOeval)'] = time.perf_counter() - t
    t = time.perf_counter()
    miou = float(
        np.mean([
            greedy_miou(rle_iou_matrix(r['pred_rles'], r['gt_rles']))
            for r in results
        ]))
    times['mIoU'] = time.perf_counter() - t
    t = time.perf_counter()
    recall, _ = metric._recall(results)
    times[f'recall ({metric.encoder_name()})'] = time.perf_counter() - t
    times['total'] = time.perf_counter() - t0
    values = dict(captions, AP50=ap50, mIoU=miou, recall=recall)
    times.update({f'metric/{k}': v for k, v in values.items()})
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--images', type=int, default=1000)
    parser.add_argument('--phrases', type=int, default=5)
    parser.add_argument('--height', type=int, default=480)
    parser.add_argument('--width', type=int, default=640)
    parser.add_argument('--threads', type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    times = run(args.images, args.phrases, args.height, args.width)
    rows = [['stage', 'seconds']]
    rows += [[k, f'{v:.2f}'] for k, v in times.items()
             if not k.startswith('metric/')]
    rows += [[k, f'{v:.4f}'] for k, v in times.items()
             if k.startswith('metric/')]
    print(
        AsciiTable(
            rows,
            title=f'GCG evaluation, {args.images} images x {args.phrases} '
            f'phrases, {args.height}x{args.width}').table)


if __name__ == '__main__':
    main()
