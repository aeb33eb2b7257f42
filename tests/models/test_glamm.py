"""GLaMM wiring: embeddings, losses, prediction, errors, the 7B graph."""
import pytest
import torch

from mmgrounding.models.lmms import GLaMM
from mmgrounding.registry import MODELS
from mmgrounding.testing import (GLAMM_LORA, build_tiny_tokenizer, glamm_7b_cfg,
                                 make_glamm_batch, tiny_glamm_cfg)

TRAIN_PROMPTS = [
    'please segment the red circle .', 'describe the region <bbox> in detail .'
]
TRAIN_ANSWERS = [
    'sure , it is [SEG] .',
    '<p> a circle </p> [SEG] left of <p> a square </p> [SEG] .'
]
ORI_SIZES = [(48, 64), (80, 40)]
BOXES = [torch.zeros(0, 4), torch.tensor([[4., 4., 40., 30.]])]


@pytest.fixture(scope='module')
def tok_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('tok'))
    build_tiny_tokenizer(path)
    return path


def build(tok_dir, **kwargs):
    torch.manual_seed(0)
    return MODELS.build(tiny_glamm_cfg(tok_dir, **kwargs))


@pytest.fixture(scope='module')
def model(tok_dir):
    return build(tok_dir, lora=GLAMM_LORA)


def train_batch(model, **kwargs):
    return make_glamm_batch(
        model,
        TRAIN_PROMPTS,
        TRAIN_ANSWERS,
        ori_sizes=ORI_SIZES,
        region_boxes=BOXES,
        **kwargs)


def test_components_and_embeddings(model):
    assert isinstance(model, GLaMM)
    inputs, samples = train_batch(model)
    feats = model.extract_visual_features(inputs['clip_pixels'])
    n = model.vision_encoder.num_patches
    assert len(feats) == 2 and all(f.shape == (2, n, 64) for f in feats)
    embeds = model.embed_inputs(inputs['input_ids'], inputs, samples)
    assert embeds.shape == (*inputs['input_ids'].shape, 128)
    image = inputs['input_ids'] == model.image_token_id
    projected = model.projector(feats[-1])
    assert torch.allclose(embeds[image], projected.reshape(-1, 128))
    bbox = inputs['input_ids'] == model.bbox_token_id
    region = model.region_encoder(list(feats), [b for b in BOXES])
    assert torch.allclose(embeds[bbox], torch.cat(region))
    text = ~(image | bbox)
    plain = model.language_model.embed(inputs['input_ids'])
    assert torch.equal(embeds[text], plain[text])
    # tensor mode: LM logits
    logits = model(inputs, samples, mode='tensor')
    assert logits.shape == (*inputs['input_ids'].shape,
                            model.language_model.vocab_size)
    # frozen CLIP, trainable LoRA/embeddings/head parts
    assert not any(p.requires_grad for p in model.vision_encoder.parameters())
    assert all(p.requires_grad for p in model.seg_projector.parameters())


def test_seg_hidden_source_offsets(tok_dir):
    hidden = torch.arange(10.).reshape(2, 5, 1)
    for source, want in (('preceding', [[1.], [5., 7.]]), ('self', [[2.],
                                                                    [6.,
                                                                     8.]])):
        model = build(tok_dir)
        seg = model.seg_token_id
        ids = torch.tensor([[5, 6, seg, 7, 8], [5, seg, 6, seg, 7]])
        out = model.grounding_states(hidden, ids, source)
        assert [o.flatten().tolist() for o in out] == want, source
    # `valid` restricts to some positions (teacher-forced answers)
    valid = torch.tensor([[1, 1, 1, 1, 1], [0, 0, 0, 1, 1]]).bool()
    out = model.grounding_states(hidden, ids, 'preceding', valid)
    assert [o.flatten().tolist() for o in out] == [[1.], [7.]]
    for key in ('train_seg_hidden_source', 'test_seg_hidden_source'):
        with pytest.raises(ValueError, match=key):
            build(tok_dir, **{key: 'next'})


def test_image_token_mismatch_raises(model):
    n = model.vision_encoder.num_patches
    inputs, samples = train_batch(model, num_image_tokens=n - 1)
    with pytest.raises(
            ValueError, match=rf'{n - 1} <image> tokens.*{n} '
            'features') as err:
        model.loss(inputs, samples)
    assert 'img_id=0' in str(err.value)


def test_seg_mask_mismatch_raises(model):
    inputs, samples = train_batch(model)
    samples[1].gt_instances = samples[1].gt_instances[:1]
    with pytest.raises(
            ValueError,
            match=r'sample 1 \(img_id=1.*2 grounding tokens but 1 '
            'gt masks'):
        model.loss(inputs, samples)


def test_bbox_mismatch_raises(model):
    inputs, samples = train_batch(model)
    samples[1].region_bboxes_clip = torch.zeros(0, 4)
    with pytest.raises(
            ValueError,
            match=r'sample 1 .* 1 <bbox> tokens but 0 prompts in '
            '`region_bboxes_clip`'):
        model.loss(inputs, samples)


