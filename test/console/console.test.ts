/**
 * The operator console in a real browser: Debian's `chromium` (apt-get install chromium; .ci/run
 * installs it) driven by playwright-core through `executablePath`, which downloads nothing. A
 * started service with three keys — an analyst (screen, oracle, attack), an operator (admin,
 * screen) and a viewer (screen only) — and the console at /console, used as a person would: type
 * a key, pick a fixture and an adversarial version of another one (made by the `attack` mutation),
 * read the verdicts, the detector bars, the Grad-CAM and the spectrum; compare the pair; find the
 * new rows in the audit log as the operator; be refused the audit log as the viewer. Every page
 * runs under the console's CSP, and none may violate it or ask anything of another origin.
 *
 * Screenshots go to CONSOLE_SCREENSHOTS (default: a temporary directory); docs/console/*.png were
 * made with `CONSOLE_SCREENSHOTS=docs/console npx jest test/console`.
 */
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { createApiKey } from '../../src/gateway/apiKeys';
import { CONSOLE_CSP } from '../../src/server/console';
import { FIXTURES, startServer, type TestServer } from '../api/helpers';

// The functions handed to page.evaluate run in the browser; these are the browser globals they use
// (the DOM library itself would clash with Node's fetch types in the helpers).
interface BrowserImage {
  decode(): Promise<void>;
  readonly naturalWidth: number;
  readonly naturalHeight: number;
}
declare const location: { readonly hash: string };
declare function getComputedStyle(element: unknown): { readonly outlineStyle: string };
declare const window: unknown;
declare const document: {
  createElement(tag: 'script'): { textContent: string };
  readonly head: { appendChild(node: unknown): void };
  readonly body: { readonly dataset: Record<string, string | undefined> };
  addEventListener(type: 'securitypolicyviolation', listener: (e: { effectiveDirective: string }) => void): void;
  querySelectorAll(selector: string): { readonly length: number };
  readonly documentElement: { readonly scrollWidth: number };
  readonly activeElement: { readonly id: string } | null;
  createElement(tag: 'canvas'): {
    width: number;
    height: number;
    getContext(kind: '2d'): {
      drawImage(img: BrowserImage, x: number, y: number): void;
      getImageData(x: number, y: number, w: number, h: number): { readonly data: Uint8ClampedArray };
    } | null;
  };
};

const CHROMIUM = process.env.ADVSIEVE_CHROMIUM ?? '/usr/bin/chromium';
const SHOTS = process.env.CONSOLE_SCREENSHOTS ?? fs.mkdtempSync(path.join(os.tmpdir(), 'advsieve-console-shots-'));

const analyst = createApiKey('analyst', ['screen', 'oracle', 'attack']);
const operator = createApiKey('operator', ['admin', 'screen']);
const viewer = createApiKey('viewer', ['screen']);

const CLEAN = path.join(FIXTURES, 'test-0002-trouser.png');
// The shirt the API test attacks: the model gives it 71 %, so its gradient is not saturated.
const ATTACKED = path.join(FIXTURES, 'test-0004-shirt.png');

let server: TestServer;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let workDir: string;
let adversarialFile: string;
const cspViolations: string[] = [];
const foreignRequests: string[] = [];
const pageErrors: string[] = [];

const sha256Of = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

/** A PGD version of the shirt, from the service's own `attack` mutation, that the detectors flag. */
async function adversarialShirt(): Promise<Buffer> {
  const res = await fetch(`${server.base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${analyst.key}` },
    body: JSON.stringify({
      query: `mutation($x: ImageInput!) { attack(image: $x, method: PGD, epsilon: 0.1, steps: 10, seed: 1) {
        success adversarialImage screening { detection { adversarial } } } }`,
      variables: { x: { base64: fs.readFileSync(ATTACKED).toString('base64') } },
    }),
  });
  const body = (await res.json()) as {
    data: {
      attack: { success: boolean; adversarialImage: string; screening: { detection: { adversarial: boolean } } };
    };
  };
  expect([body.data.attack.success, body.data.attack.screening.detection.adversarial]).toEqual([true, true]);
  return Buffer.from(body.data.attack.adversarialImage, 'base64');
}

