"""Browse a dataset through its pipeline: one PNG per sample.

Each PNG shows the image with the ground-truth masks (one colour per
grounding target), their boxes, the region prompts (dashed), and the
conversation with every grounded phrase written in its mask's colour.
Ground truth is read from the packed ``DetDataSample`` (``gt_instances``,
``gt_phrases``, ``region_bboxes``); the conversation text comes from the
dataset record. A pipeline without ``PackGroundingInputs`` is drawn from the
record itself (masks decoded with pycocotools).

Which dataset: by default ``cfg.<split>_dataloader.dataset`` (as mmdet's
browse_dataset); with ``--dataset-key NAME`` the dataset dict ``cfg.NAME``
(a dotted path such as ``train_dataloader.dataset.datasets.1`` also works),
so a dataset-only base config such as
``configs/_base_/datasets/synthetic_sources.py`` can be browsed source by
source.

Usage:
    python tools/analysis_tools/browse_dataset.py CONFIG --output-dir DIR \
        [--num 10] [--split train | --dataset-key NAME] \
        [--cfg-options k=v ...]
"""
import argparse
import os
import os.path as osp
import re
import textwrap
from typing import List, Optional, Sequence, Tuple

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmengine.utils import ProgressBar  # noqa: E402

PALETTE = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48),
           (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60),
           (0, 128, 128), (170, 110, 40), (128, 0, 0), (0, 0, 128)]
TEXT_COLOR = (0.16, 0.16, 0.16)


def parse_args(argv: Optional[Sequence[str]] = None):
    parser = argparse.ArgumentParser(description='Browse a dataset')
    parser.add_argument('config', help='config file')
    parser.add_argument('--output-dir', required=True, help='PNG folder')
    parser.add_argument('--num', type=int, default=10, help='samples')
    parser.add_argument(
        '--split', default='train', choices=['train', 'val', 'test'],
        help='which <split>_dataloader.dataset to browse')
    parser.add_argument(
        '--dataset-key', default=None,
        help='browse the dataset dict cfg.<KEY> instead (dotted path, '
        'e.g. gvc_llava_g); overrides --split')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, key=value')
    return parser.parse_args(argv)


def colour(k: int) -> Tuple[float, float, float]:
    r, g, b = PALETTE[k % len(PALETTE)]
    return r / 255, g / 255, b / 255


def dataset_cfg(cfg: Config, split: str = 'train',
                dataset_key: Optional[str] = None) -> dict:
    """The dataset dict to build: ``cfg.<dataset_key>`` (dotted path; list
    items by index) or ``cfg.<split>_dataloader.dataset``."""
    if dataset_key is None:
        key = f'{split}_dataloader'
        if key not in cfg:
            raise KeyError(f'{cfg.filename} has no {key}; pass '
                           '--dataset-key to pick a dataset dict')
        return cfg[key].dataset
    node, path = cfg, []
    for part in dataset_key.split('.'):
        path.append(part)
        try:
            node = node[int(part)] if isinstance(node, (list, tuple)) \
                else node[part]
        except (KeyError, IndexError, ValueError):
            names = sorted(k for k, v in cfg.items()
                           if isinstance(v, dict) and 'type' in v)
            raise KeyError(
                f'{cfg.filename} has no {".".join(path)!r}; dataset dicts at '
                f'the top level: {names}') from None
    if not isinstance(node, dict) or 'type' not in node:
        raise TypeError(f'{dataset_key!r} in {cfg.filename} is not a '
                        f'dataset dict (a dict with "type")')
    return node


def build_dataset(cfg: Config, split: str = 'train',
                  dataset_key: Optional[str] = None):
    """Build the dataset chosen by :func:`dataset_cfg` in the config's
    scope."""
    import mmdet.datasets  # noqa: F401  (mmdet transforms)

    import mmgrounding.datasets  # noqa: F401
    from mmgrounding.registry import DATASETS
    init_default_scope(cfg.get('default_scope', 'mmgrounding'))
    return DATASETS.build(dataset_cfg(cfg, split, dataset_key))


def record_of(dataset, idx: int) -> dict:
    """The dataset record behind sample ``idx`` (ConcatDataset aware)."""
    if hasattr(dataset, 'cumulative_sizes'):
        import bisect
        d = bisect.bisect_right(dataset.cumulative_sizes, idx)
        start = dataset.cumulative_sizes[d - 1] if d else 0
        return record_of(dataset.datasets[d], idx - start)
    if hasattr(dataset, 'dataset') and not hasattr(dataset, 'get_data_info'):
        return record_of(dataset.dataset, idx)
    return dataset.get_data_info(idx)


