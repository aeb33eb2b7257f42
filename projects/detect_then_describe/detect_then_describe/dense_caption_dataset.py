"""Every captioned region of an image in one record (dense captioning GT)."""
from collections import OrderedDict
from typing import Any, Dict, Iterable, List, Tuple


from mmgrounding.datasets.base_grounding import BaseGroundingDataset, RecordFn
from mmgrounding.datasets.utils import (IMAGE_TOKEN, AnnotationFile,
                                        RecordError, index_coco,
                                        xywh_to_xyxy)
from mmgrounding.registry import DATASETS


@DATASETS.register_module()
class DenseRegionCaptionDataset(BaseGroundingDataset):
    """All regions of an image with all their reference captions.

    Reads the same COCO-style region-caption files as
    ``RegionCaptionDataset`` (Visual Genome ``test_caption.json``, MDETR
    ``finetune_refcocog_*.json``), where each image *entry* is one region
    (or one referring sentence) of a real image. Entries are grouped by the
    real image (``original_id`` of the image entry, else ``file_name``), and
    the sentences of one object (same ``original_id`` of the annotation,
    else the same box) become that region's references.

    A record is ``task='region_caption'`` with ``instances`` = the regions
    (xyxy boxes, ``bbox_label`` 0 for mmdet's ``LoadAnnotations``,
    ``ignore_flag`` 0, no masks) and ``gt_region_captions`` = one list of
    reference captions per instance (same order). There are no ``regions``
    (visual prompts): the boxes come from the detector at test time.
    """

    TASKS = ('region_caption', )
    DEFAULT_TASK = 'region_caption'
    SOURCE = 'dense_region_caption'

    def load_records(self) -> Iterable[Tuple[str, Any, RecordFn]]:
        ann = AnnotationFile(self.ann_file, dict, 'a COCO-style object with '
                             '"images" and "annotations"')
        images, anns = index_coco(ann.data, self.ann_file)
        groups: 'OrderedDict[Any, List[Tuple[dict, dict]]]' = OrderedDict()
        for image in images:
            key = image.get('original_id', image.get('file_name'))
            for ann in anns.get(image.get('id'), []):
                groups.setdefault(key, []).append((image, ann))
        for key, entries in groups.items():
            yield self.ann_file, key, (
                lambda k=key, e=entries: [self._parse(k, e)])

    def _parse(self, key: Any, entries: List[Tuple[dict, dict]]) -> dict:
        first = entries[0][0]
        names = {image.get('file_name') for image, _ in entries}
        if len(names) != 1:
            raise RecordError('file_name',
                              f'entries of image {key!r} name different '
                              f'files {sorted(map(str, names))}')
        path = self.img_path(first['file_name'])
        height, width = self.image_size(path, first.get('height'),
                                        first.get('width'))
        regions: Dict[Any, dict] = OrderedDict()
        for image, ann in entries:
            caption = ann.get('caption', image.get('caption'))
            if not isinstance(caption, str) or not caption.strip():
                raise RecordError('caption',
                                  f'no caption for annotation {ann.get("id")}')
            bbox = [float(v) for v in xywh_to_xyxy(ann['bbox'])]
            obj = ann.get('original_id', tuple(bbox))
            region = regions.setdefault(obj, dict(bbox=bbox, captions=[]))
            if region['bbox'] != bbox:
                raise RecordError(
                    'bbox', f'object {obj!r} has boxes {region["bbox"]} and '
                    f'{bbox} in different entries')
            region['captions'].append(' '.join(caption.split()))
        instances = [
            dict(bbox=r['bbox'], bbox_label=0, ignore_flag=0, mask=None,
                 ann_id=obj, category='object')
            for obj, r in regions.items()
        ]
        return dict(
            img_path=path,
            img_id=key,
            height=height,
            width=width,
            conversations=[self.user(IMAGE_TOKEN)],
            instances=instances,
            gt_region_captions=[r['captions'] for r in regions.values()],
            gt_captions=[c for r in regions.values() for c in r['captions']])