async function useKey(key: string): Promise<void> {
  await page.getByLabel('API key', { exact: true }).fill(key);
  await page.getByRole('button', { name: 'Use key' }).click();
  await page.getByTestId('key-state').filter({ hasText: 'Using asv_' }).waitFor();
}

async function open(hash: string): Promise<void> {
  await page.getByRole('link', { name: hash, exact: true }).click();
  await page.waitForFunction((h) => location.hash === `#/${h.toLowerCase()}`, hash);
}

/** How many of an <img>'s pixels differ from its first one (0: blank), read back through a canvas. */
function distinctPixels(selector: string): Promise<number> {
  return page
    .locator(selector)
    .first()
    .evaluate(async (img: BrowserImage) => {
      await img.decode();
      const canvas = document.createElement('canvas');
      canvas.width = img.naturalWidth;
      canvas.height = img.naturalHeight;
      const g = canvas.getContext('2d')!;
      g.drawImage(img, 0, 0);
      const { data } = g.getImageData(0, 0, canvas.width, canvas.height);
      let differing = 0;
      for (let i = 4; i < data.length; i += 4) {
        if (data[i] !== data[0] || data[i + 1] !== data[1] || data[i + 2] !== data[2]) differing++;
      }
      return differing;
    });
}

/** The directives the page reported violated (a securitypolicyviolation listener installed before any script). */
function violationsInPage(): Promise<string[]> {
  return page.evaluate(() => [...(window as unknown as { cspViolations: string[] }).cspViolations]);
}

/** The viewport as a palette PNG (a third of the bytes of the browser's own, for docs/console/). */
async function shot(name: string): Promise<void> {
  const png = await page.screenshot({ fullPage: false });
  await sharp(png)
    .png({ palette: true, quality: 90, effort: 10 })
    .toFile(path.join(SHOTS, `${name}.png`));
}

beforeAll(async () => {
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'advsieve-console-'));
  server = await startServer({ ADVSIEVE_API_KEYS: JSON.stringify([analyst.entry, operator.entry, viewer.entry]) });
  adversarialFile = path.join(workDir, 'shirt-pgd.png');
  fs.writeFileSync(adversarialFile, await adversarialShirt());
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Root (CI's containers) cannot use Chromium's user-namespace sandbox.
    chromiumSandbox: process.getuid?.() !== 0,
  });
  context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  page = await context.newPage();
  page.setDefaultTimeout(30_000); // a loaded 2-core CI machine: 15 s was once too short for the Model page
  await page.addInitScript(() => {
    const w = window as unknown as { cspViolations: string[] };
    w.cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => w.cspViolations.push(e.effectiveDirective));
  });
  page.on('console', (m) => {
    if (/Content[- ]Security[- ]Policy|Refused to/i.test(m.text())) cspViolations.push(m.text());
  });
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('request', (r) => {
    const url = r.url();
    if (!url.startsWith(`${server.base}/`) && !/^(data|blob):/.test(url)) foreignRequests.push(url);
  });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await server?.stop();
  if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
});

test('/console is served with a strict CSP, and the page enforces it', async () => {
  const res = await fetch(`${server.base}/console/`);
  expect(res.status).toBe(200);
  const csp = res.headers.get('content-security-policy')!;
  expect(csp).toBe(CONSOLE_CSP);
  expect(csp).toContain("default-src 'self'");
  expect(csp).not.toMatch(/unsafe-(inline|eval)|\*|https?:/);
  expect(res.headers.get('x-content-type-options')).toBe('nosniff');
  await page.goto(`${server.base}/console`);
  await page.getByRole('heading', { name: 'advsieve console' }).waitFor();
  // Enforced, not only sent: a script element with inline code is refused, and reported (which
  // also shows that the violation listeners below would see one).
  const ran = await page.evaluate(() => {
    const script = document.createElement('script');
    script.textContent = 'document.body.dataset.inline = "ran"';
    document.head.appendChild(script);
    return document.body.dataset.inline === 'ran';
  });
  expect(ran).toBe(false);
  await page.waitForFunction(() => (window as unknown as { cspViolations: string[] }).cspViolations.length > 0);
  expect(await violationsInPage()).toEqual(['script-src-elem']);
  await page.evaluate(() => ((window as unknown as { cspViolations: string[] }).cspViolations.length = 0));
  cspViolations.length = 0;
  const { status } = await fetch(`${server.base}/console/reports/evaluation.json`);
  expect(status).toBe(404); // only the reports' PNGs are served
});

