"""Generate the synthetic grounding world on disk (see ``docs/formats.md``).

One pass over the images: each image is sampled, rendered, saved, and its
records are streamed to every annotation file before the next image, so memory
does not grow with ``num_images``. Image ``i`` draws from
``np.random.default_rng([seed, i, stream])``: the scene and the language of an
image do not depend on the other images, and a seed fixes every byte.
"""
import json
import os
import time
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
from PIL import Image

from .chat import llava_conversation
from .language import (GVC_QUESTIONS, GVC_WHERE_QUESTION, GVCR_QUESTIONS,
                       GVCR_RELATION_QUESTION, RELATIONS,
                       REFCOCO_INSTRUCT_QUESTIONS, WITH_GROUNDING, article,
                       capitalize, grounded_caption, pick, referring_sentences,
                       relation, resolve, spatial_candidates, unique_subsets)
from .scene import (CATEGORY_IDS, COLORS, SHAPES, SIZES, Shape, encode_rle,
                    mask_bbox_area, render, sample_scene)
from .writers import (JsonArrayWriter, JsonFilesWriter, JsonObjectWriter,
                      PickleListWriter, dumps)

SPLITS: Tuple[Tuple[str, float], ...] = (('train', 0.8), ('val', 0.1),
                                         ('testA', 0.05), ('testB', 0.05))
WORLD_VERSION = 1
# LLaVA-Instruct-150K is one (train) file; the val images get a sibling.
LLAVA_INSTRUCT_FILES = {'train': 'llava_instruct_150k.json',
                        'val': 'llava_instruct_150k_val.json'}
CATEGORIES = [{'id': CATEGORY_IDS[s], 'name': s, 'supercategory': 'shape'}
              for s in SHAPES]


def split_bounds(num_images: int) -> Dict[str, Tuple[int, int]]:
    """Inclusive id ranges ``[first, last]`` per split (ids are 1-based);
    an empty split has ``last < first``."""
    bounds, start, cum = {}, 1, 0.0
    for name, frac in SPLITS:
        cum += frac
        end = num_images if name == SPLITS[-1][0] else int(round(cum * num_images))
        bounds[name] = (start, end)
        start = end + 1
    return bounds


def image_stem(img_id: int) -> str:
    return f'{img_id:012d}'


def _obj_mask_ann(obj: Shape) -> dict:
    """COCO segmentation: polygon when unoccluded, compressed RLE otherwise."""
    return [obj.polygon] if not obj.occluded else encode_rle(obj.visible)


