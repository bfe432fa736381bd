/**
 * `npm run deploy:render [-- --gpu] [-- --values FILE.json]`: advsieve's Kubernetes manifests
 * (src/deploy/manifests.ts) as one multi-document YAML on stdout. FILE.json holds the values to
 * change, nested as DEFAULT_VALUES is; everything else keeps its default. The committed files in
 * deploy/kubernetes/ are this command's output with the defaults and with --gpu.
 */
import * as fs from 'fs';
import { stringify } from 'yaml';
import { DEFAULT_VALUES, DeployValues, GPU_VALUES, manifests } from './manifests';

/** `over` laid on `base`: objects merge key by key, anything else replaces. */
export function merged<T>(base: T, over: unknown): T {
  if (typeof base !== 'object' || base === null || Array.isArray(base)) return (over ?? base) as T;
  if (typeof over !== 'object' || over === null || Array.isArray(over)) return base;
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [k, v] of Object.entries(over)) out[k] = k in out ? merged(out[k], v) : v;
  return out as T;
}

export function renderYaml(values: DeployValues): string {
  const header = '# Rendered by `npm run deploy:render` (src/deploy/manifests.ts): edit the values, not this file.\n';
  return (
    header +
    manifests(values)
      .map((m) => `---\n${stringify(m, { lineWidth: 0 })}`)
      .join('')
  );
}

if (require.main === module) {
  const args = process.argv.slice(2);
  const valuesAt = args.indexOf('--values');
  const base = args.includes('--gpu') ? GPU_VALUES : DEFAULT_VALUES;
  const over = valuesAt >= 0 ? (JSON.parse(fs.readFileSync(args[valuesAt + 1], 'utf8')) as unknown) : {};
  process.stdout.write(renderYaml(merged(base, over)));
}
