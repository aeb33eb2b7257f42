"""Helpers for the grounding transform tests: a tiny word-level HF fast
tokenizer built in-process and a small synthetic grounded record."""
from mmgrounding.datasets.transforms import templates
from mmgrounding.structures.conversation import HUMAN_SYSTEM, USER_SYSTEM

SPECIAL_TOKENS = [
    '<unk>', '<s>', '</s>', '<pad>', '<im_start>', '<im_end>', '<image>',
    '<bbox>', '<point>', '[SEG]', '<p>', '</p>', '<g_s>', '<g_e>', '<seg>',
    '<obj>'
]

CORPUS = ' '.join([
    HUMAN_SYSTEM, USER_SYSTEM, 'USER ASSISTANT : The provides an overview of '
    'the picture.', 'Describe the image. A red circle next to a blue square.',
    'Please segment the red circle. Sure, the red circle. What is left of it? '
    'A green triangle. ( with grounding ) region',
    *templates.GLAMM_GCG_QUESTIONS, *templates.GLAMM_REFSEG_QUESTIONS,
    *templates.GLAMM_REFSEG_ANSWERS, *templates.GLAMM_REGION_QUESTIONS
])


def build_tiny_tokenizer(path: str) -> str:
    """Save a word-level fast tokenizer covering CORPUS to ``path``."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    pre = pre_tokenizers.Whitespace()
    words = []
    for text in (CORPUS, CORPUS.lower()):
        for word, _ in pre.pre_tokenize_str(
                text.replace('{phrase}', ' ').replace('{seg}', ' ')):
            if word not in words and word not in SPECIAL_TOKENS:
                words.append(word)
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS + words)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token='<unk>'))
    backend.pre_tokenizer = pre
    backend.add_special_tokens(SPECIAL_TOKENS)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token='<s>',
        eos_token='</s>',
        unk_token='<unk>',
        pad_token='<pad>',
        additional_special_tokens=SPECIAL_TOKENS[4:])
    fast.save_pretrained(path)
    return path


def square(x1, y1, x2, y2):
    """COCO polygon of an axis-aligned rectangle."""
    return [[x1, y1, x2, y1, x2, y2, x1, y2]]


def make_record(two_rounds: bool = False, **overrides) -> dict:
    """A 32x40 (h x w) GCG-like record with two grounded phrases.

    Instance 0 is the red circle (one polygon); instances 1 and 2 together
    are the blue square (phrase 1 targets the union of both).
    """
    answer = 'A red circle next to a blue square.'
    record = dict(
        img_path='img.png',
        img_id=7,
        sample_idx=3,
        height=32,
        width=40,
        source='unit',
        task='gcg',
        conversations=[
            dict(role='user', text='<image>\nDescribe the image.'),
            dict(role='assistant', text=answer),
        ],
        phrases=[
            dict(turn=1, start=0, end=12, text='A red circle',
                 instance_ids=[0]),
            dict(turn=1, start=21, end=34, text='a blue square',
                 instance_ids=[1, 2]),
        ],
        instances=[
            dict(bbox=[2, 2, 10, 10], mask=square(2, 2, 10, 10)),
            dict(bbox=[20, 4, 30, 14], mask=square(20, 4, 30, 14)),
            dict(bbox=[20, 14, 30, 24], mask=square(20, 14, 30, 24)),
        ],
        gt_captions=[answer],
    )
    if two_rounds:
        record['conversations'] += [
            dict(role='user', text='What is left of it?'),
            dict(role='assistant', text='A green triangle.'),
        ]
        record['phrases'].append(
            dict(turn=3, start=0, end=16, text='A green triangle',
                 instance_ids=[2]))
    record.update(overrides)
    return record


def build_bpe_tokenizer(path: str) -> str:
    """Save a small Metaspace BPE fast tokenizer (Llama-like offsets, where a
    word token carries the space before it) trained on CORPUS to ``path``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from tokenizers.trainers import BpeTrainer
    from transformers import PreTrainedTokenizerFast
    backend = Tokenizer(models.BPE(unk_token='<unk>'))
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    trainer = BpeTrainer(vocab_size=400, special_tokens=SPECIAL_TOKENS,
                         show_progress=False)
    backend.train_from_iterator([CORPUS, CORPUS.lower()], trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token='<s>',
        eos_token='</s>',
        unk_token='<unk>',
        pad_token='<pad>',
        additional_special_tokens=SPECIAL_TOKENS[4:])
    fast.save_pretrained(path)
    return path
