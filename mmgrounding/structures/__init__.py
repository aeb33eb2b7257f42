"""Data structures shared by datasets, transforms, models and metrics."""
from .conversation import (CONV_TEMPLATES, ConversationTemplate,
                           RenderedConversation, Round, render_conversation)
from .errors import GroundingDataError
from .markup import (GLAMM_PHRASE_FORMAT, GLAMM_SPECIAL_TOKENS,
                     GLAMM_TOKEN_FORMAT, LLAVA_G_PHRASE_FORMAT,
                     LLAVA_G_SPECIAL_TOKENS, LLAVA_G_TOKEN_FORMAT, MARKUP_TAGS,
                     SPECIAL_TOKENS, FormattedText, MarkupError,
                     clean_official_caption, insert_markup, parse_answer,
                     parse_markup, strip_markup)

__all__ = [
    'CONV_TEMPLATES', 'ConversationTemplate', 'RenderedConversation', 'Round',
    'render_conversation', 'GroundingDataError', 'GLAMM_PHRASE_FORMAT',
    'GLAMM_TOKEN_FORMAT', 'LLAVA_G_PHRASE_FORMAT', 'LLAVA_G_TOKEN_FORMAT',
    'MARKUP_TAGS', 'FormattedText', 'insert_markup', 'parse_markup',
    'strip_markup', 'parse_answer', 'clean_official_caption', 'MarkupError',
    'SPECIAL_TOKENS', 'GLAMM_SPECIAL_TOKENS', 'LLAVA_G_SPECIAL_TOKENS'
]
