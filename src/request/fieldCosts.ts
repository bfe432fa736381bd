/**
 * What each root field costs, in rate-limit tokens per image: its real work, not its image count.
 * One token is one `screen`d image (the reference); the others were measured against it on the
 * development machine (2 shared cores, wasm engine, one worker; docs/api.md, "What a request
 * costs"):
 *   screen      ≈ 9 ms per image (64 images: 185 ms)                  → 1
 *   classify    ≈ 3.4 ms per image, the same engine pass               → 1
 *   trajectory  ≈ 26 ms for one image vs classify's 19 ms              → 2
 *   spectrum    DFT and PNG plot: 12.7 ms median, 20.9 ms p90 per image,
 *               on the analysis worker (node micro-benchmark of spectrumOf) → 3
 *   defend      a second engine pass, DFTs at another radius and a PNG per image:
 *               ≈ 22 ms per image (64 images: 450 ms)                  → 3
 *   attack      a forward and a backward pass per step                 → 1 + 2 × steps
 * The rate limiter takes these per image when a field reads its images (src/server/requestImages.ts),
 * and the gateway's work limit adds them up over a request's fields and operations before anything
 * runs (src/gateway/queryLimits.ts): 128 aliased `spectrum` fields cost 384, not 128, and are
 * refused as QUERY_TOO_COSTLY before one is read.
 */
export const TOKENS_PER_IMAGE = {
  screen: 1,
  classify: 1,
  trajectory: 2,
  spectrum: 3,
  defend: 3,
  /** Per map: a forward pass, a backward pass from the logits to the layer, an overlay PNG. */
  explain: 3,
  /** Per image of the pair: a forward pass, a Grad-CAM map, and (shared) the perturbation's spectrum and PNGs. */
  compare: 5,
  /**
   * Per uploaded image: read and spooled now, screened later by a consumer (src/server/jobs.ts);
   * a directory job names no images and is charged the request alone.
   */
  submitScreeningJob: 1,
} as const;

export type CostedField = keyof typeof TOKENS_PER_IMAGE;

/** An attack's tokens: its image, and a forward and a backward pass per step (FGSM: one step). */
export function attackTokens(steps: number): number {
  return 1 + 2 * steps;
}

/**
 * An attack's tokens as the gateway counts them from the document: its least (one FGSM step). Its
 * steps are charged when it runs, once they are known, and attacks run one at a time behind a
 * bounded queue (ADVSIEVE_ATTACK_MAX_WAITING), off in production.
 */
export const ATTACK_DOCUMENT_TOKENS = attackTokens(1);
