/**
 * Issue 11, the operator's policy against a hostile client, over HTTP on started servers:
 * - 5: fields cost their work (spectrum 3 tokens an image, …): 128 aliased spectra in a batch are
 *   refused before anything runs, a spectrum drains a bucket three times faster than a screen, and
 *   a burst of allowed spectra does not hold /health/live (the analysis runs on a worker);
 * - 7: the operator sets the threshold: a client may ask only for a stricter one, unless its key
 *   holds `policy`; out of range is BAD_USER_INPUT naming the range (open API too);
 * - 8: classify, defend, spectrum and trajectory need the `oracle` scope and leave audit rows;
 * - 9: the request id is the server's UUID, the client's kept beside it;
 * - 10: no "Did you mean" in production, minimal health without a key, coded errors for
 *   subscriptions and persisted queries, APQ off in production and per key where on.
 */
import { execFileSync } from 'child_process';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { createApiKey } from '../../src/gateway/apiKeys';
import { fixtureFiles, JsonReply, postJson, ROOT, startServer, TestServer } from './helpers';
import { BUNDLED_MODEL_DIR } from '../helpers/fixtures';

/** How many clean images the bundled calibration's thresholds are read on. */
const bundledThresholdImages = (): number =>
  (
    JSON.parse(fs.readFileSync(path.join(BUNDLED_MODEL_DIR, 'calibration.json'), 'utf8')) as {
      data: { thresholdImages: number };
    }
  ).data.thresholdImages;

const trouser = fs.readFileSync(fixtureFiles().find((f) => f.includes('trouser'))!).toString('base64');
const images = fixtureFiles().map((f) => fs.readFileSync(f).toString('base64'));

const codeOf = (r: JsonReply) => r.body.errors?.[0]?.extensions?.code;
const bearer = (key: string) => ({ authorization: `Bearer ${key}` });
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const SCREEN = `mutation($i: [ImageInput!]!, $o: ScreenOptions) {
  screen(images: $i, options: $o) { index detection { adversarial threshold targetFpr } error { code } } }`;
const SCREENINGS = `query($filter: ScreeningFilter, $first: Int!) { screenings(filter: $filter, first: $first) {
  edges { node { requestId clientRequestId keyId operation index sha256 prediction { classIndex label }
  defensePrediction { classIndex } adversarial score detectors { name } errorCode } } } }`;
const CLASSIFY = 'mutation($i: [ImageInput!]!) { classify(images: $i) { index prediction { classIndex label } } }';
const DEFEND = 'mutation($i: [ImageInput!]!) { defend(images: $i, radius: 0.3) { index prediction { classIndex } } }';
const SPECTRUM = 'query($i: ImageInput!) { spectrum(image: $i) { width highFrequencyShare } }';
const TRAJECTORY = 'query($i: ImageInput!) { trajectory(image: $i) { prediction { classIndex } steps { layer } } }';

interface Row {
  requestId: string;
  clientRequestId: string | null;
  keyId: string | null;
  operation: string;
  index: number;
  sha256: string | null;
  prediction: { classIndex: number; label: string } | null;
  defensePrediction: { classIndex: number } | null;
  adversarial: boolean | null;
  score: number | null;
  detectors: unknown[] | null;
  errorCode: string | null;
}

/** A key made by the CLI: the new scopes must be accepted there too. */
function cliKey(id: string, scopes: string, extra: string[] = []): { key: string; entry: object } {
  const out = execFileSync(
    process.execPath,
    ['bin/advsieve.js', 'keys', 'create', '--id', id, '--scopes', scopes, '--json', ...extra],
    { cwd: ROOT, encoding: 'utf8' },
  );
  return JSON.parse(out) as { key: string; entry: object };
}

