// `npm run build`, then `N=1000 node scripts/variants-probe.js MODEL_DIR...` (docs/variants.md):
// per model dir: clean accuracy and confidence on the first N test images, FGSM and PGD-10 (L∞ ε = 0.1)
// success on the correctly classified ones with the mean confidence of the successful adversarials;
// for a PNN, the share with p(none) ≥ 0.5 on clean, adversarial and uniform-noise images.
const R = '../';
const tf = require('@tensorflow/tfjs');
const { initBackend } = require(R + 'dist/engine/backends');
const { InferenceModel } = require(R + 'dist/engine/model');
const { loadFashionMnist } = require(R + 'dist/data/fashionMnist');
const { noneProbabilityOf } = require(R + 'dist/engine/layers/pnnHead');
const { FastGradientSignMethod } = require(R + 'dist/attacks/fgsm');
const { ProjectedGradientDescent } = require(R + 'dist/attacks/pgd');
const { modelTarget } = require(R + 'dist/attacks/target');
const N = Number(process.env.N ?? 1000);
(async () => {
  await initBackend('wasm');
  const set = loadFashionMnist('test', process.env.FASHION_MNIST_DIR ?? '/usr/share/datasets/fashion-mnist', N);
  for (const dir of process.argv.slice(2)) {
    const model = await InferenceModel.load(dir);
    const md = model.metadata;
    const logB = md.variant?.pnn?.logBackground;
    const run = async (pixels, n) => model.runBatch(pixels, n);
    const rows = (a, i) => a.subarray(i * 10, (i + 1) * 10);
    const argmax = (a) => a.indexOf(Math.max(...a));
    const clean = await run(set.pixels, N);
    const correct = [];
    let confSum = 0;
    for (let i = 0; i < N; i++) {
      const p = rows(clean.probs, i);
      confSum += Math.max(...p);
      if (argmax(p) === set.labels[i]) correct.push(i);
    }
    const noneShare = (out, n) => {
      let c = 0;
      for (let i = 0; i < n; i++) if (noneProbabilityOf(rows(out.logits, i), logB) >= 0.5) c++;
      return c / n;
    };
    const res = { model: dir.split('/').pop(), accuracy: correct.length / N, meanConfidence: confSum / N };
    if (logB !== undefined) res.noneClean = noneShare(clean, N);
    const x = tf.tensor4d(set.pixels, [N, 28, 28, 1]);
    const labels = Int32Array.from(set.labels);
    for (const [name, attack, opts] of [
      ['fgsm', new FastGradientSignMethod(), { epsilon: 0.1 }],
      ['pgd10', new ProjectedGradientDescent(), { epsilon: 0.1, steps: 10, stepSize: 0.025, seed: 1 }],
    ]) {
      const adv = await attack.run(modelTarget(model), x, labels, opts);
      const out = await run(await adv.data(), N);
      adv.dispose();
      let success = 0,
        conf = 0;
      for (const i of correct) {
        const p = rows(out.probs, i);
        if (argmax(p) !== set.labels[i]) {
          success++;
          conf += Math.max(...p);
        }
      }
      res[name + 'Success'] = success / correct.length;
      res[name + 'AdvConfidence'] = success ? conf / success : null;
      if (logB !== undefined) {
        let c = 0,
          s = 0;
        for (const i of correct) {
          const p = rows(out.probs, i);
          if (argmax(p) !== set.labels[i]) {
            s++;
            if (noneProbabilityOf(rows(out.logits, i), logB) >= 0.5) c++;
          }
        }
        res[name + 'SuccessfulToNone'] = s ? c / s : null;
      }
    }
    x.dispose();
    if (logB !== undefined) {
      let seed = 7;
      const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
      const noise = Float32Array.from({ length: 200 * 784 }, rnd);
      res.noneUniformNoise = noneShare(await run(noise, 200), 200);
    }
    console.log(JSON.stringify(res));
    model.dispose();
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
