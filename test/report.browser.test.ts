/**
 * The report in a real browser: a small sweep with the real plugins
 * (synthetic phantoms, small-cnn, CAM, attribution and occlusion explainers,
 * the layer-map and perturbation metrics), its report.html opened from disk
 * in headless Chromium through playwright-core with every non-file request
 * refused: no console errors, every chart drawn by vega-embed with marks,
 * every gallery picture loaded. Screenshots go to test-artifacts/.
 *
 * Chromium: $SALGRID_CHROMIUM, else Debian's /usr/bin/chromium (`apt-get
 * install chromium`). Without one the test skips itself, saying so; where
 * $SALGRID_REQUIRE_BROWSER or $CI is set (CI: .ci/run installs Chromium and
 * sets it) it fails instead.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { ROOT, cli, tempDir } from './helpers.ts';

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome', '/Applications/Google Chrome.app/Contents/MacOS/Google Chrome'];
const chromiumPath = process.env.SALGRID_CHROMIUM ?? CANDIDATES.find((file) => existsSync(file));
const required = Boolean(process.env.SALGRID_REQUIRE_BROWSER || process.env.CI);
const ARTIFACTS = path.join(ROOT, 'test-artifacts');

const CHARTS = ['localisation-by-method', 'localisation-by-sign', 'confidence', 'iou-thresholds', 'layer-coverage', 'training-curves', 'confusion-matrices', 'deletion-insertion'];

const MANIFEST = `name: browser
dataset:
  source: synthetic-hfus
  params: { perClass: 4, size: 32, seed: 1 }
  imageSize: [32, 32]
folds: { k: 2, seed: 1, validation: 0.25 }
training: { epochs: 2, batchSize: 4, seed: 1, optimizer: { adam: { learningRate: 0.002 } } }
models:
  - small-cnn
explainers:
  - gradcam
  - { id: saliency, params: { sign: [positive, negative] } }
  - { id: occlusion, params: { window: 8, stride: 8 } }
metrics:
  - hit-rate
  - layer-coverage
  - { id: iou, params: { thresholds: [0.5, 0.7, 0.9] } }
  - confidence-change
  - { id: deletion, params: { steps: 4 } }
  - { id: insertion, params: { steps: 4 } }
report: { gallery: 2 }
execution: { backend: wasm }
`;

describe('report.html in headless Chromium', { skip: !chromiumPath && !required ? 'no Chromium found (set SALGRID_CHROMIUM or `apt-get install chromium`); CI runs this test' : false }, () => {
  let dir = '';
  let browser: Browser;
  let page: Page;
  const problems: string[] = [];
  const refused: string[] = [];

  before(async () => {
    assert.ok(chromiumPath, `no Chromium at ${CANDIDATES.join(', ')} and SALGRID_CHROMIUM is not set: install Debian's chromium package (.ci/run does) or point SALGRID_CHROMIUM at a Chromium or Chrome binary.`);
    dir = tempDir('salgrid-browser-');
    writeFileSync(path.join(dir, 'sweep.yaml'), MANIFEST);
    const run = cli(['run', 'sweep.yaml'], dir, {}, 600_000);
    assert.equal(run.code, 0, run.stderr + run.stdout);
    browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox'] });
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('console', (message) => {
      if (message.type() === 'error' || message.type() === 'warning') problems.push(`console ${message.type()}: ${message.text()}`);
    });
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    page.on('requestfailed', (request) => problems.push(`request failed: ${request.url()}`));
    // Offline: anything but the report's own files is refused, and recorded.
    await page.route('**/*', (route) => {
      const url = route.request().url();
      if (url.startsWith('file:') || url.startsWith('data:')) return route.continue();
      refused.push(url);
      return route.abort();
    });
    await page.goto(pathToFileURL(path.join(dir, 'runs/browser/report.html')).href);
    await page.waitForFunction(() => [...document.querySelectorAll('.vega')].every((element) => element.hasAttribute('data-rendered')), null, { timeout: 60_000 });
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'report-first-screen.png') });
    await page.screenshot({ path: path.join(ARTIFACTS, 'report-full.png'), fullPage: true });
  });

  after(async () => {
    await browser?.close();
  });

  it('opens from disk offline with no console errors', () => {
    assert.deepEqual(problems, []);
    assert.deepEqual(refused, [], 'the report asked for something that is not on disk');
  });

  it('draws every chart interactively, each with marks, and keeps their files beside the page', async () => {
    const charts = await page.evaluate(() =>
      [...document.querySelectorAll('.vega')].map((element) => ({
        id: element.id.replace(/^chart-/, ''),
        rendered: element.getAttribute('data-rendered'),
        marks: element.querySelectorAll('svg .role-mark > *').length,
      })),
    );
    assert.deepEqual(
      charts.map((c) => c.id),
      CHARTS,
    );
    for (const chart of charts) {
      assert.equal(chart.rendered, 'interactive', `${chart.id} fell back to its picture`);
      assert.ok(chart.marks > 0, `${chart.id} drew no marks`);
    }
    const files = readdirSync(path.join(dir, 'runs/browser/charts')).sort();
    assert.deepEqual(files, CHARTS.flatMap((id) => ['png', 'svg', 'vg.json', 'vl.json'].map((ext) => `${id}.${ext}`)).sort());
  });

  it('loads every gallery picture: image, layer map and each explainer’s map per test image', async () => {
    const images = await page.evaluate(() => [...document.querySelectorAll('#gallery img')].map((img) => ({ src: img.getAttribute('src'), loaded: (img as HTMLImageElement).complete && (img as HTMLImageElement).naturalWidth > 0 })));
    // 4 classes × 2 images × (image + layer map + 4 explainer variants).
    assert.equal(images.length, 4 * 2 * 6);
    for (const image of images) {
      assert.ok(image.loaded, `${image.src} did not load`);
      assert.match(image.src ?? '', /^gallery\/[0-9a-f]+\.png$/);
    }
  });

  it('shows a verdict per model with the numbers behind it', async () => {
    const verdicts = await page.evaluate(() =>
      [...document.querySelectorAll('#verdicts .verdict')].map((article) => ({ model: article.getAttribute('data-model'), verdict: article.getAttribute('data-verdict'), criteria: [...article.querySelectorAll('table.numbers tbody th')].map((th) => th.textContent) })),
    );
    assert.equal(verdicts.length, 1);
    assert.equal(verdicts[0].model, 'small-cnn');
    assert.ok(['trusted', 'over-learned', 'find-errors', 'under-trained'].includes(verdicts[0].verdict ?? ''), String(verdicts[0].verdict));
    for (const criterion of ['Accuracy', 'Hit Rate', 'Coverage top / background', 'Map reliability']) assert.ok(verdicts[0].criteria.some((c) => c?.startsWith(criterion)), criterion);
  });
});
