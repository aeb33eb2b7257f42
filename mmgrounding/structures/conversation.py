"""Chat templates rendered with character offsets.

Only the Vicuna v1 layout (LLaVA's ``SeparatorStyle.TWO``) is needed by GLaMM
and LLaVA-G::

    {system}{sep}USER: {q1}{sep}ASSISTANT: {a1}{sep2}USER: {q2}{sep}ASSISTANT:

Both models use it with different system prompts: GLaMM's ``llava_v1`` speaks
of a "curious human", LLaVA's ``vicuna_v1`` (used by LLaVA-G) of a "curious
user". Rendering keeps the char span of every message so that labels and
grounding positions are derived from offsets, never by re-tokenising pieces.
"""
from dataclasses import dataclass
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple


@dataclass(frozen=True)
class ConversationTemplate:
    """A two-separator (Vicuna v1) chat template.

    Args:
        system (str): System prompt.
        roles (tuple[str, str]): User and assistant role names.
        sep (str): Separator after the system prompt and after user turns.
        sep2 (str): Separator after assistant turns (the EOS text).
    """
    system: str
    roles: Tuple[str, str] = ('USER', 'ASSISTANT')
    sep: str = ' '
    sep2: str = '</s>'


HUMAN_SYSTEM = ('A chat between a curious human and an artificial '
                'intelligence assistant. The assistant gives helpful, '
                "detailed, and polite answers to the human's questions.")
USER_SYSTEM = ('A chat between a curious user and an artificial intelligence '
               'assistant. The assistant gives helpful, detailed, and polite '
               "answers to the user's questions.")

CONV_TEMPLATES: Dict[str, ConversationTemplate] = {
    # LLaVA's conv_vicuna_v1 (LLaVA-G's "v1").
    'vicuna_v1': ConversationTemplate(system=USER_SYSTEM),
    # LLaVA's conv_llava_v1 (GLaMM's default conversation).
    'llava_v1': ConversationTemplate(system=HUMAN_SYSTEM),
}


class Round(NamedTuple):
    """Char offsets of one user+assistant round in the rendered text.

    Attributes:
        start (int): Start of the user role name.
        prompt_end (int): End of ``"ASSISTANT:"`` of this round.
        answer (tuple[int, int] | None): Assistant message plus ``sep2``;
            None when the round has no answer (predict mode).
        end (int): End of the round (after ``sep2``; ``prompt_end`` when
            unanswered).
    """
    start: int
    prompt_end: int
    answer: Optional[Tuple[int, int]]
    end: int


class RenderedConversation(NamedTuple):
    """Result of :func:`render_conversation`.

    Attributes:
        text (str): The full templated text.
        message_starts (list[int]): Char offset of each message's content
            (-1 for the unanswered final assistant turn).
        rounds (list[Round]): One entry per user+assistant round.
    """
    text: str
    message_starts: List[int]
    rounds: List[Round]


def render_conversation(messages: Sequence[Optional[str]],
                        template: ConversationTemplate,
                        system: Optional[str] = None
                        ) -> RenderedConversation:
    """Render alternating user/assistant messages with a Vicuna v1 template.

    Args:
        messages: Message texts, user first, alternating. The last one may be
            None: an assistant turn left open for generation, rendered as
            ``"ASSISTANT:"`` with nothing after it.
        template (ConversationTemplate): The template.
        system (str, optional): Overrides ``template.system``.

    Returns:
        RenderedConversation: text, message offsets and round offsets.
    """
    if len(messages) % 2:
        raise ValueError('a conversation must end with an assistant turn '
                         f'(None for an open one); got {len(messages)} '
                         'messages')
    if any(m is None for m in messages[:-1]):
        raise ValueError('only the last assistant message may be None')
    system = template.system if system is None else system
    text = system + template.sep
    starts: List[int] = []
    rounds: List[Round] = []
    for i in range(0, len(messages), 2):
        round_start = len(text)
        for j, seps in ((i, template.sep), (i + 1, template.sep2)):
            role = template.roles[j % 2]
            message = messages[j]
            if message is None:
                text += role + ':'
                starts.append(-1)
            else:
                text += role + ': '
                starts.append(len(text))
                text += message + seps
            if j == i:
                prompt_end = len(text) + len(template.roles[1]) + 1
        answer = None
        if messages[i + 1] is not None:
            answer = (starts[-1], len(text))
        rounds.append(Round(round_start, prompt_end, answer, len(text)))
    return RenderedConversation(text, starts, rounds)
