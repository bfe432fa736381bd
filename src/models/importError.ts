/**
 * Why `advsieve import` refused a model: a code a script can branch on and a message that names
 * the file and what is wrong with it.
 */
export type ModelImportErrorCode =
  /** model.json is not a tfjs layers or graph model, or a weight file has another size than declared. */
  | 'MODEL_FORMAT'
  /** A weight file named in model.json's weightsManifest is not there. */
  | 'MODEL_WEIGHTS_MISSING'
  /** Ops the backend has no kernel for (all of them listed), or a dry run that failed on one. */
  | 'MODEL_UNSUPPORTED_OPS'
  /** Not one image input [N, H, W, 1 or 3] (or H, W unknown and no --input-size). */
  | 'MODEL_NOT_IMAGE_INPUT'
  /** Its estimated memory is over --max-memory (ADVSIEVE_MAX_MODEL_BYTES). */
  | 'MODEL_TOO_LARGE'
  /** No final softmax to take the logits from, and no --logits. */
  | 'MODEL_NO_LOGITS'
  /** --labels does not match the model's classes, or --activation-layers / --logits names nothing. */
  | 'MODEL_METADATA'
  /** models/<id>/ exists already. */
  | 'MODEL_EXISTS';

export class ModelImportError extends Error {
  constructor(
    readonly code: ModelImportErrorCode,
    readonly file: string,
    reason: string,
  ) {
    super(`${file}: ${reason}`);
    this.name = 'ModelImportError';
  }
}