class _Writers:
    """All output files of a world, opened for streaming."""

    def __init__(self, out: str, info: dict):
        ann = os.path.join(out, 'annotations')
        for sub in ('gcg', 'llava_g', 'region_caption', 'flickr', 'llava_instruct'):
            os.makedirs(os.path.join(ann, sub), exist_ok=True)
        p = lambda *a: os.path.join(ann, *a)  # noqa: E731
        coco = ('annotations', 'images')
        self.instances = JsonObjectWriter(
            p('instances.json'), coco,
            dict(categories=CATEGORIES, info=info, licenses=[]))
        self.refs = PickleListWriter(p('refs(unc).p'))
        self.gcg_train = JsonArrayWriter(p('gcg', 'GranDf_HA_GCG_train.json'))
        self.gcg_mask = JsonObjectWriter(
            p('gcg', 'val_gcg_coco_mask_gt.json'), coco,
            dict(categories=[{'id': 1, 'name': 'object'}]))
        self.gcg_cap = JsonObjectWriter(p('gcg', 'val_gcg_coco_caption_gt.json'), coco)
        self.gvc, self.gvcr, self.ginst = {}, {}, {}
        self.refcocog, self.flickr, self.llava = {}, {}, {}
        for s in ('train', 'val'):
            self.gvc[s] = JsonArrayWriter(p('llava_g', f'grounded_visual_chat_data_{s}.json'))
            self.gvcr[s] = JsonArrayWriter(p('llava_g', f'llava_instruct_visual_prompt_{s}.json'))
            self.ginst[s] = JsonArrayWriter(p('llava_g', f'grounding_{s}_instruct.json'))
            self.llava[s] = JsonArrayWriter(p('llava_instruct', LLAVA_INSTRUCT_FILES[s]))
            self.refcocog[s] = JsonObjectWriter(
                p('region_caption', f'finetune_refcocog_{s}.json'), coco,
                dict(categories=CATEGORIES))
            self.flickr[s] = JsonObjectWriter(
                p('flickr', f'final_flickr_separateGT_{s}.json'), coco,
                dict(categories=[{'id': 1, 'name': 'object', 'supercategory': 'object'}]))
        self.refcocog_cap = JsonObjectWriter(
            p('region_caption', 'finetune_refcocog_val_captions.json'), coco)
        self.vg_train = JsonObjectWriter(p('region_caption', 'vg_train.json'), coco)
        self.vg_test = JsonObjectWriter(p('region_caption', 'vg_test_caption.json'), coco)
        self.grand = JsonFilesWriter(p('grand'))

    def all(self) -> Dict[str, object]:
        out = {'instances.json': self.instances, 'refs(unc).p': self.refs,
               'gcg/GranDf_HA_GCG_train.json': self.gcg_train,
               'gcg/val_gcg_coco_mask_gt.json': self.gcg_mask,
               'gcg/val_gcg_coco_caption_gt.json': self.gcg_cap,
               'region_caption/finetune_refcocog_val_captions.json': self.refcocog_cap,
               'region_caption/vg_train.json': self.vg_train,
               'region_caption/vg_test_caption.json': self.vg_test,
               'grand/*.json (train images)': self.grand}
        for s in ('train', 'val'):
            out[f'llava_g/grounded_visual_chat_data_{s}.json'] = self.gvc[s]
            out[f'llava_g/llava_instruct_visual_prompt_{s}.json'] = self.gvcr[s]
            out[f'llava_g/grounding_{s}_instruct.json'] = self.ginst[s]
            out[f'region_caption/finetune_refcocog_{s}.json'] = self.refcocog[s]
            out[f'flickr/final_flickr_separateGT_{s}.json'] = self.flickr[s]
            out[f'llava_instruct/{LLAVA_INSTRUCT_FILES[s]}'] = self.llava[s]
        return out

    def close(self) -> Dict[str, int]:
        counts = {}
        for name, w in self.all().items():
            w.close()
            counts[name] = w.count if hasattr(w, 'count') else w.counts['images']
        return counts


