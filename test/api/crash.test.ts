/**
 * Durability of acknowledged verdicts: a server screening under concurrent load is killed with
 * SIGKILL (no shutdown, no flush) while requests are in flight; restarted on the same SQLite file,
 * its audit log holds every verdict a client received. Requests cut off by the kill may or may not
 * be in the log — they were never acknowledged — but none that was answered may be missing.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { fixtureFiles, startServer, TestServer } from './helpers';

const SCREEN = `mutation($images: [ImageInput!]!) { screen(images: $images) { index sha256 detection { score } error { code } } }`;
// `first` as a variable: the gateway's cost limit multiplies a literal `first` into the cost. The
// client's x-request-id is the row's clientRequestId (its requestId is the server's UUID).
const SCREENINGS = `query($first: Int!, $after: String) { screenings(first: $first, after: $after) {
  pageInfo { hasNextPage endCursor } edges { node { requestId: clientRequestId index sha256 score image } } } }`;

const images = fixtureFiles().map((f) => fs.readFileSync(f).toString('base64'));
const CLIENTS = 16;

interface Acknowledged {
  readonly requestId: string;
  readonly results: Array<{ index: number; sha256: string; detection: { score: number } }>;
}

async function screenOnce(server: TestServer, requestId: string, n: number): Promise<Acknowledged | undefined> {
  const res = await fetch(`${server.base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-request-id': requestId },
    body: JSON.stringify({
      query: SCREEN,
      variables: { images: [0, 1].map((k) => ({ base64: images[(n + k * 7) % images.length] })) },
    }),
  });
  const body = (await res.json()) as { data?: { screen: Acknowledged['results'] } };
  if (res.status !== 200 || !body.data) return undefined;
  return { requestId, results: body.data.screen };
}

async function allRows(server: TestServer) {
  const rows: Array<{ requestId: string; index: number; sha256: string; score: number; image: string | null }> = [];
  let after: string | null = null;
  for (;;) {
    const res = await fetch(`${server.base}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: SCREENINGS, variables: { first: 500, after } }),
    });
    const body = (await res.json()) as {
      data: { screenings: { pageInfo: { hasNextPage: boolean; endCursor: string }; edges: Array<{ node: never }> } };
    };
    if (!body.data) throw new Error(`screenings failed: ${JSON.stringify(body)}`);
    rows.push(...body.data.screenings.edges.map((e) => e.node));
    if (!body.data.screenings.pageInfo.hasNextPage) return rows;
    after = body.data.screenings.pageInfo.endCursor;
  }
}

// Both settings of ADVSIEVE_AUDIT_SYNC: `normal` skips the fsync, and a killed process must still lose
// nothing (the commit is in the OS's page cache); only a machine crash separates the two.
test.each(['full', 'normal'])(
  'synchronous=%s: SIGKILL mid-load, and every verdict a client received is in the audit log after restart',
  async (sync) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'advsieve-crash-'));
    const env = {
      ADVSIEVE_AUDIT_DB: path.join(dir, 'audit.sqlite'),
      ADVSIEVE_AUDIT_SYNC: sync,
      ADVSIEVE_MAX_DELAY_MS: '5',
    };
    let server = await startServer(env);
    const acknowledged: Acknowledged[] = [];
    let inFlight = 0;
    let sent = 0;
    let killed = false;
    let inFlightAtKill = 0;
    const client = async (c: number) => {
      for (let n = 0; !killed; n++) {
        inFlight++;
        sent++;
        try {
          const ack = await screenOnce(server, `crash-${c}-${n}`, c * 31 + n);
          if (ack) acknowledged.push(ack);
        } catch {
          // cut off by the kill: never acknowledged
        } finally {
          inFlight--;
        }
      }
    };
    const clients = Array.from({ length: CLIENTS }, (_, c) => client(c));
    // Kill once the log has taken some load, at a moment requests are in flight.
    const deadline = Date.now() + 20_000;
    while ((acknowledged.length < 60 || inFlight < CLIENTS / 2) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 2));
    inFlightAtKill = inFlight;
    const ackedAtKill = acknowledged.length;
    server.proc.kill('SIGKILL');
    killed = true;
    expect((await server.exited).signal).toBe('SIGKILL');
    await Promise.all(clients);
    // Responses still being read at the kill were sent before it: they count as acknowledged too.
    expect(acknowledged.length).toBeGreaterThanOrEqual(ackedAtKill);
    expect(ackedAtKill).toBeGreaterThanOrEqual(60);
    expect(inFlightAtKill).toBeGreaterThan(0);

    server = await startServer(env);
    try {
      const rows = await allRows(server);
      const logged = new Map(rows.map((r) => [`${r.requestId}/${r.index}`, r]));
      const missing = acknowledged.flatMap((a) =>
        a.results.filter((res) => {
          const row = logged.get(`${a.requestId}/${res.index}`);
          return !(row && row.sha256 === res.sha256 && row.score === res.detection.score);
        }),
      );
      expect(missing).toEqual([]);
      expect(rows.every((r) => r.image === null)).toBe(true); // images are not kept unless configured
      const unacknowledged = new Set(rows.map((r) => r.requestId)).size - acknowledged.length;
      process.stderr.write(
        `crash test (synchronous=${sync}): ${sent} requests sent, ${acknowledged.length} acknowledged (${acknowledged.length * 2} verdicts), ` +
          `${inFlightAtKill} in flight at the kill, ${unacknowledged} of those recorded though never acknowledged\n`,
      );
    } finally {
      await server.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
  90_000,
);
