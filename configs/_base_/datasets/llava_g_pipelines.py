# LLaVA-G-7B data pipelines: Vicuna v1 ("curious user") template,
# `<g_s> phrase <g_e> <seg>` answers, "(with grounding)" requests, 256 image
# tokens (CLIP-L/14-224), 2400-token context (stage 2/3 model_max_length).
llava_g_llm_path = 'checkpoints/vicuna-7b-v1.3'
llava_g_tokenizer = dict(
    pretrained_model_name_or_path=llava_g_llm_path, model_max_length=2400)
llava_g_special_tokens = ('<g_s>', '<g_e>', '<seg>', '<obj>', '<image>')
_tokenize = dict(
    type='TokenizeConversation',
    tokenizer=llava_g_tokenizer,
    special_tokens=llava_g_special_tokens,
    num_image_tokens=256,
    max_length=2400,
    grounding_token='<seg>',
    region_token='<obj>')

llava_g_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadGroundingAnnotations'),
    dict(type='FormatGroundedConversation', style='llava_g',
         task_templates='default'),
    _tokenize,
    dict(type='PackGroundingInputs')
]
# Flickr30K Entities has boxes only: the filled box is the target mask
llava_g_train_pipeline_boxes = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadGroundingAnnotations', mask_from_box=True),
    *llava_g_train_pipeline[2:]
]
llava_g_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadGroundingAnnotations'),
    dict(type='FormatGroundedConversation', style='llava_g',
         task_templates='default', with_answer=False),
    _tokenize,
    dict(type='PackGroundingInputs')
]

# Stage 3 (<obj> visual prompts): a click, box or scribble per region, drawn
# from the region's object (Semantic-SAM style; scribbles reach the encoder
# as their box, the official demo's reduction)
llava_g_vp_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadGroundingAnnotations'),
    dict(
        type='SampleVisualPrompts',
        prompt_types=dict(click=1.0, box=1.0, scribble=1.0)),
    dict(type='FormatGroundedConversation', style='llava_g',
         task_templates='default'),
    _tokenize,
    dict(type='PackGroundingInputs')
]
