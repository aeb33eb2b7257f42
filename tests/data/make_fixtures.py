"""Write the dataset fixtures of tests/datasets (run once; outputs committed).

A 32x32 two-image world, annotated in the exact shapes of the official
releases (see docs/formats.md and the loaders' docstrings):

image 1: red square (ann 11, polygon), blue blob (ann 12, RLE),
         green triangle (ann 13, polygon)
image 2: yellow square (ann 21), purple square (ann 22)

Usage: python tests/data/make_fixtures.py
"""
import json
import os
import os.path as osp
import pickle

import cv2
import numpy as np
from pycocotools import mask as mask_utils

ROOT = osp.dirname(osp.abspath(__file__))
S = 32


def rle_of(box):
    m = np.zeros((S, S), np.uint8, order='F')
    x1, y1, x2, y2 = box
    m[y1:y2, x1:x2] = 1
    rle = mask_utils.encode(np.asfortranarray(m))
    rle['counts'] = rle['counts'].decode('utf-8')
    return rle


def dump(obj, *path):
    path = osp.join(ROOT, *path)
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(obj, f, indent=1)


def images():
    os.makedirs(osp.join(ROOT, 'images'), exist_ok=True)
    img = np.full((S, S, 3), 220, np.uint8)
    img[4:14, 4:14] = (0, 0, 255)  # BGR red
    img[20:28, 20:28] = (255, 0, 0)
    cv2.fillPoly(img, [np.array([[16, 2], [30, 2], [23, 12]])], (0, 160, 0))
    cv2.imwrite(osp.join(ROOT, 'images', '000000000001.png'), img)
    img = np.full((S, S, 3), 220, np.uint8)
    img[2:12, 2:12] = (0, 255, 255)
    img[18:30, 18:30] = (128, 0, 128)
    cv2.imwrite(osp.join(ROOT, 'images', '000000000002.png'), img)


SQUARE1 = [4.0, 4.0, 14.0, 4.0, 14.0, 14.0, 4.0, 14.0]
TRI = [16.0, 2.0, 30.0, 2.0, 23.0, 12.0]
SQUARE21 = [2.0, 2.0, 12.0, 2.0, 12.0, 12.0, 2.0, 12.0]
SQUARE22 = [18.0, 18.0, 30.0, 18.0, 30.0, 30.0, 18.0, 30.0]
IMAGES = [
    dict(id=1, file_name='000000000001.png', height=S, width=S),
    dict(id=2, file_name='000000000002.png', height=S, width=S)
]
CATEGORIES = [
    dict(id=1, name='circle', supercategory='shape'),
    dict(id=2, name='square', supercategory='shape'),
    dict(id=3, name='triangle', supercategory='shape')
]


def coco_instances():
    anns = [
        dict(id=11, image_id=1, category_id=2, bbox=[4.0, 4.0, 10.0, 10.0],
             area=100.0, iscrowd=0, segmentation=[SQUARE1]),
        dict(id=12, image_id=1, category_id=1, bbox=[20.0, 20.0, 8.0, 8.0],
             area=64.0, iscrowd=0, segmentation=rle_of((20, 20, 28, 28))),
        dict(id=13, image_id=1, category_id=3, bbox=[16.0, 2.0, 14.0, 10.0],
             area=70.0, iscrowd=0, segmentation=[TRI]),
        dict(id=21, image_id=2, category_id=2, bbox=[2.0, 2.0, 10.0, 10.0],
             area=100.0, iscrowd=0, segmentation=[SQUARE21]),
        dict(id=22, image_id=2, category_id=2,
             bbox=[18.0, 18.0, 12.0, 12.0], area=144.0, iscrowd=0,
             segmentation=[SQUARE22]),
    ]
    dump(dict(images=IMAGES, annotations=anns, categories=CATEGORIES),
         'coco', 'instances.json')


def sent(sid, text):
    return dict(raw=text, sent=text, sent_id=sid, tokens=text.split())


