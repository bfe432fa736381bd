/**
 * The Kubernetes manifests (src/deploy/): the committed deploy/kubernetes/*.yaml are what the
 * renderer makes; every document validates against the Kubernetes 1.27 JSON schemas that
 * kubernetes-models ships (ajv; nothing downloaded); and the pieces fit together — selectors, probe
 * paths, autoscaler targets, the drain's time, the external services' Secret, the GPU variant.
 */
import * as fs from 'fs';
import * as path from 'path';
import { Deployment } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { Service, ServiceAccount } from 'kubernetes-models/v1';
import { parseAllDocuments } from 'yaml';
import { DEFAULT_VALUES, DeployValues, GPU_VALUES } from '../../src/deploy/manifests';
import { merged, renderYaml } from '../../src/deploy/render';

const DIR = path.join(__dirname, '..', '..', 'deploy', 'kubernetes');

/** The model class of each kind the renderer makes: validate() checks an object against its schema. */
const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  'apps/v1 Deployment': Deployment,
  'autoscaling/v2 HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'policy/v1 PodDisruptionBudget': PodDisruptionBudget,
  'v1 Service': Service,
  'v1 ServiceAccount': ServiceAccount,
};

interface Doc {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
  spec?: Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
}

function parse(text: string): Doc[] {
  return parseAllDocuments(text).map((d) => d.toJS() as Doc);
}

function validate(docs: readonly Doc[]): void {
  for (const d of docs) {
    const Model = MODELS[`${d.apiVersion} ${d.kind}`];
    if (!Model) throw new Error(`no schema for ${d.apiVersion} ${d.kind}`);
    new Model(d as never).validate();
  }
}

const byKind = (docs: readonly Doc[], kind: string) => docs.filter((d) => d.kind === kind);

describe.each([
  ['advsieve.yaml', DEFAULT_VALUES],
  ['advsieve-gpu.yaml', GPU_VALUES],
])('%s', (file, values) => {
  const committed = fs.readFileSync(path.join(DIR, file), 'utf8');
  const docs = parse(committed);

  test('is what `npm run deploy:render` makes of its values (re-render after changing src/deploy/)', () => {
    expect(committed).toBe(renderYaml(values));
  });

  test('every document validates against the Kubernetes schemas', () => {
    expect(docs.map((d) => d.kind).sort()).toEqual(
      [
        'Deployment',
        'Deployment',
        'HorizontalPodAutoscaler',
        'HorizontalPodAutoscaler',
        'PodDisruptionBudget',
        'Service',
        'ServiceAccount',
      ].sort(),
    );
    expect(() => validate(docs)).not.toThrow();
  });

  test('the pieces fit: selectors, probes, drain time, autoscaler targets, external services, GPUs', () => {
    const [api, worker] = ['advsieve-api', 'advsieve-worker'].map((n) =>
      byKind(docs, 'Deployment').find((d) => d.metadata.name === n)!,
    );
    const podLabels = api.spec!.template.metadata.labels as Record<string, string>;
    for (const selector of [
      byKind(docs, 'Service')[0].spec!.selector,
      byKind(docs, 'PodDisruptionBudget')[0].spec!.selector.matchLabels,
    ])
      expect(podLabels).toMatchObject(selector as Record<string, string>);
    expect(worker.spec!.template.metadata.labels).not.toMatchObject(
      byKind(docs, 'Service')[0].spec!.selector as object,
    );

    const c = api.spec!.template.spec.containers[0];
    expect([c.readinessProbe.httpGet.path, c.livenessProbe.httpGet.path]).toEqual(['/health/ready', '/health/live']);
    const env = Object.fromEntries(
      (c.env as Array<{ name: string; value?: string; valueFrom?: unknown }>).map((e) => [e.name, e]),
    );
    const shutdownMs = Number(env.ADVSIEVE_SHUTDOWN_TIMEOUT_MS.value);
    const preStop = Number(c.lifecycle.preStop.exec.command[1]);
    expect(api.spec!.template.spec.terminationGracePeriodSeconds).toBeGreaterThan(preStop + shutdownMs / 1000);
    for (const name of ['REDIS_URL', 'DATABASE_URL'])
      expect(env[name].valueFrom).toEqual({
        secretKeyRef: { name: 'advsieve-services', key: expect.any(String) as string },
      });
    expect(worker.spec!.template.spec.containers[0].args).toEqual(['worker']);

    const targets = byKind(docs, 'HorizontalPodAutoscaler').map((h) => [
      h.spec!.scaleTargetRef.name,
      h.spec!.metrics.map((m: { type: string }) => m.type),
    ]);
    expect(targets).toEqual([
      ['advsieve-api', ['Resource']],
      ['advsieve-worker', ['Resource', 'External']],
    ]);

    const gpus = [api, worker].map(
      (d) => d.spec!.template.spec.containers[0].resources.limits['nvidia.com/gpu'] as string | undefined,
    );
    expect(gpus).toEqual(values.gpu.enabled ? ['1', '1'] : [undefined, undefined]);
    // A GPU pod runs one engine worker (one GPU context); a CPU pod one per requested core.
    const workers = api.spec!.template.spec.containers[0].env.find(
      (e: { name: string }) => e.name === 'ADVSIEVE_WORKERS',
    ) as { value: string };
    expect(workers.value).toBe(values.gpu.enabled ? '1' : '2');
  });
});

test('the validator refuses what Kubernetes would: a bad quantity, a port that is not a number', () => {
  const bad = (over: object) => parse(renderYaml(merged<DeployValues>(DEFAULT_VALUES, over)));
  expect(() => validate(bad({ api: { requests: { cpu: 'two cores' } } }))).toThrow(/quantity/);
  const docs = parse(renderYaml(DEFAULT_VALUES));
  byKind(docs, 'Service')[0].spec!.ports[0].port = 'eighty';
  expect(() => validate(docs)).toThrow(/port/);
});

test('values merge key by key: the worker can be left out, and a value file changes only what it names', () => {
  const noWorker = parse(renderYaml(merged<DeployValues>(DEFAULT_VALUES, { worker: { enabled: false } })));
  expect(noWorker.map((d) => d.metadata.name)).not.toContain('advsieve-worker');
  const more = merged<DeployValues>(DEFAULT_VALUES, { api: { replicas: 7 } });
  expect([more.api.replicas, more.api.workers, more.worker.enabled]).toEqual([7, DEFAULT_VALUES.api.workers, true]);
});