def test_losses_finite_and_decrease(tok_dir):
    model = build(tok_dir, lora=GLAMM_LORA)
    model.train()
    inputs, samples = train_batch(model)
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=3e-3)
    history = []
    for _ in range(30):
        losses = model(inputs, samples, mode='loss')
        assert set(losses) == {'loss_lm', 'loss_mask', 'loss_dice'}
        assert all(torch.isfinite(v) for v in losses.values())
        history.append({k: v.item() for k, v in losses.items()})
        optim.zero_grad()
        sum(losses.values()).backward()
        optim.step()
    for key in history[0]:
        first = sum(h[key] for h in history[:3]) / 3
        last = sum(h[key] for h in history[-3:]) / 3
        assert last < first, (key, first, last)


def test_batch_without_seg_has_zero_mask_losses_and_zero_grads(model):
    model.train()
    inputs, samples = make_glamm_batch(model,
                                       ['what is this ?', 'what is this ?'],
                                       ['a circle .', 'a red square .'])
    model.zero_grad(set_to_none=True)
    losses = model.loss(inputs, samples)
    assert losses['loss_mask'].item() == 0.
    assert losses['loss_dice'].item() == 0.
    assert losses['loss_lm'].item() > 0.
    sum(losses.values()).backward()
    for module in (model.seg_projector, model.grounding_head.sam.mask_decoder,
                   model.region_encoder):
        grads = [p.grad for p in module.parameters() if p.requires_grad]
        assert grads and all(g is not None for g in grads)
        assert all(torch.count_nonzero(g) == 0 for g in grads)
    lora = [p.grad for n, p in model.named_parameters() if 'lora_B' in n]
    assert any(torch.count_nonzero(g) > 0 for g in lora)


def test_predict_fills_samples(tok_dir):
    model = build(tok_dir, generation_cfg=dict(max_new_tokens=6))
    model.eval()
    sizes = [(48, 64), (80, 40), (30, 30)]
    inputs, samples = make_glamm_batch(
        model, ['segment the red circle .', 'describe <bbox> .', 'hello'],
        ori_sizes=sizes,
        region_boxes=[BOXES[0], BOXES[1], BOXES[0]],
        tasks=['refseg', 'region_caption', 'chat'])
    samples[0].set_metainfo(dict(gt_phrases=['red circle', 'blue square']))
    out = model(inputs, samples, mode='predict')
    assert out is samples
    for sample, (h, w) in zip(out, sizes):
        inst = sample.pred_instances
        m = len(inst)
        assert inst.masks.dtype == torch.bool
        assert inst.masks.shape == (m, h, w)
        assert inst.bboxes.shape == (m, 4)
        assert inst.scores.shape == (m, )
        assert inst.labels.tolist() == list(range(m))  # grounding token index
        assert ((inst.scores >= 0) & (inst.scores <= 1)).all()
        assert isinstance(sample.pred_text, str)
        assert '[SEG]' not in sample.pred_caption
        assert isinstance(sample.pred_phrases, list)
    # refseg is teacher forced: one mask per expression, phrases = gt
    assert len(out[0].pred_instances) == 2
    assert out[0].pred_phrases == ['red circle', 'blue square']
    assert out[0].pred_text.count('[SEG]') == 2


def test_predict_masks_one_per_generated_seg(tok_dir):
    model = build(
        tok_dir,
        generation_cfg=dict(max_new_tokens=5),
        refseg_teacher_forcing=False)
    model.eval()
    with torch.no_grad():  # the LM always answers [SEG]
        head = model.language_model.model.get_output_embeddings()
        head.weight.zero_()
        head.weight[model.seg_token_id] = 1.
    inputs, samples = make_glamm_batch(
        model, ['segment it .', 'segment them please .'],
        ori_sizes=[(40, 40), (20, 50)])
    out = model.predict(inputs, samples)
    for sample, (h, w) in zip(out, [(40, 40), (20, 50)]):
        assert sample.pred_text.split() == ['[SEG]'] * 5
        assert sample.pred_instances.masks.shape == (5, h, w)
        masks = sample.pred_instances.masks
        for k in range(5):
            if masks[k].any():
                ys, xs = torch.nonzero(masks[k], as_tuple=True)
                box = sample.pred_instances.bboxes[k]
                assert box[0] == xs.min() and box[1] == ys.min()


def test_cached_generation_equals_official_loop(tok_dir):
    model = build(tok_dir, generation_cfg=dict(max_new_tokens=8))
    model.eval()
    with torch.no_grad():
        model.language_model.model.get_output_embeddings().weight.mul_(20)
    inputs, samples = make_glamm_batch(model, [
        'segment the red circle .', 'describe the picture in detail'
        ' please .', 'hi'
    ])
    batched = model.generate_batch(inputs, samples, eos_token_id=None)
    for i in range(3):
        ref = model.generate_reference(
            inputs, samples, index=i, ignore_eos=True)
        assert torch.equal(ref.sequences[0], batched.sequences[i])
        assert torch.allclose(
            ref.hidden_states[0], batched.hidden_states[i], atol=1e-4)


