/**
 * A request's verdicts as audit records, and their recording before the response: what the API
 * layer calls once a field's results are built.
 */
import { auditUnavailable, deadlineExceeded } from '../request/errors';
import type { RequestContext } from '../request/context';
import { logger } from '../util/logger';
import type { AuditDetectorScore, AuditLog, AuditRecord } from './auditLog';
import { CommitTimeoutError } from './groupCommit';

/**
 * What the recording needs of the service (a ScreeningService is one): the log itself and the
 * settings that shape a record.
 */
export interface JudgingService {
  readonly audit: AuditLog;
  readonly config: { readonly audit: { readonly storeImages: boolean }; readonly requestTimeoutMs: number };
}

/** The model and calibration that judged the images (a ScreeningModel is one): every record names them. */
export interface JudgingModel {
  readonly metadata: { readonly id: string };
  readonly sha256: string;
  readonly calibrationSha256: string;
  readonly calibration: { readonly createdAt: string };
}

/** A request as the audit log sees it: who, which request, by when, and the service that judged. */
export interface AuditedRequest extends RequestContext {
  readonly service: JudgingService;
}

/** What the log keeps of an image besides its verdict: the file's hash, size, and bytes when kept. */
export interface AuditedImage {
  readonly sha256?: string;
  readonly bytes?: number;
  /** The file; present only when the service keeps images for the audit log. */
  readonly data?: Buffer;
}

/**
 * One image's answer as the log reads it: `screen`'s results are these as they are; the oracles
 * (classify, defend, trajectory) give a prediction without `detection`, `defend` its filtered
 * prediction as `defense`, `spectrum` neither (its row records who analysed which image).
 */
export interface AuditedResult {
  readonly index: number;
  readonly sha256?: string;
  readonly prediction?: { readonly classIndex: number; readonly label: string; readonly confidence: number };
  readonly detection?: {
    readonly adversarial: boolean;
    readonly score: number;
    readonly threshold: number;
    readonly targetFpr: number;
    readonly detectors: ReadonlyArray<AuditDetectorScore>;
  };
  readonly defense?: { readonly prediction?: AuditedResult['prediction'] };
  readonly error?: { readonly code: string };
}

/** One record per result, in order; failed images too, with their error code and null verdict fields. */
export function auditRecords(
  ctx: Pick<AuditedRequest, 'service' | 'principal' | 'requestId' | 'clientRequestId' | 'jobId'>,
  judge: JudgingModel,
  operation: AuditRecord['operation'],
  images: readonly AuditedImage[],
  results: readonly AuditedResult[],
  time = new Date(),
): AuditRecord[] {
  const storeImages = ctx.service.config.audit.storeImages;
  return results.map((r, i): AuditRecord => {
    const img = images[i] ?? {};
    return {
      time,
      requestId: ctx.requestId,
      clientRequestId: ctx.clientRequestId ?? null,
      keyId: ctx.principal?.keyId ?? null,
      operation,
      imageIndex: r.index,
      sha256: r.sha256 ?? img.sha256 ?? null,
      byteSize: img.bytes ?? null,
      ...verdictOf(r),
      errorCode: r.error?.code ?? null,
      modelId: judge.metadata.id,
      modelSha256: judge.sha256,
      calibrationSha256: judge.calibrationSha256,
      calibrationCreatedAt: judge.calibration.createdAt,
      image: storeImages ? (img.data ?? null) : null,
      jobId: ctx.jobId ?? null,
    };
  });
}

type Verdict = Pick<
  AuditRecord,
  | 'classIndex'
  | 'label'
  | 'confidence'
  | 'adversarial'
  | 'score'
  | 'threshold'
  | 'targetFpr'
  | 'detectors'
  | 'defenseClassIndex'
  | 'defenseLabel'
  | 'defenseConfidence'
>;

const NO_VERDICT: Verdict = {
  classIndex: null,
  label: null,
  confidence: null,
  adversarial: null,
  score: null,
  threshold: null,
  targetFpr: null,
  detectors: null,
  defenseClassIndex: null,
  defenseLabel: null,
  defenseConfidence: null,
};

/**
 * The prediction, the detection and the defense's prediction of a result; nulls for a failed image,
 * and for what a field does not give (an oracle's detection, spectrum's prediction).
 */
function verdictOf(r: AuditedResult): Verdict {
  const { prediction: p, detection: d } = r;
  if (!p || r.error) return NO_VERDICT;
  const defense = r.defense?.prediction;
  return {
    classIndex: p.classIndex,
    label: p.label,
    confidence: p.confidence,
    adversarial: d ? d.adversarial : null,
    score: d ? d.score : null,
    threshold: d ? d.threshold : null,
    targetFpr: d ? d.targetFpr : null,
    detectors: d
      ? d.detectors.map(({ name, score, threshold, flagged }) => ({ name, score, threshold, flagged }))
      : null,
    defenseClassIndex: defense?.classIndex ?? null,
    defenseLabel: defense?.label ?? null,
    defenseConfidence: defense?.confidence ?? null,
  };
}

/**
 * Records the verdicts and resolves once they are durable. A verdict that is not recorded is not
 * acknowledged: if the write fails, takes longer than ADVSIEVE_AUDIT_TIMEOUT_MS, or finds too much
 * waiting already, the whole request fails with AUDIT_UNAVAILABLE (503) instead of answering — a
 * client must never act on a verdict the security team cannot find afterwards. If the request's
 * deadline passes first, it fails with DEADLINE_EXCEEDED (504), like any request past its deadline.
 */
export async function recordVerdicts(
  ctx: AuditedRequest,
  judge: JudgingModel,
  operation: AuditRecord['operation'],
  images: readonly AuditedImage[],
  results: readonly AuditedResult[],
): Promise<void> {
  const log = ctx.service.audit;
  if (log.kind === 'off') return;
  try {
    await log.record(auditRecords(ctx, judge, operation, images, results), { deadline: ctx.deadline });
  } catch (err) {
    logger.error(
      { err, requestId: ctx.requestId, clientRequestId: ctx.clientRequestId, operation },
      `audit log (${log.kind}) write failed; the request is refused`,
    );
    if (err instanceof CommitTimeoutError && err.byDeadline)
      throw deadlineExceeded(ctx.service.config.requestTimeoutMs, 'recording its verdicts');
    throw auditUnavailable();
  }
}
