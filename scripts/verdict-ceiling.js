// `npm run build`, then `node scripts/verdict-ceiling.js REPORT_DIR...` (docs/figures.md, stop 31):
// how far the combined verdict could go with the detectors it has. Per row of an evaluation report's
// scores.json, the verdict's own fit (src/detectors/combined.ts: the regression, and with 8 hidden
// units) is refitted on the report's *own* positives (the misclassified adversarial images) and
// negatives (its clean images) and its AUROC read on the same images: an in-sample ceiling that no
// calibration of these detectors reaches with this fit. "2-fold" fits on every other image and scores
// the others (both ways round): the same fit out of sample.
const R = '../';
const fs = require('fs');
const path = require('path');
const { fitCombined, combinedScore } = require(R + 'dist/detectors/combined');
const { auroc } = require(R + 'dist/evaluation/metrics');

/** The verdict's inputs: every detector but the verdict itself and the Feature Squeezing baseline. */
const NOT_INPUTS = new Set(['combined', 'featureSqueezing']);

/** Fits on the images `fit(i)` picks; returns the AUROC on the images `score(i)` picks. */
function fitAndScore(names, clean, positives, hidden, fit, score) {
  const inputs = names.map((_, k) => k).filter((k) => !NOT_INPUTS.has(names[k]));
  const pick = (rows, keep) => rows.filter((_, i) => keep(i)).map((r) => inputs.map((k) => r[k]));
  const state = fitCombined(
    inputs.map((k) => names[k]),
    pick(clean, fit),
    pick(positives, fit),
    hidden ? { hidden, seed: 1 } : {},
  );
  const scored = (rows) => pick(rows, score).map((r) => combinedScore(state, r));
  return auroc(scored(positives), scored(clean));
}

for (const dir of process.argv.slice(2)) {
  const { names, clean, rows } = JSON.parse(fs.readFileSync(path.join(dir, 'scores.json'), 'utf8'));
  const combined = names.indexOf('combined');
  console.log(`${dir}: ${clean.length} clean images`);
  console.log('row | positives | deployed verdict | ceiling: regression | with 8 hidden units | regression, 2-fold');
  for (const [row, { positives }] of Object.entries(rows)) {
    if (positives.length < 4) continue;
    const all = () => true;
    const deployed = auroc(
      positives.map((r) => r[combined]),
      clean.map((r) => r[combined]),
    );
    const folds = [0, 1].map((f) =>
      fitAndScore(
        names,
        clean,
        positives,
        0,
        (i) => i % 2 === f,
        (i) => i % 2 !== f,
      ),
    );
    const cells = [
      deployed,
      fitAndScore(names, clean, positives, 0, all, all),
      fitAndScore(names, clean, positives, 8, all, all),
    ].map((a) => a.toFixed(3));
    console.log(`${row} | ${positives.length} | ${cells.join(' | ')} | ${folds.map((a) => a.toFixed(3)).join(', ')}`);
  }
}
