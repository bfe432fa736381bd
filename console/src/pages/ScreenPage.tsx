/**
 * Screen: images picked or dropped are screened (`screen`, with the low-pass defense and its
 * image), a row each: the verdict, the prediction, every detector's score against its threshold.
 * A row's details ask the `oracle` fields for that image in one request: its spectrum with the
 * sieve's cut-off, Grad-CAM for the predicted class, the feature trajectory.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { explainError, graphqlWithFiles } from '../api';
import { DetectorBars, TrajectoryChart } from '../components/charts';
import {
  ColumnHeads,
  fixed,
  Png,
  PredictionText,
  shortHash,
  Status,
  VerdictBadge,
  type Verdict,
} from '../components/common';
import { ImagePicker } from '../components/ImagePicker';
import { labelsOf, ModelSelect, useModels, type ModelLabels } from '../components/models';
import { DETAILS, SCREEN, type ImageDetails, type ScreenResult } from '../queries';

/** Images per `screen` request: well under the service's default ADVSIEVE_MAX_IMAGES. */
const IMAGES_PER_REQUEST = 16;

interface Item {
  readonly id: number;
  readonly file: File;
  readonly preview: string;
  readonly result?: ScreenResult;
  readonly failure?: string;
  readonly open?: boolean;
  readonly details?: ImageDetails;
  readonly detailsFailure?: string;
  readonly detailsLoading?: boolean;
}

function verdictOf(item: Item): Verdict {
  if (item.failure || item.result?.error) return 'error';
  if (!item.result) return 'pending';
  return item.result.detection?.adversarial ? 'adversarial' : 'clean';
}

let nextId = 1;

