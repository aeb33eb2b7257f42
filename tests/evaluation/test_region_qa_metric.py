"""RegionQAAccuracyMetric: attribute-word accuracy per question type."""
import pytest

from mmgrounding.evaluation.metrics import RegionQAAccuracyMetric
from mmgrounding.evaluation.metrics.region_qa_metric import normalise_answer
from mmgrounding.registry import METRICS
from mmgrounding.structures import GroundingDataError

FILE = 'llava_instruct_visual_prompt_val.json'


def sample(question, answer, pred, record='000000001761', k=1):
    return dict(question=question, gt_answer=answer, pred_text=pred,
                ann_file=FILE, record_id=record, img_id=int(record),
                answer_field=f'conversations[{k}].value')


def run(samples, **kwargs):
    metric = RegionQAAccuracyMetric(**kwargs)
    metric.process(None, samples)
    return metric.compute_metrics(metric.results)


def test_accuracy_per_type_and_overall_hand_computed():
    samples = [
        sample('What color is <obj>?', 'It is red.', 'It is red.'),
        sample('What color is <obj>?', 'It is red.', ' IT IS RED!'),
        # two colours named: wrong, even though one is right
        sample('What colour is <obj>?', 'It is blue.', 'It is red or blue.'),
        sample('What shape is <obj>?', 'It is a square.',
               'It is a <g_s> square <g_e> <seg>.'),
        sample('Is <obj> small or large?', 'It is small.', 'It is large.'),
        # not scored: a description and a relation
        sample('Please describe <obj>.', 'A small red circle.', 'Nothing.'),
        sample('Where is <obj> relative to <obj>?', 'The red circle is '
               'above the blue square.', ''),
    ]
    m = run(samples)
    assert m['color_acc'] == pytest.approx(100 * 2 / 3)
    assert m['shape_acc'] == pytest.approx(100.0)
    assert m['size_acc'] == pytest.approx(0.0)
    # 3 of the 5 scored questions are right (question-weighted)
    assert m['overall'] == pytest.approx(60.0)
    assert (m['num_color'], m['num_shape'], m['num_size'],
            m['num_unscored']) == (3, 1, 1, 2)


def test_empty_or_missing_prediction_is_wrong():
    m = run([sample('What shape is <obj>?', 'It is a circle.', ''),
             dict(sample('What shape is <obj>?', 'It is a circle.', ''),
                  pred_text=None),
             sample('What shape is <obj>?', 'It is a circle.', 'Circle')])
    assert m['shape_acc'] == pytest.approx(100 / 3)


def test_normalisation():
    assert normalise_answer('It is <g_s>Purple<g_e> <seg>.') == \
        ['it', 'is', 'purple']
    assert normalise_answer('[SEG] a large,square!') == \
        ['a', 'large', 'square']


def test_registered_and_prefix():
    metric = METRICS.build(dict(type='RegionQAAccuracyMetric'))
    assert isinstance(metric, RegionQAAccuracyMetric)
    assert metric.default_prefix == 'region_qa'


def test_bad_reference_answer_names_file_record_field():
    bad = sample('What color is <obj>?', 'It is a square.', 'It is red.',
                 record='000000001762', k=3)
    with pytest.raises(GroundingDataError) as err:
        run([bad])
    msg = str(err.value)
    assert FILE in msg and "'000000001762'" in msg
    assert 'conversations[3].value' in msg and 'exactly one' in msg
    two = sample('Is <obj> small or large?', 'It is small or large.', '')
    with pytest.raises(GroundingDataError, match='exactly one'):
        run([two])


def test_missing_question_or_answer_raises():
    no_question = dict(sample('x', 'It is red.', 'red'), question=None)
    with pytest.raises(GroundingDataError, match="field='question'"):
        run([no_question])
    no_answer = dict(sample('What color is <obj>?', None, 'red'))
    with pytest.raises(GroundingDataError, match='no reference answer'):
        run([no_answer])


def test_nothing_scored_and_bad_arguments_raise():
    with pytest.raises(ValueError, match='no question'):
        run([sample('Please describe <obj>.', 'A red circle.', '')])
    with pytest.raises(ValueError, match='same'):
        RegionQAAccuracyMetric(question_patterns=dict(color='colou?r'))
    with pytest.raises(ValueError, match='empty vocabulary'):
        RegionQAAccuracyMetric(question_patterns=dict(color='c'),
                               vocabulary=dict(color=()))


def test_custom_types():
    m = run([sample('How many sides?', 'It has four sides.', 'four')],
            question_patterns=dict(count=r'how many'),
            vocabulary=dict(count=('three', 'four')))
    assert m == dict(count_acc=100.0, num_count=1.0, overall=100.0,
                     num_unscored=0.0)
