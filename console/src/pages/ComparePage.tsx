/**
 * Compare: an original and a suspected adversarial version of it (`compare`, `oracle` scope): the
 * perturbation amplified, its spectrum with the sieve's cut-off, promotion–suppression, and each
 * image's prediction, Grad-CAM and trajectory side by side.
 */
import { useEffect, useState } from 'preact/hooks';
import { explainError, graphqlWithFiles } from '../api';
import { TrajectoryChart } from '../components/charts';
import { fixed, Png, PredictionText, Status } from '../components/common';
import { ImagePicker } from '../components/ImagePicker';
import { labelsOf, ModelSelect, useModels } from '../components/models';
import { COMPARE, type ComparedImage, type CompareResult } from '../queries';

const PSE_MEANING: Record<string, string> = {
  suppression: 'mostly lowered the clean class’s logit',
  promotion: 'mostly raised the new class’s logit',
  balanced: 'lowered the clean class and raised the new one alike',
};

function usePreview(file: File | undefined): string | undefined {
  const [url, setUrl] = useState<string>();
  useEffect(() => {
    if (!file) return undefined;
    const u = URL.createObjectURL(file);
    setUrl(u);
    return () => URL.revokeObjectURL(u);
  }, [file]);
  return url;
}

export function ComparePage() {
  const models = useModels();
  const [model, setModel] = useState('');
  const [clean, setClean] = useState<File>();
  const [suspect, setSuspect] = useState<File>();
  const [result, setResult] = useState<CompareResult>();
  const [failure, setFailure] = useState<string>();
  const [busy, setBusy] = useState(false);
  const cleanUrl = usePreview(clean);
  const suspectUrl = usePreview(suspect);

  const run = async (e: Event) => {
    e.preventDefault();
    if (!clean || !suspect) return;
    setBusy(true);
    setFailure(undefined);
    try {
      const data = await graphqlWithFiles<{ compare: CompareResult }>(
        COMPARE,
        { clean: { file: null }, suspect: { file: null }, model: model || null },
        [
          { file: clean, name: clean.name, places: ['variables.clean.file'] },
          { file: suspect, name: suspect.name, places: ['variables.suspect.file'] },
        ],
      );
      setResult(data.compare);
    } catch (err) {
      setResult(undefined);
      setFailure(explainError(err, 'oracle'));
    }
    setBusy(false);
  };

  return (
    <section aria-labelledby="compare-title">
      <h2 id="compare-title">Compare an original with a suspect</h2>
      <form class="toolbar" onSubmit={run}>
        <ImagePicker id="compare-clean" label="Original (clean) image" multiple={false} onFiles={([f]) => setClean(f)}>
          {cleanUrl && <img class="thumb" src={cleanUrl} alt="" />}
          {clean && <span class="file-name">{clean.name}</span>}
        </ImagePicker>
        <ImagePicker
          id="compare-suspect"
          label="Suspected adversarial image"
          multiple={false}
          onFiles={([f]) => setSuspect(f)}
        >
          {suspectUrl && <img class="thumb" src={suspectUrl} alt="" />}
          {suspect && <span class="file-name">{suspect.name}</span>}
        </ImagePicker>
        <ModelSelect models={models} value={model || models[0]?.id || ''} onChange={setModel} />
        <button type="submit" disabled={!clean || !suspect || busy}>
          Compare
        </button>
      </form>
      {busy && <Status kind="info">Comparing…</Status>}
      {failure && <Status kind="error">{failure}</Status>}
      {result && <CompareView result={result} labels={labelsOf(models, result.model)} />}
    </section>
  );
}

function CompareView({ result, labels }: { result: CompareResult; labels: readonly string[] }) {
  const pse = result.promotionSuppression;
  return (
    <div class="compare" data-testid="compare-result">
      <div class="details">
        <ComparedFigure title="Original" image={result.clean} labels={labels} />
        <ComparedFigure title="Suspect" image={result.suspect} labels={labels} />
        {result.perturbation && (
          <figure data-testid="perturbation">
            <Png base64={result.perturbation.image} alt="The perturbation, amplified around mid-grey" />
            <figcaption>
              Perturbation ×{fixed(result.perturbation.amplification, 1)}: L∞ {fixed(result.perturbation.linf, 4)}, L2{' '}
              {fixed(result.perturbation.l2, 3)}
            </figcaption>
          </figure>
        )}
        {result.perturbationSpectrum?.logMagnitudePng && (
          <figure data-testid="perturbation-spectrum">
            <Png
              base64={result.perturbationSpectrum.logMagnitudePng}
              natural
              alt="The perturbation's spectrum with the sieve's cut-off ring"
            />
            <figcaption>
              Its spectrum: {fixed((result.perturbationSpectrum.highFrequencyShare ?? NaN) * 100, 1)} % above the
              cut-off
            </figcaption>
          </figure>
        )}
      </div>
      <h3>Promotion–suppression</h3>
      {pse ? (
        <p data-testid="pse">
          <strong class="pse-type">{pse.type}</strong>: the perturbation {PSE_MEANING[pse.type] ?? ''} —{' '}
          {labels[pse.originClass] ?? `class ${pse.originClass}`} fell by {fixed(pse.drop, 2)},{' '}
          {labels[pse.targetClass] ?? `class ${pse.targetClass}`} rose by {fixed(pse.rise, 2)} (logits).
        </p>
      ) : (
        <p class="muted">Both images get the same prediction: there is no class pushed towards.</p>
      )}
    </div>
  );
}

function ComparedFigure({ title, image, labels }: { title: string; image: ComparedImage; labels: readonly string[] }) {
  if (image.error) {
    return (
      <figure>
        <p class="error-text">
          {image.error.code}: {image.error.message}
        </p>
        <figcaption>{title}</figcaption>
      </figure>
    );
  }
  return (
    <figure>
      {image.cam && <Png base64={image.cam.overlay} alt={`${title}: Grad-CAM for ${image.cam.label}`} />}
      <figcaption>
        {title}: <PredictionText prediction={image.prediction} />
      </figcaption>
      {image.trajectory && (
        <TrajectoryChart
          steps={image.trajectory}
          labels={labels}
          highlight={image.prediction?.classIndex}
          title={`${title}'s trajectory`}
        />
      )}
    </figure>
  );
}
