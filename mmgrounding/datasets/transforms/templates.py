"""Instruction templates, as data.

The released checkpoints were trained with fixed instruction wordings, so the
strings that matter for reproducing them are kept verbatim here (GLaMM:
``dataset/utils/utils.py``; LLaVA-G: the ``(with grounding)`` request).
:class:`FormatGroundedConversation` picks one entry per sample: the first, or,
with ``random_template=True``, one drawn deterministically from the seed and
the sample index.

Placeholders: ``{phrase}`` is the grounded phrase (referring expression),
``{seg}`` marks where the grounding token goes in an answer, ``<bbox>`` is the
region placeholder (converted to the style's region token).
"""

# GLaMM grounded conversation generation (GCG) instructions.
GLAMM_GCG_QUESTIONS = [
    'Could you please give me a detailed description of the image? Please '
    'respond with interleaved segmentation masks for the corresponding parts '
    'of the answer.',
    'Can you provide a thorough description of the this image? Please output '
    'with interleaved segmentation masks for the corresponding phrases.',
    'Please describe in detail the contents of the image. Please respond '
    'with interleaved segmentation masks for the corresponding parts of the '
    'answer.',
]

# GLaMM referring segmentation: question per expression, bare-[SEG] answers.
GLAMM_REFSEG_QUESTIONS = [
    'Can you segment the {phrase} in this image?',
    'Please segment {phrase} in this image.',
    'What is {phrase} in this image? Please respond with segmentation mask.',
    'What is {phrase} in this image? Please output segmentation mask.',
]
GLAMM_REFSEG_ANSWERS = [
    'It is {seg}.',
    'Sure, {seg}.',
    'Sure, it is {seg}.',
    'Sure, the segmentation result is {seg}.',
    '{seg}.',
]

# GLaMM region captioning (one <bbox> per question).
GLAMM_REGION_QUESTIONS = [
    'Can you provide me with a detailed description of the region in the '
    'picture marked by <bbox>?',
    "I'm curious about the region represented by <bbox> in the picture. "
    'Could you describe it in detail?',
    'What can you tell me about the region indicated by <bbox> in the image?',
]

# Per-task rewriting rules of each style. Keys of a task entry:
#   questions: replace the text of every user turn (image placeholder kept).
#   answers: with `questions`, rebuild the conversation as one round per
#       phrase: question.format(phrase=...), answer.format(seg=<phrase>) with
#       the phrase later written in the task's markup (bare token for refseg).
#   lowercase: lower-case the phrase inside the question.
#   suffix: appended to every user turn followed by a grounded answer.
GLAMM_TASK_TEMPLATES = dict(
    gcg=dict(questions=GLAMM_GCG_QUESTIONS),
    refseg=dict(
        questions=GLAMM_REFSEG_QUESTIONS,
        answers=GLAMM_REFSEG_ANSWERS,
        lowercase=True),
    region_caption=dict(questions=GLAMM_REGION_QUESTIONS),
)

# LLaVA-G asks for grounded answers by a suffix on the question; its training
# data appends it on a new line (the evaluation script uses a space).
LLAVA_G_GROUNDING_SUFFIX = '\n(with grounding)'
LLAVA_G_TASK_TEMPLATES = dict(
    gcg=dict(suffix=[LLAVA_G_GROUNDING_SUFFIX]),
    refseg=dict(suffix=[LLAVA_G_GROUNDING_SUFFIX]),
    rec=dict(suffix=[LLAVA_G_GROUNDING_SUFFIX]),
    phrase_grounding=dict(suffix=[LLAVA_G_GROUNDING_SUFFIX]),
    gvc=dict(suffix=[LLAVA_G_GROUNDING_SUFFIX]),
    gvc_r=dict(suffix=[LLAVA_G_GROUNDING_SUFFIX]),
)

TASK_TEMPLATES = dict(glamm=GLAMM_TASK_TEMPLATES,
                      llava_g=LLAVA_G_TASK_TEMPLATES)
