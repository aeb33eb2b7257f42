"""Plain visual chat about a synthetic scene (LLaVA-Instruct-150K style).

Each question asks for something only the image tells: how many shapes of a
kind or colour there are, the colour / shape / size of one object, whether a
coloured shape is present, where one object is relative to another, or a
short description. Answers are read off the scene; no turn carries grounding
markup. An object is named by a description that leaves out the asked
attribute and picks it out uniquely: its other attributes ("the large
square") or, for two look-alikes, its side ("the circle on the left", the
same clear gap as the spatial relations of ``language.py``).
"""
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from .language import (ATTR_SUBSETS, NUMBER_WORDS, RELATIONS, article,
                       capitalize, grounded_caption, matches, pick, plural,
                       relation, unique_subsets)
from .scene import COLORS, SHAPES, SIZES, Shape

NUMBERS: Dict[int, str] = {0: 'no', 1: 'one', **NUMBER_WORDS}
#: Side phrase of the object for which ``relation(obj, other, rel) == 1``.
SIDES: Dict[str, str] = {'left of': 'on the left', 'right of': 'on the right',
                         'above': 'at the top', 'below': 'at the bottom'}
OPPOSITE: Dict[str, str] = {'left of': 'right of', 'right of': 'left of',
                            'above': 'below', 'below': 'above'}
NOUNS: Tuple[str, ...] = ('shape', 'object')

# --- templates ---------------------------------------------------------------
# Counting ({what}: plural noun phrase, e.g. "red circles", "shapes").
COUNT_QUESTIONS = ('How many {what} are there?',
                   'How many {what} are in the image?',
                   'How many {what} can you see?',
                   'Count the {what} in the picture.')
COUNT_ANSWERS = {
    0: ('There are no {what}.', 'I see no {what}.'),
    1: ('There is one {one}.', 'I see one {one}.', 'Only one.'),
    2: ('There are {n} {what}.', 'I see {n} {what}.', '{N}.'),
}
# Presence of a coloured shape.
EXIST_QUESTIONS = ('Is there {a} {color} {shape} in the image?',
                   'Can you see {a} {color} {shape}?',
                   'Are there any {color} {shapes}?',
                   'Is there any {color} {shape} in the picture?')
EXIST_ANSWERS = {
    0: ('No, there is none.', 'No.', 'No, there are no {color} {shapes}.'),
    1: ('Yes, there is one.', 'Yes, one.'),
    2: ('Yes, there are {n}.', 'Yes, {n} of them.'),
}
# One attribute of one object ({d}: its description without that attribute).
ATTRIBUTE_QUESTIONS = {
    'color': ('What color is the {d}?', 'What colour is the {d}?',
              'What is the color of the {d}?',
              'Which color does the {d} have?'),
    'shape': ('What shape is the {d}?', 'What is the shape of the {d}?',
              'What kind of shape is the {d}?'),
    'size': ('Is the {d} small or large?', 'Is the {d} large or small?',
             'How big is the {d}?', 'What size is the {d}?'),
}
ATTRIBUTE_ANSWERS = ('It is {v}.', 'The {d} is {v}.', '{V}.')
# Spatial relation between two objects.
RELATION_QUESTION = 'Is the {a} {rel} the {b}?'
RELATION_ANSWERS = {True: ('Yes, it is.', 'Yes, the {a} is {rel} the {b}.'),
                    False: ('No, it is not.', 'No, it is {opp} the {b}.')}
WHERE_QUESTIONS = ('Where is the {a} relative to the {b}?',
                   'Where is the {a} compared to the {b}?')
WHERE_ANSWERS = ('It is {rel} the {b}.', 'The {a} is {rel} the {b}.')
DESCRIBE_QUESTIONS = ('Describe the image briefly.', 'What is in this picture?',
                      'What do you see in the image?',
                      'Give a short description of the image.')

QA = Optional[Tuple[str, str]]


def _count_answer(n: int, what: str, one: str,
                  rng: np.random.Generator) -> str:
    text = pick(rng, COUNT_ANSWERS[min(n, 2)])
    return text.format(what=what, one=one, n=NUMBERS[n],
                       N=capitalize(NUMBERS[n]))


