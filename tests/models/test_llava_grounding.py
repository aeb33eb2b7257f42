"""LLaVAGrounding: wiring of the shared base with the OpenSeeD head."""
import pytest
import torch

from mmgrounding.registry import MODELS
from mmgrounding.testing import build_tiny_tokenizer
from mmgrounding.testing.llava_g import (llava_g_7b_cfg, make_llava_g_batch,
                                         tiny_llava_g_cfg)

ANSWER = '<g_s> the red circle <g_e> <seg> near <g_s> a cat <g_e> <seg>'


@pytest.fixture(scope='module')
def tok_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp('tok')
    build_tiny_tokenizer(str(path))
    return str(path)


@pytest.fixture()
def model(tok_dir):
    torch.manual_seed(0)
    return MODELS.build(tiny_llava_g_cfg(tok_dir))


def test_defaults_follow_the_release(model):
    # official: the state AT <seg> in training, the one before it at test
    assert model.train_seg_hidden_source == 'self'
    assert model.test_seg_hidden_source == 'preceding'
    assert model.seg_projector is None
    assert model.grounding_head.target_kind == 'instances'
    tok = model.tokenizer
    assert model.seg_token_id == tok.convert_tokens_to_ids('<seg>')
    assert model.answer_style == 'llava_g'


def test_loss_reads_the_raw_state_at_seg(model):
    inputs, samples = make_llava_g_batch(
        model, ['what is here? (with grounding)'], answers=[ANSWER])
    seen = {}

    def spy(prompt_embeds, grounding_inputs, data_samples):
        seen['embeds'] = prompt_embeds.detach().clone()
        seen['mask'] = grounding_inputs['prompt_mask'].clone()
        return real(prompt_embeds, grounding_inputs, data_samples)

    real = model.grounding_head.loss
    model.grounding_head.loss = spy
    losses = model.loss(inputs, samples)
    assert 'loss_lm' in losses and len(losses) > 1
    assert all(torch.isfinite(v).all() for v in losses.values())

    # independent reference: one LM pass, the last-layer state at each <seg>
    ids = inputs['input_ids'][0].tolist()
    seg_pos = [k for k, t in enumerate(ids) if t == model.seg_token_id]
    assert len(seg_pos) == 2
    embeds = model.embed_inputs(inputs['input_ids'], inputs, samples)
    with torch.no_grad():
        hidden = model.language_model(
            inputs_embeds=embeds,
            attention_mask=inputs['attention_mask'],
            output_hidden_states=True).hidden_states[-1][0]
    assert seen['mask'].tolist() == [[True, True]]
    torch.testing.assert_close(seen['embeds'][0], hidden[seg_pos])


def test_gradients_reach_every_trained_part(model):
    inputs, samples = make_llava_g_batch(
        model, ['q (with grounding)', 'other q'],
        answers=[ANSWER, '<g_s> a dog <g_e> <seg>'],
        token_instances=[[[0, 1], [1]], [[0]]])
    sum(model.loss(inputs, samples).values()).backward()
    for name in ('projector', 'grounding_head.backbone',
                 'grounding_head.similarity', 'language_model'):
        part = model.get_submodule(name)
        grads = [p.grad for p in part.parameters() if p.requires_grad]
        assert grads and any(
            g is not None and g.abs().sum() > 0 for g in grads), name


def test_predict_batched_equals_unbatched(model):
    model.eval()
    prompts = ['where is the circle? (with grounding)', 'describe']
    inputs, samples = make_llava_g_batch(
        model, prompts, ori_sizes=[(48, 64), (80, 40)])
    model.generation_cfg.update(max_new_tokens=6)
    batched = model.predict(inputs, samples)
    for i in range(2):
        sub_in, sub_s = make_llava_g_batch(
            model, [prompts[i]], ori_sizes=[[(48, 64), (80, 40)][i]])
        # the same pixels as in the batch
        sub_in['clip_pixels'] = inputs['clip_pixels'][i:i + 1]
        sub_in['grounding_pixels'] = inputs['grounding_pixels'][i:i + 1]
        one = model.predict(sub_in, sub_s)[0]
        assert one.pred_text == batched[i].pred_text
        a, b = one.pred_instances, batched[i].pred_instances
        assert len(a) == len(b)
        h, w = [(48, 64), (80, 40)][i]
        assert tuple(b.masks.shape[1:]) == (h, w)
        if len(a):
            torch.testing.assert_close(a.bboxes, b.bboxes)
            assert torch.equal(a.masks, b.masks)
            assert a.labels.tolist() == list(range(len(a)))


