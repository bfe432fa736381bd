/**
 * Fashion-MNIST (Xiao, Rasul & Vollgraf 2017) from the official IDX files: 60 000 training and
 * 10 000 test images, 28×28 grey, ten classes. Debian's `dataset-fashion-mnist` installs them in
 * DEFAULT_FASHION_MNIST_DIR.
 */
import * as path from 'path';
import { IdxArray, readIdxFile } from './idx';

export const DEFAULT_FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

export const FASHION_LABELS = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
] as const;

export type Split = 'train' | 'test';

export interface ImageSet {
  /** Number of images. */
  readonly count: number;
  readonly height: number;
  readonly width: number;
  /** count × height × width pixels scaled to [0, 1], row-major (NHW, one channel). */
  readonly pixels: Float32Array;
  readonly labels: Uint8Array;
}

const FILES: Record<Split, [string, string]> = {
  train: ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte'],
  test: ['t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'],
};

export class DatasetMissingError extends Error {
  constructor(dir: string, cause: string) {
    super(
      `Fashion-MNIST not found in ${dir} (${cause}). Install Debian's package with ` +
        "'apt-get install -y dataset-fashion-mnist', or pass --data DIR with the four IDX files.",
    );
    this.name = 'DatasetMissingError';
  }
}

function read(dir: string, name: string): IdxArray {
  try {
    return readIdxFile(path.join(dir, name));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new DatasetMissingError(dir, `${name}[.gz] missing`);
    throw err;
  }
}

/** Loads one split; `limit` keeps the first N images (tests and quick runs). */
export function loadFashionMnist(split: Split, dir = DEFAULT_FASHION_MNIST_DIR, limit?: number): ImageSet {
  const [imageFile, labelFile] = FILES[split];
  const images = read(dir, imageFile);
  const labels = read(dir, labelFile);
  if (images.dims.length !== 3) throw new Error(`${imageFile}: expected 3 dimensions, found ${images.dims.length}`);
  if (labels.dims.length !== 1) throw new Error(`${labelFile}: expected 1 dimension, found ${labels.dims.length}`);
  const [n, height, width] = images.dims;
  if (labels.dims[0] !== n) throw new Error(`${imageFile} holds ${n} images but ${labelFile} ${labels.dims[0]} labels`);
  const count = limit === undefined ? n : Math.min(n, limit);
  const size = height * width;
  const pixels = new Float32Array(count * size);
  for (let i = 0; i < pixels.length; i++) pixels[i] = images.data[i] / 255;
  const labelData = labels.data.slice(0, count);
  const bad = labelData.findIndex((l) => l >= FASHION_LABELS.length);
  if (bad >= 0) throw new Error(`${labelFile}: label ${labelData[bad]} at index ${bad} is out of range 0-9`);
  return { count, height, width, pixels, labels: labelData };
}