def conversation_segments(record: dict, gt_phrases: Optional[Sequence[str]]
                          ) -> List[Tuple[str, tuple]]:
    """``[(text, colour)]`` of the conversation; the k-th grounded phrase
    (conversation order) gets colour k. With ``gt_phrases`` (packed sample),
    a phrase is coloured only if it is the next expected target."""
    phrases = sorted(record.get('phrases', []),
                     key=lambda p: (p['turn'], p['start']))
    by_turn = {}
    for p in phrases:
        by_turn.setdefault(p['turn'], []).append(p)
    segments, k = [], 0
    for t, turn in enumerate(record.get('conversations', [])):
        role = 'USER' if turn['role'] == 'user' else 'ASSISTANT'
        segments.append((f'{role}: ', TEXT_COLOR))
        text, cursor = turn['text'], 0
        for p in by_turn.get(t, []):
            if p['start'] < cursor:
                continue
            segments.append((text[cursor:p['start']], TEXT_COLOR))
            grounded = bool(p.get('instance_ids')) and (
                gt_phrases is None or
                (k < len(gt_phrases) and
                 gt_phrases[k].strip() == p['text'].strip()))
            if grounded:
                segments.append((f'[{p["text"]}]', colour(k)))
                k += 1
            else:
                segments.append((p['text'], TEXT_COLOR))
            cursor = p['end']
        segments.append((text[cursor:] + '\n', TEXT_COLOR))
    return segments


def draw_segments(ax, segments, width: int = 72) -> None:
    """Write coloured text segments (monospace), wrapped at ``width``
    characters; each run of one colour is one ``Text`` placed at its
    character column."""
    lines: List[List[Tuple[str, tuple]]] = [[]]
    used = 0
    for text, col in segments:
        for n, part in enumerate(text.split('\n')):
            if n:
                lines.append([])
                used = 0
            # words and the spaces between them, kept as written (segments
            # split mid-sentence must not gain or lose spaces)
            for piece in re.findall(r'\S+|\s+', part):
                if piece.isspace():
                    if used == 0:
                        continue  # no leading spaces on a wrapped line
                elif used and used + len(piece) > width:
                    lines.append([])
                    used = 0
                line = lines[-1]
                if line and line[-1][1] == col:
                    line[-1] = (line[-1][0] + piece, col)
                else:
                    line.append((piece, col))
                used += len(piece)
    ax.axis('off')
    renderer = ax.figure.canvas.get_renderer()
    probe = ax.text(0, 0, 'M' * 50, family='monospace', fontsize=8)
    char_w = probe.get_window_extent(renderer=renderer).width / 50 / \
        ax.get_window_extent(renderer=renderer).width
    probe.remove()
    line_h = 1.0 / max(len(lines) + 1, 36)
    for i, line in enumerate(lines):
        column, y = 0, 1.0 - (i + 1) * line_h
        for piece, col in line:
            if piece:
                ax.text(column * char_w, y, piece, color=col,
                        family='monospace', fontsize=8,
                        transform=ax.transAxes, va='top',
                        fontweight='bold' if col != TEXT_COLOR else None)
            column += len(piece)


def gt_from_sample(out: dict):
    """``(image RGB HxWx3, masks [M,H,W], boxes [M,4], regions [R,4],
    gt_phrases)`` from a packed pipeline output."""
    sample = out['data_samples']
    image = out['inputs'].permute(1, 2, 0).cpu().numpy()
    masks = np.zeros((0, ) + image.shape[:2], bool)
    boxes = np.zeros((0, 4))
    if 'gt_instances' in sample and 'masks' in sample.gt_instances:
        gt_masks = sample.gt_instances.masks
        masks = gt_masks.to_ndarray().astype(bool) if hasattr(
            gt_masks, 'to_ndarray') else np.asarray(gt_masks, bool)
        boxes = np.asarray(sample.gt_instances.bboxes.cpu()
                           if hasattr(sample.gt_instances.bboxes, 'cpu') else
                           sample.gt_instances.bboxes)
    regions = np.zeros((0, 4))
    if 'region_bboxes' in sample:
        regions = sample.region_bboxes.cpu().numpy()
    return image, masks, boxes, regions, sample.metainfo.get('gt_phrases')


