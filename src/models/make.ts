/**
 * `npm run models`: writes the model directories that are made from installed packages rather
 * than committed (models/nsfw-mobilenetv2/ from nsfwjs). Offline: it reads node_modules only.
 */
import * as path from 'path';
import { checkModelFiles } from '../engine/modelStore';
import { extractNsfwMobileNetV2, NSFW_MODEL_ID } from './nsfwMobileNetV2';

const root = path.resolve(__dirname, '..', '..');
const dir = path.join(root, 'models', NSFW_MODEL_ID);
const { files, weightBytes } = extractNsfwMobileNetV2(dir);
const { sha256 } = checkModelFiles(dir); // what the service will check at start
process.stdout.write(
  `wrote ${path.relative(process.cwd(), dir)}/: ${files.join(', ')} (${(weightBytes / 2 ** 20).toFixed(1)} MiB of weights, model sha256 ${sha256.slice(0, 16)}…)\n`,
);
