/**
 * Model: every served model (`models`, `screen` scope) with its calibration — each detector's
 * threshold at the false-positive rate in force, its AUROC on calibration's attacks, the low-pass
 * radius — and the evaluation report's plots for it, which the service serves read-only under
 * /console/reports/ (reports/**\/*.png).
 */
import { useEffect, useState } from 'preact/hooks';
import { explainError, graphql } from '../api';
import { fixed, shortHash, Status } from '../components/common';
import { MODELS, type ModelInfo } from '../queries';

interface ReportPlots {
  readonly modelId: string;
  readonly modelSha256: string | null;
  readonly plots: readonly string[];
}

async function reportIndex(): Promise<ReportPlots[]> {
  const res = await fetch('/console/reports/index.json', { credentials: 'omit' });
  return res.ok ? ((await res.json()) as ReportPlots[]) : [];
}

export function ModelPage() {
  const [models, setModels] = useState<readonly ModelInfo[]>();
  const [reports, setReports] = useState<readonly ReportPlots[]>();
  const [failure, setFailure] = useState<string>();
  useEffect(() => {
    graphql<{ models: ModelInfo[] }>(MODELS).then(
      (d) => setModels(d.models),
      (err) => setFailure(explainError(err, 'screen')),
    );
    reportIndex().then(setReports, () => setReports([]));
  }, []);
  return (
    <section aria-labelledby="model-title">
      <h2 id="model-title">Models and calibration</h2>
      {failure && <Status kind="error">{failure}</Status>}
      {!models && !failure && <Status kind="info">Loading…</Status>}
      {models?.map((m) => (
        <ModelCard key={m.id} model={m} reports={reports} />
      ))}
    </section>
  );
}

function ModelCard({ model: m, reports }: { model: ModelInfo; reports: readonly ReportPlots[] | undefined }) {
  const c = m.calibration;
  const report = reports?.find((r) => r.modelId === m.id);
  return (
    <article class="card" data-testid="model-card" data-model={m.id}>
      <h3>{m.id}</h3>
      <dl class="facts">
        <div>
          <dt>SHA-256</dt>
          <dd class="hash">{shortHash(m.sha256)}</dd>
        </div>
        <div>
          <dt>Input</dt>
          <dd>{m.inputShape.join(' × ')}</dd>
        </div>
        <div>
          <dt>Classes</dt>
          <dd>{m.labels.join(', ')}</dd>
        </div>
        <div>
          <dt>Backend</dt>
          <dd>
            {m.backend}, {m.batching.workers} workers, batches ≤ {m.batching.maxBatch} within {m.batching.maxDelayMs} ms
          </dd>
        </div>
        <div>
          <dt>Calibrated</dt>
          <dd>
            {c.createdAt}, thresholds from {c.thresholdImages} clean hold-out images
          </dd>
        </div>
        <div>
          <dt>False-positive rate in force</dt>
          <dd data-testid="target-fpr">{fixed(c.defaultTargetFpr, 4)}</dd>
        </div>
        <div>
          <dt>Low-pass defense</dt>
          <dd>
            {c.lowPassKind}, radius {fixed(c.lowPassRadius, 4)} cycles/pixel; clean accuracy{' '}
            {fixed((c.cleanAccuracy ?? NaN) * 100, 1)} %, filtered {fixed((c.filteredAccuracy ?? NaN) * 100, 1)} %
          </dd>
        </div>
        <div>
          <dt>Calibration attacks</dt>
          <dd>{c.attacks.join(', ') || '—'}</dd>
        </div>
      </dl>
      <div class="table-wrap">
        <table>
          <caption>Detectors at the false-positive rate in force</caption>
          <thead>
            <tr>
              <th scope="col">Detector</th>
              <th scope="col">Threshold</th>
              <th scope="col">AUROC (calibration attacks)</th>
              <th scope="col">TPR at the FPR</th>
            </tr>
          </thead>
          <tbody>
            {c.detectors.map((d) => (
              <tr key={d.name} data-detector={d.name}>
                <th scope="row">{d.name}</th>
                <td>{fixed(d.threshold)}</td>
                <td>{fixed(d.auroc)}</td>
                <td>{fixed(d.tprAtTargetFpr)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <h4>Evaluation report</h4>
      {!reports && <p class="muted">Looking for the evaluation report…</p>}
      {reports && !report && (
        <p class="muted">No evaluation report for this model is served (npx advsieve evaluate writes one).</p>
      )}
      {report && report.modelSha256 && report.modelSha256 !== m.sha256 && (
        <p class="muted">The report evaluated another version of this model ({shortHash(report.modelSha256)}).</p>
      )}
      {report && (
        <div class="plots">
          {report.plots.map((src) => (
            <figure key={src}>
              <a href={src}>
                <img src={src} alt={`Plot ${src.split('/').pop()}`} loading="lazy" />
              </a>
              <figcaption>{src.split('/').pop()}</figcaption>
            </figure>
          ))}
        </div>
      )}
    </article>
  );
}