test('Screen: a fixture is clean, the attacked shirt adversarial, with bars, Grad-CAM and spectrum', async () => {
  await useKey(analyst.key);
  await open('Screen');
  await page.getByLabel('Images to screen').setInputFiles([CLEAN, adversarialFile]);
  await page.waitForFunction(
    () =>
      document.querySelectorAll('tr.result').length === 2 &&
      document.querySelectorAll('tr.result[data-verdict="pending"]').length === 0,
  );
  const clean = page.locator(`tr.result[data-file="${path.basename(CLEAN)}"]`);
  const adversarial = page.locator('tr.result[data-file="shirt-pgd.png"]');
  expect(await clean.getAttribute('data-verdict')).toBe('clean');
  expect(await adversarial.getAttribute('data-verdict')).toBe('adversarial');
  expect(await clean.locator('.badge').innerText()).toBe('Clean');
  expect(await adversarial.locator('.badge').innerText()).toBe('Adversarial');
  expect(await clean.locator('td').nth(2).innerText()).toMatch(/^Trouser/);
  // The combined verdict and the five detectors, each a bar and a threshold mark.
  for (const row of [clean, adversarial]) {
    expect(await row.locator('.detector').count()).toBe(6);
    expect(await row.locator('.detector rect.bar-fill').count()).toBe(6);
    expect(await row.locator('.detector line.bar-threshold').count()).toBe(6);
  }
  expect(await adversarial.locator('.detector[data-detector="combined"]').getAttribute('data-flagged')).toBe('true');
  expect(await clean.locator('.detector[data-detector="combined"]').getAttribute('data-flagged')).toBe('false');
  expect(await adversarial.locator('.detector[data-flagged="true"] rect.bar-fill.flagged').count()).toBeGreaterThan(0);

  await adversarial.getByRole('button', { name: 'Show details' }).click();
  const details = page.getByTestId('details');
  await details.getByTestId('gradcam-img').waitFor();
  await details.getByTestId('spectrum-img').waitFor();
  expect(await distinctPixels('[data-testid="gradcam-img"]')).toBeGreaterThan(100);
  expect(await distinctPixels('[data-testid="spectrum-img"]')).toBeGreaterThan(100);
  expect(await distinctPixels('[data-testid="defended"] img')).toBeGreaterThan(50);
  expect(await details.locator('svg.trajectory polyline.highlight').count()).toBe(1);
  await shot('screen');

  // Phone width: the page fits without sideways scrolling.
  await page.setViewportSize({ width: 390, height: 844 });
  expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
  await shot('screen-phone');
  await page.setViewportSize({ width: 1280, height: 800 });
});

test('Compare: the shirt and its PGD version give a perturbation, its spectrum and a PSE type', async () => {
  await open('Compare');
  await page.getByLabel('Original (clean) image').setInputFiles(ATTACKED);
  await page.getByLabel('Suspected adversarial image').setInputFiles(adversarialFile);
  await page.getByRole('button', { name: 'Compare' }).click();
  const result = page.getByTestId('compare-result');
  await result.waitFor();
  expect(await result.getByTestId('pse').locator('.pse-type').innerText()).toMatch(
    /^(suppression|promotion|balanced)$/,
  );
  expect(await distinctPixels('[data-testid="perturbation"] img')).toBeGreaterThan(100);
  expect(await distinctPixels('[data-testid="perturbation-spectrum"] img')).toBeGreaterThan(100);
  await shot('compare');
});

