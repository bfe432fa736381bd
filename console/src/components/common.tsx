/** Small pieces every page uses: the verdict badge, a PNG from the API, a status line. */
import type { ComponentChildren } from 'preact';
import type { Prediction } from '../queries';

export type Verdict = 'adversarial' | 'clean' | 'error' | 'pending';

const VERDICT_TEXT: Record<Verdict, string> = {
  adversarial: 'Adversarial',
  clean: 'Clean',
  error: 'Error',
  pending: 'Screening…',
};

/** The verdict in words as well as colour, so that it reads without colour vision. */
export function VerdictBadge({ verdict }: { verdict: Verdict }) {
  return (
    <span class={`badge badge-${verdict}`} data-verdict={verdict}>
      {VERDICT_TEXT[verdict]}
    </span>
  );
}

/** An image the API sent as base64 PNG. */
export function Png({
  base64,
  alt,
  testId,
  natural,
}: {
  base64: string;
  alt: string;
  testId?: string;
  /** At its own size (a figure with text: the spectrum), not enlarged pixel by pixel like the model's input. */
  natural?: boolean;
}) {
  const src = base64.startsWith('data:') ? base64 : `data:image/png;base64,${base64}`;
  return <img class={natural ? 'png natural' : 'png'} src={src} alt={alt} data-testid={testId} />;
}

export function PredictionText({ prediction }: { prediction: Prediction | null | undefined }) {
  if (!prediction) return <span class="muted">—</span>;
  return (
    <span>
      {prediction.label} <span class="muted">({(prediction.confidence * 100).toFixed(1)} %)</span>
    </span>
  );
}

/** A line that screen readers announce when it changes. */
export function Status({ kind, children }: { kind: 'info' | 'error'; children: ComponentChildren }) {
  return (
    <p class={`status status-${kind}`} role={kind === 'error' ? 'alert' : 'status'}>
      {children}
    </p>
  );
}

export function shortHash(sha256: string | null | undefined): string {
  return sha256 ? `${sha256.slice(0, 12)}…` : '—';
}

export function fixed(x: number | null | undefined, digits = 3): string {
  return x === null || x === undefined || !Number.isFinite(x) ? '—' : x.toFixed(digits);
}

/** A table's header row of column names. */
export function ColumnHeads({ names }: { names: readonly string[] }) {
  return (
    <thead>
      <tr>
        {names.map((n) => (
          <th key={n} scope="col">
            {n}
          </th>
        ))}
      </tr>
    </thead>
  );
}

/** A labelled select of [value, text] options. */
export function Choice({
  label,
  value,
  options,
  onChange,
}: {
  label: string;
  value: string;
  options: ReadonlyArray<readonly [string, string]>;
  onChange: (e: Event) => void;
}) {
  return (
    <label>
      {label}
      <select value={value} onChange={onChange}>
        {options.map(([v, text]) => (
          <option key={v} value={v}>
            {text}
          </option>
        ))}
      </select>
    </label>
  );
}
