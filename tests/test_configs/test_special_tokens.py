"""Special-token lists: one constant per model family; the one literal copy
in configs (old-style configs cannot import) must equal it."""
from pathlib import Path

from mmengine.config import Config

from mmgrounding.models.language_models import HFCausalLM
from mmgrounding.structures.markup import (GLAMM_SPECIAL_TOKENS, MARKUP_TAGS,
                                           SPECIAL_TOKENS)

ROOT = Path(__file__).resolve().parents[2]


def test_configs_list_their_family_constant():
    """Every literal special-token list in a config equals its family's
    constant: GLaMM's, or LLaVA-G's followed by the shared ``<image>``."""
    expected = {
        'glamm': GLAMM_SPECIAL_TOKENS,
        'llava_g': SPECIAL_TOKENS['llava_g'] + ('<image>', ),
    }
    seen = {'glamm': [], 'llava_g': []}
    for path in sorted((ROOT / 'configs').rglob('*.py')):
        if 'special_tokens' not in path.read_text():
            continue
        cfg = Config.fromfile(str(path))
        model = cfg.get('model', {})
        family = 'llava_g' if model.get('type') == 'LLaVAGrounding' \
            else 'glamm'
        lm = model.get('language_model', {})
        if lm.get('special_tokens') is not None:
            seen[family].append(tuple(lm['special_tokens']))
        for key, fam in (('glamm_special_tokens', 'glamm'),
                         ('llava_g_special_tokens', 'llava_g')):
            if cfg.get(key) is not None:
                seen[fam].append(tuple(cfg[key]))
    assert seen['glamm'] and seen['llava_g'], seen
    for family, lists in seen.items():
        assert set(lists) == {expected[family]}, (family, set(lists))


def test_each_family_holds_its_markup_tokens():
    import inspect
    default = inspect.signature(HFCausalLM).parameters['special_tokens']
    assert default.default == GLAMM_SPECIAL_TOKENS
    for style, tags in MARKUP_TAGS.items():
        assert set(tags) <= set(SPECIAL_TOKENS[style]), style
