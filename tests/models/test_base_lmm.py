"""BaseGroundedLMM: placeholder counts, hidden-source switch, head contract
with heads that are not SAM, teacher-forced RefSeg pairing, DDP touch."""
import pytest
import torch
from mmdet.structures.mask import mask2bbox
from mmengine.model import BaseModule
from mmengine.structures import InstanceData
from torch import nn

from mmgrounding.models.lmms import BaseGroundedLMM, GLaMM
from mmgrounding.registry import MODELS
from mmgrounding.testing import build_tiny_tokenizer, make_glamm_batch, \
    tiny_glamm_cfg

torch.set_num_threads(1)


@MODELS.register_module(force=True)
class ToyBoxHead(BaseModule):
    """A 1-layer box head: prompt + mean image colour -> one box per token.

    Follows the grounding-head contract; exists only in this test, so GLaMM
    gets it by config alone.
    """
    target_kind = 'union'

    def __init__(self, prompt_dim: int) -> None:
        super().__init__()
        self.prompt_dim = prompt_dim
        self.fc = nn.Linear(prompt_dim + 3, 4)

    def extract_feat(self, pixels):
        return pixels.mean((2, 3))  # [B, 3]

    def _boxes(self, prompt_embeds, grounding_inputs):
        feats = grounding_inputs.get('feats')
        if feats is None:
            feats = self.extract_feat(grounding_inputs['pixels'])
        x = torch.cat([
            prompt_embeds, feats[:, None].expand(-1, prompt_embeds.shape[1],
                                                 -1)
        ], -1)
        return self.fc(x).sigmoid()  # [B, N, 4] xyxy / (w, h, w, h)

    @staticmethod
    def _scale(sample):
        h, w = sample.metainfo['ori_shape']
        return torch.tensor([w, h, w, h], dtype=torch.float32)

    def loss(self, prompt_embeds, grounding_inputs, data_samples):
        pred = self._boxes(prompt_embeds, grounding_inputs)
        mask = grounding_inputs['prompt_mask']
        total, num = pred.sum() * 0., 0
        for i, sample in enumerate(data_samples):
            masks = torch.as_tensor(sample.gt_instances.masks.masks).bool()
            gt = mask2bbox(masks).float() / self._scale(sample)
            total = total + (pred[i][mask[i]] - gt).abs().sum()
            num += len(gt)
        return dict(loss_box=total / max(num, 1))

    def predict(self, prompt_embeds, grounding_inputs, data_samples,
                rescale=True):
        pred = self._boxes(prompt_embeds, grounding_inputs)
        out = []
        for i, sample in enumerate(data_samples):
            boxes = pred[i][grounding_inputs['prompt_mask'][i]]
            h, w = sample.metainfo['ori_shape']
            boxes = boxes * self._scale(sample)
            masks = torch.zeros((len(boxes), h, w), dtype=torch.bool)
            for k, (x1, y1, x2, y2) in enumerate(boxes.long().tolist()):
                masks[k, y1:y2, x1:x2] = True
            out.append(
                InstanceData(
                    masks=masks,
                    bboxes=boxes,
                    scores=torch.ones(len(boxes)),
                    labels=torch.arange(len(boxes))))
        return out


@MODELS.register_module(force=True)
class RecordingHead(ToyBoxHead):
    """ToyBoxHead that keeps the prompt embeddings it was given."""

    def loss(self, prompt_embeds, grounding_inputs, data_samples):
        self.seen = ('loss', prompt_embeds.detach().clone(),
                     grounding_inputs['prompt_mask'].clone())
        return super().loss(prompt_embeds, grounding_inputs, data_samples)

    def predict(self, prompt_embeds, grounding_inputs, data_samples,
                rescale=True):
        self.seen = ('predict', prompt_embeds.clone(),
                     grounding_inputs['prompt_mask'].clone())
        return super().predict(prompt_embeds, grounding_inputs, data_samples,
                               rescale)


@pytest.fixture(scope='module')
def tok_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('tok'))
    build_tiny_tokenizer(path)
    return path


def build(tok_dir, **kwargs):
    torch.manual_seed(0)
    return MODELS.build(tiny_glamm_cfg(tok_dir, **kwargs))


def test_glamm_is_a_thin_wiring_of_the_base(tok_dir):
    model = build(tok_dir)
    assert isinstance(model, BaseGroundedLMM)
    assert set(model.prompt_slots) == {'<bbox>'}
    assert model.prompt_slots['<bbox>'].encoder == 'region_encoder'
    import inspect

    import mmgrounding.models.lmms.glamm as glamm
    assert len(inspect.getsource(glamm).splitlines()) <= 250


def test_toy_box_head_plugs_in_by_config(tok_dir):
    model = build(
        tok_dir,
        grounding_head=dict(type='ToyBoxHead', prompt_dim=128),
        generation_cfg=dict(max_new_tokens=3))
    assert isinstance(model, GLaMM) and isinstance(model.grounding_head,
                                                   ToyBoxHead)
    inputs, samples = make_glamm_batch(
        model, ['segment it .', 'describe <bbox> .'],
        ['it is [SEG] .', '<p> a </p> [SEG] and <p> b </p> [SEG] .'],
        ori_sizes=[(48, 64), (80, 40)],
        region_boxes=[torch.zeros(0, 4), torch.tensor([[4., 4., 40., 30.]])])
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=1e-2)
    history = []
    for _ in range(15):
        losses = model(inputs, samples, mode='loss')
        assert set(losses) == {'loss_lm', 'loss_box'}
        history.append(losses['loss_box'].item())
        optim.zero_grad()
        sum(losses.values()).backward()
        assert model.grounding_head.fc.weight.grad.abs().sum() > 0
        optim.step()
    assert history[-1] < history[0]
    model.eval()
    pred_inputs, pred_samples = make_glamm_batch(
        model, ['segment it .', 'hi .'],
        ori_sizes=[(48, 64), (30, 30)],
        tasks=['refseg', 'chat'])
    pred_samples[0].set_metainfo(dict(gt_phrases=['x', 'y']))
    out = model(pred_inputs, pred_samples, mode='predict')
    inst = out[0].pred_instances
    assert inst.bboxes.shape == (2, 4) and inst.labels.tolist() == [0, 1]
    assert inst.masks.shape == (2, 48, 64)


