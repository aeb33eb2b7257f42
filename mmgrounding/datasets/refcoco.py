"""RefCOCO / RefCOCO+ / RefCOCOg (refer toolkit pickle + COCO instances)."""
import collections
import os.path as osp
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from mmdet.datasets import RefCocoDataset

from mmgrounding.registry import DATASETS
from mmgrounding.structures.errors import GroundingDataError
from .base_grounding import BaseGroundingDataset, RecordFn
from .utils import (IMAGE_TOKEN, AnnotationFile, RecordError, index_coco,
                    load_pickle, require_dict, require_text, seeded_rng,
                    xywh_to_xyxy)

#: Split names of the refer toolkit (refclef has testC); a ref with another
#: split is a defect, never silently ignored.
KNOWN_SPLITS = ('train', 'val', 'test', 'testA', 'testB', 'testC')
#: Keys every ref of a refs pickle has.
REF_KEYS = ('ref_id', 'ann_id', 'image_id', 'split', 'sentences')

#: Default user prompts; ``{expr}`` is the referring expression.
REFSEG_QUESTIONS = (
    'Please segment the {expr} in this image.',
    'Can you segment the {expr} in this image?',
    'What is the {expr} in this image? Please respond with a segmentation '
    'mask.',
)
REC_QUESTIONS = (
    'Please locate the {expr} in this image.',
    'Where is the {expr} in this image? Please give its box.',
)
#: Default answers; the ``{expr}`` span becomes the grounded phrase.
ANSWERS = ('Sure, {expr}.', 'It is {expr}.', 'Sure, it is {expr}.')