def test_through_the_data_preprocessor(tok_dir):
    """Packed samples (contract §2.6) -> preprocessor -> loss / predict."""
    model = build(tok_dir, generation_cfg=dict(max_new_tokens=4))
    _, samples = train_batch(model)
    inputs, _ = train_batch(model)
    images = []
    for i, sample in enumerate(samples):
        valid = inputs['attention_mask'][i].bool()
        sample.input_ids = inputs['input_ids'][i][valid]
        sample.labels = inputs['labels'][i][valid]
        h, w = sample.metainfo['ori_shape']
        sample.region_bboxes = BOXES[i] * torch.tensor([w, h, w, h]) / 64
        images.append(torch.randint(0, 256, (3, h, w), dtype=torch.uint8))
    model.train()
    data = model.data_preprocessor(
        dict(inputs=images, data_samples=samples), training=True)
    losses = model(**data, mode='loss')
    assert all(torch.isfinite(v) for v in losses.values())
    model.eval()
    for sample in samples:
        answer = (sample.labels != -100).nonzero()[0, 0]
        sample.input_ids = sample.input_ids[:answer]
        del sample.labels
    data = model.data_preprocessor(
        dict(inputs=images, data_samples=samples), training=False)
    out = model(**data, mode='predict')
    assert [s.pred_instances.masks.shape[1:]
            for s in out] == [torch.Size(s) for s in ORI_SIZES]


def test_glamm_7b_graph_on_meta_device(tmp_path):
    """The official GLaMM-7B architecture, built without weights.

    official_releases.md §1.2 counts 7.7175 B parameters WITHOUT CLIP (not in
    the released checkpoints): LLM 6738.5M (vocab 32007), mm_projector 21.0M,
    region encoder 299.1M, SAM ViT-H 641.1M, text_hidden_fcs 17.8M. Ours adds
    the CLIP-L/14-336 tower, one vocabulary row (<image>, input and output)
    and the LoRA adapters.
    """
    build_tiny_tokenizer(
        str(tmp_path), include_model_tokens=False, vocab_size=32000)
    h, ffn, layers = 4096, 11008, 32
    cfg = glamm_7b_cfg(str(tmp_path))
    with torch.device('meta'):
        model = MODELS.build(cfg)

    def count(module, trainable=False):
        return sum(p.numel() for p in module.parameters()
                   if p.requires_grad or not trainable)

    lm = model.language_model
    ids = lm.token_ids
    assert [
        ids[t] for t in ('<im_start>', '<im_end>', '<bbox>', '<point>',
                         '[SEG]', '<p>', '</p>')
    ] == list(range(32000, 32007))
    vocab = lm.vocab_size
    assert vocab == 32008
    lora = layers * 2 * 8 * (h + h)
    assert lora == 4_194_304 == lm.lora_parameter_count()
    llm = 2 * vocab * h + layers * (4 * h * h + 3 * h * ffn + 2 * h) + h
    assert count(lm) == llm + lora
    assert count(lm, trainable=True) == lora + 2 * vocab * h
    official = dict(
        language_model=6738.5e6,
        projector=21.0e6,
        region_encoder=299.1e6,
        grounding_head=641.1e6,
        seg_projector=17.8e6)
    extra = dict(language_model=lora + 2 * h)
    for name, expected in official.items():
        got = count(getattr(model, name)) - extra.get(name, 0)
        assert abs(got - expected) < 0.1e6, (name, got, expected)
    no_clip = count(model) - count(model.vision_encoder) - lora - 2 * h
    assert abs(no_clip - 7.7175e9) < 0.5e6
    assert abs(count(model.vision_encoder) - 303.5e6) < 0.1e6
    # official trainable set with LoRA: LoRA, embed_tokens, lm_head, SAM mask
    # decoder, text_hidden_fcs, region encoder; CLIP and mm_projector frozen
    assert count(model.vision_encoder, True) == 0
    assert count(model.projector, True) == 0
    sam = model.grounding_head.sam
    assert count(model.grounding_head, True) == count(sam.mask_decoder)


def test_refseg_answer_fills_each_target_expression(model):
    """A ``{phrase}`` in ``refseg_answer`` is filled per expected target;
    without gt_phrases it is refused."""
    from mmdet.structures import DetDataSample
    model.refseg_answer = 'Sure, it is <p> {phrase} </p> [SEG].'
    sample = DetDataSample(metainfo=dict(
        task='refseg', gt_phrases=['the red circle', 'a square']))
    tok = model.tokenizer
    expected = tok('Sure, it is <p> the red circle </p> [SEG].',
                   add_special_tokens=False).input_ids + tok(
                       'Sure, it is <p> a square </p> [SEG].',
                       add_special_tokens=False).input_ids
    assert model._refseg_answer(sample) == expected
    assert expected.count(model.seg_token_id) == 2
    with pytest.raises(ValueError, match='no gt_phrases'):
        model._refseg_answer(DetDataSample(metainfo=dict(task='refseg')))
    model.refseg_answer = 'Sure, it is [SEG].'
    assert model._refseg_answer(DetDataSample(metainfo=dict(
        task='refseg', gt_phrases=['x', 'y']))) == tok(
            'Sure, it is [SEG].', add_special_tokens=False).input_ids * 2
