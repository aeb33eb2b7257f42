# LLaVA-Grounding-7B (paper + official release, llava_grounding_gd_vp):
# CLIP ViT-L/14-224 (penultimate layer, 256 patches) -> one Linear(1024, 4096)
# -> Vicuna-7B -> raw <seg> states -> OpenSeeD (Swin-T, 300 queries, 9 DINO
# layers) scored against them. Every part is loaded from a LOCAL directory.
clip_path = 'checkpoints/clip-vit-large-patch14'
llm_path = 'checkpoints/vicuna-7b-v1.3'  # the training scripts' LLM
# <g_s>, <g_e>, <seg> first (ids 32000-32002 on Vicuna, as released), then
# the <obj> prompt placeholder and our <image> placeholder
# (= mmgrounding.structures.markup.LLAVA_G_SPECIAL_TOKENS + '<image>')
_special_tokens = ('<g_s>', '<g_e>', '<seg>', '<obj>', '<image>')

model = dict(
    type='LLaVAGrounding',
    data_preprocessor=dict(
        type='GroundingDataPreprocessor',
        clip_size=224,
        clip_mode='crop',  # CLIPImageProcessor: shortest side + centre crop
        grounding_size=1024,  # OpenSeeD: ResizeScale + FixedSizeCrop 1024
        pad_token_id=0),  # Vicuna: pad = unk (id 0)
    vision_encoder=dict(
        type='HFVisionEncoder',
        pretrained_model_name_or_path=clip_path,
        select_layers=(-2, ),
        trainable=False),
    projector=dict(
        type='MLPProjector', in_channels=1024, out_channels=4096,
        num_layers=1),
    language_model=dict(
        type='HFCausalLM',
        pretrained_model_name_or_path=llm_path,
        tokenizer=dict(
            pretrained_model_name_or_path=llm_path, model_max_length=2400),
        special_tokens=_special_tokens,
        lora=None,  # official: no LoRA
        trainable='all',
        gradient_checkpointing=True,
        torch_dtype='bfloat16'),
    grounding_head=dict(type='OpenSeeDGroundingHead', prompt_dim=4096),
    # official: the state AT <seg> in training, the one that predicts it at
    # inference (llava_g_design.md §5)
    train_seg_hidden_source='self',
    test_seg_hidden_source='preceding',
    generation_cfg=dict(max_new_tokens=512, do_sample=False))
