/**
 * Audit (admin keys): the audit log through `screenings`, newest first, filtered by verdict, time
 * range, SHA-256, key, model and field, a page at a time; a row opens its whole record. A key
 * without the admin scope gets FORBIDDEN from the service, shown as such: the console hides
 * nothing the service would give, and shows nothing it refuses.
 */
import { useEffect, useState } from 'preact/hooks';
import { ApiError, explainError, graphql } from '../api';
import { DetectorBars } from '../components/charts';
import { Choice, ColumnHeads, fixed, PredictionText, shortHash, Status, VerdictBadge } from '../components/common';
import { SCREENINGS, type Screening, type ScreeningPage } from '../queries';

const PAGE_SIZE = 25;
const FLAGGED_OPTIONS = [
  ['', 'any'],
  ['true', 'flagged'],
  ['false', 'clean'],
] as const;
const OPERATIONS = ['', 'screen', 'attack', 'classify', 'defend', 'spectrum', 'trajectory', 'explain', 'compare'];

interface Filter {
  flagged: '' | 'true' | 'false';
  since: string;
  until: string;
  sha256: string;
  keyId: string;
  modelId: string;
  operation: string;
}

const NO_FILTER: Filter = { flagged: '', since: '', until: '', sha256: '', keyId: '', modelId: '', operation: '' };

/** The form's values as the query's ScreeningFilter; a datetime-local value is the browser's local time. */
function filterVariables(f: Filter): Record<string, unknown> {
  const v: Record<string, unknown> = {};
  if (f.flagged) v.flagged = f.flagged === 'true';
  if (f.since) v.since = new Date(f.since).toISOString();
  if (f.until) v.until = new Date(f.until).toISOString();
  if (f.sha256.trim()) v.sha256 = f.sha256.trim().toLowerCase();
  if (f.keyId.trim()) v.keyId = f.keyId.trim();
  if (f.modelId.trim()) v.modelId = f.modelId.trim();
  if (f.operation) v.operation = f.operation;
  return v;
}