def refcoco():
    refs = [
        dict(ref_id=0, ann_id=11, image_id=1, category_id=2, split='train',
             file_name='000000000001_11.png', sent_ids=[0, 1],
             sentences=[sent(0, 'red square'),
                        sent(1, 'square on the left')]),
        dict(ref_id=1, ann_id=12, image_id=1, category_id=1, split='train',
             file_name='000000000001_12.png', sent_ids=[2],
             sentences=[sent(2, 'blue blob')]),
        dict(ref_id=2, ann_id=13, image_id=1, category_id=3, split='train',
             file_name='000000000001_13.png', sent_ids=[3],
             sentences=[sent(3, 'green triangle at the top')]),
        dict(ref_id=3, ann_id=21, image_id=2, category_id=2, split='val',
             file_name='000000000002_21.png', sent_ids=[4],
             sentences=[sent(4, 'yellow square')]),
        dict(ref_id=4, ann_id=22, image_id=2, category_id=2, split='val',
             file_name='000000000002_22.png', sent_ids=[5, 6],
             sentences=[sent(5, 'purple square'),
                        sent(6, 'bottom right square')]),
        dict(ref_id=5, ann_id=21, image_id=2, category_id=2, split='testA',
             file_name='000000000002_21.png', sent_ids=[7],
             sentences=[sent(7, 'small yellow square')]),
    ]
    os.makedirs(osp.join(ROOT, 'refcoco'), exist_ok=True)
    with open(osp.join(ROOT, 'refcoco', 'refs(unc).p'), 'wb') as f:
        pickle.dump(refs, f, protocol=2)


def flickr():
    cap1 = 'A red square and two shapes on the right.'
    cap2 = 'A yellow square above a purple square.'
    images_ = [
        dict(id=0, file_name='000000000001.png', height='32', width='32',
             caption=cap1, dataset_name='flickr', tokens_negative=[[0, 41]],
             sentence_id=0, original_img_id=1,
             tokens_positive_eval=[[[0, 12]], [[17, 27]]]),
        dict(id=1, file_name='000000000002.png', height='32', width='32',
             caption=cap2, dataset_name='flickr', tokens_negative=[[0, 38]],
             sentence_id=0, original_img_id=2,
             tokens_positive_eval=[[[0, 15]], [[22, 37]]]),
    ]
    anns = [
        dict(id=0, image_id=0, category_id=1, bbox=[4.0, 4.0, 10.0, 10.0],
             area=100.0, iscrowd=0, tokens_positive=[[0, 12]], phrase_ids=7),
        dict(id=1, image_id=0, category_id=1, bbox=[20.0, 20.0, 8.0, 8.0],
             area=64.0, iscrowd=0, tokens_positive=[[17, 27]], phrase_ids=9),
        dict(id=2, image_id=0, category_id=1, bbox=[16.0, 2.0, 14.0, 10.0],
             area=140.0, iscrowd=0, tokens_positive=[[17, 27]],
             phrase_ids=9),
        dict(id=3, image_id=1, category_id=1, bbox=[2.0, 2.0, 10.0, 10.0],
             area=100.0, iscrowd=0, tokens_positive=[[0, 15]], phrase_ids=3),
        dict(id=4, image_id=1, category_id=1,
             bbox=[18.0, 18.0, 12.0, 12.0], area=144.0, iscrowd=0,
             tokens_positive=[[22, 37]], phrase_ids=4),
    ]
    dump(dict(images=images_, annotations=anns,
              categories=[dict(id=1, name='object', supercategory='object')]),
         'flickr30k', 'final_flickr_separateGT_train.json')