def ask_count(objs: List[Shape], size: int, rng: np.random.Generator) -> QA:
    """How many shapes of a kind / colour / both / in all."""
    mode = pick(rng, ('shape', 'color', 'both', 'all'))
    present = pick(rng, objs)
    color = present.color if rng.random() < 0.7 else pick(rng, list(COLORS))
    shape = present.shape if rng.random() < 0.7 else pick(rng, SHAPES)
    noun = pick(rng, NOUNS)
    if mode == 'shape':
        keep = [o for o in objs if o.shape == shape]
        one, what = shape, plural(shape)
    elif mode == 'color':
        keep = [o for o in objs if o.color == color]
        one, what = f'{color} {noun}', f'{color} {plural(noun)}'
    elif mode == 'both':
        keep = [o for o in objs if o.color == color and o.shape == shape]
        one, what = f'{color} {shape}', f'{color} {plural(shape)}'
    else:
        keep, one, what = objs, noun, plural(noun)
    question = pick(rng, COUNT_QUESTIONS).format(what=what)
    return question, _count_answer(len(keep), what, one, rng)


def ask_exists(objs: List[Shape], size: int, rng: np.random.Generator) -> QA:
    """Whether a coloured shape is present (about half of them are)."""
    if rng.random() < 0.5:
        o = pick(rng, objs)
        color, shape = o.color, o.shape
    else:
        color, shape = pick(rng, list(COLORS)), pick(rng, SHAPES)
    n = sum(o.color == color and o.shape == shape for o in objs)
    question = pick(rng, EXIST_QUESTIONS).format(
        a=article(color), color=color, shape=shape, shapes=plural(shape))
    answer = pick(rng, EXIST_ANSWERS[min(n, 2)]).format(
        n=NUMBERS[n], color=color, shapes=plural(shape))
    return question, answer


def side_descriptions(obj: Shape, objs: List[Shape], attrs: Tuple[str, ...],
                      size: int) -> List[str]:
    """``"{attrs words} on the left"``-style names of ``obj`` when exactly one
    other object fits ``attrs`` and ``obj`` is clearly on that side of it."""
    peers = [o for o in objs if matches(o, obj, attrs)]
    if len(peers) != 2:
        return []
    other = peers[0] if peers[1] is obj else peers[1]
    return [f'{obj.words(attrs)} {SIDES[r]}' for r in RELATIONS
            if relation(obj, other, r, size) == 1]


def describe_without(obj: Shape, objs: List[Shape], attr: str, size: int,
                     rng: np.random.Generator) -> Optional[str]:
    """A unique description of ``obj`` that does not use ``attr``.

    ``attr='shape'`` names the object by colour (and size) with the noun
    "object"; otherwise by its shape and the remaining attribute,
    or by its side when it has one look-alike.
    """
    if attr == 'shape':
        for attrs in (('color', ), ('size', 'color')):
            if sum(all(getattr(o, a) == getattr(obj, a) for a in attrs)
                   for o in objs) == 1:
                words = [getattr(obj, a) for a in ('size', 'color')
                         if a in attrs]
                return ' '.join(words + ['object'])
        return None
    unique = [a for a in unique_subsets(obj, objs) if attr not in a]
    if unique:
        return obj.words(pick(rng, unique))
    sides = [d for attrs in ATTR_SUBSETS if attr not in attrs
             for d in side_descriptions(obj, objs, attrs, size)]
    return pick(rng, sides) if sides else None


def ask_attribute(objs: List[Shape], size: int, rng: np.random.Generator,
                  attr: str) -> QA:
    """The colour, shape or size of one object that can be named without it."""
    cands = []
    for o in objs:
        d = describe_without(o, objs, attr, size, rng)
        if d is not None:
            cands.append((o, d))
    if not cands:
        return None
    obj, d = pick(rng, cands)
    value = getattr(obj, attr)
    if attr == 'shape':
        value = f'{article(value)} {value}'
    question = pick(rng, ATTRIBUTE_QUESTIONS[attr]).format(d=d)
    answer = pick(rng, ATTRIBUTE_ANSWERS).format(d=d, v=value,
                                                 V=capitalize(value))
    return question, answer


def _named(objs: List[Shape], rng: np.random.Generator) -> List[Tuple[Shape, str]]:
    """Objects with a unique attribute description (shortest ones)."""
    out = []
    for o in objs:
        subsets = unique_subsets(o, objs)
        if subsets:
            shortest = [a for a in subsets if len(a) == len(subsets[0])]
            out.append((o, o.words(pick(rng, shortest))))
    return out