class WorldGenerator:
    """Stateful counters (global ids) + per-image record builders."""

    def __init__(self, out: str, num_images: int, seed: int, image_size: int):
        self.out, self.n, self.seed, self.size = out, num_images, seed, image_size
        self.bounds = split_bounds(num_images)
        self.next_ann = 1
        self.next_ref = 0
        self.next_sent = 0
        self.next_gcg_ann = 1
        self.ids = {k: 0 for k in ('refcocog_train', 'refcocog_val', 'flickr_train',
                                   'flickr_val', 'flickr_ann_train', 'flickr_ann_val',
                                   'vg_ann', 'vg_test')}
        self.stats = {'objects': 0, 'occluded': 0, 'sent_attribute': 0,
                      'sent_spatial': 0, 'sent_spatial_needs_relation': 0, 'refs': 0}

    def split_of(self, img_id: int) -> str:
        for name, (a, b) in self.bounds.items():
            if a <= img_id <= b:
                return name
        raise ValueError(f'image id {img_id} outside 1..{self.n}')

    def _next(self, key: str) -> int:
        v = self.ids[key]
        self.ids[key] += 1
        return v

    # ------------------------------------------------------------------
    def make_image(self, img_id: int):
        """Sample, render and save one image; returns its objects."""
        rng = np.random.default_rng([self.seed, img_id, 0])
        # Resample until every object can be referred to uniquely (by its
        # attributes or a relation), so every image has a ref per object.
        for _ in range(50):
            objs = sample_scene(rng, self.size)
            if all(unique_subsets(o, objs) or spatial_candidates(o, objs, self.size)
                   for o in objs):
                break
        img = render(objs, self.size)
        path = os.path.join(self.out, 'images', image_stem(img_id) + '.png')
        Image.fromarray(img).save(path, format='PNG', optimize=False,
                                  compress_level=6)
        for o in objs:
            o.ann_id = self.next_ann
            self.next_ann += 1
            o.extra['bbox'], o.extra['area'] = mask_bbox_area(o.visible)
        return objs

    def write_image(self, w: _Writers, img_id: int, objs: List[Shape]) -> dict:
        """Stream every record of one image; returns its preview summary."""
        split = self.split_of(img_id)
        stem = image_stem(img_id)
        fname = stem + '.png'
        size = self.size
        rng = np.random.default_rng([self.seed, img_id, 1])
        w.instances.add('images', {'file_name': fname, 'height': size, 'id': img_id,
                                   'width': size})
        for o in objs:
            self.stats['objects'] += 1
            self.stats['occluded'] += int(o.occluded)
            w.instances.add('annotations', {
                'area': o.extra['area'], 'bbox': o.extra['bbox'],
                'category_id': CATEGORY_IDS[o.shape], 'id': o.ann_id,
                'image_id': img_id, 'iscrowd': 0, 'segmentation': _obj_mask_ann(o),
                'attributes': {'color': o.color, 'shape': o.shape, 'size': o.size}})
        # RefCOCO refs (all splits)
        refs = []
        for o in objs:
            sents = referring_sentences(o, objs, size, rng)
            if not sents:
                continue
            sentences = []
            for text, kind in sents:
                sentences.append({'raw': text, 'sent': text, 'sent_id': self.next_sent,
                                  'tokens': text.split(), 'type': kind})
                self.next_sent += 1
                self.stats['sent_' + kind] += 1
                if kind == 'spatial' and len(resolve(text[:_head_end(text)], objs, size)) > 1:
                    self.stats['sent_spatial_needs_relation'] += 1
            ref = {'ann_id': o.ann_id, 'category_id': CATEGORY_IDS[o.shape],
                   'file_name': f'{stem}_{o.ann_id}.png', 'image_id': img_id,
                   'ref_id': self.next_ref, 'sent_ids': [s['sent_id'] for s in sentences],
                   'sentences': sentences, 'split': split}
            self.next_ref += 1
            self.stats['refs'] += 1
            w.refs.add(ref)
            refs.append((o, ref))
        summary = {'img_id': img_id, 'split': split, 'objs': objs,
                   'refs': [(o, [s['sent'] for s in r['sentences']]) for o, r in refs]}
        caption, spans, groups = grounded_caption(objs, size, rng)
        summary['caption'] = caption
        if split not in ('train', 'val'):
            return summary
        phrases = [caption[s:e] for s, e in spans]
        # GLaMM GCG
        if split == 'train':
            w.gcg_train.add({
                'caption': caption, 'file_name': fname, 'height': size, 'width': size,
                'image_id': stem,
                'groundings': {ph: {'token_positives': [s, e],
                                    'rle_masks': [encode_rle(o.visible) for o in g],
                                    'ann_ids': [o.ann_id for o in g]}
                               for ph, (s, e), g in zip(phrases, spans, groups)}},
                keep_order=('groundings', ))
        else:
            img = {'file_name': fname, 'height': size, 'id': stem, 'width': size}
            w.gcg_mask.add('images', img)
            w.gcg_cap.add('images', img)
            for g in groups:
                union = np.logical_or.reduce([o.visible for o in g])
                bbox, area = mask_bbox_area(union)
                w.gcg_mask.add('annotations', {
                    'area': area, 'bbox': bbox, 'category_id': 1, 'id': self.next_gcg_ann,
                    'image_id': stem, 'iscrowd': 0, 'segmentation': encode_rle(union)})
                self.next_gcg_ann += 1
            w.gcg_cap.add('annotations', {'caption': caption, 'id': img_id,
                                          'image_id': stem, 'labels': phrases})
        self._write_gvc(w, split, img_id, fname, objs, rng)
        self._write_gvcr(w, split, img_id, fname, objs, rng, refs)
        self._write_region(w, split, img_id, fname, objs, refs)
        self._write_flickr(w, split, img_id, fname, objs, rng)
        # Own random streams, so the files above do not depend on these.
        w.llava[split].add({
            'conversations': llava_conversation(
                objs, size, np.random.default_rng([self.seed, img_id, 2])),
            'id': stem, 'image': fname})
        if split == 'train':
            self._write_grand(w, img_id, fname, objs, refs)
        return summary

    # ------------------------------------------------------------------
    def _clear_pair(self, objs, rng):
        """A random (a, rel, b) with unique descriptions and a clear relation."""
        cands = []
        for a in objs:
            for b in objs:
                if a is b or not unique_subsets(a, objs) or not unique_subsets(b, objs):
                    continue
                for r in RELATIONS:
                    if relation(a, b, r, self.size) == 1:
                        cands.append((a, r, b))
        return pick(rng, cands) if cands else None

    def _write_gvc(self, w, split, img_id, fname, objs, rng):
        caption, spans, groups = grounded_caption(objs, self.size, rng)
        answer, last = '', 0
        for (s, e) in spans:
            answer += caption[last:s] + f'<g_s> {caption[s:e]} <g_e> <seg>'
            last = e
        answer += caption[last:]
        question = '<image>\n' + pick(rng, GVC_QUESTIONS) + WITH_GROUNDING
        convs = [{'from': 'human', 'value': question},
                 {'from': 'gpt', 'value': answer}]
        gd_ls = [[o.ann_id for o in g] for g in groups]
        pair = self._clear_pair(objs, rng) if rng.random() < 0.6 else None
        if pair is not None:
            a, r, b = pair
            da, db = a.words(unique_subsets(a, objs)[0]), b.words(unique_subsets(b, objs)[0])
            convs += [{'from': 'human', 'value': GVC_WHERE_QUESTION.format(da) + WITH_GROUNDING},
                      {'from': 'gpt', 'value': f'<g_s> The {da} <g_e> <seg> is {r} '
                                               f'<g_s> the {db} <g_e> <seg>.'}]
            gd_ls += [[a.ann_id], [b.ann_id]]
        w.gvc[split].add({'conversations': convs, 'gd_ls': gd_ls, 'id': image_stem(img_id),
                          'image': fname})

    def _write_gvcr(self, w, split, img_id, fname, objs, rng, refs):
        kinds = list(GVCR_QUESTIONS)
        convs, q_gd = [], []
        for k in range(int(rng.integers(1, 4))):
            o = pick(rng, objs)
            kind = pick(rng, kinds)
            q, a = GVCR_QUESTIONS[kind]
            desc = f'{o.size} {o.color}'
            a = a.format(color=o.color, shape=o.shape, size=o.size,
                         Article=capitalize(article(desc)))
            convs += [{'from': 'human', 'value': q}, {'from': 'gpt', 'value': a}]
            q_gd.append([o.ann_id])
        pair = self._clear_pair(objs, rng)
        if pair is not None and rng.random() < 0.5:
            a_obj, r, b_obj = pair
            q, a = GVCR_RELATION_QUESTION
            convs += [{'from': 'human', 'value': q},
                      {'from': 'gpt', 'value': a.format(a=a_obj.words(('color', )), rel=r,
                                                        b=b_obj.words(('color', )))}]
            q_gd += [[a_obj.ann_id], [b_obj.ann_id]]
        convs[0]['value'] = '<image>\n' + convs[0]['value']
        w.gvcr[split].add({'conversations': convs, 'id': image_stem(img_id), 'image': fname,
                           'q_gd_ls': q_gd})
        for o, ref in refs:
            w.ginst[split].add({
                'conversations': [
                    {'from': 'human', 'value': pick(rng, REFCOCO_INSTRUCT_QUESTIONS)},
                    {'from': 'gpt', 'value': [s['sent'] for s in ref['sentences']]}],
                'id': image_stem(img_id), 'image': fname, 'q_gd_ls': [[o.ann_id]]})

    def _write_region(self, w, split, img_id, fname, objs, refs):
        size = self.size
        for o, ref in refs:
            for s in ref['sentences']:
                eid = self._next(f'refcocog_{split}')
                # Region captions name the referent in full (the box already
                # singles it out) and keep the relation of spatial sentences.
                head = o.words()
                text = head + s['sent'][_head_end(s['sent']):]
                w.refcocog[split].add('images', {
                    'caption': text, 'dataset_name': 'refcocog', 'file_name': fname,
                    'height': size, 'id': eid, 'original_id': img_id,
                    'tokens_negative': [[0, len(text)]], 'width': size})
                w.refcocog[split].add('annotations', {
                    'area': o.extra['area'], 'bbox': o.extra['bbox'],
                    'category_id': CATEGORY_IDS[o.shape], 'id': eid, 'image_id': eid,
                    'iscrowd': 0, 'original_id': o.ann_id,
                    'tokens_positive': [[0, len(head)]]})
                if split == 'val':
                    w.refcocog_cap.add('images', {'file_name': fname, 'height': size, 'id': eid,
                                                  'original_id': img_id, 'width': size})
                    w.refcocog_cap.add('annotations', {
                        'bbox': o.extra['bbox'], 'caption': text, 'id': eid, 'image_id': eid,
                        'original_id': o.ann_id})
        if split == 'train':
            w.vg_train.add('images', {'file_name': fname, 'height': size, 'id': img_id,
                                      'width': size})
            for o in objs:
                w.vg_train.add('annotations', {
                    'area': o.extra['area'], 'bbox': o.extra['bbox'], 'caption': o.words(),
                    'id': self._next('vg_ann'), 'image_id': img_id, 'original_id': o.ann_id})
        else:
            for o in objs:
                eid = self._next('vg_test')
                w.vg_test.add('images', {'file_name': fname, 'height': size, 'id': eid,
                                         'original_id': img_id, 'width': size})
                w.vg_test.add('annotations', {
                    'area': o.extra['area'], 'bbox': o.extra['bbox'], 'caption': o.words(),
                    'id': eid, 'image_id': eid, 'original_id': o.ann_id})

    def _write_flickr(self, w, split, img_id, fname, objs, rng):
        for sent_id in range(2):
            caption, spans, groups = grounded_caption(objs, self.size, rng, prefixes=('', ))
            eid = self._next(f'flickr_{split}')
            w.flickr[split].add('images', {
                'caption': caption, 'dataset_name': 'flickr', 'file_name': fname,
                'height': self.size, 'id': eid, 'original_img_id': img_id,
                'sentence_id': sent_id, 'tokens_negative': [[0, len(caption)]],
                'tokens_positive_eval': [[[s, e]] for s, e in spans], 'width': self.size})
            for pid, ((s, e), g) in enumerate(zip(spans, groups)):
                for o in g:
                    w.flickr[split].add('annotations', {
                        'area': o.extra['area'], 'bbox': o.extra['bbox'], 'category_id': 1,
                        'id': self._next(f'flickr_ann_{split}'), 'image_id': eid,
                        'iscrowd': 0, 'original_id': o.ann_id, 'phrase_ids': pid,
                        'tokens_positive': [[s, e]]})


    def _write_grand(self, w, img_id, fname, objs, refs):
        """One GranD per-image file: every object (RLE mask, xyxy box, label,
        its referring sentences as ``the ...`` attributes), a short caption
        over the objects that a single-object phrase can name, and the full
        caption as the dense caption."""
        rng = np.random.default_rng([self.seed, img_id, 3])
        xyxy = {o.ann_id: [o.extra['bbox'][0], o.extra['bbox'][1],
                           o.extra['bbox'][0] + o.extra['bbox'][2],
                           o.extra['bbox'][1] + o.extra['bbox'][3]] for o in objs}
        sentences = {o.ann_id: [f"the {s['sent']}" for s in ref['sentences']]
                     for o, ref in refs}
        objects = []
        for o in objs:
            obj = {'bbox': xyxy[o.ann_id], 'id': o.ann_id, 'labels': [o.shape],
                   'segmentation': encode_rle(o.visible)}
            if sentences.get(o.ann_id):
                obj['attributes'] = sentences[o.ann_id]
            objects.append(obj)
        caption, spans, groups = grounded_caption(objs, self.size, rng)
        dense = {'caption': caption, 'details': [
            {'bbox': [xyxy[o.ann_id] for o in g], 'ids': [o.ann_id for o in g],
             'phrase': caption[s:e], 'tokens_positive': [s, e]}
            for (s, e), g in zip(spans, groups)]}
        singles = [o for o in objs
                   if sum(p.color == o.color and p.shape == o.shape for p in objs) == 1]
        shorts = []
        if singles:
            text, spans, groups = grounded_caption(singles, self.size, rng)
            shorts.append({'caption': text, 'details': [
                {'bbox': xyxy[g[0].ann_id], 'id': g[0].ann_id, 'phrase': text[s:e],
                 'tokens_positive': [s, e]} for (s, e), g in zip(spans, groups)]})
        w.grand.add(image_stem(img_id), {fname: {
            'dense_caption': dense, 'floating_objects': [], 'objects': objects,
            'short_captions': shorts}})


