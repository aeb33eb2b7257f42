from .hf_causal_lm import GLAMM_SPECIAL_TOKENS, HFCausalLM, build_hf_config

__all__ = ['HFCausalLM', 'GLAMM_SPECIAL_TOKENS', 'build_hf_config']