def gvc():
    data = [
        dict(id='000000000001', image='000000000001.png',
             conversations=[
                 dict(value='<image>\nWhat is in the picture? '
                      '(with grounding)', **{'from': 'human'}),
                 dict(value='I see <g_s> a red square <g_e> <seg> and '
                      '<g_s> two other shapes <g_e> <seg>.',
                      **{'from': 'gpt'}),
                 dict(value='What is at the top? (with grounding)',
                      **{'from': 'human'}),
                 dict(value='<g_s> A green triangle <g_e> <seg>.',
                      **{'from': 'gpt'}),
             ], gd_ls=[[11], [12, 13], [13]]),
        dict(id='000000000002', image='000000000002.png',
             conversations=[
                 dict(value='Describe the image. (with grounding)\n<image>',
                      **{'from': 'human'}),
                 dict(value='<g_s> A yellow square <g_e> <seg> and '
                      '<g_s> something <g_e> <seg>.', **{'from': 'gpt'}),
             ], gd_ls=[[21], None]),
    ]
    dump(data, 'gvc', 'grounded_visual_chat_data.json')
    vp = [
        dict(id='000000000001', image='000000000001.png',
             conversations=[
                 dict(value='<image>\nWhat color is <obj>?',
                      **{'from': 'human'}),
                 dict(value='It is red.', **{'from': 'gpt'}),
                 dict(value='Is <obj> left of <obj>?', **{'from': 'human'}),
                 dict(value='Yes.', **{'from': 'gpt'}),
             ], q_gd_ls=[[11], [11], [12]]),
    ]
    dump(vp, 'gvc', 'llava_instruct_150k_visual_prompt.json')
    ref = [
        dict(id='000000000001', image='000000000001.png',
             conversations=[
                 dict(value='Please describe <obj> briefly.',
                      **{'from': 'human'}),
                 dict(value=['red square', 'square on the left'],
                      **{'from': 'gpt'})
             ], q_gd_ls=[[11]]),
        dict(id='000000000001', image='000000000001.png',
             conversations=[
                 dict(value='Please describe <obj> briefly.',
                      **{'from': 'human'}),
                 dict(value=['green triangle at the top'],
                      **{'from': 'gpt'})
             ], q_gd_ls=[[13]]),
    ]
    dump(ref, 'gvc', 'grounding_train2017_instruct.json')


def gcg():
    cap = 'A red square next to a blue blob and a green triangle.'
    # 'A red square' [0, 12); 'a blue blob' [21, 32); 'a green triangle'
    # [37, 53)
    grandf = [
        dict(file_name='000000000001.png', image_id='000000000001',
             height=S, width=S, caption=cap, groundings={
                 'A red square': dict(token_positives=[0, 12],
                                      rle_masks=[rle_of((4, 4, 14, 14))]),
                 'a green triangle': dict(
                     token_positives=[37, 53],
                     rle_masks=[rle_of((17, 3, 29, 11))]),
                 'a blue blob': dict(token_positives=[21, 32],
                                     rle_masks=[rle_of((20, 20, 28, 28))]),
             }),
        dict(file_name='000000000002.png', image_id='000000000002',
             height=S, width=S, caption='"Two squares."', groundings={
                 'Two squares': dict(token_positives=[0, 11], rle_masks=[
                     rle_of((2, 2, 12, 12)), rle_of((18, 18, 30, 30))])
             }),
    ]
    dump(grandf, 'gcg', 'GranDf_HA_GCG_train.json')
    refg = [
        {'1_0': dict(img_file_name='000000000001.png',
                     caption='The red square is left of the blue blob.',
                     refs=[dict(sentence='the red square',
                                segmentation=[SQUARE1]),
                           dict(sentence='the blue blob',
                                segmentation=[[20.0, 20.0, 28.0, 20.0, 28.0,
                                               28.0, 20.0, 28.0]]),
                           dict(sentence='a missing phrase',
                                segmentation=[TRI])])},
    ]
    dump(refg, 'gcg', 'RefCOCOg_GCG_train.json')
    flk = dict(
        images=[dict(id=5, file_name='000000000002.png', height=S, width=S,
                     caption='A yellow square and a purple square.'),
                dict(id=6, file_name='000000000001.png', height=S, width=S,
                     caption='Shapes.')],
        annotations=[
            dict(id=50, image_id=5, bbox=[2.0, 2.0, 10.0, 10.0], area=100.0,
                 iscrowd=0, category_id=1, tokens_positive=[[0, 15]],
                 sam_mask=rle_of((2, 2, 12, 12))),
            dict(id=51, image_id=5, bbox=[18.0, 18.0, 12.0, 12.0],
                 area=144.0, iscrowd=0, category_id=1,
                 tokens_positive=[[20, 35]],
                 sam_mask=rle_of((18, 18, 30, 30))),
            dict(id=52, image_id=6, bbox=[4.0, 4.0, 10.0, 10.0], area=100.0,
                 iscrowd=0, category_id=1, tokens_positive=[[0, 6]],
                 sam_mask=rle_of((4, 4, 14, 14))),
        ],
        categories=[dict(id=1, name='object')])
    dump(flk, 'gcg', 'flickr_mergedGT_GCG_train.json')
    img = [dict(id='000000000001', file_name='000000000001.png', height=S,
                width=S)]
    masks = dict(images=img, categories=[dict(id=1, name='object')],
                 annotations=[
                     dict(id=1, image_id='000000000001', category_id=1,
                          iscrowd=0, area=100.0, bbox=[4.0, 4.0, 10.0, 10.0],
                          segmentation=rle_of((4, 4, 14, 14))),
                     dict(id=2, image_id='000000000001', category_id=1,
                          iscrowd=0, area=64.0, bbox=[20.0, 20.0, 8.0, 8.0],
                          segmentation=rle_of((20, 20, 28, 28))),
                 ])
    caps = dict(images=img, annotations=[
        dict(id=1, image_id='000000000001',
             caption='A red square next to a blue blob.',
             labels=['A red square', 'a blue blob']),
        dict(id=2, image_id='000000000001',
             caption='Two shapes: a square and a blob.',
             labels=['a square', 'a blob']),
    ])
    dump(masks, 'gcg', 'val_gcg_coco_mask_gt.json')
    dump(caps, 'gcg', 'val_gcg_coco_caption_gt.json')


