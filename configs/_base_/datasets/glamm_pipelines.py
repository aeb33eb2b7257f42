# GLaMM-7B data pipelines: Vicuna v1 ("curious human") template, GLaMM image
# prefix, official instruction templates drawn per sample, 576 image tokens,
# 1536-token context (official model_max_length). Every config using these
# pipelines starts from a converted official release (`load_from`), so the
# text is tokenised as the release was: tokenization='official' (slow Llama
# rules with image-token splicing, official_releases.md §1.6; the default
# 'single_call' is this project's one-call encoding, for models trained here).
glamm_llm_path = 'checkpoints/vicuna-7b-v1.5'
glamm_tokenizer = dict(
    pretrained_model_name_or_path=glamm_llm_path, model_max_length=1536)
# = mmgrounding.structures.markup.GLAMM_SPECIAL_TOKENS (the model's default),
# written out once here: an old-style config cannot import it (a test checks
# that they agree)
glamm_special_tokens = ('<im_start>', '<im_end>', '<bbox>', '<point>', '[SEG]',
                        '<p>', '</p>', '<image>')

glamm_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadGroundingAnnotations'),
    dict(
        type='FormatGroundedConversation',
        style='glamm',
        task_templates='default',
        random_template=True),
    dict(
        type='TokenizeConversation',
        tokenizer=glamm_tokenizer,
        special_tokens=glamm_special_tokens,
        num_image_tokens=576,
        max_length=1536,
        tokenization='official'),
    dict(type='PackGroundingInputs')
]
glamm_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadGroundingAnnotations'),
    dict(
        type='FormatGroundedConversation',
        style='glamm',
        task_templates='default',
        with_answer=False),
    dict(
        type='TokenizeConversation',
        tokenizer=glamm_tokenizer,
        special_tokens=glamm_special_tokens,
        num_image_tokens=576,
        max_length=1536,
        tokenization='official'),
    dict(type='PackGroundingInputs')
]
