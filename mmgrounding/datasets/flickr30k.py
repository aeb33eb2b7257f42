"""Flickr30K Entities in MDETR's ``final_flickr_separateGT_*.json`` form."""
from typing import Any, Dict, Iterable, List, Tuple

import mmengine

from mmgrounding.registry import DATASETS
from .base_grounding import BaseGroundingDataset, RecordFn
from .utils import IMAGE_TOKEN, RecordError, index_coco, xywh_to_xyxy

#: LLaVA-Grounding's Flickr prompt (flickr_instance_new_baseline mapper).
FLICKR_QUESTION = ("Present a compact description of the photo's key "
                   'features.\n(with grounding)')


@DATASETS.register_module()
class Flickr30kEntitiesDataset(BaseGroundingDataset):
    """Grounded captions of Flickr30K Entities (task ``phrase_grounding``).

    Reads MDETR's COCO-style files: one ``images`` entry per (image,
    sentence) with ``caption`` and ``tokens_positive_eval``, one
    ``annotations`` entry per box with ``bbox`` (xywh), ``tokens_positive``
    (char spans of the caption) and ``phrase_ids``. Sizes may be strings.

    A record is one caption: the user asks for a grounded description, the
    assistant answers with the caption; each distinct annotation span is a
    phrase (ordered by start, as LLaVA-G's Flickr mapper does) and owns the
    boxes whose ``tokens_positive`` contain it ("separateGT": several boxes
    per phrase). Extra fields kept for mmdet's ``Flickr30kMetric``:
    ``phrase_ids`` (per instance, the index of its first phrase),
    ``tokens_positive_eval`` (as in the file) and ``gt_captions``.

    Args:
        split (str): ``train``/``val``/``test``; picks the default
            ``final_flickr_separateGT_{split}.json`` when ``ann_file`` is
            empty.
        question (str): The user prompt (default: LLaVA-G's).
    """

    SOURCE = 'flickr30k'
    SPLITS = {
        s: f'final_flickr_separateGT_{s}.json'
        for s in ('train', 'val', 'test')
    }
    TASKS = ('phrase_grounding', )
    DEFAULT_TASK = 'phrase_grounding'

    def __init__(self,
                 *args,
                 split: str = 'train',
                 question: str = FLICKR_QUESTION,
                 **kwargs) -> None:
        self.question = question
        super().__init__(*args, split=split, **kwargs)

    def load_records(self) -> Iterable[Tuple[Any, RecordFn]]:
        data = mmengine.load(self.ann_file, file_format='json')
        images, anns = index_coco(data)
        for image in images:
            yield image.get('id'), (
                lambda image=image: [self._parse(image, anns.get(
                    image.get('id'), []))])

    def _parse(self, image: dict, anns: List[dict]) -> dict:
        caption = image.get('caption')
        if not isinstance(caption, str) or not caption:
            raise RecordError('caption', 'missing caption')
        path = self.img_path(image['file_name'])
        height, width = self.image_size(path, image.get('height'),
                                        image.get('width'))
        spans: Dict[Tuple[int, int], List[int]] = {}
        instances: List[dict] = []
        first_span: List[Tuple[int, int]] = []
        for ann in anns:
            if ann.get('iscrowd', 0):
                continue
            positives = ann.get('tokens_positive') or []
            if not positives:
                raise RecordError(
                    'tokens_positive', f'annotation {ann.get("id")} grounds '
                    'no phrase')
            iid = len(instances)
            instances.append(
                dict(
                    bbox=xywh_to_xyxy(ann['bbox']),
                    mask=ann.get('segmentation') or None,
                    ann_id=ann.get('id'),
                    category='object'))
            for pos in positives:
                start, end = int(pos[0]), int(pos[1])
                if not 0 <= start < end <= len(caption):
                    raise RecordError(
                        'tokens_positive', f'span {list(pos)} outside the '
                        f'caption of length {len(caption)} (annotation '
                        f'{ann.get("id")})')
                spans.setdefault((start, end), []).append(iid)
            first_span.append((int(positives[0][0]), int(positives[0][1])))
        ordered = sorted(spans)
        phrases = [
            dict(
                turn=1,
                start=s,
                end=e,
                text=caption[s:e],
                instance_ids=spans[(s, e)]) for s, e in ordered
        ]
        index = {span: k for k, span in enumerate(ordered)}
        return dict(
            img_path=path,
            img_id=image.get('id'),
            height=height,
            width=width,
            conversations=[
                self.user(f'{IMAGE_TOKEN}\n{self.question}'),
                self.assistant(caption)
            ],
            phrases=phrases,
            instances=instances,
            phrase_ids=[index[span] for span in first_span],
            tokens_positive_eval=image.get('tokens_positive_eval', []),
            original_img_id=image.get('original_img_id'),
            sentence_id=image.get('sentence_id'),
            gt_captions=[caption])
