"""Grounding markup: insert it at phrase spans, parse it back, strip it.

Records keep grounded phrases as character spans (model-neutral); each model
family writes them with its own markup in the conversation text:

- GLaMM: ``<p> phrase </p> [SEG]`` (GCG answers), a bare ``[SEG]`` for
  referring-segmentation answers ("It is [SEG].").
- LLaVA-G: ``<g_s> phrase <g_e> <seg>``.

A markup format is a ``str.format`` pattern with a ``{phrase}`` field (or none,
for a bare grounding token that replaces the phrase) and exactly one occurrence
of the grounding token.
"""
import re
from typing import List, NamedTuple, Optional, Sequence, Tuple

from .errors import GroundingDataError

GLAMM_PHRASE_FORMAT = '<p> {phrase} </p> [SEG]'
GLAMM_TOKEN_FORMAT = '[SEG]'
LLAVA_G_PHRASE_FORMAT = '<g_s> {phrase} <g_e> <seg>'
LLAVA_G_TOKEN_FORMAT = '<seg>'

#: Special tokens of each model family, written once: the tokenizer adds
#: them by name (``HFCausalLM.special_tokens``), tokenizers for tests and the
#: synthetic world register them. GLaMM: the official order (ids 32000..32006
#: on Vicuna) plus our ``<image>`` placeholder.
GLAMM_SPECIAL_TOKENS = ('<im_start>', '<im_end>', '<bbox>', '<point>', '[SEG]',
                        '<p>', '</p>', '<image>')
#: LLaVA-Grounding: phrase tags, grounding token, visual-prompt placeholder
#: (it shares ``<image>`` with GLaMM).
LLAVA_G_SPECIAL_TOKENS = ('<g_s>', '<g_e>', '<seg>', '<obj>')
SPECIAL_TOKENS = dict(glamm=GLAMM_SPECIAL_TOKENS,
                      llava_g=LLAVA_G_SPECIAL_TOKENS)

# (phrase open tag, phrase close tag, grounding token) of each style.
MARKUP_TAGS = {
    'glamm': ('<p>', '</p>', '[SEG]'),
    'llava_g': ('<g_s>', '<g_e>', '<seg>'),
}


class FormattedText(NamedTuple):
    """Text with markup inserted.

    Attributes:
        text (str): The text with markup.
        token_spans (list[tuple[int, int]]): Char span of the grounding token
            written for each input span, in input order.
        phrase_spans (list[tuple[int, int]]): Char span of each phrase in the
            new text (empty, at the token, for a bare-token format).
    """
    text: str
    token_spans: List[Tuple[int, int]]
    phrase_spans: List[Tuple[int, int]]


def _split_format(fmt: str, token: str) -> Tuple[str, str, bool]:
    if fmt.count(token) != 1:
        raise ValueError(f'markup format {fmt!r} must contain the grounding '
                         f'token {token!r} exactly once')
    if '{phrase}' in fmt:
        prefix, suffix = fmt.split('{phrase}', 1)
        return prefix, suffix, True
    return fmt, '', False


def insert_markup(text: str, spans: Sequence[Tuple[int, int]], fmt: str,
                  token: str) -> FormattedText:
    """Write ``fmt`` around (or instead of) each ``text[start:end]`` span.

    Args:
        text (str): Plain text.
        spans (Sequence[tuple[int, int]]): Increasing, non-overlapping
            ``[start, end)`` phrase spans.
        fmt (str): Markup pattern, e.g. ``'<p> {phrase} </p> [SEG]'``; without
            ``{phrase}`` the phrase is replaced by the pattern.
        token (str): The grounding token inside ``fmt``.

    Returns:
        FormattedText: new text, token spans and phrase spans.
    """
    prefix, suffix, keeps_phrase = _split_format(fmt, token)
    pieces, token_spans, phrase_spans = [], [], []
    cursor, length = 0, 0
    for start, end in spans:
        if start < cursor or end < start or end > len(text):
            raise ValueError(f'phrase spans must be increasing, '
                             f'non-overlapping and inside the text '
                             f'(len {len(text)}); got {list(spans)}')
        head = text[cursor:start]
        pieces.append(head)
        length += len(head)
        if keeps_phrase:
            phrase = text[start:end]
            piece = prefix + phrase + suffix
            p_start = length + len(prefix)
            phrase_spans.append((p_start, p_start + len(phrase)))
            if token in prefix:
                t_start = length + prefix.index(token)
            else:
                t_start = (length + len(prefix) + len(phrase) +
                           suffix.index(token))
        else:
            piece = prefix
            t_start = length + prefix.index(token)
            phrase_spans.append((t_start, t_start))
        token_spans.append((t_start, t_start + len(token)))
        pieces.append(piece)
        length += len(piece)
        cursor = end
    pieces.append(text[cursor:])
    return FormattedText(''.join(pieces), token_spans, phrase_spans)


