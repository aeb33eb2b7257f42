"""Special-token lists: one constant per model family; the one literal copy
in configs (old-style configs cannot import) must equal it."""
from pathlib import Path

from mmengine.config import Config

from mmgrounding.models.language_models import HFCausalLM
from mmgrounding.structures.markup import (GLAMM_SPECIAL_TOKENS, MARKUP_TAGS,
                                           SPECIAL_TOKENS)

ROOT = Path(__file__).resolve().parents[2]


def test_configs_list_the_glamm_constant():
    literal = []
    for path in sorted((ROOT / 'configs').rglob('*.py')):
        if 'special_tokens=' not in path.read_text():
            continue
        cfg = Config.fromfile(str(path))
        lm = cfg.get('model', {}).get('language_model', {})
        for tokens in (lm.get('special_tokens'),
                       cfg.get('glamm_special_tokens')):
            if tokens is not None:
                literal.append(tuple(tokens))
    assert literal and set(literal) == {GLAMM_SPECIAL_TOKENS}


def test_each_family_holds_its_markup_tokens():
    import inspect
    default = inspect.signature(HFCausalLM).parameters['special_tokens']
    assert default.default == GLAMM_SPECIAL_TOKENS
    for style, tags in MARKUP_TAGS.items():
        assert set(tags) <= set(SPECIAL_TOKENS[style]), style
