"""Image + prompt (+ boxes) -> grounded answer, with any mmgrounding config.

Each request becomes a model-neutral record (docs/data_contract.md §1), runs
through the config's own test pipeline (only the image loader is swapped for
one that also takes arrays), is collated with ``pseudo_collate`` and answered
by ``model.test_step``: the same code path as ``tools/test.py``, so what the
inferencer shows is what the metrics score.
"""
import contextlib
import copy
import os.path as osp
import re
from typing import (Dict, Iterator, List, Optional, Sequence, Tuple,
                    Union)

import cv2
import mmcv
import numpy as np
import pycocotools.mask as mask_utils
import torch
from mmcv.transforms import Compose
from mmdet.structures import DetDataSample
from mmengine.config import Config, ConfigDict
from mmengine.dataset import pseudo_collate
from mmengine.infer import BaseInferencer
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import init_default_scope
from mmengine.utils import mkdir_or_exist

from mmgrounding.datasets.gcg import GCG_QUESTION
from mmgrounding.datasets.transforms.conversation import REGION_PLACEHOLDERS
from mmgrounding.datasets.transforms.conversation import fill_phrase
from mmgrounding.datasets.transforms.templates import GLAMM_REFSEG_QUESTIONS

ImageType = Union[str, np.ndarray]
BoxesType = Optional[Sequence]
ConfigType = Union[Config, ConfigDict]

TASKS = ('chat', 'gcg', 'refseg')
MASK_FORMATS = ('bool', 'rle')
#: GLaMM's referring segmentation question (its RefSeg evaluation wording).
REFSEG_QUESTION = GLAMM_REFSEG_QUESTIONS[0]
#: The GCG instruction used when ``task='gcg'`` and no prompt is given.
GCG_PROMPT = GCG_QUESTION
_IMAGE = '<image>'
_REGION_RE = re.compile('|'.join(re.escape(p) for p in REGION_PLACEHOLDERS))
_LOADERS = ('LoadImageFromFile', 'mmdet.LoadImageFromFile',
            'mmcv.LoadImageFromFile')
_GENERATION_KEYS = ('max_new_tokens', 'do_sample', 'temperature', 'top_p',
                    'seed')


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating))

def _depth(value) -> int:
    """Nesting depth of numbers in ``value`` (a number: 0; None: -1)."""
    if value is None:
        return -1
    if _is_number(value):
        return 0
    if isinstance(value, np.ndarray):
        return value.ndim
    if isinstance(value, (list, tuple)):
        return 1 + max([_depth(v) for v in value] + [0])
    return 0


#: region prompt kind -> (argument name, ndim of one prompt, its shape rule)
_PROMPT_KINDS = dict(box=('boxes', 1), click=('points', 1),
                     scribble=('scribbles', 2), mark=('marks', 1))
#: prompt kinds a model reads through a visual-prompt encoder (a box also
#: reaches a box encoder as a box; a mark is painted, never encoded)
_ENCODED_KINDS = ('click', 'scribble')


