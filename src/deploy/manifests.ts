/**
 * advsieve's Kubernetes manifests, built from a small set of values (the role a Helm chart's
 * values.yaml plays): the API Deployment with its Service, PodDisruptionBudget and CPU autoscaler;
 * the jobs worker Deployment (`advsieve worker`) with an autoscaler on CPU and on the queue's depth
 * (an External metric served by the Prometheus adapter); a GPU variant (`nvidia.com/gpu`); Redis
 * and PostgreSQL as external services whose URLs come from a Secret the operator creates.
 *
 * Why not a Helm chart: Helm is in neither the npm registry nor Debian 12, and CI may install
 * nothing else, so a chart could not be rendered (let alone validated) in CI. These are plain
 * objects typed by kubernetes-models' interfaces (the Kubernetes 1.27 API), rendered to YAML by
 * src/deploy/render.ts and validated in the tests against the JSON schemas that package ships.
 * The rendered files are committed (deploy/kubernetes/): `kubectl apply -f`, or a base for Kustomize.
 *
 * Only types are imported from kubernetes-models (a dev dependency): nothing of it is loaded here.
 */
import type { IDeployment } from 'kubernetes-models/apps/v1/Deployment';
import type { IHorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import type { IPodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import type { IService } from 'kubernetes-models/v1/Service';
import type { IServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import type { IIoK8sApiCoreV1Container } from 'kubernetes-models/v1/Container';
import type { IIoK8sApiCoreV1EnvVar } from 'kubernetes-models/v1/EnvVar';
import type { IIoK8sApiCoreV1PodSpec } from 'kubernetes-models/v1/PodSpec';
import type { IIoK8sApiCoreV1ResourceRequirements } from 'kubernetes-models/v1/ResourceRequirements';

export type Manifest = IDeployment | IService | IServiceAccount | IPodDisruptionBudget | IHorizontalPodAutoscaler;

interface Resources {
  readonly cpu: string;
  readonly memory: string;
}

export interface DeployValues {
  readonly name: string;
  readonly image: {
    readonly repository: string;
    readonly tag: string;
    readonly pullPolicy: 'IfNotPresent' | 'Always' | 'Never';
  };
  readonly api: {
    readonly replicas: number;
    /** ADVSIEVE_WORKERS: inference worker threads per pod (one per requested CPU is the measured sweet spot). */
    readonly workers: number;
    readonly requests: Resources;
    readonly limits: Resources;
    readonly autoscaling: { readonly minReplicas: number; readonly maxReplicas: number; readonly cpuPercent: number };
    /** PodDisruptionBudget: pods that stay up through a voluntary disruption (a node drain). */
    readonly minAvailable: number;
    /** ADVSIEVE_SHUTDOWN_TIMEOUT_MS in seconds: how long a SIGTERM lets requests in flight finish. */
    readonly shutdownSeconds: number;
    /** preStop pause: the pod leaves the Service's endpoints before it stops accepting. */
    readonly preStopSeconds: number;
  };
  readonly worker: {
    readonly enabled: boolean;
    readonly replicas: number;
    readonly requests: Resources;
    readonly limits: Resources;
    readonly autoscaling: {
      readonly minReplicas: number;
      readonly maxReplicas: number;
      readonly cpuPercent: number;
      /** The queue depth as the Prometheus adapter serves it (external.metrics.k8s.io), and the depth per worker aimed at. */
      readonly queueMetric: {
        readonly name: string;
        readonly selector: Record<string, string>;
        readonly perWorker: number;
      };
    };
  };
  /** The GPU variant: the CUDA image, `nvidia.com/gpu` per pod, on the GPU nodes. */
  readonly gpu: { readonly enabled: boolean; readonly perPod: number; readonly tag: string };
  /** Redis and PostgreSQL, outside the chart: their URLs in a Secret the operator creates. */
  readonly services: { readonly secretName: string; readonly redisUrlKey: string; readonly databaseUrlKey: string };
  /** The API keys file (`advsieve keys create`), from a Secret. */
  readonly apiKeys: { readonly secretName: string; readonly fileKey: string };
  /** More environment for every container (docs/api.md lists the settings). */
  readonly env: Readonly<Record<string, string>>;
}

export const DEFAULT_VALUES: DeployValues = {
  name: 'advsieve',
  image: { repository: 'advsieve', tag: 'cpu', pullPolicy: 'IfNotPresent' },
  api: {
    replicas: 3,
    workers: 2,
    requests: { cpu: '2', memory: '2Gi' },
    limits: { cpu: '2', memory: '3Gi' },
    autoscaling: { minReplicas: 3, maxReplicas: 30, cpuPercent: 70 },
    minAvailable: 2,
    shutdownSeconds: 30,
    preStopSeconds: 5,
  },
  worker: {
    enabled: true,
    replicas: 1,
    requests: { cpu: '2', memory: '2Gi' },
    limits: { cpu: '2', memory: '3Gi' },
    autoscaling: {
      minReplicas: 1,
      maxReplicas: 20,
      cpuPercent: 80,
      queueMetric: { name: 'advsieve_jobs_waiting', selector: { model: 'fashion-cnn' }, perWorker: 2000 },
    },
  },
  gpu: { enabled: false, perPod: 1, tag: 'gpu' },
  services: { secretName: 'advsieve-services', redisUrlKey: 'redis-url', databaseUrlKey: 'database-url' },
  apiKeys: { secretName: 'advsieve-api-keys', fileKey: 'keys.json' },
  env: {},
};

/**
 * The defaults with the GPU variant switched on, and one engine worker per API pod: on a GPU one
 * worker is not what limits a process, its main thread is (measured on an H200, 64 clients sending 8
 * images a request: 1 691 images/s with one GPU worker in bench:api, 1 677 with three in
 * bench:replicas' single replica, which also pays Redis charges; docs/gpu.md). More throughput per
 * GPU comes from more pods sharing it (the device plugin's time-slicing, docs/deploy.md), not from
 * more workers in a pod, each of which holds a GPU context of its own.
 */
export const GPU_VALUES: DeployValues = {
  ...DEFAULT_VALUES,
  api: { ...DEFAULT_VALUES.api, workers: 1 },
  gpu: { ...DEFAULT_VALUES.gpu, enabled: true },
};

const PORT = 4000;
const KEYS_DIR = '/etc/advsieve/keys';

function labels(v: DeployValues, component: string): Record<string, string> {
  return { 'app.kubernetes.io/name': v.name, 'app.kubernetes.io/component': component };
}

function resources(v: DeployValues, requests: Resources, limits: Resources): IIoK8sApiCoreV1ResourceRequirements {
  if (!v.gpu.enabled) return { requests: { ...requests }, limits: { ...limits } };
  const gpu = { 'nvidia.com/gpu': String(v.gpu.perPod) };
  return { requests: { ...requests, ...gpu }, limits: { ...limits, ...gpu } };
}

/** The URLs of the external services, and the settings every container shares. */
function environment(v: DeployValues): IIoK8sApiCoreV1EnvVar[] {
  const secret = (key: string) => ({ secretKeyRef: { name: v.services.secretName, key } });
  return [
    { name: 'REDIS_URL', valueFrom: secret(v.services.redisUrlKey) },
    { name: 'DATABASE_URL', valueFrom: secret(v.services.databaseUrlKey) },
    { name: 'ADVSIEVE_API_KEYS_FILE', value: `${KEYS_DIR}/${v.apiKeys.fileKey}` },
    ...Object.entries(v.env).map(([name, value]) => ({ name, value })),
  ];
}

function podSpec(v: DeployValues, container: IIoK8sApiCoreV1Container, graceSeconds: number): IIoK8sApiCoreV1PodSpec {
  return {
    serviceAccountName: v.name,
    automountServiceAccountToken: false,
    terminationGracePeriodSeconds: graceSeconds,
    // Both images' user (`node`, `advsieve`) is uid 1000; a named user cannot be checked by runAsNonRoot.
    securityContext: {
      runAsNonRoot: true,
      runAsUser: 1000,
      runAsGroup: 1000,
      seccompProfile: { type: 'RuntimeDefault' },
    },
    containers: [container],
    volumes: [
      { name: 'api-keys', secret: { secretName: v.apiKeys.secretName } },
      { name: 'tmp', emptyDir: {} },
    ],
    ...(v.gpu.enabled
      ? {
          nodeSelector: { 'nvidia.com/gpu.present': 'true' },
          tolerations: [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }],
        }
      : {}),
  };
}

function container(v: DeployValues, name: string, args: string[], requests: Resources, limits: Resources) {
  return {
    name,
    image: `${v.image.repository}:${v.gpu.enabled ? v.gpu.tag : v.image.tag}`,
    imagePullPolicy: v.image.pullPolicy,
    args,
    env: environment(v),
    resources: resources(v, requests, limits),
    securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
    volumeMounts: [
      { name: 'api-keys', mountPath: KEYS_DIR, readOnly: true },
      { name: 'tmp', mountPath: '/tmp' },
    ],
  } satisfies IIoK8sApiCoreV1Container;
}

/**
 * The API: readiness on /health/ready (starting, saturated, stopping: out of the Service), liveness
 * on /health/live (the process answers), a startup probe while the model loads. On SIGTERM the
 * service turns unready, lets requests in flight finish (ADVSIEVE_SHUTDOWN_TIMEOUT_MS), then its
 * queued batches, then exits; the preStop pause lets the endpoints' removal reach every proxy
 * first, and the grace period covers both with time to spare.
 */
function apiDeployment(v: DeployValues): IDeployment {
  const a = v.api;
  const c = container(v, 'api', ['serve'], a.requests, a.limits);
  const probe = (path: string, periodSeconds: number, failureThreshold: number) => ({
    httpGet: { path, port: 'http' },
    periodSeconds,
    timeoutSeconds: 3,
    failureThreshold,
  });
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: `${v.name}-api`, labels: labels(v, 'api') },
    spec: {
      replicas: a.replicas,
      selector: { matchLabels: labels(v, 'api') },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      template: {
        metadata: {
          labels: labels(v, 'api'),
          annotations: {
            'prometheus.io/scrape': 'true',
            'prometheus.io/port': String(PORT),
            'prometheus.io/path': '/metrics',
          },
        },
        spec: podSpec(
          v,
          {
            ...c,
            env: [
              ...c.env,
              { name: 'PORT', value: String(PORT) },
              { name: 'ADVSIEVE_WORKERS', value: String(a.workers) },
              { name: 'ADVSIEVE_SHUTDOWN_TIMEOUT_MS', value: String(a.shutdownSeconds * 1000) },
            ],
            ports: [{ name: 'http', containerPort: PORT }],
            startupProbe: probe('/health/live', 2, 60),
            livenessProbe: probe('/health/live', 10, 3),
            readinessProbe: probe('/health/ready', 2, 2),
            lifecycle: { preStop: { exec: { command: ['sleep', String(a.preStopSeconds)] } } },
          },
          a.preStopSeconds + a.shutdownSeconds + 15,
        ),
      },
    },
  };
}

