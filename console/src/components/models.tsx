/** The served models' ids and labels (the `models` query, `screen` scope), and a picker among them. */
import { useEffect, useState } from 'preact/hooks';
import { graphql } from '../api';
import { MODEL_IDS } from '../queries';

export interface ModelLabels {
  readonly id: string;
  readonly labels: readonly string[];
}

/** The models, or [] until they come (or when the key may not ask: pages then use the default model). */
export function useModels(): readonly ModelLabels[] {
  const [models, setModels] = useState<readonly ModelLabels[]>([]);
  useEffect(() => {
    let live = true;
    graphql<{ models: ModelLabels[] }>(MODEL_IDS).then(
      (d) => live && setModels(d.models),
      () => undefined,
    );
    return () => {
      live = false;
    };
  }, []);
  return models;
}

/** A select of the models when there are several; null (the default model) otherwise. */
export function ModelSelect({
  models,
  value,
  onChange,
}: {
  models: readonly ModelLabels[];
  value: string;
  onChange: (id: string) => void;
}) {
  if (models.length < 2) return null;
  return (
    <label class="inline">
      Model{' '}
      <select value={value} onChange={(e) => onChange((e.target as HTMLSelectElement).value)}>
        {models.map((m) => (
          <option key={m.id} value={m.id}>
            {m.id}
          </option>
        ))}
      </select>
    </label>
  );
}

export function labelsOf(models: readonly ModelLabels[], id: string | null | undefined): readonly string[] {
  return (models.find((m) => m.id === id) ?? models[0])?.labels ?? [];
}
