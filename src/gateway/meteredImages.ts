/**
 * A request's images, with each image paid for from its key's token bucket when a field reads it
 * (before anything is decoded). A refusal is the request's RATE_LIMITED error.
 */
import { RequestImages } from '../server/requestImages';
import { rateLimited } from './errors';
import type { RequestMeter } from './rateLimit';

export class MeteredRequestImages extends RequestImages {
  private readonly meter: RequestMeter;

  constructor(meter: RequestMeter, ...args: ConstructorParameters<typeof RequestImages>) {
    super(...args);
    this.meter = meter;
  }

  override async read(...args: Parameters<RequestImages['read']>): ReturnType<RequestImages['read']> {
    const refusal = this.meter.take(args[0].length);
    if (refusal) throw rateLimited(refusal.retryAfterMs);
    return super.read(...args);
  }
}
