import * as path from 'path';

/** The package root (holds package.json and models/), wherever the command is run from. */
export const PACKAGE_ROOT = path.resolve(__dirname, '..', '..');

/** Model directory: ADVSIEVE_MODEL_DIR, else the bundled reference model. */
export function defaultModelDir(): string {
  return process.env.ADVSIEVE_MODEL_DIR ?? path.join(PACKAGE_ROOT, 'models', 'fashion-cnn');
}