test('Audit: the operator finds the analyst’s new rows; filters by key and verdict; a row opens', async () => {
  await useKey(operator.key);
  await open('Audit');
  const table = page.getByTestId('audit-table');
  await table.waitFor();
  for (const file of [CLEAN, adversarialFile]) {
    const row = table.locator(`tr.audit-row[data-sha256="${sha256Of(file)}"][data-key="analyst"]`);
    expect(await row.count()).toBeGreaterThan(0);
  }
  await page.getByLabel('Key id').fill('analyst');
  await page.getByLabel('Verdict').selectOption('true');
  await page.getByLabel('Field').selectOption('screen');
  await page.getByRole('button', { name: 'Apply filter' }).click();
  await page
    .getByTestId('audit-count')
    .filter({ hasText: /^1 record match/ })
    .waitFor();
  await shot('audit');
  const flagged = table.locator('tr.audit-row');
  expect(await flagged.getAttribute('data-sha256')).toBe(sha256Of(adversarialFile));
  await flagged.getByRole('button', { name: /^Open record/ }).click();
  const record = page.getByTestId('audit-record');
  await record.waitFor();
  expect(await record.innerText()).toContain(sha256Of(adversarialFile));
  expect(await page.evaluate(() => document.activeElement?.id)).toBe('audit-record');
  await shot('audit-record');
});

test('Audit: a screen-only key is told it needs the admin scope, and sees no record', async () => {
  await useKey(viewer.key);
  await open('Audit');
  await page.getByTestId('audit-forbidden').waitFor();
  expect(await page.getByRole('alert').innerText()).toMatch(/needs a key with the admin scope/);
  expect(await page.locator('tr.audit-row').count()).toBe(0);
  await shot('audit-forbidden');
});

test('Model: thresholds at the FPR in force, AUROCs, the low-pass radius and the report’s ROC plots', async () => {
  await open('Model');
  const card = page.locator('[data-testid="model-card"][data-model="fashion-cnn"]');
  await card.waitFor();
  expect(await card.getByTestId('target-fpr').innerText()).toBe('0.0500');
  expect(await card.locator('tr[data-detector]').count()).toBe(6);
  await card.locator('.plots').waitFor();
  await shot('model');
  const plot = card.locator('.plots img[src$="/roc-pgd-0.1.png"]');
  await plot.scrollIntoViewIfNeeded();
  expect(await plot.evaluate(async (img: BrowserImage) => (await img.decode(), img.naturalWidth))).toBeGreaterThan(0);
});

test('Live: engine statistics and, for an admin key, the flagged rate, refreshed', async () => {
  await useKey(operator.key);
  await open('Live');
  const card = page.locator('[data-testid="live-card"][data-model="fashion-cnn"]');
  await card.getByTestId('queue-depth').waitFor();
  await card.getByTestId('flagged').waitFor();
  // The analyst screened two images and one was flagged (the attack's own screening is not `screen`).
  expect(await card.getByTestId('flagged').innerText()).toMatch(/50\.0 % of 2 since start/);
  // Traffic while the page watches: four more clean images, which the next samples count.
  const images = fs
    .readdirSync(FIXTURES)
    .filter((f) => f.endsWith('.png'))
    .slice(0, 4)
    .map((f) => ({ base64: fs.readFileSync(path.join(FIXTURES, f)).toString('base64') }));
  const screened = await fetch(`${server.base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${analyst.key}` },
    body: JSON.stringify({
      query: 'mutation($i: [ImageInput!]!) { screen(images: $i) { index } }',
      variables: { i: images },
    }),
  });
  expect(screened.status).toBe(200);
  await card
    .getByTestId('flagged')
    .filter({ hasText: / of 6 since start/ })
    .waitFor();
  expect(await card.getByTestId('throughput').innerText()).not.toBe('0.0 img/s');
  await shot('live');
});

test('the keyboard reaches every page, and nothing broke the CSP or left this origin', async () => {
  await page.getByRole('link', { name: 'Screen', exact: true }).focus();
  for (const name of ['compare', 'audit', 'model', 'live']) {
    await page.keyboard.press('Tab');
    // Focus is drawn: the link reached with Tab has a visible outline (console.css, :focus-visible).
    expect(await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle)).toBe('solid');
    await page.keyboard.press('Enter');
    await page.waitForFunction((h) => location.hash === `#/${h}`, name);
    await page.getByRole('link', { name: name[0].toUpperCase() + name.slice(1), exact: true }).focus();
  }
  expect(cspViolations).toEqual([]);
  expect(await violationsInPage()).toEqual([]);
  expect(foreignRequests).toEqual([]);
  expect(pageErrors).toEqual([]);
});
