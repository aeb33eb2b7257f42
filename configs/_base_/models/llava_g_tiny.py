# Tiny LLaVA-Grounding (~2 M parameters): the 7B graph at toy sizes for the
# synthetic world (128 px). CLIP (trained: it is random) -> one Linear ->
# tiny Llama -> raw <seg> states -> tiny OpenSeeD head (Swin 1-1-1-1,
# d = 32, 20 queries; llava_g_design.md §8), from ./tiny_parts/.
_base_ = ['./tiny_parts/openseed_head.py']
tiny_llm_tokenizer_dir = 'data/synthetic/tokenizer'
image_size = 128
clip_size = 128
clip_hidden = 128
llm_hidden = 128

model = dict(
    type='LLaVAGrounding',
    data_preprocessor=dict(
        type='GroundingDataPreprocessor',
        clip_size=clip_size,
        clip_mode='resize',
        grounding_size=image_size,
        pad_token_id=3),
    vision_encoder=dict(
        type='HFVisionEncoder',
        config=dict(
            type='CLIPVisionConfig',
            hidden_size=clip_hidden,
            intermediate_size=2 * clip_hidden,
            num_hidden_layers=3,
            num_attention_heads=4,
            image_size=clip_size,
            patch_size=16),
        select_layers=(-2, ),  # official: the penultimate layer
        trainable=True),  # random tiny tower: it has to learn (7B: frozen)
    projector=dict(
        type='MLPProjector',
        in_channels=clip_hidden,
        out_channels=llm_hidden,
        num_layers=1),  # official mm_projector: one Linear
    language_model=dict(
        type='HFCausalLM',
        config=dict(
            type='LlamaConfig',
            hidden_size=llm_hidden,
            intermediate_size=2 * llm_hidden,
            num_hidden_layers=4,
            num_attention_heads=4,
            num_key_value_heads=4,
            max_position_embeddings=512,
            rms_norm_eps=1e-5,
            tie_word_embeddings=False),
        tokenizer=dict(pretrained_model_name_or_path=tiny_llm_tokenizer_dir),
        special_tokens=('<g_s>', '<g_e>', '<seg>', '<obj>', '<image>'),
        lora=None,  # a randomly initialised LM trains fully
        trainable='all',
        attn_implementation='sdpa'),
    grounding_head={{_base_.tiny_openseed_head}},
    train_seg_hidden_source='self',  # official training: the state AT <seg>
    test_seg_hidden_source='self',  # consistent with training (official:
    # 'preceding', the state that predicts <seg>)
    generation_cfg=dict(max_new_tokens=48, do_sample=False))