describe('with API keys (development mode)', () => {
  const screenKey = createApiKey('screener', ['screen']);
  const oracleKey = cliKey('oracle-user', 'screen,oracle');
  const policyKey = cliKey('policy-user', 'screen,policy');
  const admin = createApiKey('ops', ['admin']);
  // A bucket of 10 that hardly refills: what a request costs is what it leaves.
  const meteredScreen = createApiKey('metered-screen', ['screen'], { perSecond: 0.001, burst: 10 });
  const meteredOracle = createApiKey('metered-oracle', ['oracle'], { perSecond: 0.001, burst: 10 });
  let server: TestServer;

  beforeAll(async () => {
    const keys = [
      screenKey.entry,
      oracleKey.entry,
      policyKey.entry,
      admin.entry,
      meteredScreen.entry,
      meteredOracle.entry,
    ];
    server = await startServer({
      ADVSIEVE_API_KEYS: JSON.stringify(keys),
      ADVSIEVE_WORKERS: '1',
      ADVSIEVE_RATE_LIMIT_PER_SECOND: '0',
    });
  }, 120_000);

  afterAll(async () => {
    await server?.stop();
  });

  const rows = async (filter: Record<string, unknown>): Promise<Row[]> => {
    const r = await postJson(server, { query: SCREENINGS, variables: { filter, first: 100 } }, bearer(admin.key));
    expect(r.body.errors).toBeUndefined();
    return (r.body.data!.screenings as { edges: Array<{ node: Row }> }).edges.map((e) => e.node);
  };

  describe('item 7: the operator sets the threshold', () => {
    const screenAt = (key: string, targetFpr: unknown) =>
      postJson(server, { query: SCREEN, variables: { i: [{ base64: trouser }], o: { targetFpr } } }, bearer(key));

    test('a screen key gets the operator rate by default, and may ask for a stricter one', async () => {
      const dflt = await postJson(
        server,
        { query: SCREEN, variables: { i: [{ base64: trouser }] } },
        bearer(screenKey.key),
      );
      const [d] = dflt.body.data!.screen as Array<{ detection: { targetFpr: number; threshold: number } }>;
      expect(d.detection.targetFpr).toBe(0.05);
      const stricter = await screenAt(screenKey.key, 0.2);
      const [s] = stricter.body.data!.screen as Array<{ detection: { targetFpr: number; threshold: number } }>;
      expect(s.detection.targetFpr).toBe(0.2);
      expect(s.detection.threshold).toBeLessThan(d.detection.threshold); // stricter: more is flagged
    });

    test.each([1e-6, 5e-324, 0.01, 0, -0.1, 1, 1.5, 0.6])(
      'a screen key asking for targetFpr %p: 400 BAD_USER_INPUT naming the range',
      async (fpr) => {
        const r = await screenAt(screenKey.key, fpr);
        expect([r.status, codeOf(r)]).toEqual([400, 'BAD_USER_INPUT']);
        expect(r.body.errors![0].extensions).toMatchObject({ argumentName: 'targetFpr', min: 0.05, max: 0.5 });
        expect(r.body.errors![0].message).toMatch(/targetFpr must be in \[0\.05, 0\.5\]/);
        expect(r.body.data ?? null).toBeNull();
      },
    );

    test('a policy key may loosen down to what the hold-out resolves, not below', async () => {
      const loose = await screenAt(policyKey.key, 0.001);
      expect(loose.status).toBe(200);
      expect((loose.body.data!.screen as Array<{ detection: { targetFpr: number } }>)[0].detection.targetFpr).toBe(
        0.001,
      );
      for (const fpr of [1e-6, 5e-324]) {
        const r = await screenAt(policyKey.key, fpr);
        expect([r.status, codeOf(r)]).toEqual([400, 'BAD_USER_INPUT']);
        // 1 / the threshold images of the bundled calibration (5 000 unseen test images since 2026-12-03).
        expect(r.body.errors![0].extensions!.min).toBeCloseTo(1 / bundledThresholdImages(), 10);
      }
    });
  });

  describe('item 8: unscreened oracles need the oracle scope and are audited', () => {
    test.each([
      ['classify', CLASSIFY, { i: [{ base64: trouser }] }],
      ['defend', DEFEND, { i: [{ base64: trouser }] }],
      ['spectrum', SPECTRUM, { i: { base64: trouser } }],
      ['trajectory', TRAJECTORY, { i: { base64: trouser } }],
    ])('%s with a screen key: 403 FORBIDDEN naming oracle', async (_field, query, variables) => {
      const r = await postJson(server, { query, variables }, bearer(screenKey.key));
      expect([r.status, codeOf(r)]).toEqual([403, 'FORBIDDEN']);
      expect(r.body.errors![0].extensions!.scopes).toEqual(['oracle']);
    });

    test('every prediction an oracle gives out is in the audit log, under its field name, before the answer', async () => {
      const id = `oracles-${Date.now()}`;
      const h = { ...bearer(oracleKey.key), 'x-request-id': id };
      const classified = await postJson(
        server,
        { query: CLASSIFY, variables: { i: [{ base64: images[0] }, { base64: images[1] }] } },
        h,
      );
      expect(classified.status).toBe(200);
      const defended = await postJson(server, { query: DEFEND, variables: { i: [{ base64: images[2] }] } }, h);
      expect(defended.status).toBe(200);
      const spectrum = await postJson(server, { query: SPECTRUM, variables: { i: { base64: images[3] } } }, h);
      expect(spectrum.status).toBe(200);
      const trajectory = await postJson(server, { query: TRAJECTORY, variables: { i: { base64: images[4] } } }, h);
      expect(trajectory.status).toBe(200);

      const mine = (await rows({})).filter((r) => r.clientRequestId === id);
      expect(mine.map((r) => r.operation).sort()).toEqual(['classify', 'classify', 'defend', 'spectrum', 'trajectory']);
      for (const r of mine) expect(r.keyId).toBe('oracle-user');
      const classifyRows = mine.filter((r) => r.operation === 'classify').sort((a, b) => a.index - b.index);
      const given = classified.body.data!.classify as Array<{ prediction: { classIndex: number; label: string } }>;
      expect(classifyRows.map((r) => r.prediction)).toEqual(given.map((g) => g.prediction));
      for (const r of classifyRows) expect([r.adversarial, r.score, r.detectors]).toEqual([null, null, null]);
      const d = mine.find((r) => r.operation === 'defend')!;
      expect(d.defensePrediction).toEqual((defended.body.data!.defend as Array<{ prediction: unknown }>)[0].prediction);
      expect(d.prediction).not.toBeNull();
      const t = mine.find((r) => r.operation === 'trajectory')!;
      expect(t.prediction!.classIndex).toBe(
        (trajectory.body.data!.trajectory as { prediction: { classIndex: number } }).prediction.classIndex,
      );
      const s = mine.find((r) => r.operation === 'spectrum')!;
      expect(s.sha256).toMatch(/^[0-9a-f]{64}$/);

      // The admin query filters by field; an unknown field name is the client's mistake.
      const onlyDefend = await rows({ operation: 'defend' });
      expect(onlyDefend.length).toBeGreaterThanOrEqual(1);
      expect(new Set(onlyDefend.map((r) => r.operation))).toEqual(new Set(['defend']));
      const bad = await postJson(
        server,
        { query: SCREENINGS, variables: { filter: { operation: 'drop table' }, first: 1 } },
        bearer(admin.key),
      );
      expect([bad.status, codeOf(bad)]).toEqual([400, 'BAD_USER_INPUT']);
    });

    test('screen rows keep their verdict fields', async () => {
      const id = `screen-rows-${Date.now()}`;
      const r = await postJson(
        server,
        { query: SCREEN, variables: { i: [{ base64: trouser }, { base64: '!!' }] } },
        { ...bearer(screenKey.key), 'x-request-id': id },
      );
      expect(r.status).toBe(200);
      const mine = (await rows({ operation: 'screen' })).filter((x) => x.clientRequestId === id);
      expect(mine.map((x) => [x.index, x.errorCode])).toEqual([
        [1, 'INVALID_BASE64'],
        [0, null],
      ]);
      expect(mine[1].adversarial).toBe(false);
      expect(mine[1].detectors!.length).toBeGreaterThan(0);
    });
  });

  describe('item 9: the request id is the server’s; the client’s is kept beside it', () => {
    test('two requests sending the same x-request-id get distinct ids, and both are found by the client’s', async () => {
      const same = `dup-${Date.now()}`;
      const h = { ...bearer(screenKey.key), 'x-request-id': same };
      const a = await postJson(server, { query: SCREEN, variables: { i: [{ base64: images[5] }] } }, h);
      const b = await postJson(server, { query: SCREEN, variables: { i: [{ base64: images[6] }] } }, h);
      const ids = [a, b].map((r) => r.headers.get('x-request-id'));
      for (const id of ids) expect(id).toMatch(UUID);
      expect(ids[0]).not.toBe(ids[1]);
      expect([a, b].map((r) => r.headers.get('x-client-request-id'))).toEqual([same, same]);
      const mine = (await rows({})).filter((r) => r.clientRequestId === same);
      expect(mine.map((r) => r.requestId).sort()).toEqual([...ids].sort());
    });

    test('an x-request-id that is not a sane token is not kept', async () => {
      const r = await postJson(
        server,
        { query: SCREEN, variables: { i: [{ base64: images[7] }] } },
        {
          ...bearer(screenKey.key),
          'x-request-id': 'a b; drop',
        },
      );
      expect(r.headers.get('x-request-id')).toMatch(UUID);
      expect(r.headers.get('x-client-request-id')).toBeNull();
      const row = (await rows({})).find((x) => x.requestId === r.headers.get('x-request-id'))!;
      expect(row.clientRequestId).toBeNull();
    });
  });

  describe('item 5: fields cost their work', () => {
    const aliased = (n: number) =>
      `query($i: ImageInput!) { ${Array.from({ length: n }, (_, k) => `s${k}: spectrum(image: $i) { width }`).join(' ')} }`;

    test('128 aliased spectrum fields in 8 batched operations: 400 QUERY_TOO_COSTLY before anything runs', async () => {
      const batch = Array.from({ length: 8 }, () => ({ query: aliased(16), variables: { i: { base64: trouser } } }));
      const start = performance.now();
      const r = await postJson(server, batch, bearer(oracleKey.key));
      const ms = performance.now() - start;
      expect([r.status, codeOf(r)]).toEqual([400, 'QUERY_TOO_COSTLY']);
      expect(r.body.errors![0].extensions).toMatchObject({ limit: 'maxWork', limitValue: 64 });
      expect(ms).toBeLessThan(2000);
    });

    test('a spectrum takes three tokens an image from the key’s bucket, a screen one', async () => {
      // 1 (the request) + 3 screens = 4 of 10: the next request still runs.
      const screens = `mutation($i: [ImageInput!]!) { a: screen(images: $i) { index } b: screen(images: $i) { index } c: screen(images: $i) { index } }`;
      const s = await postJson(
        server,
        { query: screens, variables: { i: [{ base64: trouser }] } },
        bearer(meteredScreen.key),
      );
      expect(s.status).toBe(200);
      const after = await postJson(server, { query: '{ model { id } }' }, bearer(meteredScreen.key));
      expect(after.status).toBe(200);
      // 1 + 3 spectra × 3 = 10 of 10: the bucket is empty.
      const spectra = postJson(
        server,
        { query: aliased(3), variables: { i: { base64: trouser } } },
        bearer(meteredOracle.key),
      );
      expect((await spectra).status).toBe(200);
      const refused = await postJson(
        server,
        { query: SPECTRUM, variables: { i: { base64: trouser } } },
        bearer(meteredOracle.key),
      );
      expect([refused.status, codeOf(refused)]).toEqual([429, 'RATE_LIMITED']);
    });

    test('a burst of allowed spectrum requests does not hold /health/live', async () => {
      let stop = false;
      const live: number[] = [];
      const poll = (async () => {
        while (!stop) {
          const t = performance.now();
          await fetch(`${server.base}/health/live`);
          live.push(performance.now() - t);
          await new Promise((r) => setTimeout(r, 5));
        }
      })();
      const burst = await Promise.all(
        Array.from({ length: 16 }, (_, k) =>
          postJson(
            server,
            { query: aliased(16), variables: { i: { base64: images[k % images.length] } } },
            bearer(oracleKey.key),
          ),
        ),
      );
      stop = true;
      await poll;
      expect(burst.map((r) => r.status).every((st) => st === 200 || st === 503)).toBe(true);
      expect(burst.filter((r) => r.status === 200).length).toBeGreaterThan(0);
      live.sort((a, b) => a - b);
      const p99 = live[Math.min(live.length - 1, Math.floor(live.length * 0.99))];
      // (reported by the closing note; a generous bound on a shared 2-core machine)
      process.stdout.write(
        `health/live during 256 spectra (${burst.filter((r) => r.status === 200).length}/16 requests answered 200, the others OVERLOADED): n=${live.length} p50=${live[live.length >> 1].toFixed(1)} ms p99=${p99.toFixed(1)} ms\n`,
      );
      // Before the analysis moved to its worker: p99 3.3 s (the event loop ran every DFT and plot). The
      // bound pins that class of stall with room for a loaded machine; the 50 ms goal is bench:hostile's.
      expect(p99).toBeLessThan(1500);
    });
  });

  describe('item 10: health, subscriptions, persisted queries', () => {
    test('/health/ready shows its details only to a key holder', async () => {
      const anonymous = await (await fetch(`${server.base}/health/ready`)).json();
      expect(anonymous).toEqual({ status: 'ready' });
      const keyed = await (await fetch(`${server.base}/health/ready`, { headers: bearer(screenKey.key) })).json();
      expect(keyed).toMatchObject({ status: 'ready', workers: 1, readyWorkers: 1, audit: 'sqlite' });
      const wrong = await (await fetch(`${server.base}/health/ready`, { headers: bearer('asv_ops_nope') })).json();
      expect(wrong).toEqual({ status: 'ready' });
    });

    test('a subscription: 400 OPERATION_NOT_SUPPORTED', async () => {
      const r = await postJson(server, { query: 'subscription { model { id } }' }, bearer(screenKey.key));
      expect([r.status, codeOf(r)]).toEqual([400, 'OPERATION_NOT_SUPPORTED']);
      const named = await postJson(
        server,
        { query: 'subscription S { model { id } } query Q { model { id } }', operationName: 'S' },
        bearer(screenKey.key),
      );
      expect([named.status, codeOf(named)]).toEqual([400, 'OPERATION_NOT_SUPPORTED']);
    });

    test('malformed persisted queries get codes of their own', async () => {
      const hash = 'a'.repeat(64);
      const v2 = await postJson(
        server,
        { extensions: { persistedQuery: { version: 2, sha256Hash: hash } } },
        bearer(screenKey.key),
      );
      expect([v2.status, codeOf(v2)]).toEqual([400, 'PERSISTED_QUERY_VERSION_NOT_SUPPORTED']);
      const mismatch = await postJson(
        server,
        { query: '{ model { id } }', extensions: { persistedQuery: { version: 1, sha256Hash: hash } } },
        bearer(screenKey.key),
      );
      expect([mismatch.status, codeOf(mismatch)]).toEqual([400, 'PERSISTED_QUERY_HASH_MISMATCH']);
      const notFound = await postJson(
        server,
        { extensions: { persistedQuery: { version: 1, sha256Hash: hash } } },
        bearer(screenKey.key),
      );
      expect(codeOf(notFound)).toBe('PERSISTED_QUERY_NOT_FOUND'); // Apollo's code and status (200): clients then send the body
    });

    test('a persisted query one key registered is not found by another key', async () => {
      const query = `{ model { id } } # ${Date.now()}`;
      const sha256Hash = createHash('sha256').update(query).digest('hex');
      const ext = { persistedQuery: { version: 1, sha256Hash } };
      const registered = await postJson(server, { query, extensions: ext }, bearer(screenKey.key));
      expect(registered.status).toBe(200);
      const again = await postJson(server, { extensions: ext }, bearer(screenKey.key));
      expect(again.body.data).toEqual({ model: { id: 'fashion-cnn' } });
      const other = await postJson(server, { extensions: ext }, bearer(policyKey.key));
      expect(codeOf(other)).toBe('PERSISTED_QUERY_NOT_FOUND');
    });
  });
});