class GroundingInferencer(BaseInferencer):
    """Answer prompts about images with a grounded LMM (GLaMM, ...).

    Example::

        >>> inferencer = GroundingInferencer(
        ...     'configs/glamm/glamm_llama-tiny_clip-tiny_sam-tiny_1000it_'
        ...     'synthetic.py', weights='work_dirs/x/iter_1000.pth')
        >>> out = inferencer('demo.png', 'Please describe the image.',
        ...                  task='gcg', out_dir='vis')
        >>> out[0]['caption'], out[0]['phrases'], out[0]['masks'][0].shape

    Args:
        model: config path, ``Config`` or dict holding ``model`` and a test
            pipeline (``test_dataloader.dataset.pipeline`` or
            ``test_pipeline``).
        weights: mmengine checkpoint; None keeps the random initialisation
            (a warning says so). Loading is non-strict, so checkpoints that
            hold only the trained weights work.
        device: ``'cpu'``, ``'cuda'``, ``'cuda:1'``; None picks the available
            accelerator.
        scope: default registry scope.
        show_progress: show a progress bar over batches.
    """

    preprocess_kwargs: set = set()
    forward_kwargs: set = set(_GENERATION_KEYS)
    visualize_kwargs: set = {'out_dir', 'show', 'wait_time'}
    postprocess_kwargs: set = {'mask_format'}

    def __init__(self,
                 model: Union[str, Config, ConfigDict, dict],
                 weights: Optional[str] = None,
                 device: Optional[str] = 'cpu',
                 scope: Optional[str] = 'mmgrounding',
                 show_progress: bool = False) -> None:
        self.num_visualized = 0
        init_default_scope(scope)
        super().__init__(
            model=model, weights=weights, device=device, scope=scope,
            show_progress=show_progress)
        self.model = revert_sync_batchnorm(self.model)

    # --------------------------------------------------------------- set-up
    @staticmethod
    def _test_pipeline_cfg(cfg: ConfigType) -> list:
        """The config's test pipeline (a deep copy)."""
        dataset = cfg.get('test_dataloader', {}).get('dataset', {})
        while isinstance(dataset, dict) and 'pipeline' not in dataset and \
                dataset.get('datasets'):
            dataset = dataset['datasets'][0]  # ConcatDataset and friends
        pipeline = dataset.get('pipeline') if isinstance(dataset,
                                                         dict) else None
        if pipeline is None:
            pipeline = cfg.get('test_pipeline')
        if not pipeline:
            raise ValueError(
                'GroundingInferencer: the config has no test pipeline '
                '(test_dataloader.dataset.pipeline or test_pipeline)')
        return copy.deepcopy(list(pipeline))

    def _init_pipeline(self, cfg: ConfigType) -> Compose:
        """The test pipeline, with an image loader that also takes arrays
        (``mmdet.InferencerLoader``) and the conversation left open for the
        model to answer (``with_answer=False``)."""
        pipeline = self._test_pipeline_cfg(cfg)
        loaders = [i for i, t in enumerate(pipeline) if t['type'] in _LOADERS]
        if not loaders:
            raise ValueError(
                'GroundingInferencer: the test pipeline has no '
                f'LoadImageFromFile step; steps: '
                f'{[t["type"] for t in pipeline]}')
        pipeline[loaders[0]]['type'] = 'mmdet.InferencerLoader'
        # the caller gives the prompts: none is sampled from annotations
        pipeline = [t for t in pipeline
                    if t['type'].split('.')[-1] != 'SampleVisualPrompts']
        names = [t['type'].split('.')[-1] for t in pipeline]
        for step, name in zip(pipeline, names):
            if name == 'FormatGroundedConversation':
                step['with_answer'] = False
        if 'PaintMarks' not in names and 'FormatGroundedConversation' in \
                names:  # marks= are painted (a no-op without marks)
            pipeline.insert(names.index('FormatGroundedConversation'),
                            dict(type='PaintMarks'))
        return Compose(pipeline)

    def _init_collate(self, cfg: ConfigType):
        """Samples stay lists (images differ in size): ``pseudo_collate``."""
        return pseudo_collate

    def _init_visualizer(self, cfg: ConfigType):
        """The config's visualizer without its vis backends: the inferencer
        writes files itself (``out_dir``) and has no work dir to log to."""
        if 'visualizer' not in cfg:
            return None
        cfg = copy.deepcopy(cfg)
        cfg.visualizer.vis_backends = None
        cfg.visualizer.pop('save_dir', None)
        return super()._init_visualizer(cfg)

    # --------------------------------------------------------------- inputs
    @staticmethod
    def _as_list(value) -> list:
        return list(value) if isinstance(value, (list, tuple)) else [value]

    @staticmethod
    def _normalise_boxes(boxes: BoxesType, num: int) -> List[np.ndarray]:
        """Per input, a float array [R, 4] of xyxy boxes (R may be 0)."""
        if boxes is None:
            return [np.zeros((0, 4), np.float32) for _ in range(num)]
        if num == 1:
            flat = np.asarray(boxes, dtype=object)
            if flat.ndim == 1 and len(flat) == 4 and all(
                    _is_number(v) for v in flat):
                boxes = [[boxes]]  # one box for one image
            elif flat.ndim == 2 and all(_is_number(v) for v in flat.flat):
                boxes = [boxes]  # a list of boxes for one image
        boxes = list(boxes)
        if len(boxes) != num:
            raise ValueError(
                f'GroundingInferencer: boxes has {len(boxes)} entries for '
                f'{num} inputs; give one list of [x1, y1, x2, y2] boxes per '
                'input (None or [] for none)')
        out = []
        for i, per_input in enumerate(boxes):
            arr = np.zeros((0, 4), np.float32) if per_input is None else \
                np.asarray(per_input, dtype=np.float32)
            if arr.size == 0:
                arr = arr.reshape(0, 4)
            if arr.ndim != 2 or arr.shape[1] != 4:
                raise ValueError(
                    f'GroundingInferencer: boxes[{i}] must be a list of '
                    f'[x1, y1, x2, y2] boxes, got shape {arr.shape}')
            bad = ~((arr[:, 2] > arr[:, 0]) & (arr[:, 3] > arr[:, 1])
                    & np.isfinite(arr).all(1))
            if bad.any():
                raise ValueError(
                    f'GroundingInferencer: boxes[{i}] has invalid xyxy boxes '
                    f'{arr[bad].tolist()} (x2 > x1 and y2 > y1 required)')
            out.append(arr)
        return out

    @staticmethod
    def _normalise_region_prompts(num: int, **given) -> List[list]:
        """Per input, one ``(kind, array)`` per region placeholder.

        ``given`` maps ``boxes`` / ``points`` / ``scribbles`` to per-input
        lists with one entry per placeholder (one input: that list is
        enough). Mixing kinds, align the lists with None where a placeholder
        takes another kind: ``boxes=[b0, None], points=[None, p1]``.
        """
        slots = {}
        for kind, (name, ndim) in _PROMPT_KINDS.items():
            value = given.get(name)
            if value is None:
                slots[kind] = [[] for _ in range(num)]
                continue
            if num == 1 and isinstance(value, (list, tuple)) and value \
                    and all(v is None for v in value):
                value = [value]  # one input, no prompt of this kind
            elif num == 1 and _depth(value) in (ndim, ndim + 1):
                value = [[value]] if _depth(value) == ndim else [value]
            value = list(value)
            if len(value) != num:
                raise ValueError(
                    f'GroundingInferencer: {name} has {len(value)} entries '
                    f'for {num} inputs; give one list per input')
            slots[kind] = [list(v or []) for v in value]
        out = []
        for i in range(num):
            n = max(len(slots[kind][i]) for kind in _PROMPT_KINDS)
            regions = []
            for k in range(n):
                found = [(kind, slots[kind][i][k]) for kind in _PROMPT_KINDS
                         if k < len(slots[kind][i])
                         and slots[kind][i][k] is not None]
                if len(found) != 1:
                    names = [_PROMPT_KINDS[kind][0] for kind, _ in found]
                    what = f'prompts in {names}' if found else 'no prompt'
                    raise ValueError(
                        f'GroundingInferencer: input {i}, region {k}: {what};'
                        ' give exactly one of boxes/points/scribbles/marks '
                        'per '
                        'placeholder (align the lists with None)')
                kind, value = found[0]
                arr = np.asarray(value, dtype=np.float32)
                ok = np.isfinite(arr).all()
                if kind in ('box', 'mark'):
                    ok = ok and arr.shape == (4, ) and arr[2] > arr[0] \
                        and arr[3] > arr[1]
                elif kind == 'click':
                    ok = ok and arr.shape == (2, )
                else:
                    ok = ok and arr.ndim == 2 and arr.shape[1] == 2 and \
                        len(arr) >= 2
                if not ok:
                    raise ValueError(
                        f'GroundingInferencer: input {i}, region {k}: bad '
                        f'{_PROMPT_KINDS[kind][0][:-1]} {arr.tolist()} '
                        '(box, mark: x2 > x1, y2 > y1; point: [x, y]; '
                        'scribble: >= 2 [x, y] points)')
                regions.append((kind, arr))
            out.append(regions)
        return out

    @staticmethod
    def _region_entries(regions: list) -> Tuple[List[dict], List[dict]]:
        """``regions`` (data contract: one xyxy box each) and
        ``visual_prompts`` (``SampleVisualPrompts`` format, original
        pixels) of ``(kind, array)`` region prompts. A click's box is its
        pixel, a scribble's the box of its points; a mark is the filled
        rectangle of its box (its ``mask`` is rasterised by
        :meth:`_add_prompt_masks`, then ``PaintMarks`` paints it)."""
        boxes, prompts = [], []
        for kind, arr in regions:
            if kind in ('box', 'mark'):
                box = arr
                prompts.append(dict(type=kind, instance_id=None, box=arr))
            else:
                pts = arr.reshape(-1, 2)
                box = np.concatenate([pts.min(0), pts.max(0) + 1])
                prompts.append(dict(type=kind, instance_id=None,
                                    points=pts.astype(np.float32)))
            boxes.append(dict(bbox=box.astype(np.float32).tolist()))
        return boxes, prompts

    def _question(self, prompt: Optional[str], task: str, index: int) -> str:
        if task == 'refseg':
            if not prompt or not prompt.strip():
                raise ValueError(f'GroundingInferencer: input {index}: '
                                 "task='refseg' needs the referring "
                                 'expression as prompt')
            return fill_phrase(REFSEG_QUESTION, ' '.join(prompt.split()))
        if prompt is None:
            if task == 'gcg':
                return GCG_PROMPT
            raise ValueError(f"GroundingInferencer: input {index}: "
                             f"task={task!r} needs a prompt")
        return prompt

    @staticmethod
    def _normalise_history(history, num: int) -> List[List[Tuple[str, str]]]:
        """Per input, the earlier ``(user, assistant)`` turns (maybe none)."""
        if history is None:
            return [[] for _ in range(num)]
        history = list(history)

        def is_turn(t) -> bool:
            return isinstance(t, (list, tuple)) and len(t) == 2 and all(
                isinstance(x, str) for x in t)

        if num == 1 and all(is_turn(t) for t in history):
            history = [history]  # the turns of the only input
        if len(history) != num:
            raise ValueError(
                f'GroundingInferencer: history has {len(history)} entries for'
                f' {num} inputs; give one list of (user, assistant) turns per'
                ' input')
        out = []
        for i, turns in enumerate(history):
            turns = list(turns or [])
            if not all(is_turn(t) for t in turns):
                raise ValueError(
                    f'GroundingInferencer: history[{i}] must be a list of '
                    '(user text, assistant text) pairs')
            out.append([tuple(t) for t in turns])
        return out

    def build_records(self,
                      inputs: Union[ImageType, Sequence[ImageType]],
                      prompt: Union[None, str, Sequence[Optional[str]]],
                      boxes: BoxesType = None,
                      task: str = 'chat',
                      history=None,
                      points=None,
                      scribbles=None,
                      marks=None) -> List[dict]:
        """One data-contract record per (image, prompt) pair.

        A single image with several prompts (or one prompt for several
        images) is broadcast. The user turn is ``<image>\\n`` + the question
        (unless the prompt already holds ``<image>``); there are no phrases
        (the answer is generated), except for ``task='refseg'`` whose single
        target is the expression (teacher-forced answer).

        ``history`` (multi-turn chat) holds, per input, the earlier
        ``(user, assistant)`` turns in order (one input: the list of turns is
        enough). They come before the question; ``<image>`` goes into the
        first user turn; the boxes fill the region placeholders of all user
        turns in order, history first. Assistant texts are taken as plain
        text (pass captions, not markup: earlier answers carry no targets).

        Raises:
            ValueError: unknown task, mismatched lengths, bad boxes, or a
                prompt whose ``<bbox>`` count differs from its boxes.
        """
        if task not in TASKS:
            raise ValueError(f'GroundingInferencer: task must be one of '
                             f'{TASKS}, got {task!r}')
        images = self._as_list(inputs)
        prompts = self._as_list(prompt)
        if len(images) == 1 and len(prompts) > 1:
            images = images * len(prompts)
        elif len(prompts) == 1 and len(images) > 1:
            prompts = prompts * len(images)
        if len(images) != len(prompts):
            raise ValueError(
                f'GroundingInferencer: {len(images)} images but '
                f'{len(prompts)} prompts; give one prompt per image, or one '
                'of either')
        if not images:
            raise ValueError('GroundingInferencer: no inputs')
        only_boxes = points is None and scribbles is None and marks is None
        if only_boxes:
            per_boxes = self._normalise_boxes(boxes, len(images))
            per_regions = [[('box', b) for b in box] for box in per_boxes]
        else:
            per_regions = self._normalise_region_prompts(
                len(images), boxes=boxes, points=points, scribbles=scribbles,
                marks=marks)
            per_boxes = per_regions
        per_history = self._normalise_history(history, len(images))
        records = []
        for i, (img, text, box, turns) in enumerate(
                zip(images, prompts, per_boxes, per_history)):
            question = self._question(text, task, i)
            users = [u for u, _ in turns] + [question]
            n_slots = sum(len(_REGION_RE.findall(u)) for u in users)
            if n_slots != len(box):  # box: this input's region prompts
                what = f'{len(box)} box(es)' if only_boxes else \
                    f'{len(box)} region prompt(s)'
                where = 'the prompt' if not turns else \
                    'the prompt and its history'
                raise ValueError(
                    f'GroundingInferencer: input {i}: {where} has '
                    f'{n_slots} region placeholder(s) '
                    f'({"/".join(REGION_PLACEHOLDERS)}) but '
                    f'{what} were given; prompt: {question!r}')
            if not any(_IMAGE in u for u in users):
                users[0] = f'{_IMAGE}\n{users[0]}'
            conversations = []
            for (_, answer), user in zip(turns, users):
                conversations += [dict(role='user', text=user),
                                  dict(role='assistant', text=answer)]
            conversations.append(dict(role='user', text=users[-1]))
            record = dict(
                img_id=i,
                source='inferencer',
                task=task,
                conversations=conversations,
                regions=[],
                instances=[],
                expression=text if task == 'refseg' else None)
            record['regions'], visual_prompts = self._region_entries(
                per_regions[i])
            if not only_boxes or self._reads_visual_prompts():
                record['visual_prompts'] = visual_prompts
            if isinstance(img, np.ndarray):
                if img.ndim not in (2, 3) or (img.ndim == 3
                                              and img.shape[2] != 3):
                    raise ValueError(
                        f'GroundingInferencer: input {i}: an array image must'
                        f' be HxW or HxWx3 (BGR), got shape {img.shape}')
                record['img'] = img
            elif isinstance(img, str):
                if not osp.isfile(img):
                    raise FileNotFoundError(
                        f'GroundingInferencer: input {i}: no image file '
                        f'{img!r}')
                record['img_path'] = img
            else:
                raise TypeError(
                    f'GroundingInferencer: input {i} is a '
                    f'{type(img).__name__}; expected a path or an ndarray')
            records.append(record)
        return records

    def _reads_visual_prompts(self) -> bool:
        """Whether a prompt slot of the model reads ``visual_prompts_*``
        (prompt dicts: a click / scribble / box encoder such as
        ``SemanticSAMPromptEncoder``) rather than boxes, with an encoder."""
        model = getattr(self, 'model', None)
        return any(
            slot.prompts.startswith('visual_prompts')
            and getattr(model, slot.encoder, None) is not None
            for slot in getattr(model, 'prompt_slots', {}).values())

    @staticmethod
    def _add_scribble_masks(record: dict) -> dict:
        """Rasterise each scribble (``mask`` float32 [H, W], 3 px wide, as
        ``SampleVisualPrompts``' default ``scribble_width``) and each mark
        (its filled box)."""
        prompts = record.get('visual_prompts') or []
        if not any(p['type'] in ('scribble', 'mark') for p in prompts):
            return record
        if 'img' in record:
            h, w = record['img'].shape[:2]
        else:
            from PIL import Image
            with Image.open(record['img_path']) as im:
                w, h = im.size
        record = dict(record, visual_prompts=[dict(p) for p in prompts])
        for p in record['visual_prompts']:
            if p['type'] == 'scribble':
                canvas = np.zeros((h, w), np.uint8)
                pts = np.round(p['points']).astype(np.int32)[:, None]
                cv2.polylines(canvas, [pts], False, 1, thickness=3)
                p['mask'] = canvas.astype(np.float32)
            elif p['type'] == 'mark':
                x1, y1 = np.floor(p['box'][:2]).astype(int).clip(0)
                x2, y2 = np.ceil(p['box'][2:]).astype(int)
                canvas = np.zeros((h, w), np.float32)
                canvas[y1:y2, x1:x2] = 1.0
                p['mask'] = canvas
        return record

    def _prepare(self, record: dict) -> dict:
        """Pipeline one record; check its boxes against the image size."""
        data = self.pipeline(self._add_scribble_masks(dict(record)))
        sample = data['data_samples']
        h, w = sample.metainfo['ori_shape'][:2]
        boxes = sample.region_bboxes
        limit = boxes.new_tensor([w, h, w, h])
        tol = 1.0  # as LoadGroundingAnnotations' bounds_tolerance
        if bool(((boxes < -tol) | (boxes > limit + tol)).any()):
            raise ValueError(
                f'GroundingInferencer: input {record["img_id"]}: boxes '
                f'{boxes.tolist()} fall outside the {h}x{w} image')
        if record['task'] == 'refseg':
            # one target: the expression (the model teacher-forces one
            # grounding token per gt phrase)
            sample.set_metainfo(dict(gt_phrases=[record['expression']]))
        return data

    def preprocess(self, inputs: List[dict], batch_size: int = 1,
                   **kwargs) -> Iterator[dict]:
        """Records -> pipelined, collated batches of ``batch_size``."""
        chunks = self._get_chunk_data(map(self._prepare, inputs), batch_size)
        yield from map(self.collate_fn, chunks)

    # -------------------------------------------------------------- forward
    @contextlib.contextmanager
    def _model_settings(self, task: str, **generation) -> Iterator[None]:
        """Temporarily apply generation overrides (and, for refseg, teacher
        forcing) to the model."""
        model = self.model
        saved_cfg = getattr(model, 'generation_cfg', None)
        saved_tf = getattr(model, 'refseg_teacher_forcing', None)
        overrides = {k: v for k, v in generation.items() if v is not None}
        if overrides:
            if saved_cfg is None:
                raise ValueError(
                    f'GroundingInferencer: {type(model).__name__} has no '
                    f'generation_cfg; cannot apply {sorted(overrides)}')
            model.generation_cfg = dict(saved_cfg, **overrides)
        if task == 'refseg' and saved_tf is not None:
            model.refseg_teacher_forcing = True
        try:
            yield
        finally:
            if saved_cfg is not None:
                model.generation_cfg = saved_cfg
            if saved_tf is not None:
                model.refseg_teacher_forcing = saved_tf

    @torch.no_grad()
    def forward(self, inputs: dict, **kwargs) -> List[DetDataSample]:
        """One collated batch -> its predicted data samples."""
        return self.model.test_step(inputs)

    def __call__(self,
                 inputs: Union[ImageType, Sequence[ImageType]],
                 prompt: Union[None, str, Sequence[Optional[str]]] = None,
                 boxes: BoxesType = None,
                 task: str = 'chat',
                 history=None,
                 points=None,
                 scribbles=None,
                 marks=None,
                 batch_size: int = 1,
                 return_datasamples: bool = False,
                 max_new_tokens: Optional[int] = None,
                 do_sample: Optional[bool] = None,
                 temperature: Optional[float] = None,
                 top_p: Optional[float] = None,
                 seed: Optional[int] = None,
                 out_dir: Optional[str] = None,
                 show: bool = False,
                 wait_time: float = 0,
                 mask_format: str = 'bool') -> list:
        """Answer each (image, prompt) pair.

        Args:
            inputs: image path, HxWx3 BGR uint8 array (mmcv convention), or a
                list of them.
            prompt: the user's question (``task='chat'``), the GCG
                instruction (``'gcg'``; None uses GLaMM's), or the referring
                expression (``'refseg'``: asks "Can you segment the {expr} in
                this image?" and teacher-forces the model's refseg answer, so
                exactly one mask comes back). A list pairs with ``inputs``.
            boxes: for prompts with ``<bbox>`` placeholders, per input a list
                of xyxy boxes in original pixels, the k-th box for the k-th
                placeholder (one input: a list of boxes is enough).
            task: ``'chat'``, ``'gcg'`` or ``'refseg'``.
            history: earlier ``(user, assistant)`` turns of a multi-turn
                chat, per input (see :meth:`build_records`); their
                ``<bbox>`` placeholders take the first boxes.
            points, scribbles: click ``[x, y]`` and scribble (list of
                ``[x, y]``) prompts, per input one entry per placeholder like
                ``boxes``; mixing kinds, align the lists with None (the k-th
                placeholder takes the one kind not None at k). They need a
                model whose prompt slot reads visual prompts (LLaVA-G's
                ``SemanticSAMPromptEncoder``, or GLaMM with it as
                ``region_encoder``); a box encoder (RoIAlign) takes boxes.
            marks: Set-of-Mark prompts, one xyxy box per placeholder like
                ``boxes``: the box's filled rectangle is painted on the
                image with its number (``PaintMarks``) and the placeholder
                becomes that number (``[1]``, ...), for any model.
            batch_size: samples per forward (batched, left-padded
                generation).
            return_datasamples: return the filled ``DetDataSample``s instead
                of dicts.
            max_new_tokens, do_sample, temperature, top_p, seed: override the
                model's ``generation_cfg`` for this call.
            out_dir: write ``{out_dir}/vis/{n:06d}_{name}.png`` per input.
            show, wait_time: display the visualisation in a window.
            mask_format: ``'bool'`` (np.ndarray bool [H, W] each) or
                ``'rle'`` (COCO RLE dicts, ``counts`` as str).

        Returns:
            Per input, a dict ``text`` (raw answer with markup), ``caption``
            (markup removed), ``phrases`` (list[str]), ``masks`` (one per
            generated grounding token, original image size), ``boxes``
            (list of xyxy from the masks), ``scores`` (list[float]), plus
            ``vis_file`` when ``out_dir`` is given; or the data samples.
        """
        if mask_format not in MASK_FORMATS:
            raise ValueError(f'GroundingInferencer: mask_format must be one '
                             f'of {MASK_FORMATS}, got {mask_format!r}')
        if batch_size < 1:
            raise ValueError(f'GroundingInferencer: batch_size must be >= 1, '
                             f'got {batch_size}')
        records = self.build_records(inputs, prompt, boxes, task, history,
                                     points, scribbles, marks)
        kinds = {p['type'] for r in records for p in r.get('visual_prompts',
                                                             [])}
        encoded = kinds & set(_ENCODED_KINDS)
        if encoded and not self._reads_visual_prompts():
            raise ValueError(
                f'GroundingInferencer: {type(self.model).__name__} takes box '
                f'prompts only (and marks, which are painted): its prompt '
                f'encoder reads boxes, or it has none; got {sorted(encoded)} '
                'prompts: points and scribbles need a visual prompt encoder '
                '(SemanticSAMPromptEncoder)')
        batches = self.preprocess(records, batch_size=batch_size)
        preds: List[DetDataSample] = []
        with self._model_settings(
                task, max_new_tokens=max_new_tokens, do_sample=do_sample,
                temperature=temperature, top_p=top_p, seed=seed):
            if self.show_progress:
                from rich.progress import track
                batches = track(batches, description='Inference')
            for data in batches:
                preds.extend(self.forward(data))
        vis_files = self.visualize(
            records, preds, out_dir=out_dir, show=show, wait_time=wait_time)
        return self.postprocess(preds, vis_files, return_datasamples,
                                mask_format=mask_format)

    # ----------------------------------------------------------- visualise
    @classmethod
    def _rgb(cls, record: dict) -> np.ndarray:
        """The image the model saw, RGB: marks painted as ``PaintMarks``
        paints them (same numbers, colours and masks)."""
        if 'img' in record:
            img = record['img']
            if img.ndim == 2:
                img = np.repeat(img[..., None], 3, axis=2)
        else:
            img = mmcv.imread(record['img_path'])
        marks = [p for p in cls._add_scribble_masks(
            dict(record, img=img)).get('visual_prompts') or []
                 if p['type'] == 'mark']
        if marks:
            from mmgrounding.datasets.transforms import PaintMarks
            painter = PaintMarks()
            for number, p in enumerate(marks, 1):
                img = painter.paint(img, p['mask'] > 0, number)
        return np.ascontiguousarray(img[..., ::-1])

    def visualize(self,
                  inputs: List[dict],
                  preds: List[DetDataSample],
                  out_dir: Optional[str] = None,
                  show: bool = False,
                  wait_time: float = 0,
                  **kwargs) -> List[Optional[str]]:
        """Draw each answer (masks in the phrases' colours, answer text
        underneath) with the config's ``GroundingVisualizer``.

        Returns:
            The written file per input (None when ``out_dir`` is None).
        """
        files: List[Optional[str]] = [None] * len(preds)
        if out_dir is None and not show:
            return files
        if self.visualizer is None:
            raise ValueError('GroundingInferencer: the config has no '
                             '`visualizer`; cannot draw predictions')
        if out_dir is not None:
            mkdir_or_exist(osp.join(out_dir, 'vis'))
        for k, (record, pred) in enumerate(zip(inputs, preds)):
            path = record.get('img_path')
            stem = osp.splitext(osp.basename(path))[0] if path else 'array'
            name = f'{self.num_visualized:06d}_{stem}'
            self.num_visualized += 1
            out_file = None if out_dir is None else osp.join(
                out_dir, 'vis', name + '.png')
            self.visualizer.add_datasample(
                name,
                self._rgb(record),
                pred,
                draw_gt=False,
                show=show,
                wait_time=wait_time,
                out_file=out_file)
            files[k] = out_file
        return files

    # --------------------------------------------------------- postprocess
    @staticmethod
    def _masks(masks: torch.Tensor, mask_format: str) -> list:
        arr = masks.detach().cpu().numpy().astype(bool)
        if mask_format == 'bool':
            return list(arr)
        rles = []
        for m in arr:
            rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
            rle['counts'] = rle['counts'].decode('ascii')
            rles.append(rle)
        return rles

    def pred_to_dict(self, pred: DetDataSample,
                     mask_format: str = 'bool') -> Dict[str, object]:
        """A data sample's prediction (contract §4) as plain Python."""
        inst = pred.pred_instances
        return dict(
            text=pred.get('pred_text', ''),
            caption=pred.get('pred_caption', ''),
            phrases=list(pred.get('pred_phrases', [])),
            masks=self._masks(inst.masks, mask_format),
            boxes=inst.bboxes.detach().cpu().float().tolist(),
            scores=inst.scores.detach().cpu().float().tolist())

    def postprocess(self,
                    preds: List[DetDataSample],
                    visualization: Optional[List[Optional[str]]] = None,
                    return_datasample: bool = False,
                    mask_format: str = 'bool',
                    **kwargs) -> list:
        """Data samples, or one plain dict per input (see ``__call__``)."""
        if return_datasample:
            return preds
        results = []
        for k, pred in enumerate(preds):
            result = self.pred_to_dict(pred, mask_format)
            if visualization and visualization[k] is not None:
                result['vis_file'] = visualization[k]
            results.append(result)
        return results