def gt_from_record(record: dict):
    """Same as :func:`gt_from_sample` from a raw record: one target per
    grounded phrase (union of its instances)."""
    import cv2
    from pycocotools import mask as mask_utils
    img = cv2.imread(record['img_path'])
    if img is None:
        raise FileNotFoundError(record['img_path'])
    image = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    h, w = image.shape[:2]
    masks, boxes = [], []
    phrases = sorted(record.get('phrases', []),
                     key=lambda p: (p['turn'], p['start']))
    for p in phrases:
        if not p.get('instance_ids'):
            continue
        m = np.zeros((h, w), bool)
        for i in p['instance_ids']:
            seg = record['instances'][i].get('mask')
            if seg is None:
                x1, y1, x2, y2 = (int(round(v))
                                  for v in record['instances'][i]['bbox'])
                m[y1:y2, x1:x2] = True
                continue
            if isinstance(seg, list):
                rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
            elif isinstance(seg.get('counts'), list):
                rle = mask_utils.frPyObjects(seg, h, w)
            else:
                rle = dict(seg)
                if isinstance(rle['counts'], str):
                    rle['counts'] = rle['counts'].encode()
            m |= mask_utils.decode(rle).astype(bool)
        masks.append(m)
        ys, xs = np.nonzero(m)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
                     if len(xs) else [0, 0, 0, 0])
    regions = np.array([r['bbox'] for r in record.get('regions', [])] or
                       np.zeros((0, 4)))
    masks = np.stack(masks) if masks else np.zeros((0, h, w), bool)
    return image, masks, np.array(boxes or np.zeros((0, 4))), regions, None


def render(out_file: str, image: np.ndarray, masks: np.ndarray,
           boxes: np.ndarray, regions: np.ndarray, segments,
           title: str) -> None:
    """Save the image panel (masks, boxes, regions) and the text panel."""
    canvas = image.astype(np.float32) / 255.0
    for k, m in enumerate(masks):
        canvas[m] = 0.45 * canvas[m] + 0.55 * np.array(colour(k))
    fig, (ax_img, ax_txt) = plt.subplots(
        1, 2, figsize=(13, 6), gridspec_kw=dict(width_ratios=[1, 1.2]))
    fig.subplots_adjust(left=0.02, right=0.99, top=0.93, bottom=0.03,
                        wspace=0.04)
    ax_img.imshow(canvas)
    ax_img.set_title(title, fontsize=8)
    ax_img.axis('off')
    for k, (x1, y1, x2, y2) in enumerate(boxes):
        ax_img.add_patch(
            # pixel i covers [i - 0.5, i + 0.5] in imshow coordinates
            plt.Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1,
                          fill=False, edgecolor=colour(k), linewidth=1.5))
    for k, (x1, y1, x2, y2) in enumerate(regions):
        ax_img.add_patch(
            plt.Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1,
                          fill=False, edgecolor='white', linestyle='--',
                          linewidth=1.5))
        ax_img.text(x1, y1, f'r{k}', color='white', fontsize=7,
                    va='bottom', backgroundcolor='black')
    fig.canvas.draw()
    draw_segments(ax_txt, segments)
    fig.savefig(out_file, dpi=100)
    plt.close(fig)


def browse(cfg: Config, output_dir: str, num: int = 10, split: str = 'train',
           dataset_key: Optional[str] = None,
           progress: bool = True) -> List[str]:
    """Render the first ``num`` samples of the chosen dataset to
    ``output_dir/{idx:05d}_{img_id}.png``; returns the file paths."""
    dataset = build_dataset(cfg, split, dataset_key)
    os.makedirs(output_dir, exist_ok=True)
    num = min(num, len(dataset))
    bar = ProgressBar(num) if progress else None
    files = []
    for idx in range(num):
        out = dataset[idx]
        record = record_of(dataset, idx)
        if isinstance(out, dict) and 'data_samples' in out:
            image, masks, boxes, regions, gt_phrases = gt_from_sample(out)
        else:
            image, masks, boxes, regions, gt_phrases = gt_from_record(record)
        segments = conversation_segments(record, gt_phrases)
        title = textwrap.shorten(
            f'{record.get("source")} | {record.get("task")} | '
            f'img_id={record.get("img_id")}', 80)
        name = f'{idx:05d}_{str(record.get("img_id")).replace("/", "_")}.png'
        files.append(osp.join(output_dir, name))
        render(files[-1], image, masks, boxes, regions, segments, title)
        if bar is not None:
            bar.update()
    return files


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    files = browse(cfg, args.output_dir, args.num, args.split,
                   args.dataset_key)
    print(f'\nsaved {len(files)} images to {args.output_dir}')


if __name__ == '__main__':
    main()
