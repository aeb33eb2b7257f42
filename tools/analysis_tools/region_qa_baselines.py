"""Baselines of the region-question evaluation (LLaVA-G stage 3, GVC-R).

A model has learned to read its visual prompt only where it beats these.
Every row is scored by the same metric as the models
(:class:`RegionQAAccuracyMetric`) on the same samples (the
``GVCDataset(one_per_question=True)`` view of the val GVC-R file):

* name the largest object: answer with the attribute (colour / shape /
  size, as asked) of the image's largest object (visible area), i.e. ignore
  the prompt and guess the most salient object;
* majority answer: per question type, the attribute word most often given
  by the TRAIN file's answers of that type;
* untrained model (``--config``): the config's model with random weights
  (no ``load_from``), through ``Runner.test``.

Usage: ``python tools/analysis_tools/region_qa_baselines.py data/synthetic
[--config configs/llava_grounding/...stage3_synthetic.py]``
"""
import argparse
import collections
import os.path as osp
from typing import Dict, List, Optional

from pycocotools.coco import COCO

from mmgrounding.evaluation.metrics.region_qa_metric import (
    RegionQAAccuracyMetric, attribute_words)

VAL_FILE = 'annotations/llava_g/llava_instruct_visual_prompt_val.json'
TRAIN_FILE = 'annotations/llava_g/llava_instruct_visual_prompt_train.json'
INSTANCES = 'annotations/instances.json'


def _questions(data_root: str, ann_file: str) -> List[dict]:
    """The region-question records of ``ann_file`` (no pipeline)."""
    from mmgrounding.datasets import GVCDataset
    dataset = GVCDataset(
        data_root=data_root,
        ann_file=ann_file,
        instances_file=INSTANCES,
        data_prefix=dict(img_path='images/'),
        task='gvc_r',
        one_per_question=True,
        test_mode=True,
        pipeline=[])
    return [dataset.get_data_info(i) for i in range(len(dataset))]


def _score(metric: RegionQAAccuracyMetric, records: List[dict],
           answers: List[str]) -> Dict[str, float]:
    metric.results.clear()
    metric.process(None, [dict(r, pred_text=a)
                          for r, a in zip(records, answers)])
    return metric.compute_metrics(metric.results)


def majority_words(records: List[dict],
                   metric: RegionQAAccuracyMetric) -> Dict[str, str]:
    """Question type -> most frequent reference attribute word (ties: the
    word seen first)."""
    counts: Dict[str, collections.Counter] = collections.defaultdict(
        collections.Counter)
    for r in records:
        kind = metric.question_type(r['question'])
        if kind is None:
            continue
        counts[kind].update(attribute_words(r['gt_answer'],
                                            metric.vocabulary[kind]))
    return {k: c.most_common(1)[0][0] for k, c in counts.items()}


def largest_object_answers(records: List[dict], coco: COCO,
                           metric: RegionQAAccuracyMetric) -> List[str]:
    """"It is <attribute of the image's largest object>." per question."""
    answers = []
    for r in records:
        kind = metric.question_type(r['question'])
        if kind is None:
            answers.append('')
            continue
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[r['img_id']]))
        biggest = max(anns, key=lambda a: a['area'])
        answers.append(f"It is {biggest['attributes'][kind]}.")
    return answers


def untrained_model_scores(config: str, data_root: str,
                           work_dir: str) -> Dict[str, float]:
    """``Runner.test`` of ``config`` with random weights."""
    from mmengine.config import Config
    from mmengine.runner import Runner
    cfg = Config.fromfile(config)
    cfg.load_from = None
    cfg.work_dir = work_dir
    cfg.test_dataloader.dataset.data_root = data_root
    cfg.test_dataloader.num_workers = 0
    cfg.test_dataloader.persistent_workers = False
    metrics = Runner.from_cfg(cfg).test()
    prefix = RegionQAAccuracyMetric.default_prefix + '/'
    return {k[len(prefix):]: v for k, v in metrics.items()
            if k.startswith(prefix)}


def evaluate_baselines(data_root: str,
                       config: Optional[str] = None,
                       work_dir: str = 'work_dirs/region_qa_baselines'
                       ) -> Dict[str, Dict[str, float]]:
    """{baseline: RegionQAAccuracyMetric scores} on the val questions."""
    metric = RegionQAAccuracyMetric()
    val = _questions(data_root, VAL_FILE)
    train = _questions(data_root, TRAIN_FILE)
    coco = COCO(osp.join(data_root, INSTANCES))
    majority = majority_words(train, metric)
    scores = {
        'name the largest object':
        _score(metric, val, largest_object_answers(val, coco, metric)),
        'majority answer':
        _score(metric, val, [
            f'It is {majority[k]}.' if k else '' for k in
            (metric.question_type(r['question']) for r in val)
        ]),
    }
    if config:
        scores['untrained model'] = untrained_model_scores(
            config, data_root if data_root.endswith('/') else data_root + '/',
            work_dir)
    return scores


def format_table(scores: Dict[str, Dict[str, float]]) -> str:
    """Markdown table (accuracies x 100, as the metric reports them)."""
    rows = ['| baseline | colour | shape | size | overall |',
            '|---|---|---|---|---|']
    for name, s in scores.items():
        rows.append(f"| {name} | {s.get('color_acc', 0):.1f} | "
                    f"{s.get('shape_acc', 0):.1f} | "
                    f"{s.get('size_acc', 0):.1f} | {s['overall']:.1f} |")
    return '\n'.join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('data_root', help='e.g. data/synthetic')
    parser.add_argument('--config', help='a region-question config: adds '
                        'the untrained-model row')
    parser.add_argument('--work-dir', default='work_dirs/region_qa_baselines')
    args = parser.parse_args()
    print(format_table(evaluate_baselines(args.data_root, args.config,
                                          args.work_dir)))


if __name__ == '__main__':
    main()