def _head_end(text: str) -> int:
    """End of the referent's head noun phrase (before a relation)."""
    for r in RELATIONS:
        i = text.find(f' {r} the ')
        if i >= 0:
            return i
    return len(text)


def generate_world(out: str, num_images: int = 2200, seed: int = 0,
                   image_size: int = 128, preview: int = 0,
                   with_tokenizer: bool = True,
                   log: Optional[Callable[[str], None]] = None) -> dict:
    """Write the whole world under ``out``; returns a summary dict.

    Args:
        out: output directory (created; must not be an existing file).
        num_images: number of images (>= 1); memory does not grow with it.
        seed: fixes every byte of the output.
        image_size: side of the square images in pixels (>= 32).
        preview: print this many samples and write ``preview.png``.
        with_tokenizer: also build ``tokenizer/``.
        log: where the summary lines go (default: mmengine ``print_log``).
    """
    log = log or _print_log
    if num_images < 1:
        raise ValueError(f'num_images must be >= 1, got {num_images}')
    if image_size < 32:
        raise ValueError(f'image_size must be >= 32 pixels, got {image_size}')
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f'--out {out!r} exists and is not a directory')
    t0 = time.time()
    os.makedirs(os.path.join(out, 'images'), exist_ok=True)
    gen = WorldGenerator(out, num_images, seed, image_size)
    info = {'description': 'mmgrounding synthetic grounding world', 'seed': seed,
            'version': WORLD_VERSION}
    writers = _Writers(out, info)
    previews = []
    for img_id in range(1, num_images + 1):
        objs = gen.make_image(img_id)
        summary = gen.write_image(writers, img_id, objs)
        if len(previews) < preview:
            previews.append(summary)
    counts = writers.close()
    # mmseg-style semantic label maps, from the instances just written
    from .semseg import write_semseg_split
    counts.update(write_semseg_split(
        out, splits={k: list(v) for k, v in gen.bounds.items()}))
    t_data = time.time() - t0
    if with_tokenizer:
        from .tokenizer import build_tokenizer
        tok = build_tokenizer(os.path.join(out, 'tokenizer'))
        counts['tokenizer vocab'] = len(tok)
    split_counts = {k: max(0, b - a + 1) for k, (a, b) in gen.bounds.items()}
    world = {'colors': {k: list(v) for k, v in COLORS.items()}, 'counts': counts,
             'image_size': image_size, 'num_images': num_images, 'seed': seed,
             'shapes': list(SHAPES), 'sizes': SIZES, 'splits': {
                 k: list(v) for k, v in gen.bounds.items()},
             'split_counts': split_counts, 'stats': gen.stats, 'version': WORLD_VERSION}
    with open(os.path.join(out, 'world.json'), 'w', encoding='ascii') as f:
        f.write(dumps(world))
    if preview:
        from .preview import print_samples, write_preview
        print_samples(previews, log)
        write_preview(previews, out, image_size)
    seconds = time.time() - t0
    log(f'synthetic world -> {out}  ({num_images} images, seed {seed}, '
        f'{image_size}px, {seconds:.1f} s; data {t_data:.1f} s)')
    log('  splits: ' + ', '.join(f'{k} {v}' for k, v in split_counts.items()))
    log('  objects {objects} ({occluded} occluded), refs {refs}, sentences: '
        '{sent_attribute} attribute + {sent_spatial} spatial '
        '({sent_spatial_needs_relation} need the relation)'.format(**gen.stats))
    for name, c in counts.items():
        log(f'  {name}: {c}')
    return dict(world, seconds=seconds)


def _print_log(msg: str) -> None:
    from mmengine.logging import print_log
    print_log(msg, logger='current')


def load_world_info(out: str) -> dict:
    """Read ``world.json`` of a generated world."""
    with open(os.path.join(out, 'world.json')) as f:
        return json.load(f)
