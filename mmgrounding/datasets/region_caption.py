"""Region-level captioning: MDETR RefCOCOg and Visual Genome (GLaMM)."""
from typing import Any, Iterable, List, Optional, Sequence, Tuple

from mmgrounding.registry import DATASETS
from .base_grounding import BaseGroundingDataset, RecordFn
from .utils import (IMAGE_TOKEN, AnnotationFile, RecordError,
                    default_ann_file, index_coco, seeded_rng, xywh_to_xyxy)

#: The instruction of GLaMM's region-caption evaluation
#: (eval/region_captioning/infer.py); ``<region>`` marks the placeholder.
REGION_EVAL_QUESTION = ('Can you provide me with a detailed description of '
                        'the region in the picture marked by <region>?')
REGION_QUESTIONS = (
    REGION_EVAL_QUESTION,
    'Please describe the region <region> of the image in detail.',
    'What is in the region <region>? Describe it.',
)

#: format -> split -> default file.
REGION_FILES = {
    'refcocog': {
        'train': 'mdetr_annotations/finetune_refcocog_train.json',
        'val': 'mdetr_annotations/finetune_refcocog_val_captions.json',
    },
    'vg': {
        'train': 'train.json',
        'test': 'test_caption.json'
    },
}


@DATASETS.register_module()
class RegionCaptionDataset(BaseGroundingDataset):
    """``<bbox>`` prompt -> caption of that region (task
    ``'region_caption'``).

    Reads COCO-style files: the caption of a box is its annotation's
    ``caption`` (Visual Genome ``train.json``, the evaluators' files) or,
    failing that, its image entry's ``caption`` (MDETR
    ``finetune_refcocog_*.json``: one image entry per referring sentence).

    * ``one_per_region=False`` (training): one record per image entry, up to
      ``max_regions_per_image`` boxes (drawn with the seeded generator) as a
      multi-turn chat, one question with one placeholder per box.
    * ``one_per_region=True`` (evaluation): one record per annotation;
      ``img_id`` is the image entry id, which is what the official evaluator
      matches predictions on (``*_captions.json`` / ``test_caption.json``
      have annotation id == image id).

    ``regions`` hold the xyxy boxes, ``instances`` the same boxes (no masks),
    ``gt_captions`` the reference captions.

    Args:
        format (str): ``'refcocog'`` or ``'vg'`` (only picks default files
            and the ``source`` name; both shapes are read by both).
        split (str): A split of that format.
        region_token (str): Placeholder written in the question (``<bbox>``
            for GLaMM; the record names it in ``region_token``).
        question_templates (Sequence[str]): Prompts containing
            ``<region>``; evaluation uses the first.
    """

    TASKS = ('region_caption', )
    DEFAULT_TASK = 'region_caption'

    def __init__(self,
                 *args,
                 format: str = 'refcocog',
                 split: str = 'train',
                 one_per_region: bool = False,
                 max_regions_per_image: Optional[int] = 10,
                 region_token: str = '<bbox>',
                 question_templates: Sequence[str] = REGION_QUESTIONS,
                 **kwargs) -> None:
        kwargs['ann_file'] = default_ann_file('RegionCaptionDataset',
                                              REGION_FILES, format, split,
                                              kwargs.get('ann_file'))
        self.format = format
        self.SOURCE = f'region_caption_{format}'
        self.SPLITS = tuple(REGION_FILES[format])
        self.one_per_region = one_per_region
        self.max_regions_per_image = max_regions_per_image
        self.region_token = region_token
        self.question_templates = tuple(question_templates)
        super().__init__(*args, split=split, **kwargs)

    def load_records(self) -> Iterable[Tuple[str, Any, RecordFn]]:
        ann = AnnotationFile(self.ann_file, dict, 'a COCO-style object with '
                             '"images" and "annotations"')
        images, anns = index_coco(ann.data, self.ann_file)
        for image in images:
            all_anns = anns.get(image['id'], [])
            image_anns = [a for a in all_anns if not a.get('ignore', False)]
            if not image_anns:
                # never a prompt-only record: an error, or a skip with a
                # warning under skip_invalid
                yield self.ann_file, image['id'], self._raiser(RecordError(
                    'annotations', f'no usable region for the image '
                    f'({len(all_anns)} annotation(s), all with ignore)'
                    if all_anns else 'no region annotation for the image'))
            elif self.one_per_region:
                for a in image_anns:
                    yield self.ann_file, a['id'], (
                        lambda im=image, a=a: [self._parse(ann, im, [a],
                                                           True)])
            else:
                yield self.ann_file, image['id'], (
                    lambda im=image, a=image_anns: [self._parse(
                        ann, im, a, False)])

    @staticmethod
    def _raiser(err: RecordError) -> RecordFn:

        def fn():
            raise err

        return fn

    def _parse(self, ann_file: AnnotationFile, image: dict, anns: List[dict],
               evaluation: bool) -> dict:
        ann_file.check_keys(image)
        path = self.img_path(image.get('file_name'))
        height, width = self.image_size(path, image.get('height'),
                                        image.get('width'))
        rng = seeded_rng(self.seed, 'region', image.get('id'),
                         anns[0].get('id') if evaluation and anns else None)
        if not evaluation and self.max_regions_per_image is not None \
                and len(anns) > self.max_regions_per_image:
            keep = sorted(
                rng.choice(
                    len(anns), self.max_regions_per_image, replace=False))
            anns = [anns[i] for i in keep]
        conversations, regions, instances, captions = [], [], [], []
        for k, ann in enumerate(anns):
            ann_file.check_keys(ann)
            where = dict(file=self.ann_file, record=ann['id'])
            if 'caption' in ann:
                caption, cfield = ann['caption'], 'caption'
            else:
                caption, cfield = image.get('caption'), 'caption'
                where = dict(file=self.ann_file, record=image['id'])
            if not isinstance(caption, str) or not caption.strip():
                raise RecordError(cfield, 'no caption for the region',
                                  value=caption, **where)
            caption = caption.strip()
            box = ann.get('bbox')
            if not isinstance(box, list) or len(box) != 4:
                raise RecordError('bbox', 'expected [x, y, w, h]', value=box,
                                  file=self.ann_file, record=ann['id'])
            bbox = xywh_to_xyxy(box)
            if evaluation:
                template = self.question_templates[0]
            else:
                template = self.choose(rng, self.question_templates)
            question = template.replace('<region>', self.region_token)
            if k == 0:
                question = f'{IMAGE_TOKEN}\n{question}'
            conversations += [self.user(question), self.assistant(caption)]
            instances.append(
                self.make_instance(bbox, None, ann['id'], 'object', height,
                                   width, file=self.ann_file,
                                   record=ann['id']))
            regions.append(dict(instance_id=k, bbox=list(bbox)))
            captions.append(caption)
        record = dict(
            img_path=path,
            img_id=image.get('id'),
            height=height,
            width=width,
            conversations=conversations,
            regions=regions,
            instances=instances,
            region_token=self.region_token,
            gt_captions=captions)
        if evaluation and anns:
            record['region_id'] = anns[0].get('id')
        return record
