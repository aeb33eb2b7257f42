"""Gradio web demo: chat, GCG, referring segmentation and region questions.

Start it with ``make web`` (tiny GLaMM from ``make demo``) or::

    python demo/web_demo.py --config CONFIG --checkpoint CKPT --port 7860

Upload an image, pick a task, type a prompt and click on the image: in box
mode two clicks (opposite corners) make a box, in point mode a click makes a
point. The k-th box fills the k-th ``<bbox>`` of the prompt (points, for
models with a visual prompt encoder, fill the placeholders after the boxes).
The answer shows each grounded phrase in the colour of its mask; the image on
the right is drawn by the config's ``GroundingVisualizer`` (masks, their
boxes, and the prompt boxes / points). Earlier turns are sent as chat history
until the image changes or "Clear chat" is pressed.

Why ``gr.Image`` + ``select`` events rather than ``gr.ImageEditor``: the
editor (Gradio 6) returns brush/eraser *layers*, so boxes would have to be
guessed from stroke pixels, and a stroke cannot be told apart from a click.
A select event gives the exact pixel of each click in original image
coordinates, which is what box (xyxy) and point prompts are.

Everything except :func:`build_app` works without Gradio: the prompt
building, the box / point bookkeeping and the coloured answer HTML are plain
functions that the fast unit tests cover.
"""
import argparse
import html
import os
import os.path as osp
import re
import threading
from dataclasses import dataclass, field, replace
from typing import List, Optional, Sequence, Tuple

import numpy as np

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')  # no network

from mmgrounding.structures.markup import (MARKUP_TAGS,  # noqa: E402
                                           parse_markup)
from mmgrounding.visualization.grounding_visualizer import \
    PALETTE  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
#: What ``make demo`` (tools/demo.sh) trains and where it writes.
DEFAULT_CONFIG = ('configs/glamm/'
                  'glamm_llama-tiny_clip-tiny_sam-tiny_1000it_synthetic.py')
DEFAULT_WORK_DIR = 'work_dirs/glamm_tiny_demo'

#: UI label -> demo task. ``region`` is a chat turn about boxed regions.
TASKS = {
    'Chat': 'chat',
    'Grounded caption (GCG)': 'gcg',
    'Referring segmentation': 'refseg',
    'Region caption / question about a region': 'region',
}
BOX_MODE, POINT_MODE = 'box (click two corners)', 'point'
#: GLaMM's region caption question (its region-caption template).
REGION_QUESTION = ('Can you provide me with a detailed description of the '
                   'region in the picture marked by <bbox>?')
PLACEHOLDERS = ('<bbox>', '<obj>', '<region>')
PROMPT_COLOUR = (255, 215, 0)  # boxes / points the user drew: gold
PENDING_COLOUR = (255, 255, 255)
STOP_TOKENS = ('</s>', '<|endoftext|>')


class DemoError(ValueError):
    """A message for the user (bad input); the UI shows it as an error."""


# --------------------------------------------------------------- checkpoint
def default_checkpoint(work_dir: str = DEFAULT_WORK_DIR) -> Optional[str]:
    """The checkpoint named by ``{work_dir}/last_checkpoint`` (what
    ``make demo`` leaves behind), or None when there is none."""
    marker = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(marker):
        return None
    with open(marker) as f:
        path = f.read().strip()
    return path if path and osp.isfile(path) else None


def check_checkpoint(model_state: dict, ckpt_state: dict,
                     ckpt_path: str, config: str) -> None:
    """Refuse a checkpoint that was not saved from this config's model.

    The inferencer loads non-strictly (checkpoints holding only the trained
    weights are fine: missing keys keep their initialisation), so a
    checkpoint of another model would load silently. Unexpected keys, shape
    mismatches or no key in common mean it belongs to another config.

    Raises:
        DemoError: naming the checkpoint, the config and the first offenders.
    """
    unexpected = sorted(set(ckpt_state) - set(model_state))
    mismatched = sorted(
        k for k in set(ckpt_state) & set(model_state)
        if hasattr(ckpt_state[k], 'shape')
        and tuple(ckpt_state[k].shape) != tuple(model_state[k].shape))
    common = set(ckpt_state) & set(model_state)
    if not common or unexpected or mismatched:
        details = []
        if not common:
            details.append('no parameter name in common')
        if mismatched:
            k = mismatched[0]
            details.append(
                f'{len(mismatched)} shape mismatch(es), e.g. {k}: checkpoint '
                f'{tuple(ckpt_state[k].shape)} vs model '
                f'{tuple(model_state[k].shape)}')
        if unexpected:
            details.append(f'{len(unexpected)} key(s) the model does not '
                           f'have, e.g. {unexpected[:3]}')
        raise DemoError(
            f'checkpoint {osp.basename(ckpt_path)} does not match config '
            f'{osp.basename(config)}: ' + '; '.join(details))


