"""Render a model-neutral grounded record as a model's chat prompt."""
import re
from typing import Dict, List, Optional, Union

from mmcv.transforms import BaseTransform

from mmgrounding.registry import TRANSFORMS
from mmgrounding.structures import (CONV_TEMPLATES, GLAMM_PHRASE_FORMAT,
                                    GLAMM_TOKEN_FORMAT, LLAVA_G_PHRASE_FORMAT,
                                    MARKUP_TAGS, GroundingDataError,
                                    insert_markup, render_conversation)
from mmgrounding.structures.conversation import HUMAN_SYSTEM
from .templates import TASK_TEMPLATES
from .utils import sample_rng

IMAGE_PLACEHOLDER = '<image>'
# Region placeholders accepted in records; all become the style's token.
REGION_PLACEHOLDERS = ('<bbox>', '<obj>', '<region>')
_REGION_RE = re.compile('|'.join(re.escape(p) for p in REGION_PLACEHOLDERS))

STYLES = dict(
    glamm=dict(
        system=HUMAN_SYSTEM,
        image_prefix='The <im_start><image><im_end> provides an overview of '
        'the picture.\n',
        region_token='<bbox>',
        markup=dict(default=GLAMM_PHRASE_FORMAT, refseg=GLAMM_TOKEN_FORMAT)),
    llava_g=dict(
        system=None,
        image_prefix='<image>\n',
        region_token='<obj>',
        markup=dict(default=LLAVA_G_PHRASE_FORMAT)),
)


_ARTICLES = ('a', 'an', 'the')


def fill_phrase(template: str, phrase: str) -> str:
    """``template`` with ``{phrase}`` replaced by ``phrase``, without a
    doubled article.

    GLaMM's referring-segmentation question "Can you segment the {phrase} in
    this image?" reads "segment the the red circle" when the expression
    itself starts with an article; the template's article is then dropped
    (a project fix: the official code formats the string as is).
    """
    head, tail = template.split('{phrase}', 1)
    first = phrase.split(' ', 1)[0].lower()
    last = head.rstrip().rsplit(' ', 1)[-1]
    if first in _ARTICLES and head.endswith(' ') and \
            last.lower() in _ARTICLES:
        head = head.rstrip()[:-len(last)]
    return head + phrase + tail.replace('{phrase}', phrase)