def ask_relation(objs: List[Shape], size: int, rng: np.random.Generator) -> QA:
    """Yes/no: is A {rel} B? Asked only where the answer is clear either way
    (``rel`` clearly holds, or its opposite does)."""
    named = _named(objs, rng)
    cands = []
    for a, da in named:
        for b, db in named:
            if a is b:
                continue
            for r in RELATIONS:
                if relation(a, b, r, size) == 1:
                    cands.append((da, r, db, True))
                elif relation(a, b, OPPOSITE[r], size) == 1:
                    cands.append((da, r, db, False))
    if not cands:
        return None
    da, r, db, holds = pick(rng, cands)
    question = RELATION_QUESTION.format(a=da, rel=r, b=db)
    answer = pick(rng, RELATION_ANSWERS[holds]).format(
        a=da, rel=r, b=db, opp=OPPOSITE[r])
    return question, answer


def ask_where(objs: List[Shape], size: int, rng: np.random.Generator) -> QA:
    """Where A is relative to B, for pairs with exactly one clear relation."""
    named = _named(objs, rng)
    cands = []
    for a, da in named:
        for b, db in named:
            rels = [r for r in RELATIONS if relation(a, b, r, size) == 1]
            if a is not b and len(rels) == 1:
                cands.append((da, rels[0], db))
    if not cands:
        return None
    da, r, db = pick(rng, cands)
    return (pick(rng, WHERE_QUESTIONS).format(a=da, b=db),
            pick(rng, WHERE_ANSWERS).format(a=da, rel=r, b=db))


def ask_describe(objs: List[Shape], size: int, rng: np.random.Generator) -> QA:
    """A short description naming every object (the caption, unmarked)."""
    caption, _, _ = grounded_caption(objs, size, rng)
    return pick(rng, DESCRIBE_QUESTIONS), caption


ASKERS: Dict[str, Callable[..., QA]] = {
    'count': ask_count,
    'exists': ask_exists,
    'color': lambda objs, size, rng: ask_attribute(objs, size, rng, 'color'),
    'shape': lambda objs, size, rng: ask_attribute(objs, size, rng, 'shape'),
    'size': lambda objs, size, rng: ask_attribute(objs, size, rng, 'size'),
    'relation': ask_relation,
    'where': ask_where,
    'describe': ask_describe,
}


def chat_turns(objs: List[Shape], size: int,
               rng: np.random.Generator) -> List[Tuple[str, str]]:
    """2-4 ``(question, answer)`` pairs of distinct kinds about one scene
    (fewer only when the scene allows fewer kinds; counting always works)."""
    want = int(rng.integers(2, 5))
    kinds = list(ASKERS)
    turns = []
    for k in rng.permutation(len(kinds)):
        qa = ASKERS[kinds[int(k)]](objs, size, rng)
        if qa is not None:
            turns.append(qa)
        if len(turns) == want:
            break
    return turns


def llava_conversation(objs: List[Shape], size: int,
                       rng: np.random.Generator) -> List[dict]:
    """LLaVA-Instruct ``conversations``: human/gpt turns, ``<image>`` before
    or after the first question as in the official file."""
    convs = []
    for question, answer in chat_turns(objs, size, rng):
        convs += [{'from': 'human', 'value': question},
                  {'from': 'gpt', 'value': answer}]
    first = convs[0]['value']
    convs[0]['value'] = (f'<image>\n{first}' if rng.random() < 0.5 else
                         f'{first}\n<image>')
    return convs


def chat_vocabulary() -> List[str]:
    """Every chat template, filled with each word it can take (for the
    tokenizer corpus; independent of any seed)."""
    lines: List[str] = []
    words = dict(a='a', an='an', color='red', shape='circle', shapes='circles',
                 n='two', N='Two', d='large square', v='red', V='Red',
                 what='red circles', one='red circle', rel='left of',
                 opp='right of', b='blue square')
    templates: List[str] = list(COUNT_QUESTIONS) + list(EXIST_QUESTIONS) + \
        list(ATTRIBUTE_ANSWERS) + [RELATION_QUESTION] + \
        list(WHERE_QUESTIONS) + list(WHERE_ANSWERS) + list(DESCRIBE_QUESTIONS)
    for group in (COUNT_ANSWERS, EXIST_ANSWERS, RELATION_ANSWERS):
        for options in group.values():
            templates += list(options)
    for options in ATTRIBUTE_QUESTIONS.values():
        templates += list(options)
    for t in templates:
        lines.append(t.format(**words))
    for n in NUMBERS.values():
        lines += [f'There are {n} shapes.', capitalize(n) + '.']
    for side in SIDES.values():
        lines.append(f'the circle {side}')
    for noun in NOUNS:
        lines += [noun, plural(noun)]
    lines += list(SIZES)
    return lines