def load_inferencer(config: str,
                    checkpoint: Optional[str],
                    device: str = 'cpu',
                    max_new_tokens: Optional[int] = None):
    """A ``GroundingInferencer`` for ``config`` with ``checkpoint`` loaded
    after :func:`check_checkpoint` accepted it (None: random weights)."""
    import warnings

    import torch
    from mmengine.config import Config
    from mmengine.runner.checkpoint import _load_checkpoint, load_state_dict

    from mmgrounding.apis import GroundingInferencer
    from mmgrounding.utils.checkpoint import allow_checkpoint_globals

    if not config or not osp.isfile(config):
        raise DemoError(f'no config file {config!r}')
    if checkpoint and not osp.isfile(checkpoint):
        raise DemoError(f'no checkpoint file {checkpoint!r}')
    cfg = Config.fromfile(config)
    if max_new_tokens is not None and 'generation_cfg' in cfg.model:
        cfg.model.generation_cfg.max_new_tokens = max_new_tokens
    with warnings.catch_warnings():
        # weights come below, after the check
        warnings.filterwarnings('ignore', message='.*randomly initialized')
        inferencer = GroundingInferencer(cfg, weights=None, device=device)
    if checkpoint:
        allow_checkpoint_globals()
        try:
            ckpt = _load_checkpoint(checkpoint, map_location='cpu')
        except Exception as e:  # unreadable / not a torch file
            raise DemoError(f'cannot read checkpoint '
                            f'{osp.basename(checkpoint)}: {e}') from e
        state = ckpt.get('state_dict', ckpt) if isinstance(ckpt,
                                                           dict) else None
        if not isinstance(state, dict) or not all(
                isinstance(v, torch.Tensor) for v in state.values()):
            raise DemoError(f'checkpoint {osp.basename(checkpoint)} holds no'
                            ' state dict of tensors')
        state = {k[7:] if k.startswith('module.') else k: v
                 for k, v in state.items()}
        check_checkpoint(inferencer.model.state_dict(), state, checkpoint,
                         config)
        load_state_dict(inferencer.model, state, strict=False)
    inferencer.model.eval()
    return inferencer


def conversation_style(cfg) -> str:
    """The markup style of the config's ``FormatGroundedConversation``."""
    def walk(node):
        if isinstance(node, dict):
            if str(node.get('type', '')).split('.')[-1] == \
                    'FormatGroundedConversation':
                return node.get('style', 'glamm')
            node = list(node.values())
        if isinstance(node, (list, tuple)):
            for item in node:
                found = walk(item)
                if found:
                    return found
        return None

    return walk(cfg.to_dict() if hasattr(cfg, 'to_dict') else cfg) or 'glamm'


# ---------------------------------------------------------- visual prompts
@dataclass(frozen=True)
class VisualPrompts:
    """Boxes and points the user clicked, in original image pixels.

    ``pending`` is the first corner of a box whose second click is awaited.
    """
    boxes: Tuple[Tuple[float, float, float, float], ...] = ()
    points: Tuple[Tuple[float, float], ...] = ()
    pending: Optional[Tuple[float, float]] = None
    order: Tuple[str, ...] = field(default=())  # 'box'/'point', for undo