def region_caption():
    mdetr = dict(
        images=[
            dict(id=0, file_name='000000000001.png', height=S, width=S,
                 caption='red square on the left', dataset_name='refcocog',
                 original_id=1, tokens_negative=[[0, 22]]),
            dict(id=1, file_name='000000000001.png', height=S, width=S,
                 caption='green triangle at the top', dataset_name='refcocog',
                 original_id=1, tokens_negative=[[0, 25]]),
        ],
        annotations=[
            dict(id=0, image_id=0, category_id=2, bbox=[4.0, 4.0, 10.0, 10.0],
                 area=100.0, iscrowd=0, original_id=11,
                 tokens_positive=[[0, 10]]),
            dict(id=1, image_id=1, category_id=3,
                 bbox=[16.0, 2.0, 14.0, 10.0], area=70.0, iscrowd=0,
                 original_id=13, tokens_positive=[[0, 14]]),
        ], categories=CATEGORIES)
    dump(mdetr, 'region_caption', 'mdetr_annotations',
         'finetune_refcocog_train.json')
    val = dict(
        images=[dict(id=7, file_name='000000000002.png', height=S, width=S,
                     original_id=2),
                dict(id=8, file_name='000000000002.png', height=S, width=S,
                     original_id=2)],
        annotations=[
            dict(id=7, image_id=7, bbox=[2.0, 2.0, 10.0, 10.0],
                 caption='yellow square at the top left', original_id=21),
            dict(id=8, image_id=8, bbox=[18.0, 18.0, 12.0, 12.0],
                 caption='purple square', original_id=22),
        ])
    dump(val, 'region_caption', 'mdetr_annotations',
         'finetune_refcocog_val_captions.json')
    vg = dict(
        images=[dict(id=1, file_name='000000000001.png', height=S, width=S)],
        annotations=[
            dict(id=100 + k, image_id=1, bbox=b, area=b[2] * b[3], iscrowd=0,
                 category_id=1, caption=c) for k, (b, c) in enumerate([
                     ([4.0, 4.0, 10.0, 10.0], 'a red square'),
                     ([20.0, 20.0, 8.0, 8.0], 'a blue blob'),
                     ([16.0, 2.0, 14.0, 10.0], 'a green triangle')])
        ])
    dump(vg, 'region_caption', 'train.json')
    dump(val, 'region_caption', 'test_caption.json')