def test_predict_grounds_each_seg_token(model):
    """Teacher-force an answer with two <seg>: the head returns one
    instance per token, labelled with the token index, at original size."""
    model.eval()
    inputs, samples = make_llava_g_batch(
        model, ['q (with grounding)'], answers=[ANSWER],
        ori_sizes=[(60, 90)])
    ids = inputs['input_ids']
    embeds = model.embed_inputs(ids, inputs, samples)
    with torch.no_grad():
        hidden = model.language_model(
            inputs_embeds=embeds,
            attention_mask=inputs['attention_mask'],
            output_hidden_states=True).hidden_states[-1]
    states = model.grounding_states(hidden, ids, 'preceding')
    embeds, mask = model.project_prompts(states)
    preds = model.grounding_head.predict(
        embeds, model.grounding_inputs(inputs, mask), samples)
    inst = preds[0]
    assert inst.labels.tolist() == [0, 1]
    assert tuple(inst.masks.shape) == (2, 60, 90)
    assert inst.bboxes.shape == (2, 4)
    assert bool(((inst.scores >= 0) & (inst.scores <= 1)).all())


def test_obj_prompt_without_encoder_is_refused(model):
    inputs, samples = make_llava_g_batch(
        model, ['what is <obj> ?'], answers=['a cat'])
    samples[0].visual_prompts_grounding = [
        dict(type='box', boxes=torch.tensor([[1., 2., 30., 40.]]))
    ]
    with pytest.raises(ValueError, match='prompt_encoder'):
        model.loss(inputs, samples)


def test_prompt_dim_must_match_lm_without_projector(tok_dir):
    from mmgrounding.models.grounding_heads.openseed_grounding_head import \
        tiny_openseed_head_cfg
    with pytest.raises(ValueError, match='prompt_dim'):
        MODELS.build(
            tiny_llava_g_cfg(tok_dir, head=tiny_openseed_head_cfg(64)))


def test_tiny_model_fits_a_batch(model):
    """Loss of a fixed batch falls well below its start in 30 AdamW steps."""
    inputs, samples = make_llava_g_batch(
        model, ['q (with grounding)', 'q2 (with grounding)'],
        answers=[ANSWER, '<g_s> a dog <g_e> <seg>'])
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3)
    model.train()
    history = []
    for _ in range(30):
        loss = sum(model.loss(inputs, samples).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(float(loss))
    assert history[-1] < 0.6 * history[0], history


def test_7b_graph_has_the_paper_sizes(tmp_path):
    """LLaVA-G-7B with meta parameters: Vicuna-7B with 5 new rows,
    CLIP-L/14-224, Linear(1024, 4096), the Swin-T OpenSeeD head (design
    note §7). ``init_empty_weights`` (parameters on ``meta``, other tensors
    real) because mmdet's Swin reads ``linspace(...).item()`` at build."""
    from accelerate import init_empty_weights
    build_tiny_tokenizer(
        str(tmp_path), vocab_size=32000, include_model_tokens=False)
    with init_empty_weights():
        model = MODELS.build(llava_g_7b_cfg(str(tmp_path)))

    def count(module):
        return sum(p.numel() for p in module.parameters())

    tok = model.tokenizer
    assert [tok.convert_tokens_to_ids(t)
            for t in ('<g_s>', '<g_e>', '<seg>')] == [32000, 32001, 32002]
    # Llama-2 7B: 6,738,415,616 with a 32000 vocab; +5 rows in embed+head
    assert count(model.language_model) == 6_738_415_616 + 2 * 5 * 4096
    assert count(model.projector) == 1024 * 4096 + 4096
    # CLIP ViT-L/14 vision tower at 224 px (303,179,776 with its pre/post
    # norms); the HF vision model counted whole
    assert 303_000_000 < count(model.vision_encoder) < 304_500_000
    # design note §7: 53.54 M for the grounding model without the dead
    # lang_mapper [4096, 256] and Swin's relative-position tables; the
    # tables of Swin-T add 169 * (2*3 + 2*6 + 6*12 + 2*24) = 23,322
    head = count(model.grounding_head)
    assert 53_540_000 + 23_322 <= head < 53_540_000 + 23_322 + 10_000, head


def _with_prompt_encoder(tok_dir, **kwargs):
    from mmgrounding.models.prompt_encoders.semantic_sam_prompt_encoder \
        import tiny_semantic_sam_prompt_encoder_cfg
    torch.manual_seed(0)
    return MODELS.build(
        tiny_llava_g_cfg(
            tok_dir,
            prompt_encoder=tiny_semantic_sam_prompt_encoder_cfg(lm_dim=128),
            **kwargs))


def _obj_batch(model):
    inputs, samples = make_llava_g_batch(
        model, ['what is <obj> ? (with grounding)'],
        answers=['<g_s> a cat <g_e> <seg>'], ori_sizes=[(64, 64)])
    # one box prompt on the object of the <seg> (grounding view = 2x)
    box = samples[0].gt_objects.bboxes[0] * 2
    samples[0].visual_prompts_grounding = [
        dict(type='box', box=box, instance_id=0)
    ]
    return inputs, samples


def test_obj_prompt_fills_its_placeholder_and_adds_its_losses(tok_dir):
    model = _with_prompt_encoder(tok_dir)
    inputs, samples = _obj_batch(model)
    ids = inputs['input_ids']
    obj_id = model.tokenizer.convert_tokens_to_ids('<obj>')
    pos = (ids[0] == obj_id).nonzero()[0, 0]
    embeds = model.embed_inputs(ids, inputs, samples)
    model.eval()
    with torch.no_grad():
        expected = model.prompt_encoder(
            inputs['grounding_pixels'],
            [samples[0].visual_prompts_grounding])[0]
        embeds = model.embed_inputs(ids, inputs, samples)
    torch.testing.assert_close(embeds[0, pos], expected[0])
    model.train()
    losses = model.loss(inputs, samples)
    assert any(k.startswith('vp.') for k in losses), sorted(losses)
    assert 'loss_cls' in losses
    sum(losses.values()).backward()
    grads = [p.grad for p in model.prompt_encoder.obj_projector.parameters()]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)


