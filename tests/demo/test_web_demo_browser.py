"""demo/web_demo.py in a real browser (slow): Debian's headless Chromium,
driven by Playwright through ``executable_path`` (no browser download).

The app is started as ``make web`` starts it, on a free localhost port, with
a tiny GLaMM checkpoint the test writes (random weights rewired to answer
``<p> a </p> [SEG] ...``, see demo_helpers.py). The test uploads an image,
draws a box with two clicks, asks "What is in <bbox>?", and checks against
``GroundingInferencer`` called on the same inputs: the answer text, one
coloured phrase per mask in the mask's palette colour, and the returned PNG's
pixels (palette colour blended where the predicted mask is, the original
image where no mask and no prompt is). Then a task that takes no boxes must
show an error, and a second turn (referring segmentation) checks the history.
Screenshot: work_dirs/web_demo_screenshot.png (copied to docs/web_demo.png
when MMGROUNDING_UPDATE_DOCS=1).
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import mmcv
import numpy as np
import pytest
from demo_helpers import IMG1, MAX_NEW, ROOT, TINY

from mmgrounding.apis import GroundingInferencer
from mmgrounding.visualization.grounding_visualizer import PALETTE

CHROMIUM = '/usr/bin/chromium'
FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
         '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync']
BOX = (20, 30, 90, 100)  # x1, y1, x2, y2 in image pixels
SCREENSHOT = ROOT / 'work_dirs' / 'web_demo_screenshot.png'


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture
def server(demo_world, cycle_checkpoint, tmp_path):
    port = _free_port()
    log = open(tmp_path / 'web_demo.log', 'w')
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1',
               HF_HUB_OFFLINE='1', GRADIO_ANALYTICS_ENABLED='False',
               GRADIO_TEMP_DIR=str(tmp_path / 'gradio'))
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / 'demo' / 'web_demo.py'), '--config',
         str(TINY), '--checkpoint', str(cycle_checkpoint), '--port',
         str(port), '--max-new-tokens', str(MAX_NEW)],
        cwd=demo_world, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f'http://127.0.0.1:{port}/'
    try:
        deadline = time.time() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail('web_demo.py exited:\n' +
                            (tmp_path / 'web_demo.log').read_text())
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if time.time() > deadline:
                    pytest.fail('web_demo.py did not serve within 180 s')
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture
def browser_page():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f'no {CHROMIUM}: apt-get install -y chromium '
                    'chromium-driver (see .ci/run)')
    from playwright.sync_api import sync_playwright
    profile = tempfile.mkdtemp(prefix='chromium-profile-')
    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=FLAGS,
            viewport={'width': 1400, 'height': 1000})
        try:
            yield ctx.new_page()
        finally:
            ctx.close()
            shutil.rmtree(profile, ignore_errors=True)


def _click_pixel(page, x: float, y: float) -> None:
    """Click image pixel (x, y) of the input image (drawn 1:1 or scaled)."""
    page.wait_for_function(
        '() => { const i = document.querySelector("#input-image img"); '
        'return i && i.complete && i.naturalWidth > 0; }', timeout=30e3)
    rect = page.eval_on_selector(
        '#input-image img', 'i => { const r = i.getBoundingClientRect(); '
        'return [r.x, r.y, r.width / i.naturalWidth, '
        'r.height / i.naturalHeight]; }')
    page.mouse.click(rect[0] + (x + 0.5) * rect[2],
                     rect[1] + (y + 0.5) * rect[3])


def _wait_text(page, selector: str, text: str, timeout: float = 60e3):
    page.wait_for_function(
        '([s, t]) => { const e = document.querySelector(s); '
        'return e && e.innerText.includes(t); }', arg=[selector, text],
        timeout=timeout)


def _output_png(page, url_before=None) -> np.ndarray:
    page.wait_for_function(
        '(old) => { const i = document.querySelector("#output-image img");'
        ' return i && i.src && i.src !== old; }', arg=url_before,
        timeout=60e3)
    src = page.get_attribute('#output-image img', 'src')
    with urllib.request.urlopen(src, timeout=10) as r:
        return mmcv.imfrombytes(r.read(), channel_order='rgb'), src


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_web_demo_in_chromium(server, browser_page, demo_world,
                              cycle_checkpoint, monkeypatch):
    start = time.time()
    monkeypatch.chdir(demo_world)
    ref = GroundingInferencer(str(TINY), weights=str(cycle_checkpoint))
    ref.model.generation_cfg['max_new_tokens'] = MAX_NEW
    question = 'What is in <bbox>?'
    exp = ref(IMG1, question, boxes=[list(BOX)])[0]
    n_seg = exp['text'].count('[SEG]')
    assert n_seg >= 1 and exp['masks'][0].any(), exp['text']
    image = mmcv.imread(IMG1, channel_order='rgb')
    h, w = image.shape[:2]

    page = browser_page
    page.goto(server)
    page.wait_for_selector('#input-image input[type=file]', state='attached')
    page.set_input_files('#input-image input[type=file]',
                         str(demo_world / IMG1))
    page.wait_for_selector('#input-image img')
    _click_pixel(page, BOX[0], BOX[1])
    _wait_text(page, '#prompts-info', 'click the opposite corner')
    _click_pixel(page, BOX[2], BOX[3])
    _wait_text(page, '#prompts-info', 'box 1 [')
    assert page.inner_text('#prompts-info').strip() == \
        f'box 1 [{", ".join(map(str, BOX))}]'

    page.get_by_label('Chat', exact=True).check()
    page.fill('#prompt textarea', question)
    page.click('#submit')
    page.wait_for_selector('#answer .answer', timeout=120e3)
    assert page.inner_text('#answer .answer').strip() == exp['caption']
    spans = page.eval_on_selector_all(
        '#answer .grounded', 'es => es.map(e => [e.dataset.mask, '
        'e.innerText, getComputedStyle(e).borderBottomColor])')
    assert [s[0] for s in spans] == [str(k) for k in range(n_seg)]
    assert [s[1] for s in spans] == exp['phrases']
    for k, (_, _, colour) in enumerate(spans):
        assert colour == 'rgb({}, {}, {})'.format(*PALETTE[k])

    drawn, src = _output_png(page)
    assert drawn.shape[0] > h and drawn.shape[1] >= w  # image + text panel
    panel = drawn[:h, :w].astype(int)
    masks = np.stack(exp['masks'])
    only0 = masks[0] & ~masks[1:].any(0)
    # alpha 0.5 blend with PALETTE[0] = (230, 25, 75): red dominates
    red = (panel[..., 0] > panel[..., 1] + 40) & \
        (panel[..., 0] > panel[..., 2] + 40)
    assert only0.sum() > 20 and red[only0].mean() > 0.9
    untouched = ~masks.any(0)
    x1, y1, x2, y2 = BOX
    untouched[max(y1 - 3, 0):y2 + 4, max(x1 - 3, 0):x2 + 4] = False
    untouched[:12] = False  # labels of mask boxes may reach here
    if untouched.any():
        diff = np.abs(panel - image.astype(int)).max(-1)
        assert (diff[untouched] <= 2).mean() > 0.95
    _wait_text(page, '#chat', 'What is in <bbox>?')
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    if os.environ.get('MMGROUNDING_UPDATE_DOCS') == '1':
        shutil.copy(SCREENSHOT, ROOT / 'docs' / 'web_demo.png')

    # bad input: GCG takes no boxes -> an error message, the answer stays
    page.get_by_label('Grounded caption (GCG)').check()
    page.click('#submit')
    page.get_by_text('GCG takes no boxes').first.wait_for(timeout=30e3)
    assert page.inner_text('#answer .answer').strip() == exp['caption']

    # second turn, with the first as history: referring segmentation
    page.click('#clear-prompts')
    _wait_text(page, '#prompts-info', 'no boxes or points')
    page.get_by_label('Referring segmentation').check()
    page.fill('#prompt textarea', 'red circle')
    page.click('#submit')
    exp2 = ref(IMG1, 'red circle', task='refseg', boxes=[list(BOX)],
               history=[(question, exp['caption'])])[0]
    _output_png(page, src)
    _wait_text(page, '#answer', 'red circle')
    # the expression's mask shows as a chip in the mask's colour; the rest
    # of the answer is the inferencer's caption
    chip = page.eval_on_selector(
        '#answer .grounded.chip',
        'e => [e.innerText, getComputedStyle(e).backgroundColor]')
    assert chip == [exp2['phrases'][0],
                    'rgb({}, {}, {})'.format(*PALETTE[0])]
    rest = page.eval_on_selector(
        '#answer .answer', 'e => { const c = e.cloneNode(true); '
        'c.querySelectorAll(".chip").forEach(x => x.remove()); '
        'return c.textContent; }')
    assert ' '.join(rest.split()) == exp2['caption']
    chat = page.inner_text('#chat')
    assert question in chat and 'segment the red circle' in chat
    print(f'browser test body took {time.time() - start:.1f} s')