def add_click(prompts: VisualPrompts, x: float, y: float,
              mode: str = BOX_MODE) -> VisualPrompts:
    """Record one click: a point, or a box corner (two make a box).

    Raises:
        DemoError: the second corner gives a box of zero width or height.
    """
    xy = (float(x), float(y))
    if mode == POINT_MODE:
        return replace(prompts, points=prompts.points + (xy, ),
                       order=prompts.order + ('point', ))
    if mode != BOX_MODE:
        raise DemoError(f'unknown click mode {mode!r}')
    if prompts.pending is None:
        return replace(prompts, pending=xy)
    (x0, y0), (x1, y1) = prompts.pending, xy
    box = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
    if box[2] - box[0] < 1 or box[3] - box[1] < 1:
        raise DemoError(
            f'the two corners {prompts.pending} and {xy} make an empty box; '
            'click two opposite corners')
    return replace(prompts, boxes=prompts.boxes + (box, ), pending=None,
                   order=prompts.order + ('box', ))


def undo_click(prompts: VisualPrompts) -> VisualPrompts:
    """Drop the pending corner, else the last box or point."""
    if prompts.pending is not None:
        return replace(prompts, pending=None)
    if not prompts.order:
        return prompts
    last = prompts.order[-1]
    if last == 'box':
        return replace(prompts, boxes=prompts.boxes[:-1],
                       order=prompts.order[:-1])
    return replace(prompts, points=prompts.points[:-1],
                   order=prompts.order[:-1])


def describe_prompts(prompts: VisualPrompts) -> str:
    """One line for the UI: the boxes (numbered as their ``<bbox>``) and
    points."""
    parts = []
    for k, b in enumerate(prompts.boxes):
        parts.append(f'box {k + 1} [{", ".join(f"{v:.0f}" for v in b)}]')
    for k, p in enumerate(prompts.points):
        parts.append(f'point {k + 1} ({p[0]:.0f}, {p[1]:.0f})')
    if prompts.pending is not None:
        parts.append(f'corner at ({prompts.pending[0]:.0f}, '
                     f'{prompts.pending[1]:.0f}): click the opposite corner')
    return '; '.join(parts) if parts else 'no boxes or points'


def count_placeholders(text: str) -> int:
    """How many region placeholders (``<bbox>``, ``<obj>``, ``<region>``)."""
    return sum(text.count(p) for p in PLACEHOLDERS)


# ------------------------------------------------------------------ turns
@dataclass(frozen=True)
class Turn:
    """One finished turn of the chat, as it is replayed as history."""
    question: str  # what the user turn said (placeholders included)
    answer: str  # plain-text answer (markup removed)
    boxes: Tuple[Tuple[float, float, float, float], ...] = ()


@dataclass(frozen=True)
class Request:
    """What one submit asks the inferencer."""
    task: str  # inferencer task: 'chat', 'gcg' or 'refseg'
    prompt: Optional[str]
    boxes: List[List[float]]
    points: List[List[float]]


def build_request(image: Optional[np.ndarray], task: str, prompt: str,
                  prompts: VisualPrompts,
                  supports_points: bool = False) -> Request:
    """Check the user's input and turn it into an inferencer request.

    Args:
        image: the uploaded image (None if none).
        task: a demo task (values of :data:`TASKS`) or its UI label.
        prompt: the typed text.
        prompts: the clicked boxes / points.
        supports_points: whether the loaded model takes point prompts.

    Raises:
        DemoError: no image, a half-drawn box, boxes and ``<bbox>``
            placeholders that do not pair up, a missing prompt, or prompts
            the task does not take.
    """
    task = TASKS.get(task, task)
    if task not in TASKS.values():
        raise DemoError(f'unknown task {task!r}; choose one of '
                        f'{list(TASKS)}')
    if image is None:
        raise DemoError('upload an image first')
    if prompts.pending is not None:
        raise DemoError('a box is half drawn: click its opposite corner '
                        'or press "Undo"')
    prompt = (prompt or '').strip()
    boxes = [list(b) for b in prompts.boxes]
    points = [list(p) for p in prompts.points]
    if points and not supports_points:
        raise DemoError(
            f'this model takes box prompts only; remove the {len(points)} '
            'point(s) (point prompts need a model with a click prompt '
            'encoder, such as LLaVA-Grounding)')
    n_slots = count_placeholders(prompt)
    if task in ('gcg', 'refseg'):
        if boxes or points or n_slots:
            raise DemoError(
                f'{"GCG" if task == "gcg" else "referring segmentation"} '
                'takes no boxes; press "Clear boxes" or pick "Chat" / '
                '"Region caption"')
        if task == 'refseg' and not prompt:
            raise DemoError('type the referring expression to segment, e.g. '
                            '"the red circle"')
        return Request(task, prompt or None, [], [])
    if task == 'region':
        if not boxes and not points:
            raise DemoError('draw a box around the region first (click two '
                            'opposite corners)')
        if not prompt:
            if len(boxes) + len(points) != 1:
                raise DemoError(
                    f'the region caption asks about one box but '
                    f'{len(boxes) + len(points)} are drawn; ask your own '
                    'question with one <bbox> per box')
            prompt, n_slots = REGION_QUESTION, 1
    if not prompt:
        raise DemoError('type a prompt')
    given = len(boxes) + len(points)
    what = 'box(es)' if not points else 'box(es) and point(s)'
    if given > n_slots:
        raise DemoError(
            f'{given} {what} drawn but the prompt has {n_slots} '
            '<bbox> placeholder(s): write one <bbox> per box, in order '
            '(box 1 fills the first <bbox>; points come after the boxes), '
            'or remove boxes')
    if given < n_slots:
        raise DemoError(
            f'the prompt has {n_slots} <bbox> placeholder(s) but only '
            f'{given} {what} are drawn: draw one box per <bbox>')
    return Request('chat', prompt, boxes, points)