def test_stage3_skips_the_grounding_losses(tok_dir):
    model = _with_prompt_encoder(tok_dir, grounding_loss=False)
    inputs, samples = _obj_batch(model)
    losses = model.loss(inputs, samples)
    assert 'loss_lm' in losses and any(k.startswith('vp.') for k in losses)
    assert not any('loss_cls' in k or k.endswith('loss_bbox')
                   and not k.startswith('vp.') for k in losses), sorted(losses)


def _given_answer_batch(model, phrases):
    inputs, samples = make_llava_g_batch(
        model, ['q (with grounding)'], answers=[ANSWER],
        ori_sizes=[(60, 90)])
    samples[0].set_metainfo(dict(task='phrase_grounding',
                                 gt_phrases=phrases))
    return inputs, samples


def test_given_answer_is_grounded_by_one_forward(model):
    """teacher_forced_tasks: the <seg> tokens of the answer in the input
    (e.g. Flickr30K's GT phrases) are grounded; nothing is generated."""
    model.eval()
    model.teacher_forced_tasks = ('phrase_grounding', )
    inputs, samples = _given_answer_batch(model, ['the red circle', 'a cat'])

    def no_generation(*args, **kwargs):
        raise AssertionError('a given answer must not be generated')

    model.generate_batch = no_generation
    # independent reference: one plain LM pass, states at the two <seg>
    ids = inputs['input_ids']
    embeds = model.embed_inputs(ids, inputs, samples)
    with torch.no_grad():
        hidden = model.language_model(
            inputs_embeds=embeds,
            attention_mask=inputs['attention_mask'],
            output_hidden_states=True).hidden_states[-1]
    seg_pos = [k for k, t in enumerate(ids[0].tolist())
               if t == model.seg_token_id]
    if model.test_seg_hidden_source == 'preceding':
        seg_pos = [k - 1 for k in seg_pos]
    prompt, mask = model.project_prompts([hidden[0, seg_pos]])
    expected = model.grounding_head.predict(
        prompt, model.grounding_inputs(inputs, mask), samples)[0]

    out = model.predict(inputs, samples)[0]
    assert out.pred_phrases == ['the red circle', 'a cat']
    assert 'the red circle' in out.pred_text
    assert out.pred_text.count('<seg>') == 2
    assert out.pred_instances.labels.tolist() == [0, 1]
    torch.testing.assert_close(out.pred_instances.bboxes, expected.bboxes)
    assert torch.equal(out.pred_instances.masks, expected.masks)


def test_given_answer_must_match_the_gt_phrases(model):
    model.eval()
    model.teacher_forced_tasks = ('phrase_grounding', )
    inputs, samples = _given_answer_batch(model, ['the red circle'])
    with pytest.raises(ValueError, match='2 <seg> tokens but 1 gt_phrases'):
        model.predict(inputs, samples)


def test_topk_predictions_rank_queries_per_token(tok_dir):
    """predict_topk=3: three instances per <seg>, token by token, best
    first; the first of each token is the top-1 prediction."""
    torch.manual_seed(0)
    cfg = tiny_llava_g_cfg(tok_dir)
    top1 = MODELS.build(cfg).eval()
    cfg['grounding_head']['predict_topk'] = 3
    torch.manual_seed(0)
    top3 = MODELS.build(cfg).eval()
    inputs, samples = make_llava_g_batch(
        top1, ['q (with grounding)'], answers=[ANSWER], ori_sizes=[(60, 90)])
    prompt = torch.randn(1, 2, top1.language_model.hidden_size)
    mask = torch.ones(1, 2, dtype=torch.bool)
    one = top1.grounding_head.predict(
        prompt, top1.grounding_inputs(inputs, mask), samples)[0]
    three = top3.grounding_head.predict(
        prompt, top3.grounding_inputs(inputs, mask), samples)[0]
    assert three.labels.tolist() == [0, 0, 0, 1, 1, 1]
    for t in range(2):
        s = three.scores[3 * t:3 * t + 3]
        assert bool((s[:-1] >= s[1:]).all())
    torch.testing.assert_close(three.bboxes[[0, 3]], one.bboxes)
    torch.testing.assert_close(three.scores[[0, 3]], one.scores)
    with pytest.raises(ValueError, match='predict_topk'):
        cfg['grounding_head']['predict_topk'] = 0
        MODELS.build(cfg)
