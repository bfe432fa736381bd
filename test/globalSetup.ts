/**
 * Decides once, before any test file runs, which backends the backend tests run on, and passes
 * the list to the test workers as ADVSIEVE_TEST_BACKENDS:
 * - with ADVSIEVE_BACKEND set: that backend alone (cpu stays available as the reference);
 * - otherwise wasm and cpu, plus webgpu when an adapter starts: a hardware one, or a software one
 *   (llvmpipe) when ADVSIEVE_WEBGPU_ALLOW_SOFTWARE=1. An absent adapter is reported, not hidden.
 */
import { BackendName, BACKEND_NAMES } from '../src/engine/backends';
import { registerWebGpuBackend } from '../src/engine/webgpu';

/**
 * Jest runs a lone test file in this process ("in band"), and tfjs keeps its engine and flags on
 * the global object: the test's own copy of tfjs then found the engine this copy left there, whose
 * variables are of this copy's class, and tf.variableGrads (which checks `instanceof Variable`
 * against the test's copy) refused every model trained in process. So the probe's tfjs state is
 * dropped once it has answered.
 */
function forgetTfjsGlobals(): void {
  const ns = globalThis as Record<string, unknown>;
  delete ns._tfengine;
  delete ns._tfGlobals;
}

export default async function globalSetup(): Promise<void> {
  try {
    await chooseBackends();
  } finally {
    forgetTfjsGlobals();
  }
}

async function chooseBackends(): Promise<void> {
  const forced = process.env.ADVSIEVE_BACKEND as BackendName | undefined;
  if (forced) {
    if (!BACKEND_NAMES.includes(forced))
      throw new Error(`ADVSIEVE_BACKEND=${forced} is not one of ${BACKEND_NAMES.join(', ')}`);
    process.env.ADVSIEVE_TEST_BACKENDS = forced;
    return;
  }
  const list = ['wasm', 'cpu'];
  try {
    const adapter = await registerWebGpuBackend(
      /^(1|true|yes)$/i.test(process.env.ADVSIEVE_WEBGPU_ALLOW_SOFTWARE ?? ''),
    );
    list.push('webgpu');
    process.stderr.write(`\nbackend tests: webgpu on ${adapter.description}\n`);
  } catch (err) {
    process.stderr.write(`\nbackend tests: no webgpu (${(err as Error).message})\n`);
  }
  process.env.ADVSIEVE_TEST_BACKENDS = list.join(',');
}