def llava():
    data = [
        dict(id='000000000001', image='000000000001.png', conversations=[
            dict(value='What shapes are there?\n<image>',
                 **{'from': 'human'}),
            dict(value='A square, a blob and a triangle.', **{'from': 'gpt'}),
            dict(value='Which one is red?', **{'from': 'human'}),
            dict(value='The square.', **{'from': 'gpt'}),
        ]),
        dict(id='000000000002', image='000000000002.png', conversations=[
            dict(value='Hello', **{'from': 'gpt'}),
            dict(value='<image>\nHow many squares?', **{'from': 'human'}),
            dict(value='Two.', **{'from': 'gpt'}),
        ]),
    ]
    dump(data, 'llava_instruct', 'llava_instruct_150k.json')


def grand():
    objects = [
        dict(id=1, bbox=[4.0, 4.0, 14.0, 14.0], labels=['red_square'],
             attributes='Assistant: a red square on the left',
             segmentation=rle_of((4, 4, 14, 14)), segmentation_source='SAM'),
        dict(id=2, bbox=[20.0, 20.0, 28.0, 28.0], labels=['blob'],
             attributes=['istant: a small blue blob'],
             segmentation=rle_of((20, 20, 28, 28))),
    ]
    floating = [
        dict(id=3, bbox=[16.0, 2.0, 30.0, 12.0], labels=['triangle'],
             segmentation=rle_of((17, 3, 29, 11)))
    ]
    content = {
        '000000000001.png': dict(
            objects=objects, floating_objects=floating,
            short_captions=[dict(caption='a red square and a blob',
                                 details=[dict(phrase='a red square',
                                               tokens_positive=[0, 12], id=1,
                                               bbox=objects[0]['bbox'])])],
            dense_caption=dict(
                caption='A red square sits left of a small blue blob under '
                'a triangle.',
                details=[
                    dict(phrase='A red square', tokens_positive=[0, 12],
                         ids=[1], bbox=[objects[0]['bbox']]),
                    dict(phrase='a small blue blob', tokens_positive=[26, 43],
                         ids=[2], bbox=[objects[1]['bbox']]),
                    dict(phrase='a triangle', tokens_positive=[50, 60],
                         ids=[3], bbox=[floating[0]['bbox']]),
                ]))
    }
    dump(content, 'grand', 'annotations', '000000000001.json')


def semseg():
    """mmseg split of the two images: label PNGs painted from the COCO
    instances (0 background, category ids), one stem list for both
    splits (SyntheticSemSegDataset / SemanticSegGroundingDataset)."""
    from PIL import Image

    from mmgrounding.datasets.synthetic import semantic_label_map
    with open(osp.join(ROOT, 'coco', 'instances.json')) as f:
        coco = json.load(f)
    os.makedirs(osp.join(ROOT, 'semseg', 'labels'), exist_ok=True)
    stems = []
    for img in coco['images']:
        anns = [a for a in coco['annotations'] if a['image_id'] == img['id']]
        label = semantic_label_map(anns, img['height'], img['width'])
        stem = osp.splitext(img['file_name'])[0]
        Image.fromarray(label).save(
            osp.join(ROOT, 'semseg', 'labels', f'{stem}.png'))
        stems.append(stem)
    for split in ('train', 'val'):
        with open(osp.join(ROOT, 'semseg', f'{split}.txt'), 'w') as f:
            f.write(''.join(f'{s}\n' for s in stems))


if __name__ == '__main__':
    images()
    coco_instances()
    refcoco()
    flickr()
    gvc()
    gcg()
    region_caption()
    llava()
    grand()
    semseg()