def history_args(history: Sequence[Turn]) -> Tuple[list, list]:
    """Earlier turns as the inferencer's ``history`` (user, answer) pairs
    and the boxes of their placeholders, in order."""
    turns = [(t.question, t.answer) for t in history]
    boxes = [list(b) for t in history for b in t.boxes]
    return turns, boxes


# ----------------------------------------------------------------- answer
def rgb_css(colour: Sequence[int], alpha: Optional[float] = None) -> str:
    r, g, b = (int(c) for c in colour)
    return f'rgb({r}, {g}, {b})' if alpha is None else \
        f'rgba({r}, {g}, {b}, {alpha})'


def clean_answer(text: str) -> str:
    """The raw answer without stop tokens, whitespace collapsed."""
    for tok in STOP_TOKENS:
        text = text.replace(tok, ' ')
    return ' '.join(text.split())


def complete_markup(text: str, style: str = 'glamm') -> str:
    """``text`` without markup that no complete phrase owns: an answer cut
    at ``max_new_tokens`` (``'... <p> a'``) loses the unclosed tag, a close
    tag without an open one is dropped, so the strict shared parser
    (``structures.markup.parse_markup``) reads every answer."""
    open_tag, close_tag, _ = MARKUP_TAGS[style]
    out, inside = [], False
    for piece in re.split(f'({re.escape(open_tag)}|{re.escape(close_tag)})',
                          text):
        if piece == open_tag:
            if inside:  # a second open before a close: drop the first
                out[last_open] = ' '
            last_open, inside = len(out), True
        elif piece == close_tag:
            if not inside:
                piece = ' '
            inside = False
        out.append(piece)
    if inside:
        out[last_open] = ' '
    return ' '.join(''.join(out).split())


def answer_html(text: str, phrases: Sequence[str] = (),
                style: str = 'glamm') -> str:
    """The answer as HTML, each grounded phrase in its mask's colour.

    The k-th grounding token (GLaMM ``[SEG]``) owns the k-th mask, which the
    visualizer draws in ``PALETTE[k]``; its phrase gets the same colour. A
    token without phrase (GLaMM "It is [SEG].") shows as a coloured chip
    labelled with ``phrases[k]`` when given (refseg: the expression), else
    "mask k". Markup left over outside complete phrases (an answer cut at
    ``max_new_tokens``: ``... <p> a``) is dropped, as GLaMM's caption
    does. Text is HTML-escaped.
    """
    plain, spans = parse_markup(
        complete_markup(clean_answer(text), style), style, bare_tokens=True)

    def between(piece: str) -> str:
        return html.escape(re.sub(r'\s+', ' ', piece))

    out, cursor = [], 0
    for k, (start, end) in enumerate(spans):
        colour = PALETTE[k % len(PALETTE)]
        out.append(between(plain[cursor:start]))
        if end > start:
            out.append(
                f'<span class="grounded" data-mask="{k}" style="background:'
                f' {rgb_css(colour, 0.35)}; border-bottom: 3px solid '
                f'{rgb_css(colour)}">{html.escape(plain[start:end])}</span>')
        else:
            label = phrases[k] if k < len(phrases) and phrases[k] else \
                f'mask {k}'
            out.append(
                f' <span class="grounded chip" data-mask="{k}" style="'
                f'background: {rgb_css(colour)}; color: white; padding: 0 '
                f'4px; border-radius: 4px">{html.escape(label)}</span>')
        cursor = end
    out.append(between(plain[cursor:]))
    return '<div class="answer">' + ''.join(out).strip() + '</div>'