@TRANSFORMS.register_module()
class FormatGroundedConversation(BaseTransform):
    """Insert a model's grounding markup and apply its chat template.

    Reads the record fields ``conversations``, ``phrases``, ``regions`` and
    ``task`` (docs/data_contract.md §1). Each phrase span of an assistant turn
    is written in the style's markup (GLaMM ``<p> phrase </p> [SEG]``, or a
    bare ``[SEG]`` replacing the phrase for ``refseg`` as in GLaMM's "It is
    [SEG]." answers; LLaVA-G ``<g_s> phrase <g_e> <seg>``). ``<image>`` in the
    first user turn becomes the style's image prefix (GLaMM: "The
    <im_start><image><im_end> provides an overview of the picture.\\n";
    LLaVA-G: ``<image>\\n``, ``mm_use_im_start_end=False``); region
    placeholders (``<bbox>``, ``<obj>``, ``<region>``) become the style's
    region token. The Vicuna v1 template is then applied.

    Added keys:

    - ``text`` (str): templated text.
    - ``prompt`` (str): text up to and including the ``ASSISTANT:`` that opens
      the final answer.
    - ``answer_spans`` (list[tuple[int, int]]): char span of each assistant
      answer, including the ``</s>`` after it.
    - ``round_spans`` (list[tuple[int, int, int]]): ``(start, prompt_end,
      end)`` of each user+assistant round.
    - ``grounding_spans`` (list[tuple[int, int]]): char span of each grounding
      token in ``text``, in order.
    - ``grounding_phrase_ids`` (list[int]): index into ``phrases`` of each
      grounding token in ``text``.
    - ``target_phrase_ids`` (list[int]): phrases whose masks are the targets:
      those in ``text`` when ``with_answer``, else those of the final answer
      that is left for the model to generate.
    - ``phrases`` is replaced by the rewritten list when a task template
      rebuilt the conversation.

    Args:
        style (str): ``'glamm'`` or ``'llava_g'``.
        template (str): Key of :data:`CONV_TEMPLATES`.
        system (str, optional): System prompt; default: GLaMM's "curious
            human" prompt for ``'glamm'``, the template's for ``'llava_g'``.
        image_prefix (str, optional): Replaces ``<image>`` (and the newline
            after it) in the first user turn. Must contain ``<image>``.
        region_token (str, optional): Region placeholder token written in the
            text (default ``<bbox>`` / ``<obj>``).
        markup (dict, optional): Task name -> markup format (``'default'``
            for the rest); see :func:`mmgrounding.structures.insert_markup`.
        task_templates (str | dict, optional): None keeps the record's user
            text; ``'default'`` uses the style's entry of
            :data:`templates.TASK_TEMPLATES`; a dict gives task rules.
        random_template (bool): Draw templates from the seed and sample index
            instead of taking the first.
        seed (int): Seed of the template draw.
        with_answer (bool): False (predict mode) ends the text right after
            the final ``ASSISTANT:``.
    """

    def __init__(self,
                 style: str = 'glamm',
                 template: str = 'vicuna_v1',
                 system: Optional[str] = None,
                 image_prefix: Optional[str] = None,
                 region_token: Optional[str] = None,
                 markup: Optional[Dict[str, str]] = None,
                 task_templates: Union[None, str, dict] = None,
                 random_template: bool = False,
                 seed: int = 0,
                 with_answer: bool = True) -> None:
        if style not in STYLES:
            raise ValueError(f'unknown style {style!r}; expected one of '
                             f'{sorted(STYLES)}')
        if template not in CONV_TEMPLATES:
            raise ValueError(f'unknown template {template!r}; expected one '
                             f'of {sorted(CONV_TEMPLATES)}')
        defaults = STYLES[style]
        self.style = style
        self.template = CONV_TEMPLATES[template]
        self.system = system if system is not None else defaults['system']
        self.image_prefix = (image_prefix if image_prefix is not None else
                             defaults['image_prefix'])
        if self.image_prefix.count(IMAGE_PLACEHOLDER) != 1:
            raise ValueError(f'image_prefix {self.image_prefix!r} must '
                             f'contain {IMAGE_PLACEHOLDER!r} exactly once')
        self.region_token = region_token or defaults['region_token']
        self.grounding_token = MARKUP_TAGS[style][2]
        self.markup = dict(defaults['markup'])
        self.markup.update(markup or {})
        for fmt in self.markup.values():
            if fmt.count(self.grounding_token) != 1:
                raise ValueError(f'markup {fmt!r} must contain '
                                 f'{self.grounding_token!r} exactly once')
        if task_templates == 'default':
            task_templates = TASK_TEMPLATES[style]
        elif isinstance(task_templates, str):
            raise ValueError("task_templates must be None, 'default' or a "
                             f'dict; got {task_templates!r}')
        self.task_templates = task_templates or {}
        self.random_template = random_template
        self.seed = seed
        self.with_answer = with_answer

    # ------------------------------------------------------------------ utils
    def _choose(self, options: List[str], rng) -> str:
        if self.random_template and len(options) > 1:
            return options[int(rng.integers(len(options)))]
        return options[0]

    def _check_record(self, results: dict) -> None:
        convs = results.get('conversations')
        if not convs:
            raise GroundingDataError.from_results(
                results, 'conversations', 'no conversation turns')
        for i, turn in enumerate(convs):
            role = turn.get('role')
            expected = 'user' if i % 2 == 0 else 'assistant'
            if role != expected:
                raise GroundingDataError.from_results(
                    results, 'conversations',
                    f'turn {i} has role {role!r}, expected {expected!r} '
                    '(turns alternate, user first)')
        if len(convs) % 2 and self.with_answer:
            raise GroundingDataError.from_results(
                results, 'conversations',
                f'{len(convs)} turns: the last turn must be the assistant')
        last = (-1, -1)
        for j, phrase in enumerate(results.get('phrases') or []):
            turn, start, end = phrase['turn'], phrase['start'], phrase['end']
            if not (0 <= turn < len(convs)) or turn % 2 == 0:
                raise GroundingDataError.from_results(
                    results, 'phrases',
                    f'phrase {j} is in turn {turn}, which is not an '
                    'assistant turn')
            text = convs[turn]['text']
            if not (0 <= start <= end <= len(text)):
                raise GroundingDataError.from_results(
                    results, 'phrases',
                    f'phrase {j} span [{start}, {end}) is outside turn '
                    f'{turn} (length {len(text)})')
            if 'text' in phrase and phrase['text'] != text[start:end]:
                raise GroundingDataError.from_results(
                    results, 'phrases',
                    f'phrase {j} text {phrase["text"]!r} != span text '
                    f'{text[start:end]!r}')
            if (turn, start) < last:
                raise GroundingDataError.from_results(
                    results, 'phrases',
                    f'phrase {j} at (turn {turn}, char {start}) comes before '
                    'the previous phrase; phrases must be listed in text '
                    'order')
            last = (turn, end)

    # ------------------------------------------------------------ rewriting
    def _rewrite(self, results: dict, messages: List[str],
                 phrases: List[dict], rng):
        rules = self.task_templates.get(results.get('task'))
        if not rules:
            return messages, phrases
        if 'answers' in rules:
            return self._rebuild_per_phrase(results, messages, phrases,
                                            rules, rng)
        messages = list(messages)
        for i in range(0, len(messages), 2):
            if 'questions' in rules:
                old = messages[i]
                new = self._choose(rules['questions'], rng)
                n_old = len(_REGION_RE.findall(old))
                n_new = len(_REGION_RE.findall(new))
                if n_old != n_new:
                    raise GroundingDataError.from_results(
                        results, 'conversations',
                        f'user turn {i} has {n_old} region placeholders but '
                        f'the {results.get("task")!r} template has {n_new}')
                if IMAGE_PLACEHOLDER in old:
                    new = IMAGE_PLACEHOLDER + '\n' + new
                messages[i] = new
            if 'suffix' in rules and any(p['turn'] == i + 1
                                         for p in phrases):
                suffix = self._choose(rules['suffix'], rng)
                if not messages[i].rstrip().endswith(suffix.strip()):
                    messages[i] = messages[i] + suffix
        return messages, phrases

    def _rebuild_per_phrase(self, results, messages, phrases, rules, rng):
        if not phrases:
            return messages, phrases
        new_messages, new_phrases = [], []
        for j, phrase in enumerate(phrases):
            text = messages[phrase['turn']][phrase['start']:phrase['end']]
            if not text.strip():
                raise GroundingDataError.from_results(
                    results, 'phrases',
                    f'phrase {j} is empty; a {results.get("task")!r} '
                    'template needs the referring expression')
            shown = text.lower() if rules.get('lowercase') else text
            question = fill_phrase(self._choose(rules['questions'], rng),
                                   shown)
            if j == 0:
                question = IMAGE_PLACEHOLDER + '\n' + question
            head, tail = self._choose(rules['answers'], rng).split('{seg}')
            new_phrase = dict(phrase, turn=len(new_messages) + 1,
                              start=len(head), end=len(head) + len(text),
                              text=text)
            new_messages += [question, head + text + tail]
            new_phrases.append(new_phrase)
        return new_messages, new_phrases

    # ------------------------------------------------------------ transform
    def _place_image(self, results: dict, messages: List[str]) -> None:
        for i in range(2, len(messages), 2):
            if IMAGE_PLACEHOLDER in messages[i]:
                raise GroundingDataError.from_results(
                    results, 'conversations',
                    f'{IMAGE_PLACEHOLDER} in user turn {i}; only the first '
                    'user turn may hold the image')
        first = messages[0]
        count = first.count(IMAGE_PLACEHOLDER)
        if count > 1:
            raise GroundingDataError.from_results(
                results, 'conversations',
                f'{count} {IMAGE_PLACEHOLDER} placeholders in the first user '
                'turn; one image per sample is supported')
        rest = first.replace(IMAGE_PLACEHOLDER, '', 1).strip()
        messages[0] = self.image_prefix + rest

    def _place_regions(self, results: dict, messages: List[str]) -> None:
        count = 0
        for i in range(0, len(messages), 2):
            count += len(_REGION_RE.findall(messages[i]))
            messages[i] = _REGION_RE.sub(self.region_token, messages[i])
        for i in range(1, len(messages), 2):
            if _REGION_RE.search(messages[i]):
                raise GroundingDataError.from_results(
                    results, 'conversations',
                    f'region placeholder in assistant turn {i}')
        n_regions = len(results.get('regions') or [])
        if count != n_regions:
            raise GroundingDataError.from_results(
                results, 'regions',
                f'{count} region placeholders in the text but {n_regions} '
                'regions')

    def transform(self, results: dict) -> dict:
        self._check_record(results)
        rng = sample_rng(results, self.seed, salt=1)
        messages = [turn['text'] for turn in results['conversations']]
        if len(messages) % 2:  # predict mode: an open final answer
            messages.append('')
        phrases = [dict(p) for p in (results.get('phrases') or [])]
        for p in phrases:
            p.setdefault('text', messages[p['turn']][p['start']:p['end']])
        messages, phrases = self._rewrite(results, messages, phrases, rng)
        self._place_image(results, messages)
        self._place_regions(results, messages)

        fmt = self.markup.get(results.get('task'), self.markup['default'])
        # Markup per assistant turn; local token offsets kept per phrase.
        local_tokens: Dict[int, tuple] = {}
        for turn in range(1, len(messages), 2):
            ids = [j for j, p in enumerate(phrases) if p['turn'] == turn]
            if not ids:
                continue
            for j in ids:
                if self.grounding_token in messages[turn]:
                    raise GroundingDataError.from_results(
                        results, 'conversations',
                        f'assistant turn {turn} already contains '
                        f'{self.grounding_token!r}; records must hold plain '
                        'text with phrase spans')
            formatted = insert_markup(
                messages[turn], [(phrases[j]['start'], phrases[j]['end'])
                                 for j in ids], fmt, self.grounding_token)
            messages[turn] = formatted.text
            for j, span in zip(ids, formatted.token_spans):
                local_tokens[j] = (turn, span)

        final_turn = len(messages) - 1
        rendered_messages: List[Optional[str]] = list(messages)
        if not self.with_answer:
            rendered_messages[-1] = None
        rendered = render_conversation(rendered_messages, self.template,
                                       self.system)

        grounding_spans, grounding_ids, target_ids = [], [], []
        for j in range(len(phrases)):
            turn, (s, e) = local_tokens[j]
            if not self.with_answer and turn == final_turn:
                target_ids.append(j)
                continue
            offset = rendered.message_starts[turn]
            grounding_spans.append((offset + s, offset + e))
            grounding_ids.append(j)
        if self.with_answer:
            target_ids = list(grounding_ids)

        text = rendered.text
        results['text'] = text
        results['prompt'] = text[:rendered.rounds[-1].prompt_end]
        results['answer_spans'] = [
            r.answer for r in rendered.rounds if r.answer is not None
        ]
        results['round_spans'] = [(r.start, r.prompt_end, r.end)
                                  for r in rendered.rounds]
        results['grounding_spans'] = grounding_spans
        results['grounding_phrase_ids'] = grounding_ids
        results['target_phrase_ids'] = target_ids
        results['phrases'] = phrases
        results['with_answer'] = self.with_answer
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(style={self.style!r}, '
                f'with_answer={self.with_answer}, '
                f'random_template={self.random_template}, seed={self.seed})')