/** The jobs consumer: no HTTP; SIGTERM lets its batch finish, and a killed one's batch goes to another (BullMQ's stalled jobs). */
function workerDeployment(v: DeployValues): IDeployment {
  const w = v.worker;
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: `${v.name}-worker`, labels: labels(v, 'worker') },
    spec: {
      replicas: w.replicas,
      selector: { matchLabels: labels(v, 'worker') },
      template: {
        metadata: { labels: labels(v, 'worker') },
        spec: podSpec(v, container(v, 'worker', ['worker'], w.requests, w.limits), 60),
      },
    },
  };
}

function cpuMetric(percent: number) {
  return { type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: percent } } };
}

function autoscaler(
  v: DeployValues,
  component: string,
  range: { readonly minReplicas: number; readonly maxReplicas: number },
  metrics: NonNullable<IHorizontalPodAutoscaler['spec']>['metrics'],
): IHorizontalPodAutoscaler {
  return {
    apiVersion: 'autoscaling/v2',
    kind: 'HorizontalPodAutoscaler',
    metadata: { name: `${v.name}-${component}`, labels: labels(v, component) },
    spec: {
      scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: `${v.name}-${component}` },
      minReplicas: range.minReplicas,
      maxReplicas: range.maxReplicas,
      metrics,
      // Scale down slowly: a replica's model load costs seconds, and bursts come back.
      behavior: { scaleDown: { stabilizationWindowSeconds: 300 } },
    },
  };
}