def chat_messages(history: Sequence[Turn], htmls: Sequence[str]) -> list:
    """Gradio ``Chatbot`` messages: user text, coloured answer, per turn."""
    messages = []
    for turn, answer in zip(history, htmls):
        messages.append(dict(role='user', content=html.escape(turn.question)))
        messages.append(dict(role='assistant', content=answer))
    return messages


# ---------------------------------------------------------------- drawing
def draw_prompts(visualizer, image: np.ndarray, prompts: VisualPrompts,
                 ) -> np.ndarray:
    """``image`` (RGB) with the prompt boxes (numbered), points and a
    pending corner drawn by ``visualizer``; its size is unchanged."""
    visualizer.set_image(image.copy())
    if prompts.boxes:
        boxes = np.asarray(prompts.boxes, np.float32)
        visualizer.draw_bboxes(boxes, edge_colors=[PROMPT_COLOUR],
                               line_widths=2)
        visualizer.draw_texts(
            [f'<bbox> {k + 1}' for k in range(len(boxes))],
            boxes[:, :2] + 2, colors=[PROMPT_COLOUR], font_sizes=8)
    if prompts.points:
        visualizer.draw_points(np.asarray(prompts.points, np.float32),
                               colors=[PROMPT_COLOUR], sizes=np.array([40]))
    if prompts.pending is not None:
        visualizer.draw_points(np.asarray([prompts.pending], np.float32),
                               colors=[PENDING_COLOUR], sizes=np.array([40]))
    return visualizer.get_image()


def draw_answer(visualizer, image: np.ndarray, pred,
                prompts: VisualPrompts) -> np.ndarray:
    """The visualizer's prediction panel (masks, their boxes, phrases and
    answer under the image) with the prompts drawn over the image part
    (on top of the masks, so they stay visible)."""
    visualizer.add_datasample('web_demo', image, pred, draw_gt=False)
    drawn = visualizer.get_image().copy()
    h, w = image.shape[:2]  # the image sits at the panel's top left
    drawn[:h, :w] = draw_prompts(visualizer, drawn[:h, :w],
                                 replace(prompts, pending=None))
    return drawn


