import { Field, Float, Int, ObjectType } from 'type-graphql';

@ObjectType({
  description: 'A detector as calibrated: its threshold at the default false-positive rate and how well it did.',
})
export class DetectorSummary {
  @Field(() => String)
  name!: string;

  @Field(() => Float, { description: 'Threshold at the service’s default false-positive rate.' })
  threshold!: number;

  @Field(() => Float, { nullable: true, description: 'AUROC on calibration’s own attacks.' })
  auroc?: number;

  @Field(() => Float, {
    nullable: true,
    description: 'Detection rate on calibration’s attacks at calibration’s target FPR.',
  })
  tprAtTargetFpr?: number;
}

@ObjectType({ description: 'The calibration the thresholds come from (calibration.json).' })
export class CalibrationSummary {
  @Field(() => String)
  createdAt!: string;

  @Field(() => String, { description: 'SHA-256 of the model files the calibration belongs to.' })
  modelSha256!: string;

  @Field(() => Float, { description: 'Default false-positive rate of the thresholds in this service.' })
  defaultTargetFpr!: number;

  @Field(() => String, { description: 'Layer whose features the density detector models.' })
  hiddenLayer!: string;

  @Field(() => Float, { description: 'Low-pass defense cut-off, cycles per pixel.' })
  lowPassRadius!: number;

  @Field(() => String)
  lowPassKind!: string;

  @Field(() => Float, { nullable: true, description: 'Clean hold-out accuracy without the filter.' })
  cleanAccuracy?: number;

  @Field(() => Float, { nullable: true, description: 'Clean hold-out accuracy with the filter.' })
  filteredAccuracy?: number;

  @Field(() => Int, { description: 'Clean hold-out images the thresholds are read from.' })
  thresholdImages!: number;

  @Field(() => [String], { description: 'Attacks calibration fitted the combined score on.' })
  attacks!: string[];

  @Field(() => [DetectorSummary], { description: 'Every detector, then `combined`.' })
  detectors!: DetectorSummary[];
}

@ObjectType({ description: 'How the engine batches.' })
export class Batching {
  @Field(() => Int)
  maxBatch!: number;

  @Field(() => Int)
  maxDelayMs!: number;

  @Field(() => Int)
  maxQueue!: number;

  @Field(() => Int)
  workers!: number;
}

@ObjectType({ description: 'The model behind the service.' })
export class ModelInfo {
  @Field(() => String)
  id!: string;

  @Field(() => String, { description: 'SHA-256 of model.json and the weights.' })
  sha256!: string;

  @Field(() => [String], { description: 'Class labels by class index.' })
  labels!: string[];

  @Field(() => [Int], { description: '[height, width, channels] of the model’s input; images are converted to it.' })
  inputShape!: number[];

  @Field(() => String, { description: 'Inference backend: tensorflow-gpu, webgpu, tensorflow, wasm or cpu.' })
  backend!: string;

  @Field(() => String, { nullable: true, description: 'The GPU adapter, on webgpu.' })
  adapter?: string;

  @Field(() => Boolean)
  gpu!: boolean;

  @Field(() => [String], { description: 'Layers whose activations the detectors read, input side first.' })
  layers!: string[];

  @Field(() => Float, { description: 'Floating-point operations of one forward pass, estimated from the layers.' })
  forwardFlops!: number;

  @Field(() => Int, {
    description:
      'Rate-limit tokens one image costs on this model: every field’s per-image tokens times this (1 for the bundled model).',
  })
  tokensPerImage!: number;

  @Field(() => Batching)
  batching!: Batching;

  @Field(() => CalibrationSummary)
  calibration!: CalibrationSummary;

  @Field(() => Boolean, { description: 'Whether the `attack` mutation is served.' })
  attacksEnabled!: boolean;
}

@ObjectType({ description: 'Request limits in force.' })
export class Limits {
  @Field(() => Int)
  maxFileBytes!: number;

  @Field(() => Int)
  maxFiles!: number;

  @Field(() => Int)
  maxImages!: number;

  @Field(() => Int)
  maxBodyBytes!: number;

  @Field(() => Float, { description: 'Width × height above which an image is refused (IMAGE_TOO_LARGE).' })
  maxPixels!: number;

  @Field(() => Int)
  attackMaxSteps!: number;
}

@ObjectType({ description: 'Batches of one size and how many ran.' })
export class BatchSizeCount {
  @Field(() => Int)
  size!: number;

  @Field(() => Int)
  count!: number;
}

@ObjectType({ description: 'The engine’s batch statistics since the service started: what batching did.' })
export class EngineStats {
  @Field(() => Int)
  batches!: number;

  @Field(() => Int, { description: 'Images inferred (each image of a batch once).' })
  items!: number;

  @Field(() => Int)
  failedBatches!: number;

  @Field(() => Int, { description: 'Images refused because the queue was full.' })
  rejected!: number;

  @Field(() => Int)
  queueDepth!: number;

  @Field(() => Int)
  inFlight!: number;

  @Field(() => Int, { description: 'Images dropped unrun from the queue because their request’s deadline had passed.' })
  expired!: number;

  @Field(() => Int, { description: 'Batches run a second time because their worker died under them.' })
  retriedBatches!: number;

  @Field(() => Int, { description: 'Inference workers started to replace dead ones.' })
  replacedWorkers!: number;

  @Field(() => Int, { description: 'Live tfjs tensors in the inference workers, as of each one’s last batch.' })
  workerTensors!: number;

  @Field(() => Float, { description: 'Bytes those tensors hold.' })
  workerTensorBytes!: number;

  @Field(() => [BatchSizeCount], { description: 'Batch size histogram, by size.' })
  batchSizes!: BatchSizeCount[];
}