_NO_SPACE_BEFORE = '.,;:!?)]}\''


class MarkupError(ValueError):
    """Malformed grounding markup (datasets add file and record id).

    Attributes:
        field (str): ``'conversations'``, the record field holding the text.
        message (str): what is wrong, with the text.
    """

    def __init__(self, message: str, field: str = 'conversations') -> None:
        self.field = field
        self.message = message
        super().__init__(f'{field}: {message}')


def parse_markup(text: str,
                 style: str = 'glamm',
                 bare_tokens: bool = False
                 ) -> Tuple[str, List[Tuple[int, int]]]:
    """Strip a style's grounding markup; return the plain text and spans.

    ``'I see <g_s> a red circle <g_e> <seg> here.'`` (``'llava_g'``) becomes
    ``('I see a red circle here.', [(6, 18)])``: one ``(start, end)`` char
    span of the plain text per grounding token, in order; the k-th span is
    the phrase closed last before the k-th token. Whitespace inside the tags
    is optional (the official LLaVA-G data writes ``<g_s>phrase<g_e><seg>``).
    A phrase closed without a following grounding token stays plain text
    (LLaVA-G also marks ungrounded phrases). Spaces left around removed tags
    collapse to one; no space is left before ``.,;:!?)]}'``.

    Args:
        text: text with markup.
        style: ``'glamm'`` (``<p> .. </p> [SEG]``) or ``'llava_g'``
            (``<g_s> .. <g_e> <seg>``).
        bare_tokens: accept a grounding token without a phrase (GLaMM
            "It is [SEG]."): it gives an empty span where it stood.

    Raises:
        MarkupError: nested, unclosed or empty phrases, a close tag without
            an open tag, a grounding token inside a phrase, or (unless
            ``bare_tokens``) a grounding token with no phrase before it.
    """
    markup = _style(style)
    open_tag, close_tag, seg_tag = markup
    pattern = '(' + '|'.join(re.escape(t) for t in markup) + ')'
    out = ''
    spans: List[Tuple[int, int]] = []
    phrase_start: Optional[int] = None
    pending: Optional[Tuple[int, int]] = None
    space = False  # a space is owed before the next visible text

    def emit(body: str, lead: bool) -> None:
        nonlocal out
        if (lead or space) and out and not out[-1].isspace() \
                and body[0] not in _NO_SPACE_BEFORE:
            out += ' '
        out += body

    for piece in re.split(pattern, text):
        if piece == open_tag:
            if phrase_start is not None:
                raise MarkupError(f'nested {open_tag} in {text!r}')
            phrase_start = -1  # set when the phrase text arrives
            pending = None
        elif piece == close_tag:
            if phrase_start is None:
                raise MarkupError(
                    f'{close_tag} without {open_tag} in {text!r}')
            if phrase_start < 0:
                raise MarkupError(f'empty phrase in {text!r}')
            pending = (phrase_start, len(out))
            phrase_start = None
            space = False
        elif piece == seg_tag:
            if phrase_start is not None:
                raise MarkupError(
                    f'{seg_tag} inside an open phrase in {text!r}')
            if pending is None:
                if not bare_tokens:
                    raise MarkupError(
                        f'{seg_tag} #{len(spans)} has no preceding '
                        f'"{open_tag} phrase {close_tag}" in {text!r}')
                pending = (len(out.rstrip(' ')), ) * 2
                out = out.rstrip(' ')
            spans.append(pending)
            pending = None
        elif piece:
            body = piece.strip(' ')
            if not body:
                space = True
                continue
            if phrase_start is not None:  # the phrase text itself
                if out and not out[-1].isspace() and \
                        out[-1] not in '([{"\'' and (space or piece[0] == ' '):
                    out += ' '
                phrase_start = len(out)
                out += body
            else:
                emit(body, piece[0] == ' ')
                space = piece[-1] == ' '
    if phrase_start is not None:
        raise MarkupError(f'unclosed {open_tag} in {text!r}')
    return out.rstrip(' '), spans


def _style(style: str) -> Tuple[str, str, str]:
    if style not in MARKUP_TAGS:
        raise ValueError(f'unknown markup style {style!r}; '
                         f'expected one of {sorted(MARKUP_TAGS)}')
    return MARKUP_TAGS[style]


#: A markup tag: ``<...>`` without whitespace inside (``<p>``, ``</p>``,
#: ``<g_s>``, ``<seg>``, ``<im_start>``, ...).
_TAG = re.compile(r'<[^<>\s]*>')


