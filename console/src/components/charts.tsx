/**
 * The console's charts, drawn as SVG by hand: a detector's score against its threshold, a feature
 * trajectory across layers, a time series. Vega would draw them too, but its expression evaluator
 * compiles with `new Function`, which the console's CSP (no unsafe-eval) forbids, and its bundle
 * would be ten times the console's. SVG's geometry lives in attributes, not in style attributes,
 * so nothing here needs 'unsafe-inline' either.
 */
import type { DetectorScore, TrajectoryStep } from '../queries';

const BAR_WIDTH = 220;
const BAR_HEIGHT = 14;

/**
 * The interval a bar is drawn over: 0, the score and the threshold inside it, with room beyond the
 * threshold so that a score just under it does not look like a full bar.
 */
export function barDomain(score: number, threshold: number): [number, number] {
  const lo = Math.min(0, score, threshold);
  const hi = Math.max(0, score, threshold);
  const span = hi - lo || Math.abs(threshold) || 1;
  return [lo, Math.max(hi, threshold + span * 0.5)];
}

function DetectorBar({ d }: { d: DetectorScore }) {
  const [lo, hi] = barDomain(d.score, d.threshold);
  const x = (v: number) => ((v - lo) / (hi - lo)) * BAR_WIDTH;
  // From the left edge, not from 0: a score far below its threshold (the combined verdict's
  // logit is often -8) is a short bar, not a long one pointing the other way.
  const end = Math.max(1, x(d.score));
  const label = `${d.name}: score ${d.score.toFixed(3)}, threshold ${d.threshold.toFixed(3)}${d.flagged ? ', flagged' : ''}`;
  return (
    <div class="detector" data-detector={d.name} data-flagged={String(d.flagged)}>
      <span class="detector-name">{d.name}</span>
      <svg
        class="bar"
        viewBox={`0 0 ${BAR_WIDTH} ${BAR_HEIGHT}`}
        width={BAR_WIDTH}
        height={BAR_HEIGHT}
        role="img"
        aria-label={label}
      >
        <title>{label}</title>
        <rect class="bar-track" x="0" y="2" width={BAR_WIDTH} height={BAR_HEIGHT - 4} />
        <rect class={d.flagged ? 'bar-fill flagged' : 'bar-fill'} x="0" y="2" width={end} height={BAR_HEIGHT - 4} />
        <line class="bar-threshold" x1={x(d.threshold)} x2={x(d.threshold)} y1="0" y2={BAR_HEIGHT} />
      </svg>
      <span class="detector-value">
        {d.score.toFixed(2)} / {d.threshold.toFixed(2)}
      </span>
    </div>
  );
}

/** Each detector's score as a bar, its threshold as a vertical mark; flagged bars are red. */
export function DetectorBars({
  detectors,
  combined,
}: {
  detectors: readonly DetectorScore[];
  combined?: DetectorScore;
}) {
  return (
    <div class="detectors">
      {combined && <DetectorBar d={combined} />}
      {detectors.map((d) => (
        <DetectorBar key={d.name} d={d} />
      ))}
    </div>
  );
}

const CHART_W = 360;
const CHART_H = 180;
const PAD = { left: 36, right: 10, top: 10, bottom: 38 };

/**
 * The trajectory: at each layer (input side first), the distance to every class expectation
 * divided by that layer's largest (layers' scales differ by orders of magnitude), one line per
 * class; `highlight` (the prediction) drawn bold, and the nearest class named at each layer.
 */
