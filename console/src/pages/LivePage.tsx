/**
 * Live: every few seconds, each model's engine statistics (`engineStats`, `screen` scope) — images
 * per second from the change in images run, queue depth, requests in flight, batch sizes — and,
 * when the key may read /metrics (`admin`), the share of screened images flagged. Rates are
 * differences between two samples, so the first one shows after the second sample.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, explainError, graphql, metricsText } from '../api';
import { BatchHistogram, Sparkline } from '../components/charts';
import { fixed, Status } from '../components/common';
import { ENGINE_STATS, MODEL_IDS, type EngineStats } from '../queries';

export const REFRESH_MS = 3000;
const HISTORY = 40;

interface Sample {
  readonly at: number;
  readonly stats: Record<string, EngineStats>;
  /** Screened and flagged images per model since start (/metrics), when readable. */
  readonly counts?: Record<string, { screened: number; flagged: number }>;
}

/** One fixed document per model, not one aliased per model list: every document the console sends is in its manifest. */
async function engineStatsOf(models: readonly string[]): Promise<Record<string, EngineStats>> {
  const stats = await Promise.all(
    models.map((model) => graphql<{ engineStats: EngineStats }>(ENGINE_STATS, { model })),
  );
  return Object.fromEntries(models.map((m, i) => [m, stats[i].engineStats]));
}

