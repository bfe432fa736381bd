import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';

export const FIXTURE_DIR = path.join(__dirname, '..', 'fixtures', 'fashion');
export const BUNDLED_MODEL_DIR = path.join(__dirname, '..', '..', 'models', 'fashion-cnn');

/** The committed official-test-set images: file path → true class index. */
export function fixtureLabels(): Array<{ file: string; label: number }> {
  const labels = JSON.parse(fs.readFileSync(path.join(FIXTURE_DIR, 'labels.json'), 'utf8')) as Record<string, number>;
  return Object.entries(labels).map(([f, label]) => ({ file: path.join(FIXTURE_DIR, f), label }));
}

/** Fixture pixels in [0, 1] (they are 28×28 8-bit grey PNGs). */
export async function fixturePixels(file: string): Promise<Float32Array> {
  const { data } = await sharp(file).greyscale().raw().toBuffer({ resolveWithObject: true });
  return Float32Array.from(data, (v) => v / 255);
}