export function TrajectoryChart({
  steps,
  labels,
  highlight,
  title,
}: {
  steps: readonly TrajectoryStep[];
  labels: readonly string[];
  highlight: number | undefined;
  title: string;
}) {
  if (steps.length === 0) return <p class="muted">No layers.</p>;
  const classes = steps[0].distances.length;
  const w = CHART_W - PAD.left - PAD.right;
  const h = CHART_H - PAD.top - PAD.bottom;
  const x = (i: number) => PAD.left + (steps.length === 1 ? w / 2 : (i / (steps.length - 1)) * w);
  const y = (v: number) => PAD.top + (1 - v) * h;
  const normalised = steps.map((s) => {
    const max = Math.max(...s.distances.filter(Number.isFinite), 1e-12);
    return s.distances.map((d) => (Number.isFinite(d) ? d / max : 1));
  });
  const line = (c: number) => normalised.map((row, i) => `${x(i).toFixed(1)},${y(row[c]).toFixed(1)}`).join(' ');
  const summary = steps.map((s) => `${s.layer}: nearest ${s.nearestLabel}`).join('; ');
  return (
    <svg class="chart trajectory" viewBox={`0 0 ${CHART_W} ${CHART_H}`} role="img" aria-label={`${title}. ${summary}`}>
      <title>{`${title}. ${summary}`}</title>
      <line class="axis" x1={PAD.left} x2={PAD.left} y1={PAD.top} y2={PAD.top + h} />
      <line class="axis" x1={PAD.left} x2={PAD.left + w} y1={PAD.top + h} y2={PAD.top + h} />
      <text class="tick" x={PAD.left - 4} y={y(1) + 4} text-anchor="end">
        1
      </text>
      <text class="tick" x={PAD.left - 4} y={y(0) + 4} text-anchor="end">
        0
      </text>
      {Array.from({ length: classes }, (_, c) => (
        <polyline key={c} class={c === highlight ? 'series highlight' : 'series'} points={line(c)}>
          <title>{labels[c] ?? `class ${c}`}</title>
        </polyline>
      ))}
      {steps.map((s, i) => (
        <g key={s.layer}>
          <circle class="nearest" cx={x(i)} cy={y(normalised[i][s.nearestClass])} r="3" />
          <text class="tick" x={x(i)} y={PAD.top + h + 14} text-anchor="middle">
            {s.layer}
          </text>
          <text class="tick nearest-label" x={x(i)} y={PAD.top + h + 28} text-anchor="middle">
            {s.nearestLabel}
          </text>
        </g>
      ))}
    </svg>
  );
}

/** A time series, newest on the right; the y axis from 0 to the largest value seen. */
export function Sparkline({ values: given, label, unit }: { values: readonly number[]; label: string; unit: string }) {
  const values = given.length === 1 ? [given[0], given[0]] : given; // one rate: a level line
  const width = 280;
  const height = 70;
  const max = Math.max(1e-9, ...values);
  const points = values
    .map(
      (v, i) =>
        `${((i / Math.max(1, values.length - 1)) * width).toFixed(1)},${(height - 4 - (v / max) * (height - 8)).toFixed(1)}`,
    )
    .join(' ');
  const last = values.length ? values[values.length - 1] : 0;
  return (
    <svg
      class="chart sparkline"
      viewBox={`0 0 ${width} ${height}`}
      role="img"
      aria-label={`${label}: ${last.toFixed(2)} ${unit} now, ${max.toFixed(2)} at most`}
    >
      <rect class="bar-track" x="0" y="0" width={width} height={height} />
      {values.length > 1 ? (
        <polyline class="series highlight" points={points} />
      ) : (
        <text class="tick" x={width / 2} y={height / 2} text-anchor="middle">
          after the next sample
        </text>
      )}
    </svg>
  );
}

/** A histogram of batch sizes: one bar per size seen, its height the number of batches. */
export function BatchHistogram({ sizes }: { sizes: ReadonlyArray<{ size: number; count: number }> }) {
  if (sizes.length === 0) return <p class="muted">No batches yet.</p>;
  const width = 280;
  const height = 90;
  const max = Math.max(...sizes.map((s) => s.count));
  const slot = width / sizes.length;
  return (
    <svg
      class="chart histogram"
      viewBox={`0 0 ${width} ${height + 14}`}
      role="img"
      aria-label={sizes.map((s) => `size ${s.size}: ${s.count} batches`).join(', ')}
    >
      {sizes.map((s, i) => {
        const h = (s.count / max) * (height - 4);
        return (
          <g key={s.size}>
            <rect class="bar-fill" x={i * slot + 1} y={height - h} width={Math.max(1, slot - 2)} height={h}>
              <title>{`size ${s.size}: ${s.count} batches`}</title>
            </rect>
            {sizes.length <= 16 && (
              <text class="tick" x={i * slot + slot / 2} y={height + 12} text-anchor="middle">
                {s.size}
              </text>
            )}
          </g>
        );
      })}
    </svg>
  );
}
