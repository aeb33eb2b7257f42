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

GLAMM_PHRASE_FORMAT = '<p> {phrase} </p> [SEG]'
GLAMM_TOKEN_FORMAT = '[SEG]'
LLAVA_G_PHRASE_FORMAT = '<g_s> {phrase} <g_e> <seg>'
LLAVA_G_TOKEN_FORMAT = '<seg>'

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


def parse_markup(text: str, style: str = 'glamm'
                 ) -> Tuple[str, List[Tuple[int, int, str]]]:
    """Remove a style's grounding markup, returning the plain text and spans.

    Whitespace inside the tags is optional (the official LLaVA-G data writes
    ``<g_s>phrase<g_e><seg>``, our default ``<g_s> phrase <g_e> <seg>``). A
    grounding token without a phrase (GLaMM "It is [SEG].") yields an empty
    span at its position and removes the token with the whitespace before it.

    Args:
        text (str): Text with markup.
        style (str): ``'glamm'`` or ``'llava_g'``.

    Returns:
        tuple[str, list[tuple[int, int, str]]]: the plain text and one
        ``(start, end, phrase)`` per grounding token, in order.
    """
    if style not in MARKUP_TAGS:
        raise ValueError(f'unknown markup style {style!r}; '
                         f'expected one of {sorted(MARKUP_TAGS)}')
    open_tag, close_tag, token = (re.escape(t) for t in MARKUP_TAGS[style])
    pattern = re.compile(rf'{open_tag}\s*(.*?)\s*{close_tag}\s*{token}'
                         rf'|\s*{token}')
    out, phrases, cursor, length = [], [], 0, 0
    for match in pattern.finditer(text):
        head = text[cursor:match.start()]
        out.append(head)
        length += len(head)
        phrase = match.group(1)
        if phrase is None:
            phrases.append((length, length, ''))
        else:
            out.append(phrase)
            phrases.append((length, length + len(phrase), phrase))
            length += len(phrase)
        cursor = match.end()
    out.append(text[cursor:])
    return ''.join(out), phrases


def strip_markup(text: str, extra_tokens: Optional[Sequence[str]] = None
                 ) -> str:
    """Drop every ``<...>`` tag and grounding token, collapse whitespace.

    This is the GLaMM GCG caption convention (tags and ``[SEG]`` removed,
    newlines dropped).
    """
    text = re.sub(r'<[^<>\s]+>', ' ', text)
    for tok in ['[SEG]', *(extra_tokens or [])]:
        text = text.replace(tok, ' ')
    return re.sub(r'\s+', ' ', text).strip()