/** Per model, `advsieve_images_total{operation="screen"}` (all outcomes) and `advsieve_images_flagged_total`. */
export function screeningCounts(text: string): Record<string, { screened: number; flagged: number }> {
  const counts: Record<string, { screened: number; flagged: number }> = {};
  const of = (model: string) => (counts[model] ??= { screened: 0, flagged: 0 });
  for (const line of text.split('\n')) {
    const m = /^(advsieve_images_total|advsieve_images_flagged_total)\{([^}]*)\}\s+([0-9.eE+-]+)$/.exec(line);
    if (!m) continue;
    const labels = Object.fromEntries([...m[2].matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
    const value = Number(m[3]);
    if (!labels.model || !Number.isFinite(value)) continue;
    if (m[1] === 'advsieve_images_flagged_total') of(labels.model).flagged += value;
    else if (labels.operation === 'screen' && labels.outcome === 'ok') of(labels.model).screened += value;
  }
  return counts;
}

export function LivePage() {
  const [models, setModels] = useState<readonly string[]>();
  const [samples, setSamples] = useState<readonly Sample[]>([]);
  const [failure, setFailure] = useState<string>();
  const [metricsNote, setMetricsNote] = useState<string>();
  const [paused, setPaused] = useState(false);
  const timer = useRef<number>();

  useEffect(() => {
    graphql<{ models: Array<{ id: string }> }>(MODEL_IDS).then(
      (d) => setModels(d.models.map((m) => m.id)),
      (err) => setFailure(explainError(err, 'screen')),
    );
  }, []);

  useEffect(() => {
    if (!models || paused) return undefined;
    let live = true;
    const sample = async () => {
      try {
        const stats = await engineStatsOf(models);
        let counts: Sample['counts'];
        try {
          counts = screeningCounts(await metricsText());
          setMetricsNote(undefined);
        } catch (err) {
          setMetricsNote(
            err instanceof ApiError && (err.code === 'FORBIDDEN' || err.code === 'UNAUTHENTICATED')
              ? 'The flagged rate comes from /metrics, which needs a key with the admin scope.'
              : 'The flagged rate comes from /metrics, which this service does not serve on its main port (ADVSIEVE_METRICS).',
          );
        }
        if (!live) return;
        setFailure(undefined);
        setSamples((all) => [...all.slice(-(HISTORY - 1)), { at: performance.now(), stats, counts }]);
      } catch (err) {
        if (live) setFailure(explainError(err, 'screen'));
      }
      if (live) timer.current = window.setTimeout(sample, REFRESH_MS);
    };
    sample();
    return () => {
      live = false;
      window.clearTimeout(timer.current);
    };
  }, [models, paused]);

  return (
    <section aria-labelledby="live-title">
      <h2 id="live-title">Live</h2>
      <div class="toolbar">
        <button type="button" aria-pressed={paused ? 'true' : 'false'} onClick={() => setPaused(!paused)}>
          {paused ? 'Resume refreshing' : 'Pause refreshing'}
        </button>
        <span class="muted">Refreshed every {REFRESH_MS / 1000} s; rates over the last interval.</span>
      </div>
      {failure && <Status kind="error">{failure}</Status>}
      {metricsNote && <p class="muted">{metricsNote}</p>}
      {models?.map((m) => (
        <ModelLive key={m} model={m} samples={samples} />
      ))}
    </section>
  );
}

function ratesOf(model: string, samples: readonly Sample[]) {
  const throughput: number[] = [];
  // null: nothing screened in that interval (no share to speak of).
  const flaggedShare: Array<number | null> = [];
  for (let i = 1; i < samples.length; i++) {
    const [a, b] = [samples[i - 1], samples[i]];
    const seconds = (b.at - a.at) / 1000;
    const items = (b.stats[model]?.items ?? 0) - (a.stats[model]?.items ?? 0);
    throughput.push(seconds > 0 ? Math.max(0, items) / seconds : 0);
    const [ca, cb] = [a.counts?.[model], b.counts?.[model]];
    if (ca && cb) {
      const screened = cb.screened - ca.screened;
      flaggedShare.push(screened > 0 ? (cb.flagged - ca.flagged) / screened : null);
    }
  }
  return { throughput, flaggedShare };
}

function ModelLive({ model, samples }: { model: string; samples: readonly Sample[] }) {
  const last = samples[samples.length - 1];
  const stats = last?.stats[model];
  const counts = last?.counts?.[model];
  const { throughput, flaggedShare } = ratesOf(model, samples);
  const lastShare = flaggedShare.length ? flaggedShare[flaggedShare.length - 1] : null;
  const meanBatch = stats && stats.batches > 0 ? stats.items / stats.batches : NaN;
  return (
    <article class="card live" data-testid="live-card" data-model={model}>
      <h3>{model}</h3>
      {!stats && <Status kind="info">Waiting for the first sample…</Status>}
      {stats && (
        <div class="tiles">
          <div class="tile">
            <h4>Throughput</h4>
            <p class="figure" data-testid="throughput">
              {fixed(throughput[throughput.length - 1] ?? 0, 1)} img/s
            </p>
            <Sparkline values={throughput} label="images per second" unit="img/s" />
          </div>
          <div class="tile">
            <h4>Flagged</h4>
            {counts ? (
              <>
                <p class="figure" data-testid="flagged">
                  {lastShare === null ? 'none screened lately' : `${fixed(lastShare * 100, 1)} % lately`};{' '}
                  {counts.screened ? fixed((counts.flagged / counts.screened) * 100, 1) : '0.0'} % of {counts.screened}{' '}
                  since start
                </p>
                <Sparkline values={flaggedShare.map((x) => (x ?? 0) * 100)} label="percent flagged" unit="%" />
              </>
            ) : (
              <p class="muted">needs /metrics (admin)</p>
            )}
          </div>
          <div class="tile">
            <h4>Queue</h4>
            <p class="figure" data-testid="queue-depth">
              {stats.queueDepth} queued, {stats.inFlight} in flight
            </p>
            <p class="muted">
              {stats.rejected} rejected, {stats.expired} expired, {stats.failedBatches} failed batches
            </p>
          </div>
          <div class="tile">
            <h4>Batch sizes</h4>
            <p class="figure">
              {stats.batches} batches, {stats.items} images, mean {fixed(meanBatch, 1)}
            </p>
            <BatchHistogram sizes={stats.batchSizes} />
          </div>
        </div>
      )}
    </article>
  );
}