@DATASETS.register_module()
class RefCOCOGroundingDataset(BaseGroundingDataset, RefCocoDataset):
    """Referring expressions of RefCOCO, RefCOCO+ and RefCOCOg.

    Reads the refer toolkit files exactly as mmdet's
    :class:`~mmdet.datasets.RefCocoDataset` does (``ann_file`` = COCO
    ``instances.json``, ``split_file`` = ``refs(unc).p`` /
    ``refs(umd).p`` / ``refs(google).p``; its ``_init_refs`` is reused) and
    turns the referring expressions of one image into a conversation.

    Two modes:

    * ``one_per_expression=False`` (training): the expressions of an image
      are shuffled (seeded by ``(seed, img_id)``) and packed by groups of
      ``max_refs_per_image`` into multi-turn conversations (one user
      question + one answer per expression); every expression appears in
      exactly one record, so an image gives ``ceil(#expressions / max)``
      records.
    * ``one_per_expression=True`` (evaluation): one record per expression,
      so every expression of the split is evaluated exactly once (the
      official GLaMM evaluation samples 3 unseeded). Records also carry
      ``ref_id``, ``sent_id`` and ``ann_id``.

    The answer holds the expression as the grounded phrase (its span);
    ``instances`` hold the referents' COCO box and polygon/RLE mask.

    Args:
        split_file (str): The refs pickle, relative to ``data_root``.
        split (str): ``train``/``val``/``testA``/``testB`` (RefCOCO, +),
            ``train``/``val``/``test`` (RefCOCOg umd). A split absent from the
            pickle raises ``ValueError``.
        task (str): ``'refseg'`` (masks) or ``'rec'`` (boxes).
        max_refs_per_image (int, optional): Expressions packed per record in
            training mode (GLaMM: 3); ``None`` packs all of the image.
        one_per_expression (bool): Evaluation mode, see above.
        text_key (str): Sentence field used, ``'sent'`` (normalised) or
            ``'raw'``.
        question_templates / answer_templates (Sequence[str], optional):
            Prompt lists with an ``{expr}`` field; one is drawn per turn from
            the seeded generator. Defaults depend on ``task``.
        source (str): Name recorded in ``record['source']``
            (``'refcoco'``, ``'refcoco+'``, ``'refcocog'``).
    """

    SOURCE = 'refcoco'
    SPLITS = ('train', 'val', 'test', 'testA', 'testB')
    TASKS = ('refseg', 'rec')
    DEFAULT_TASK = 'refseg'
    PASS_SPLIT = True

    def __init__(self,
                 *args,
                 split: str = 'train',
                 max_refs_per_image: Optional[int] = 3,
                 one_per_expression: bool = False,
                 text_key: str = 'sent',
                 question_templates: Optional[Sequence[str]] = None,
                 answer_templates: Optional[Sequence[str]] = None,
                 source: str = 'refcoco',
                 **kwargs) -> None:
        if max_refs_per_image is not None and max_refs_per_image < 1:
            raise ValueError('max_refs_per_image must be >= 1 or None, got '
                             f'{max_refs_per_image}')
        self.max_refs_per_image = max_refs_per_image
        self.one_per_expression = one_per_expression
        self.text_key = text_key
        self.SOURCE = source
        self._questions = question_templates
        self._answers = tuple(answer_templates or ANSWERS)
        super().__init__(*args, split=split, **kwargs)

    @property
    def questions(self) -> Tuple[str, ...]:
        if self._questions:
            return tuple(self._questions)
        return REFSEG_QUESTIONS if self.task == 'refseg' else REC_QUESTIONS

    # ------------------------------------------------------------------
    def load_records(self) -> Iterable[Tuple[str, Any, RecordFn]]:
        refs_file, inst_file = self.split_file, self.ann_file
        splits = load_pickle(
            refs_file, 'a list of refer-toolkit refs (dicts with '
            f'{", ".join(REF_KEYS)})')
        if not isinstance(splits, list):
            raise GroundingDataError(
                f'the refs pickle holds a {type(splits).__name__}; expected '
                f'a list of refs (dicts with {", ".join(REF_KEYS)})',
                file=refs_file)
        self._inst = AnnotationFile(
            inst_file, dict, 'COCO instances with "images" and '
            '"annotations"')
        self.instances = self._inst.data
        images_list, _ = index_coco(self.instances, inst_file)
        valid, bad, seen = [], [], {}
        for k, ref in enumerate(splits):
            if not isinstance(ref, dict):
                raise GroundingDataError(
                    f'refs[{k}] is a {type(ref).__name__}; expected a dict '
                    f'with {", ".join(REF_KEYS)}', file=refs_file,
                    record=f'refs[{k}]', field='ref_id')
            ref_id = ref.get('ref_id', f'refs[{k}]')
            missing = [key for key in REF_KEYS if key not in ref]
            if missing:
                bad.append((ref_id, ref, RecordError(missing[0], 'missing')))
            elif ref['split'] not in KNOWN_SPLITS:
                bad.append((ref_id, ref, RecordError(
                    'split', f'unknown split name; expected one of '
                    f'{list(KNOWN_SPLITS)}', value=ref['split'])))
            elif not isinstance(ref_id, (int, str)):
                bad.append((f'refs[{k}]', ref, RecordError(
                    'ref_id', 'expected an integer', value=ref_id)))
            elif seen.setdefault(ref_id, k) != k:
                bad.append((ref_id, ref, RecordError(
                    'ref_id', f'ref id repeated (refs[{seen[ref_id]}] and '
                    f'refs[{k}])', value=ref_id)))
            else:
                valid.append(ref)
        available = sorted({r['split'] for r in valid})
        if self.split not in available:
            raise ValueError(
                f'{type(self).__name__}: split {self.split!r} is not in '
                f'{self.split_file}; available: {available}')
        known = {ann['id'] for ann in self.instances['annotations']}
        for ref in valid:
            if ref['ann_id'] not in known:
                bad.append((ref['ref_id'], ref, RecordError(
                    'ann_id', f'ref points at an annotation id that is not '
                    f'in {osp.basename(inst_file)}', value=ref['ann_id'])))
        bad_ids = {id(ref) for _, ref, _ in bad}
        self.splits = [ref for ref in valid if id(ref) not in bad_ids]
        self._init_refs()  # mmdet: self.refs, self.ref_to_ann
        for ref_id, _, err in bad:
            yield refs_file, ref_id, self._raiser(err)
        images = {img['id']: img for img in images_list}
        categories = {
            c['id']: c['name']
            for c in self.instances.get('categories', [])
            if isinstance(c, dict) and 'id' in c
        }
        by_image: Dict[Any, List[dict]] = collections.OrderedDict()
        for ref in self.splits:
            if ref['split'] == self.split:
                by_image.setdefault(ref['image_id'], []).append(ref)
        for img_id, refs in by_image.items():
            if self.one_per_expression:
                for ref in refs:
                    sentences = ref.get('sentences')
                    if not isinstance(sentences, list) or not sentences:
                        yield refs_file, ref['ref_id'], self._raiser(
                            RecordError('sentences', 'expected a non-empty '
                                        'list', value=sentences))
                        continue
                    for k in range(len(sentences)):
                        yield refs_file, ref['ref_id'], self._bind(
                            self._parse_expression, images, categories, ref,
                            k)
            else:
                for c, units in enumerate(self._chunks(img_id, refs)):
                    yield refs_file, img_id, self._bind(
                        self._parse_image, images, categories, img_id, units,
                        c)
        # the records are plain copies: free the raw files
        self.instances = self.splits = self.refs = self.ref_to_ann = None
        self._inst = None

    @staticmethod
    def _bind(fn, *args) -> RecordFn:
        return lambda: fn(*args)

    @staticmethod
    def _raiser(err: RecordError) -> RecordFn:

        def fn():
            raise err

        return fn

    # ------------------------------------------------------------------
    def _base(self, images: dict, img_id: Any) -> dict:
        image = images.get(img_id)
        if image is None:
            raise RecordError(
                'image_id', f'image not in {osp.basename(self.ann_file)}',
                value=img_id)
        where = dict(file=self.ann_file, record=img_id)
        try:
            self._inst.check_keys(image)
            path = self.img_path(image.get('file_name'))
            height, width = self.image_size(path, image.get('height'),
                                            image.get('width'))
        except RecordError as err:
            raise RecordError(err.field, err.message, err.value,
                              **where) from None
        return dict(img_path=path, img_id=img_id, height=height, width=width)

    def _instance(self, ref: dict, categories: dict, height: int,
                  width: int) -> dict:
        ann = require_dict(self.ref_to_ann[ref['ref_id']], 'ann_id')
        where = dict(file=self.ann_file, record=ann.get('id'))
        try:
            self._inst.check_keys(ann)
        except RecordError as err:
            raise RecordError(err.field, err.message, err.value,
                              **where) from None
        if self.task == 'refseg' and not ann.get('segmentation'):
            raise RecordError('segmentation', 'missing (task refseg needs '
                              'a mask)', value=ann.get('segmentation'),
                              **where)
        try:
            bbox = xywh_to_xyxy(ann.get('bbox') or [])
        except (RecordError, TypeError, ValueError):
            raise RecordError('bbox', 'expected [x, y, w, h]',
                              value=ann.get('bbox'), **where) from None
        return self.make_instance(
            bbox, ann.get('segmentation'), ann['id'],
            categories.get(ann.get('category_id'), 'object'), height, width,
            **where)

    def _sentence(self, ref: dict, k: int) -> str:
        where = dict(file=self.split_file, record=ref['ref_id'])
        sentences = ref.get('sentences')
        if not isinstance(sentences, list) or not sentences:
            raise RecordError('sentences', 'expected a non-empty list',
                              value=sentences, **where)
        sent = sentences[k]
        if not isinstance(sent, dict):
            raise RecordError(f'sentences[{k}]', 'expected a dict',
                              value=sent, **where)
        key = self.text_key if self.text_key in sent else 'raw'
        try:
            text = require_text(sent.get(key), f'sentences[{k}].{key}')
        except RecordError as err:
            raise RecordError(err.field, err.message, err.value,
                              **where) from None
        return ' '.join(text.split())

    def _turns(self, rng, exprs: List[str],
               instance_ids: List[int]) -> Tuple[list, list]:
        conversations, phrases = [], []
        for i, (expr, iid) in enumerate(zip(exprs, instance_ids)):
            question = self.choose(rng, self.questions).format(expr=expr)
            if i == 0:
                question = f'{IMAGE_TOKEN}\n{question}'
            answer_t = self.choose(rng, self._answers)
            start = answer_t.index('{expr}')
            answer = answer_t.format(expr=expr)
            conversations += [self.user(question), self.assistant(answer)]
            phrases.append(
                dict(
                    turn=len(conversations) - 1,
                    start=start,
                    end=start + len(expr),
                    text=expr,
                    instance_ids=[iid]))
        return conversations, phrases

    def _chunks(self, img_id: Any, refs: List[dict]) -> List[list]:
        """All ``(ref, sentence index)`` pairs of an image, shuffled with the
        seeded generator and cut into groups of ``max_refs_per_image``: every
        expression is used exactly once per epoch (GLaMM draws the sentences
        of an image at random, several may describe the same object)."""
        units = [(ref, k) for ref in refs
                 for k in range(max(len(ref.get('sentences') or []), 1))]
        size = self.max_refs_per_image or len(units)
        perm = seeded_rng(self.seed, 'refcoco', img_id).permutation(
            len(units))
        return [[units[i] for i in sorted(perm[k:k + size])]
                for k in range(0, len(units), size)]

    def _parse_image(self, images: dict, categories: dict, img_id: Any,
                     units: List[tuple], chunk: int) -> List[dict]:
        record = self._base(images, img_id)
        rng = seeded_rng(self.seed, 'refcoco', img_id, chunk)
        instances, ann_index, exprs, iids = [], {}, [], []
        for ref, k in units:
            ann_id = self.ref_to_ann[ref['ref_id']]['id']
            if ann_id not in ann_index:
                ann_index[ann_id] = len(instances)
                instances.append(
                    self._instance(ref, categories, record['height'],
                                   record['width']))
            exprs.append(self._sentence(ref, k))
            iids.append(ann_index[ann_id])
        conversations, phrases = self._turns(rng, exprs, iids)
        record.update(
            conversations=conversations,
            phrases=phrases,
            instances=instances,
            ref_ids=[ref['ref_id'] for ref, _ in units])
        return [record]

    def _parse_expression(self, images: dict, categories: dict, ref: dict,
                          k: int) -> List[dict]:
        record = self._base(images, ref['image_id'])
        sent = ref['sentences'][k]
        rng = seeded_rng(self.seed, 'refcoco', ref['image_id'],
                         sent.get('sent_id', k))
        conversations, phrases = self._turns(rng, [self._sentence(ref, k)],
                                             [0])
        record.update(
            conversations=conversations,
            phrases=phrases,
            instances=[
                self._instance(ref, categories, record['height'],
                               record['width'])
            ],
            ref_id=ref['ref_id'],
            sent_id=sent.get('sent_id', k),
            ann_id=ref['ann_id'])
        return [record]
