# Swap: a non-Llama LM (tiny Qwen2 architecture: q/k/v biases, 2 KV heads,
# RMSNorm eps 1e-6) as LLaVA-Grounding's language model; the tokenizer,
# special tokens and every other part are the tiny LLaVA-G recipe's.
# tiny_qwen2_config sets every key of the tiny Llama config, so merging it
# replaces that config whole (tests/test_configs/test_swap_configs.py).
_base_ = [
    '../llava_grounding/'
    'llava-g_llama-tiny_clip-tiny_openseed-tiny_600it_synthetic.py',
    '../_base_/models/tiny_parts/qwen2.py'
]

model = dict(language_model=dict(config={{_base_.tiny_qwen2_config}}))