def strip_markup(text: str,
                 style: str = 'glamm',
                 extra_tokens: Optional[Sequence[str]] = None) -> str:
    """The caption of a grounded text: every ``<tag>`` and the style's
    grounding token removed, whitespace runs collapsed to one space.

    This is the GLaMM GCG caption convention (tags and ``[SEG]`` removed,
    newlines dropped); the model's ``pred_caption`` and the metrics' caption
    of a raw answer both come from here.
    """
    token = _style(style)[2]
    text = _TAG.sub(' ', text)
    for tok in [token, *(extra_tokens or [])]:
        text = text.replace(tok, ' ')
    return ' '.join(text.split())


def parse_answer(text: str,
                 style: str = 'glamm',
                 stop_tokens: Sequence[str] = ()) -> Tuple[str, List[str]]:
    """Caption and phrases of a model answer.

    ``'<p> a red circle </p> [SEG] left of ...'`` -> caption
    ``'a red circle left of ...'`` (:func:`strip_markup`) and phrases
    ``['a red circle']`` (the contents of each open/close tag pair, in order,
    whitespace collapsed). ``stop_tokens`` (eos, pad) are blanked first.
    """
    open_tag, close_tag, _ = _style(style)
    for tok in stop_tokens:
        text = text.replace(tok, ' ')
    pattern = re.compile(
        f'{re.escape(open_tag)}(.*?){re.escape(close_tag)}', re.S)
    phrases = [' '.join(p.split()) for p in pattern.findall(text)]
    return strip_markup(text, style), phrases


def clean_official_caption(text: str, style: str = 'glamm') -> str:
    """The official GLaMM GCG cleaning of a raw decoded answer.

    The part after the last ``"ASSISTANT: "`` is kept (a decoded sequence
    may include the prompt), then :func:`strip_markup`, then surrounding
    quotes and spaces are stripped.
    """
    text = str(text).split('ASSISTANT: ')[-1]
    return strip_markup(text, style).strip("'").strip()


#: LLaVA-G's visual-prompt placeholder: official training replaces ``<obj>``
#: by this text (``str.replace``), whose ``▁%`` token (id 1273) carries the
#: obj feature; our models keep a real ``<obj>`` token.
OFFICIAL_OBJ_TEXT = '% '
OBJ_TOKEN = '<obj>'
#: A ``%`` the official tokenizer reads as the placeholder token ``▁%``: at
#: the start or after whitespace. The space the replacement appended goes
#: with it when more whitespace (or the end) follows.
_OFFICIAL_OBJ = re.compile(r'(?<!\S)%(?: (?=\s|$))?')


def official_obj_prompt_to_ours(text: str,
                                num_prompts: Optional[int] = None,
                                **error_context) -> str:
    """Official LLaVA-G prompt text (``"% "`` placeholders) -> ``<obj>``.

    The inverse, on prompt strings, of the release's ``<obj>`` -> ``"% "``
    replacement: ``"what is %  doing?"`` -> ``"what is <obj> doing?"``.
    Demo-typed placeholders count too: ``"what is %?"`` -> ``"what is
    <obj>?"``, ``"% and %"`` -> ``"<obj> and <obj>"`` (a single space after
    ``%`` is kept as the word separator, so ``"<obj>and"``, replaced to
    ``"% and"``, comes back as ``"<obj> and"``). Only a ``%`` at the start
    or after whitespace is a placeholder (the ``▁%`` token, id 1273 --
    presumably, the reference could not verify the piece); one glued to a
    word (``"50%"``, another token) stays literal.

    Ambiguity: a literal free-standing percent sign (``"100 % sure"``) is
    indistinguishable from a placeholder (officially it gets the obj
    feature too), so it becomes ``<obj>``; pass ``num_prompts`` (the number
    of visual prompts given with the text) to catch that.

    Raises:
        GroundingDataError: ``num_prompts`` differs from the number of
            placeholders found (``error_context``: ``file``, ``record``,
            ``field``, ``source`` of the message).
    """
    out, count = _OFFICIAL_OBJ.subn(OBJ_TOKEN, text)
    if num_prompts is not None and count != num_prompts:
        raise GroundingDataError(
            f'{count} official "% " placeholders for {num_prompts} visual '
            'prompts (a literal free-standing "%" reads as a placeholder)',
            value=text,
            **error_context)
    return out


def ours_obj_prompt_to_official(text: str) -> str:
    """``<obj>`` -> ``"% "``, exactly the release's training replacement."""
    return text.replace(OBJ_TOKEN, OFFICIAL_OBJ_TEXT)