def _lm_hidden(model, ids, inputs, samples, mask):
    embeds = model.embed_inputs(ids, inputs, samples)
    return model.language_model(
        inputs_embeds=embeds, attention_mask=mask,
        output_hidden_states=True).hidden_states[-1]


def test_train_and_test_hidden_sources_are_separate(tok_dir):
    """train 'self' (LLaVA-G training), test 'preceding' (its inference)."""
    model = build(
        tok_dir,
        seg_projector=None,  # identity: the head sees raw LM states
        grounding_head=dict(type='RecordingHead', prompt_dim=128),
        train_seg_hidden_source='self',
        test_seg_hidden_source='preceding')
    model.eval()  # no dropout, deterministic states
    inputs, samples = make_glamm_batch(
        model, ['segment it .', 'segment both .'],
        ['it is [SEG] .', '<p> a </p> [SEG] and <p> b </p> [SEG] .'])
    model.loss(inputs, samples)
    kind, embeds, mask = model.grounding_head.seen
    assert kind == 'loss' and mask.sum(1).tolist() == [1, 2]
    with torch.no_grad():
        hidden = _lm_hidden(model, inputs['input_ids'], inputs, samples,
                            inputs['attention_mask'])
    for i in range(2):
        pos = (inputs['input_ids'][i] == model.seg_token_id).nonzero()[:, 0]
        torch.testing.assert_close(embeds[i][mask[i]], hidden[i, pos])

    # predict (teacher-forced RefSeg): the state BEFORE the answer's [SEG]
    pred_inputs, pred_samples = make_glamm_batch(
        model, ['segment it .'], tasks=['refseg'])
    model.predict(pred_inputs, pred_samples)
    kind, embeds, mask = model.grounding_head.seen
    assert kind == 'predict' and mask.sum().item() == 1
    answer = torch.tensor(model._refseg_answer_ids(""))
    ids = torch.cat([pred_inputs['input_ids'][0], answer])[None]
    with torch.no_grad():
        hidden = _lm_hidden(model, ids, pred_inputs, pred_samples,
                            torch.ones_like(ids))
    seg = (ids[0] == model.seg_token_id).nonzero()[0, 0]
    torch.testing.assert_close(embeds[0][mask[0]], hidden[0, seg - 1:seg],
                               atol=1e-5, rtol=1e-5)


def test_teacher_forced_refseg_ignores_earlier_rounds_seg(tok_dir):
    """Regression (issue 10, item 4): a multi-round RefSeg prompt holds the
    [SEG] of an earlier answer; only the appended answer's [SEG] pairs with
    the one target."""
    model = build(
        tok_dir,
        seg_projector=None,
        grounding_head=dict(type='RecordingHead', prompt_dim=128))
    model.eval()
    inputs, samples = make_glamm_batch(
        model,
        ['segment the circle . ASSISTANT: sure , it is [SEG] . USER: '
         'segment the square .'],
        tasks=['refseg'])
    samples[0].set_metainfo(dict(gt_phrases=['the square']))
    assert (inputs['input_ids'] == model.seg_token_id).sum() == 1
    out = model.predict(inputs, samples)
    assert len(out[0].pred_instances) == 1
    _, embeds, mask = model.grounding_head.seen
    answer = torch.tensor(model._refseg_answer_ids(""))
    ids = torch.cat([inputs['input_ids'][0], answer])[None]
    with torch.no_grad():
        hidden = _lm_hidden(model, ids, inputs, samples, torch.ones_like(ids))
    last_seg = (ids[0] == model.seg_token_id).nonzero()[-1, 0]
    torch.testing.assert_close(embeds[0][mask[0]],
                               hidden[0, last_seg - 1:last_seg],
                               atol=1e-5, rtol=1e-5)


def test_image_placeholder_count_error_names_both_counts(tok_dir):
    model = build(tok_dir)
    n = model.vision_encoder.num_patches
    inputs, samples = make_glamm_batch(
        model, ['hi .'], ['hello .'], num_image_tokens=n + 2)
    with pytest.raises(ValueError,
                       match=rf'sample 0 \(img_id=0.*has {n + 2} <image> '
                       rf'tokens but {n} features'):
        model.loss(inputs, samples)


def test_unused_parts_get_zero_grads_in_one_place(tok_dir):
    """No <bbox> and no [SEG]: region encoder and seg projector still get
    (zero) gradients, so DDP without find_unused_parameters is safe."""
    model = build(tok_dir)
    model.train()
    inputs, samples = make_glamm_batch(model, ['what is this ?'],
                                       ['a circle .'])
    losses = model.loss(inputs, samples)
    sum(losses.values()).backward()
    for module in (model.region_encoder, model.seg_projector,
                   model.grounding_head):
        for name, p in module.named_parameters():
            if p.requires_grad:
                assert p.grad is not None, name
                assert torch.count_nonzero(p.grad) == 0, name
