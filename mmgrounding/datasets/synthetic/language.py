"""Language of the synthetic world: referring expressions, grounded captions
and the instruction templates of GLaMM and LLaVA-Grounding.

Expressions name a shape with optional size/colour words and optionally a
spatial relation to a landmark ("small red circle left of the blue square").
Every referring expression is checked to pick out exactly one object of its
image. Captions describe all objects with one phrase per grounded group
(single objects or "two red circles") and return the phrase character spans.
"""
from itertools import product
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .scene import COLORS, SHAPES, SIZES, Shape

# Attribute subsets a description may use; the shape word is always present.
ATTR_SUBSETS: Tuple[Tuple[str, ...], ...] = ((), ('color', ), ('size', ),
                                             ('size', 'color'))
RELATIONS: Tuple[str, ...] = ('left of', 'right of', 'above', 'below')
NUMBER_WORDS = {2: 'two', 3: 'three', 4: 'four'}
# A relation holds when the centres differ by >= GAP * image side along its
# axis, fails below GAP / 2, and is ambiguous in between.
RELATION_GAP = 0.125

# --- instruction templates (both papers) -----------------------------------
VICUNA_V1_SYSTEM = ('A chat between a curious human and an artificial '
                    'intelligence assistant. The assistant gives helpful, '
                    "detailed, and polite answers to the human's questions.")
LLAVA_G_SYSTEM = ('A chat between a curious user and an artificial '
                  'intelligence assistant. The assistant gives helpful, '
                  "detailed, and polite answers to the user's questions.")
GLAMM_IMAGE_PREFIX = ('The <im_start><image><im_end> provides an overview of '
                      'the picture.\n')
GCG_INSTRUCTION = ('Could you please give me a detailed description of the '
                   'image? Please respond with interleaved segmentation masks '
                   'for the corresponding parts of the answer.')
REFSEG_QUESTION = 'Can you segment the {} in this image?'
REFSEG_ANSWERS = ('It is [SEG].', 'Sure, [SEG].', 'Sure, it is [SEG].',
                  'Sure, the segmentation result is [SEG].', '[SEG].')
REGION_INSTRUCTION = ('Can you provide me with a detailed description of the '
                      'region in the picture marked by <bbox>?')
WITH_GROUNDING = ' (with grounding)'
GVC_QUESTIONS = ('What can you see in this picture?',
                 'Describe the image.',
                 'What objects are in the image?',
                 'Can you describe the shapes in this picture?')
GVC_WHERE_QUESTION = 'Where is the {}?'
CAPTION_PREFIXES = ('', 'The image shows ', 'This picture contains ',
                    'I can see ')
GVCR_QUESTIONS = {
    'color': ('What color is <obj>?', 'It is {color}.'),
    'shape': ('What shape is <obj>?', 'It is a {shape}.'),
    'size': ('Is <obj> small or large?', 'It is {size}.'),
    'describe': ('Please describe <obj>.', '{Article} {size} {color} {shape}.'),
}
GVCR_RELATION_QUESTION = ('Where is <obj> relative to <obj>?',
                          'The {a} is {rel} the {b}.')
REFCOCO_INSTRUCT_QUESTIONS = ('Please describe the object <obj> briefly.',
                              'What is the object <obj>?',
                              'Give a short description of <obj>.')
EXTRA_TEMPLATES = (VICUNA_V1_SYSTEM, LLAVA_G_SYSTEM, GLAMM_IMAGE_PREFIX,
                   GCG_INSTRUCTION, REGION_INSTRUCTION, 'USER:', 'ASSISTANT:',
                   'USER: <image>\n', ' ASSISTANT: ', '</s>', '<p>', '</p>',
                   '[SEG]', '<g_s>', '<g_e>', '<seg>', '<obj>', '<point>',
                   'region1 <bbox>', 'Please segment the {} in this image.',
                   'What is {} in this image? Please respond with '
                   'segmentation mask.') + REFSEG_ANSWERS


def pick(rng: np.random.Generator, seq: Sequence):
    """Uniform choice that works on any sequence (keeps determinism)."""
    return seq[int(rng.integers(len(seq)))]


def article(word: str) -> str:
    return 'an' if word[0] in 'aeiou' else 'a'


def capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]


def plural(shape: str) -> str:
    return shape + 's'


def matches(obj: Shape, target: Shape, attrs: Tuple[str, ...]) -> bool:
    """Whether ``obj`` fits the description of ``target`` using ``attrs``."""
    return obj.shape == target.shape and all(
        getattr(obj, a) == getattr(target, a) for a in attrs)


def relation(a: Shape, b: Shape, rel: str, image_size: int) -> int:
    """1 if ``a rel b`` clearly holds, 0 if clearly not, -1 if ambiguous."""
    (ax, ay), (bx, by) = a.center, b.center
    diff = {'left of': bx - ax, 'right of': ax - bx,
            'above': by - ay, 'below': ay - by}[rel]
    gap = RELATION_GAP * image_size
    if diff >= gap:
        return 1
    if diff < gap / 2:
        return 0
    return -1