# -------------------------------------------------------------------- app
class DemoApp:
    """The model, its visualizer and one lock (Gradio runs events in
    threads; the model and the visualizer hold state)."""

    def __init__(self, config: str, checkpoint: Optional[str],
                 device: str = 'cpu',
                 max_new_tokens: Optional[int] = None) -> None:
        self.lock = threading.Lock()
        self.load(config, checkpoint, device, max_new_tokens)

    def load(self, config: str, checkpoint: Optional[str],
             device: str = 'cpu',
             max_new_tokens: Optional[int] = None) -> str:
        inferencer = load_inferencer(config, checkpoint, device,
                                     max_new_tokens)
        if inferencer.visualizer is None:
            raise DemoError(f'config {osp.basename(config)} has no '
                            'visualizer')
        with self.lock:
            self.inferencer = inferencer
            self.visualizer = inferencer.visualizer
            self.style = conversation_style(inferencer.cfg)
            self.config, self.checkpoint = config, checkpoint
        return self.status()

    def status(self) -> str:
        ckpt = self.checkpoint or 'none (random weights: answers are noise)'
        return (f'**model** `{type(self.inferencer.model).__name__}` · '
                f'**config** `{self.config}` · **checkpoint** `{ckpt}`')

    @property
    def supports_points(self) -> bool:
        """Whether the model reads click / scribble prompts (a visual
        prompt encoder, LLaVA-Grounding); GLaMM reads boxes only."""
        return getattr(self.inferencer.model, 'prompt_encoder',
                       None) is not None

    def answer(self, image: np.ndarray, request: Request,
               history: Sequence[Turn] = ()):
        """Run one turn: the prediction (``DetDataSample``) and its dict."""
        turns, old_boxes = history_args(history)
        boxes = old_boxes + request.boxes
        kwargs = {}
        if request.points:  # aligned lists: the k-th placeholder takes one
            kwargs['points'] = [[None] * len(boxes) + request.points]
            boxes = boxes + [None] * len(request.points)
        bgr = np.ascontiguousarray(image[..., :3][..., ::-1])
        with self.lock:
            try:
                pred = self.inferencer(
                    bgr, request.prompt, boxes=[boxes], task=request.task,
                    history=[turns], return_datasamples=True, **kwargs)[0]
            except (ValueError, FileNotFoundError, TypeError) as e:
                raise DemoError(str(e)) from e
            return pred, self.inferencer.pred_to_dict(pred)

    def turn(self, image: np.ndarray, task: str, prompt: str,
             prompts: VisualPrompts, history: Sequence[Turn]):
        """Check, answer and render one submit.

        Returns:
            (answer HTML, drawn RGB image, the finished :class:`Turn`).
        """
        request = build_request(image, task, prompt, prompts,
                                self.supports_points)
        image = image[..., :3] if image.ndim == 3 else np.repeat(
            image[..., None], 3, axis=2)
        pred, result = self.answer(image, request, history)
        with self.lock:
            drawn = draw_answer(self.visualizer, image, pred, prompts)
        html_answer = answer_html(result['text'], result['phrases'],
                                  self.style)
        question = request.prompt or ''
        if request.task == 'refseg':
            from mmgrounding.apis.grounding_inferencer import REFSEG_QUESTION
            question = REFSEG_QUESTION.format(phrase=question)
        elif request.task == 'gcg' and not question:
            from mmgrounding.apis.grounding_inferencer import GCG_PROMPT
            question = GCG_PROMPT
        finished = Turn(question, result['caption'],
                        tuple(tuple(b) for b in request.boxes))
        return html_answer, drawn, finished