export function ScreenPage() {
  const models = useModels();
  const [model, setModel] = useState('');
  const [items, setItems] = useState<readonly Item[]>([]);
  const [busy, setBusy] = useState(false);
  const previews = useRef<string[]>([]);
  useEffect(() => () => previews.current.forEach((u) => URL.revokeObjectURL(u)), []);

  const update = (id: number, change: Partial<Item>) =>
    setItems((all) => all.map((it) => (it.id === id ? { ...it, ...change } : it)));

  const screenFiles = async (files: File[]) => {
    const added = files.map((file) => {
      const preview = URL.createObjectURL(file);
      previews.current.push(preview);
      return { id: nextId++, file, preview } as Item;
    });
    setItems((all) => [...added, ...all]);
    setBusy(true);
    for (let i = 0; i < added.length; i += IMAGES_PER_REQUEST) {
      const chunk = added.slice(i, i + IMAGES_PER_REQUEST);
      try {
        const data = await graphqlWithFiles<{ screen: ScreenResult[] }>(
          SCREEN,
          { images: chunk.map(() => ({ file: null })), model: model || null },
          chunk.map((it, j) => ({ file: it.file, name: it.file.name, places: [`variables.images.${j}.file`] })),
        );
        data.screen.forEach((result, j) => update(chunk[j].id, { result }));
      } catch (err) {
        const failure = explainError(err, 'screen');
        chunk.forEach((it) => update(it.id, { failure }));
      }
    }
    setBusy(false);
  };

  const toggle = async (item: Item) => {
    update(item.id, { open: !item.open });
    if (item.open || item.details || item.detailsLoading) return;
    update(item.id, { detailsLoading: true, detailsFailure: undefined });
    try {
      const details = await graphqlWithFiles<ImageDetails>(
        DETAILS,
        { image: { file: null }, model: item.result?.model ?? (model || null) },
        [{ file: item.file, name: item.file.name, places: ['variables.image.file'] }],
      );
      update(item.id, { details, detailsLoading: false });
    } catch (err) {
      update(item.id, { detailsFailure: explainError(err, 'oracle'), detailsLoading: false });
    }
  };

  const done = items.filter((it) => it.result && !it.result.error);
  const flagged = done.filter((it) => it.result!.detection?.adversarial).length;
  return (
    <section aria-labelledby="screen-title">
      <h2 id="screen-title">Screen images</h2>
      <div class="toolbar">
        <ImagePicker id="screen-files" label="Images to screen" multiple onFiles={screenFiles} />
        <ModelSelect models={models} value={model || models[0]?.id || ''} onChange={setModel} />
        <button type="button" onClick={() => setItems([])} disabled={busy || items.length === 0}>
          Clear results
        </button>
      </div>
      {busy && <Status kind="info">Screening…</Status>}
      {!busy && items.length > 0 && (
        <Status kind="info">
          {done.length} screened, {flagged} flagged as adversarial.
        </Status>
      )}
      {items.length > 0 && (
        <div class="table-wrap">
          <table class="results" data-testid="results">
            <caption class="sr-only">Screening results, newest first</caption>
            <ColumnHeads names={['Image', 'Verdict', 'Prediction', 'Detectors (score / threshold)', 'Details']} />
            <tbody>
              {items.map((item) => (
                <ResultRows key={item.id} item={item} models={models} onToggle={() => toggle(item)} />
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

function ResultRows({ item, models, onToggle }: { item: Item; models: readonly ModelLabels[]; onToggle: () => void }) {
  const r = item.result;
  const verdict = verdictOf(item);
  const detection = r?.detection;
  const combined = detection
    ? { name: 'combined', score: detection.score, threshold: detection.threshold, flagged: detection.adversarial }
    : undefined;
  const detailsId = `details-${item.id}`;
  return (
    <>
      <tr class="result" data-file={item.file.name} data-verdict={verdict}>
        <td>
          <img class="thumb" src={item.preview} alt="" />
          <span class="file-name">{item.file.name}</span>
          <span class="muted hash">{shortHash(r?.sha256)}</span>
        </td>
        <td>
          <VerdictBadge verdict={verdict} />
          {r?.flaggedView && r.flaggedView !== 'image' && <span class="muted"> ({r.flaggedView})</span>}
        </td>
        <td>
          <PredictionText prediction={r?.prediction} />
        </td>
        <td>
          {detection && combined && <DetectorBars detectors={detection.detectors} combined={combined} />}
          {r?.error && (
            <span class="error-text">
              {r.error.code}: {r.error.message}
            </span>
          )}
          {item.failure && <span class="error-text">{item.failure}</span>}
        </td>
        <td>
          <button
            type="button"
            aria-expanded={item.open ? 'true' : 'false'}
            aria-controls={detailsId}
            onClick={onToggle}
            disabled={!r || !!r.error}
          >
            {item.open ? 'Hide details' : 'Show details'}
          </button>
        </td>
      </tr>
      {item.open && (
        <tr class="details-row" id={detailsId}>
          <td colSpan={5}>
            <Details item={item} labels={labelsOf(models, r?.model)} />
          </td>
        </tr>
      )}
    </>
  );
}

function Details({ item, labels }: { item: Item; labels: readonly string[] }) {
  const r = item.result!;
  const d = item.details;
  const cam = d?.explain.maps?.[0];
  const defense = r.defense;
  return (
    <div class="details" data-testid="details">
      <figure>
        <img class="png" src={item.preview} alt={`${item.file.name} as sent`} />
        <figcaption>As sent</figcaption>
      </figure>
      {defense?.purifiedImage && (
        <figure data-testid="defended">
          <Png base64={defense.purifiedImage} alt="The image after the low-pass defense" />
          <figcaption>
            Defended: <PredictionText prediction={defense.prediction} />
            {defense.changed ? ' (prediction changed)' : ''}
          </figcaption>
        </figure>
      )}
      {item.detailsLoading && <Status kind="info">Loading the spectrum, Grad-CAM and trajectory…</Status>}
      {item.detailsFailure && <Status kind="error">{item.detailsFailure}</Status>}
      {d && (
        <>
          <figure data-testid="gradcam">
            {cam ? (
              <Png base64={cam.overlay} alt={`Grad-CAM for ${cam.label}`} testId="gradcam-img" />
            ) : (
              <p>{d.explain.error?.message}</p>
            )}
            <figcaption>
              Grad-CAM{cam ? ` for ${cam.label}` : ''}
              {d.explain.layer ? ` at ${d.explain.layer}` : ''}
            </figcaption>
          </figure>
          <figure data-testid="spectrum">
            {d.spectrum.logMagnitudePng ? (
              <Png
                base64={d.spectrum.logMagnitudePng}
                natural
                alt="Log-magnitude spectrum with the sieve's cut-off ring"
                testId="spectrum-img"
              />
            ) : (
              <p>{d.spectrum.error?.message}</p>
            )}
            <figcaption>
              Spectrum: {fixed((d.spectrum.highFrequencyShare ?? NaN) * 100, 1)} % of energy above the cut-off{' '}
              {fixed(d.spectrum.cutoff, 3)} c/px
            </figcaption>
          </figure>
          <figure class="wide" data-testid="trajectory">
            {d.trajectory.steps ? (
              <TrajectoryChart
                steps={d.trajectory.steps}
                labels={labels}
                highlight={d.trajectory.prediction?.classIndex}
                title="Distance to each class expectation per layer (bold: the prediction)"
              />
            ) : (
              <p>{d.trajectory.error?.message}</p>
            )}
            <figcaption>
              Trajectory: distance to each class per layer, scaled per layer (bold: the prediction; under each layer,
              the nearest class)
            </figcaption>
          </figure>
        </>
      )}
    </div>
  );
}