def unique_subsets(obj: Shape, objs: List[Shape]) -> List[Tuple[str, ...]]:
    """Attribute subsets whose description matches only ``obj``."""
    return [a for a in ATTR_SUBSETS
            if sum(matches(o, obj, a) for o in objs) == 1]


def attribute_expression(obj: Shape, objs: List[Shape],
                         rng: np.random.Generator) -> Optional[str]:
    """A unique attribute-only expression, preferring the shortest."""
    subsets = unique_subsets(obj, objs)
    if not subsets:
        return None
    shortest = [a for a in subsets if len(a) == len(subsets[0])]
    chosen = pick(rng, shortest) if rng.random() < 0.7 else pick(rng, subsets)
    return obj.words(chosen)


def spatial_candidates(obj: Shape, objs: List[Shape], image_size: int):
    """All valid ``(attrs, rel, landmark, landmark_attrs, needs_relation)``.

    Valid: the landmark has a unique description, ``obj rel landmark``
    clearly holds, and it clearly fails for every other object matching the
    referent's description (so the expression is unique).
    """
    out = []
    lm_unique = [unique_subsets(lm, objs) for lm in objs]
    for attrs, rel, k in product(ATTR_SUBSETS, RELATIONS, range(len(objs))):
        lm, lm_subsets = objs[k], lm_unique[k]
        if lm is obj:
            continue
        if not lm_subsets or relation(obj, lm, rel, image_size) != 1:
            continue
        others = [o for o in objs
                  if o is not obj and o is not lm and matches(o, obj, attrs)]
        if any(relation(o, lm, rel, image_size) != 0 for o in others):
            continue
        needs = sum(matches(o, obj, attrs) for o in objs) > 1
        for lm_attrs in lm_subsets:
            out.append((attrs, rel, lm, lm_attrs, needs))
    return out


def spatial_expression(obj: Shape, objs: List[Shape], image_size: int,
                       rng: np.random.Generator) -> Optional[str]:
    """A unique expression with a relation, preferring ones that need it."""
    cands = spatial_candidates(obj, objs, image_size)
    if not cands:
        return None
    needed = [c for c in cands if c[4]]
    pool = needed if needed and rng.random() < 0.8 else cands
    shortest = min(len(c[0]) + len(c[3]) for c in pool)
    if rng.random() < 0.7:
        pool = [c for c in pool if len(c[0]) + len(c[3]) == shortest]
    attrs, rel, lm, lm_attrs, _ = pick(rng, pool)
    return f'{obj.words(attrs)} {rel} the {lm.words(lm_attrs)}'


def resolve(expression: str, objs: List[Shape], image_size: int) -> List[int]:
    """Indices of the objects an expression denotes (an independent parser,
    used to check uniqueness)."""
    rel = None
    for r in RELATIONS:
        token = f' {r} the '
        if token in f' {expression} ':
            rel = r
            head, tail = expression.split(f' {r} the ')
            break
    else:
        head, tail = expression, None

    def denote(text):
        ws = text.split()
        return [i for i, o in enumerate(objs) if o.shape == ws[-1]
                and all(w in (o.size, o.color) for w in ws[:-1])]

    cands = denote(head)
    if rel is None:
        return cands
    lms = denote(tail)
    if len(lms) != 1:
        return []
    lm = objs[lms[0]]
    return [i for i in cands
            if objs[i] is not lm and relation(objs[i], lm, rel, image_size) == 1]


def referring_sentences(obj: Shape, objs: List[Shape], image_size: int,
                        rng: np.random.Generator) -> List[Tuple[str, str]]:
    """1-2 ``(sentence, type)`` pairs for ``obj``; empty if none is unique."""
    sents = []
    attr = attribute_expression(obj, objs, rng)
    if attr is not None:
        sents.append((attr, 'attribute'))
    if attr is None or rng.random() < 0.7:
        spatial = spatial_expression(obj, objs, image_size, rng)
        if spatial is not None:
            sents.append((spatial, 'spatial'))
    idx = objs.index(obj)
    for s, _ in sents:
        assert resolve(s, objs, image_size) == [idx], (
            f'expression {s!r} is not unique: {resolve(s, objs, image_size)}')
    return sents


def group_objects(objs: List[Shape]) -> List[List[Shape]]:
    """Objects grouped by (colour, kind), groups ordered left to right."""
    groups: Dict[Tuple[str, str], List[Shape]] = {}
    for o in objs:
        groups.setdefault((o.color, o.shape), []).append(o)
    ordered = sorted(groups.values(), key=lambda g: min(o.center[0] for o in g))
    return [sorted(g, key=lambda o: o.center[0]) for g in ordered]