/** Every manifest, in the order `kubectl apply` wants them (the account before the pods that use it). */
export function manifests(v: DeployValues = DEFAULT_VALUES): Manifest[] {
  const q = v.worker.autoscaling.queueMetric;
  const out: Manifest[] = [
    {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: v.name, labels: labels(v, 'api') },
      automountServiceAccountToken: false,
    },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: v.name, labels: labels(v, 'api') },
      spec: { selector: labels(v, 'api'), ports: [{ name: 'http', port: 80, targetPort: 'http' }] },
    },
    apiDeployment(v),
    {
      apiVersion: 'policy/v1',
      kind: 'PodDisruptionBudget',
      metadata: { name: `${v.name}-api`, labels: labels(v, 'api') },
      spec: { minAvailable: v.api.minAvailable, selector: { matchLabels: labels(v, 'api') } },
    },
    autoscaler(v, 'api', v.api.autoscaling, [cpuMetric(v.api.autoscaling.cpuPercent)]),
  ];
  if (v.worker.enabled) {
    out.push(
      workerDeployment(v),
      autoscaler(v, 'worker', v.worker.autoscaling, [
        cpuMetric(v.worker.autoscaling.cpuPercent),
        {
          type: 'External',
          external: {
            metric: { name: q.name, selector: { matchLabels: { ...q.selector } } },
            target: { type: 'AverageValue', averageValue: String(q.perWorker) },
          },
        },
      ]),
    );
  }
  return out;
}