export function AuditPage() {
  const [draft, setDraft] = useState<Filter>(NO_FILTER);
  const [applied, setApplied] = useState<Filter>(NO_FILTER);
  // The cursors of the pages before this one: "Previous" pops one.
  const [cursors, setCursors] = useState<ReadonlyArray<string | null>>([null]);
  const [page, setPage] = useState<ScreeningPage['screenings']>();
  const [failure, setFailure] = useState<{ text: string; forbidden: boolean }>();
  const [open, setOpen] = useState<Screening>();
  const [loading, setLoading] = useState(false);
  const after = cursors[cursors.length - 1];

  useEffect(() => {
    let live = true;
    setLoading(true);
    graphql<ScreeningPage>(SCREENINGS, { filter: filterVariables(applied), first: PAGE_SIZE, after }).then(
      (d) => {
        if (!live) return;
        setPage(d.screenings);
        setFailure(undefined);
        setLoading(false);
      },
      (err) => {
        if (!live) return;
        setPage(undefined);
        setFailure({
          text: explainError(err, 'admin'),
          forbidden: err instanceof ApiError && err.code === 'FORBIDDEN',
        });
        setLoading(false);
      },
    );
    return () => {
      live = false;
    };
  }, [applied, after]);

  if (failure?.forbidden) {
    return (
      <section aria-labelledby="audit-title" data-testid="audit-forbidden">
        <h2 id="audit-title">Audit log</h2>
        <Status kind="error">The audit log needs a key with the admin scope. The key entered does not have it.</Status>
      </section>
    );
  }
  const set = (field: keyof Filter) => (e: Event) =>
    setDraft({ ...draft, [field]: (e.target as HTMLInputElement).value });
  const apply = (e: Event) => {
    e.preventDefault();
    setApplied(draft);
    setCursors([null]);
    setOpen(undefined);
  };
  return (
    <section aria-labelledby="audit-title">
      <h2 id="audit-title">Audit log</h2>
      <form class="filters" onSubmit={apply} aria-label="Filter the audit log">
        <Choice label="Verdict" value={draft.flagged} options={FLAGGED_OPTIONS} onChange={set('flagged')} />
        <label>
          Since
          <input type="datetime-local" step="1" value={draft.since} onInput={set('since')} />
        </label>
        <label>
          Until
          <input type="datetime-local" step="1" value={draft.until} onInput={set('until')} />
        </label>
        <label>
          SHA-256
          <input
            type="text"
            spellcheck={false}
            pattern="[0-9a-fA-F]{64}"
            value={draft.sha256}
            onInput={set('sha256')}
          />
        </label>
        <label>
          Key id
          <input type="text" spellcheck={false} value={draft.keyId} onInput={set('keyId')} />
        </label>
        <label>
          Model id
          <input type="text" spellcheck={false} value={draft.modelId} onInput={set('modelId')} />
        </label>
        <Choice
          label="Field"
          value={draft.operation}
          options={OPERATIONS.map((o) => [o, o || 'any'] as const)}
          onChange={set('operation')}
        />
        <div class="filter-buttons">
          <button type="submit">Apply filter</button>
          <button
            type="button"
            onClick={() => {
              setDraft(NO_FILTER);
              setApplied(NO_FILTER);
              setCursors([null]);
            }}
          >
            Reset
          </button>
        </div>
      </form>
      {failure && <Status kind="error">{failure.text}</Status>}
      {loading && <Status kind="info">Reading the audit log…</Status>}
      {page && (
        <>
          <p class="muted" data-testid="audit-count">
            {page.totalCount} record{page.totalCount === 1 ? '' : 's'} match; page {cursors.length}.
          </p>
          <div class="table-wrap">
            <table class="audit" data-testid="audit-table">
              <caption class="sr-only">Audit records, newest first</caption>
              <ColumnHeads names={['Time', 'Field', 'Key', 'Model', 'SHA-256', 'Prediction', 'Verdict', 'Record']} />
              <tbody>
                {page.edges.map(({ node }) => (
                  <tr key={node.id} class="audit-row" data-sha256={node.sha256 ?? ''} data-key={node.keyId ?? ''}>
                    <td>{new Date(node.time).toLocaleString()}</td>
                    <td>{node.operation}</td>
                    <td>{node.keyId ?? '—'}</td>
                    <td>{node.modelId}</td>
                    <td class="hash">{shortHash(node.sha256)}</td>
                    <td>
                      <PredictionText prediction={node.prediction} />
                    </td>
                    <td>{verdictCell(node)}</td>
                    <td>
                      <button type="button" onClick={() => setOpen(node)} aria-label={`Open record ${node.id}`}>
                        Open
                      </button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <div class="pager">
            <button type="button" disabled={cursors.length < 2} onClick={() => setCursors(cursors.slice(0, -1))}>
              Previous page
            </button>
            <button
              type="button"
              disabled={!page.pageInfo.hasNextPage}
              onClick={() => setCursors([...cursors, page.pageInfo.endCursor])}
            >
              Next page
            </button>
          </div>
        </>
      )}
      {open && <Record record={open} onClose={() => setOpen(undefined)} />}
    </section>
  );
}

function verdictCell(node: Screening) {
  if (node.errorCode) return <span class="error-text">{node.errorCode}</span>;
  if (node.adversarial === null) return <span class="muted">unscreened</span>;
  return <VerdictBadge verdict={node.adversarial ? 'adversarial' : 'clean'} />;
}

/** One record in full, focused when it opens so that keyboard users land on it. */
function Record({ record, onClose }: { record: Screening; onClose: () => void }) {
  useEffect(() => {
    document.getElementById('audit-record')?.focus();
  }, [record.id]);
  const rows: Array<[string, string]> = [
    ['Record id', record.id],
    ['Time', record.time],
    ['Field', `${record.operation} (image ${record.index} of its request)`],
    ['Request id', record.requestId],
    ['Client request id', record.clientRequestId ?? '—'],
    ['Key id', record.keyId ?? '—'],
    ['SHA-256', record.sha256 ?? '—'],
    ['Bytes', record.byteSize === null ? '—' : String(record.byteSize)],
    ['Model', `${record.modelId} (${shortHash(record.modelSha256)})`],
    ['Calibration', `${record.calibrationCreatedAt} (${shortHash(record.calibrationSha256)})`],
    ['Score / threshold', `${fixed(record.score)} / ${fixed(record.threshold)} at FPR ${fixed(record.targetFpr, 4)}`],
    ['Error', record.errorCode ?? '—'],
  ];
  return (
    <section
      id="audit-record"
      class="record"
      tabIndex={-1}
      aria-label={`Audit record ${record.id}`}
      data-testid="audit-record"
    >
      <h3>Record {record.id}</h3>
      <dl>
        {rows.map(([k, v]) => (
          <div key={k}>
            <dt>{k}</dt>
            <dd>{v}</dd>
          </div>
        ))}
        <div>
          <dt>Prediction</dt>
          <dd>
            <PredictionText prediction={record.prediction} />
          </dd>
        </div>
        <div>
          <dt>Defended prediction</dt>
          <dd>
            <PredictionText prediction={record.defensePrediction} />
          </dd>
        </div>
      </dl>
      {record.detectors && <DetectorBars detectors={record.detectors} />}
      <button type="button" onClick={onClose}>
        Close record
      </button>
    </section>
  );
}