def group_phrase(group: List[Shape], rng: np.random.Generator) -> str:
    """``a small red circle`` / ``an orange square`` / ``two red circles``."""
    if len(group) > 1:
        return f'{NUMBER_WORDS[len(group)]} {group[0].color} {plural(group[0].shape)}'
    o = group[0]
    text = o.words(('size', 'color') if rng.random() < 0.5 else ('color', ))
    return f'{article(text)} {text}'


def grounded_caption(objs: List[Shape], image_size: int,
                     rng: np.random.Generator, prefixes=CAPTION_PREFIXES
                     ) -> Tuple[str, List[Tuple[int, int]], List[List[Shape]]]:
    """A caption naming every object once.

    Returns ``(caption, spans, groups)``: ``caption[s:e]`` is the phrase of
    ``groups[i]`` for ``(s, e) = spans[i]``, spans in caption order.
    """
    groups = group_objects(objs)
    phrases = [group_phrase(g, rng) for g in groups]
    prefix = pick(rng, prefixes)
    pieces: List[Tuple[str, Optional[int]]] = []  # (text, group index or None)
    start = 0
    # Optionally relate the first two single objects ("A left of B").
    rel = None
    if len(groups) >= 2 and len(groups[0]) == 1 and len(groups[1]) == 1 \
            and rng.random() < 0.5:
        ok = [r for r in RELATIONS
              if relation(groups[0][0], groups[1][0], r, image_size) == 1]
        rel = pick(rng, ok) if ok else None
    if rel is not None:
        pieces += [(phrases[0], 0), (f' {rel} ', None), (phrases[1], 1)]
        start = 2
    rest = list(range(start, len(groups)))
    for k, gi in enumerate(rest):
        if pieces or k > 0:
            last = k == len(rest) - 1
            pieces.append((' and ' if last else ', ', None))
        pieces.append((phrases[gi], gi))
    caption, spans = '', [None] * len(groups)
    if prefix:
        caption = prefix
    for text, gi in pieces:
        if not caption:
            text = capitalize(text)
        if gi is not None:
            spans[gi] = (len(caption), len(caption) + len(text))
        caption += text
    caption += '.'
    order = sorted(range(len(groups)), key=lambda i: spans[i][0])
    return caption, [spans[i] for i in order], [groups[i] for i in order]


def vocabulary_corpus() -> List[str]:
    """A fixed enumeration of the world's language and the templates.

    Independent of seeds, so the tokenizer trained on it is a constant of the
    world.
    """
    descs = []
    for shape, color, size in product(SHAPES, COLORS, SIZES):
        for attrs in ATTR_SUBSETS:
            fake = Shape(shape, color, size, [], None)
            descs.append(fake.words(attrs))
    descs = sorted(set(descs))
    lines = []
    for d in descs:
        lines += [d, f'the {d}', f'{article(d)} {d}', capitalize(f'{article(d)} {d}'),
                  f'The {d}', REFSEG_QUESTION.format(d),
                  GVC_WHERE_QUESTION.format(d) + WITH_GROUNDING]
    for d1, rel, d2 in product(descs, RELATIONS, descs):
        lines.append(f'{d1} {rel} the {d2}')
    for n, color, shape in product(NUMBER_WORDS.values(), COLORS, SHAPES):
        lines += [f'{n} {color} {plural(shape)}', capitalize(f'{n} {color} {plural(shape)}')]
    for prefix, q in product(CAPTION_PREFIXES, GVC_QUESTIONS):
        lines += [prefix + 'a red circle and a blue square.', q + WITH_GROUNDING,
                  f'<g_s> {prefix}a red circle <g_e> <seg>.']
    for q, a in list(GVCR_QUESTIONS.values()) + [GVCR_RELATION_QUESTION]:
        lines += [q, a]
    lines += list(REFCOCO_INSTRUCT_QUESTIONS)
    for color, shape, size in product(COLORS, SHAPES, SIZES):
        lines += [f'It is {color}.', f'It is a {shape}.', f'It is {size}.']
    lines += list(EXTRA_TEMPLATES) * 20
    from .chat import chat_vocabulary  # chat.py imports this module
    lines += chat_vocabulary() * 5
    # Every word of the world as a whole token, alone, after a space and
    # capitalised (sentence start), so each stays a single token.
    for word in world_words(lines):
        cap = capitalize(word)
        lines += [word, cap, f'{word} {word} {cap} {cap}'] * 3
    return lines


def world_words(lines: List[str]) -> List[str]:
    """Sorted alphabetic words (no markup) occurring in ``lines``."""
    words = set()
    for line in lines:
        for w in line.replace('\n', ' ').split():
            w = w.strip('.,?!:;()\'"')
            if w.isalpha():
                words.add(w)
    return sorted(words)
