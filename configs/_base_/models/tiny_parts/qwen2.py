# A non-Llama LM at the tiny Llama's sizes: the Qwen2 architecture (q/k/v
# biases, grouped-query attention with 2 KV heads, RMSNorm eps 1e-6). It
# sets every key of the tiny Llama config, so merged into a tiny model's
# `language_model.config` it replaces that config whole.
tiny_qwen2_config = dict(
    type='Qwen2Config',
    hidden_size=128,
    intermediate_size=256,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=512,
    rms_norm_eps=1e-6,
    tie_word_embeddings=False)
