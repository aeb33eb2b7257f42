"""Flickr30K Entities in MDETR's ``final_flickr_separateGT_*.json`` form."""
from typing import Any, Dict, Iterable, List, Tuple

from mmgrounding.registry import DATASETS
from .base_grounding import BaseGroundingDataset, RecordFn
from .utils import (IMAGE_TOKEN, AnnotationFile, RecordError, index_coco,
                    require_text, xywh_to_xyxy)

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

    def load_records(self) -> Iterable[Tuple[str, Any, RecordFn]]:
        ann = AnnotationFile(self.ann_file, dict, 'an MDETR COCO-style '
                             'object with "images" and "annotations"')
        images, anns = index_coco(ann.data, self.ann_file)
        for image in images:
            yield self.ann_file, image['id'], (
                lambda image=image: [self._parse(ann, image, anns.get(
                    image['id'], []))])

    def _parse(self, ann_file: AnnotationFile, image: dict,
               anns: List[dict]) -> dict:
        ann_file.check_keys(image)
        caption = require_text(image.get('caption'), 'caption')
        if 'tokens_positive_eval' not in image:
            raise RecordError('tokens_positive_eval', 'missing (mmdet\'s '
                              'Flickr30kMetric needs it)')
        path = self.img_path(image.get('file_name'))
        height, width = self.image_size(path, image.get('height'),
                                        image.get('width'))
        spans: Dict[Tuple[int, int], List[int]] = {}
        instances: List[dict] = []
        first_span: List[Tuple[int, int]] = []
        for ann in anns:
            ann_file.check_keys(ann)
            where = dict(file=self.ann_file, record=ann['id'])
            if ann.get('iscrowd', 0):
                continue
            positives = ann.get('tokens_positive')
            if not isinstance(positives, list) or not positives:
                raise RecordError(
                    'tokens_positive', 'the annotation grounds no phrase',
                    value=positives, **where)
            try:
                bbox = xywh_to_xyxy(ann.get('bbox') or [])
            except (TypeError, ValueError):
                raise RecordError('bbox', 'expected [x, y, w, h]',
                                  value=ann.get('bbox'), **where) from None
            iid = len(instances)
            instances.append(
                self.make_instance(bbox, ann.get('segmentation') or None,
                                   ann['id'], 'object', height, width,
                                   **where))
            for pos in positives:
                if not isinstance(pos, (list, tuple)) or len(pos) != 2 or \
                        not all(isinstance(v, int) for v in pos):
                    raise RecordError('tokens_positive',
                                      'expected [start, end] spans',
                                      value=positives, **where)
                start, end = pos
                if not 0 <= start < end <= len(caption):
                    raise RecordError(
                        'tokens_positive', f'span {list(pos)} outside the '
                        f'caption of length {len(caption)}', value=list(pos),
                        **where)
                spans.setdefault((start, end), []).append(iid)
            first_span.append((positives[0][0], positives[0][1]))
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
            img_id=image['id'],
            height=height,
            width=width,
            conversations=[
                self.user(f'{IMAGE_TOKEN}\n{self.question}'),
                self.assistant(caption)
            ],
            phrases=phrases,
            instances=instances,
            phrase_ids=[index[span] for span in first_span],
            tokens_positive_eval=image['tokens_positive_eval'],
            original_img_id=image.get('original_img_id'),
            sentence_id=image.get('sentence_id'),
            gt_captions=[caption])