describe('production, no keys', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startServer({ NODE_ENV: 'production', ADVSIEVE_WORKERS: '1' });
  }, 120_000);

  afterAll(async () => {
    await server?.stop();
  });

  test('item 7: the open API keeps the operator floor', async () => {
    for (const fpr of [1e-6, 5e-324]) {
      const r = await postJson(server, {
        query: SCREEN,
        variables: { i: [{ base64: trouser }], o: { targetFpr: fpr } },
      });
      expect([r.status, codeOf(r)]).toEqual([400, 'BAD_USER_INPUT']);
      expect(r.body.errors![0].message).toMatch(/ADVSIEVE_ALLOW_LOOSER_TARGET_FPR/);
    }
  });

  test('item 10: no "Did you mean" for enum literals or variables', async () => {
    const literal = await postJson(server, {
      query: 'mutation { attack(image: {base64: "x"}, method: FGMS, epsilon: 0.1) { success } }',
    });
    const variable = await postJson(server, {
      query: 'mutation($m: AttackMethod!) { attack(image: {base64: "x"}, method: $m, epsilon: 0.1) { success } }',
      variables: { m: 'FGMS' },
    });
    const argument = await postJson(server, { query: 'mutation { screen(images: [], optoins: {}) { index } }' });
    for (const r of [literal, variable, argument]) {
      expect(r.status).toBe(400);
      expect(r.body.errors!.length).toBeGreaterThan(0);
      for (const e of r.body.errors!) {
        expect(e.message).not.toMatch(/did you mean|FGSM/i);
      }
    }
    expect(variable.body.errors![0].message).toMatch(/Value "FGMS" does not exist in "AttackMethod" enum/);
  });

  test('item 10: health is minimal; APQ is off', async () => {
    expect(await (await fetch(`${server.base}/health/ready`)).json()).toEqual({ status: 'ready' });
    expect(await (await fetch(`${server.base}/health/live`)).json()).toEqual({ status: 'live' });
    const query = '{ model { id } }';
    const sha256Hash = createHash('sha256').update(query).digest('hex');
    const r = await postJson(server, { query, extensions: { persistedQuery: { version: 1, sha256Hash } } });
    expect(codeOf(r)).toBe('PERSISTED_QUERY_NOT_SUPPORTED');
  });
});