def build_app(app: DemoApp):
    """The Gradio ``Blocks`` of the demo (element ids for the browser
    test: ``input-image``, ``task``, ``prompt``, ``submit``, ``answer``,
    ``output-image``, ``prompts-info``, ``chat``)."""
    import gradio as gr

    def ui_error(e: Exception):
        return gr.Error(str(e), duration=None)

    def on_upload(image):
        prompts = VisualPrompts()
        return (image, prompts, describe_prompts(prompts), [], [], [], '',
                None)

    def on_select(orig, prompts, mode, evt: gr.SelectData):
        if orig is None:
            raise ui_error(DemoError('upload an image first'))
        try:
            prompts = add_click(prompts, *evt.index[:2], mode)
        except DemoError as e:
            raise ui_error(e)
        with app.lock:
            shown = draw_prompts(app.visualizer, orig[..., :3], prompts)
        return shown, prompts, describe_prompts(prompts)

    def redraw(orig, prompts):
        if orig is None:
            return None, prompts, describe_prompts(prompts)
        with app.lock:
            shown = draw_prompts(app.visualizer, orig[..., :3], prompts)
        return shown, prompts, describe_prompts(prompts)

    def on_undo(orig, prompts):
        return redraw(orig, undo_click(prompts))

    def on_clear_prompts(orig, prompts):
        return redraw(orig, VisualPrompts())

    def on_submit(orig, task, prompt, prompts, history, htmls):
        try:
            html_answer, drawn, finished = app.turn(orig, task, prompt,
                                                    prompts, history)
        except DemoError as e:
            raise ui_error(e)
        history = list(history) + [finished]
        htmls = list(htmls) + [html_answer]
        return (html_answer, drawn, chat_messages(history, htmls), history,
                htmls)

    def on_clear_chat():
        return '', None, [], [], []

    def on_load(config, checkpoint, device):
        try:
            return app.load(config.strip(), checkpoint.strip() or None,
                            device.strip() or 'cpu')
        except DemoError as e:
            raise ui_error(e)

    with gr.Blocks(title='mmgrounding web demo') as blocks:
        gr.Markdown('## mmgrounding: pixel-grounded chat (GLaMM)\n'
                    'Upload an image, pick a task, click on the image to '
                    'draw boxes (two opposite corners) or points, type a '
                    'prompt with one `<bbox>` per box, submit.')
        model_info = gr.Markdown(app.status(), elem_id='model-info')
        orig = gr.State(None)
        prompts = gr.State(VisualPrompts())
        history = gr.State([])
        htmls = gr.State([])
        with gr.Row():
            with gr.Column():
                image = gr.Image(label='Image (click to add prompts)',
                                 type='numpy', sources=['upload'],
                                 image_mode='RGB', format='png',
                                 elem_id='input-image')
                mode = gr.Radio([BOX_MODE, POINT_MODE], value=BOX_MODE,
                                label='A click adds a', elem_id='click-mode')
                info = gr.Markdown(describe_prompts(VisualPrompts()),
                                   elem_id='prompts-info')
                with gr.Row():
                    undo = gr.Button('Undo', elem_id='undo')
                    clear_prompts = gr.Button('Clear boxes',
                                              elem_id='clear-prompts')
                task = gr.Radio(list(TASKS), value='Chat', label='Task',
                                elem_id='task')
                prompt = gr.Textbox(
                    label='Prompt', elem_id='prompt', lines=2,
                    placeholder='What is in <bbox>?  /  the red circle  /  '
                    'empty for GCG or region caption')
                with gr.Row():
                    submit = gr.Button('Submit', variant='primary',
                                       elem_id='submit')
                    clear_chat = gr.Button('Clear chat', elem_id='clear-chat')
                with gr.Accordion('Model', open=False):
                    config = gr.Textbox(app.config, label='Config')
                    checkpoint = gr.Textbox(app.checkpoint or '',
                                            label='Checkpoint')
                    device = gr.Textbox('cpu', label='Device')
                    load = gr.Button('Load model', elem_id='load')
            with gr.Column():
                answer = gr.HTML(label='Answer', elem_id='answer')
                output = gr.Image(label='Grounded answer', type='numpy',
                                  interactive=False, format='png',
                                  elem_id='output-image')
                chat = gr.Chatbot(label='Conversation', sanitize_html=False,
                                  elem_id='chat')

        image.upload(on_upload, [image],
                     [orig, prompts, info, history, htmls, chat, answer,
                      output])
        image.clear(lambda: (None, VisualPrompts(), describe_prompts(
            VisualPrompts()), [], [], [], '', None), None,
            [orig, prompts, info, history, htmls, chat, answer, output])
        image.select(on_select, [orig, prompts, mode], [image, prompts, info])
        undo.click(on_undo, [orig, prompts], [image, prompts, info])
        clear_prompts.click(on_clear_prompts, [orig, prompts],
                            [image, prompts, info])
        submit_args = ([orig, task, prompt, prompts, history, htmls],
                       [answer, output, chat, history, htmls])
        submit.click(on_submit, *submit_args)
        prompt.submit(on_submit, *submit_args)
        clear_chat.click(on_clear_chat, None,
                         [answer, output, chat, history, htmls])
        load.click(on_load, [config, checkpoint, device], [model_info])
    return blocks


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='mmgrounding web demo')
    parser.add_argument('--config', default=DEFAULT_CONFIG)
    parser.add_argument('--checkpoint', help='default: the last checkpoint '
                        f'of {DEFAULT_WORK_DIR} (make demo)')
    parser.add_argument('--random-weights', action='store_true',
                        help='run without a checkpoint (UI checks only)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--port', type=int, default=7860)
    parser.add_argument('--max-new-tokens', type=int)
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    checkpoint = args.checkpoint
    if checkpoint is None and not args.random_weights:
        checkpoint = default_checkpoint()
        if checkpoint is None:
            raise SystemExit(
                f'no checkpoint: run `make demo` first (it writes '
                f'{DEFAULT_WORK_DIR}/last_checkpoint), pass --checkpoint, or '
                '--random-weights')
    app = DemoApp(args.config, checkpoint, args.device, args.max_new_tokens)
    blocks = build_app(app)
    blocks.queue(default_concurrency_limit=1)
    print(f'[web_demo] serving {args.config} on http://{args.host}:'
          f'{args.port}', flush=True)
    blocks.launch(server_name=args.host, server_port=args.port,
                  share=False, show_error=True, inbrowser=False)


if __name__ == '__main__':
    main()
