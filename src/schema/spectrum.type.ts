import { JudgedImage } from './judged-image.type';
import { Field, Float, Int, ObjectType } from 'type-graphql';
import { ImageError } from './image-error.type';

@ObjectType({ description: 'Spectral energy in one ring of radial frequencies.' })
export class RadialBand {
  @Field(() => Float, { description: 'Lower edge of the ring, cycles per pixel.' })
  from!: number;

  @Field(() => Float, { description: 'Upper edge of the ring, cycles per pixel.' })
  to!: number;

  @Field(() => Float, { description: 'Mean power of the frequency bins in the ring.' })
  power!: number;

  @Field(() => Float, { description: 'Share of the image’s non-DC spectral energy in the ring.' })
  share!: number;
}

@ObjectType({ description: 'The power spectrum of an image (after conversion to the model’s input).' })
export class SpectrumResult extends JudgedImage {
  @Field(() => Int, { nullable: true })
  width?: number;

  @Field(() => Int, { nullable: true })
  height?: number;

  @Field(() => [RadialBand], {
    nullable: true,
    description: 'Radial energy profile, from DC outwards, channels summed.',
  })
  radial?: RadialBand[];

  @Field(() => [Float], {
    nullable: true,
    description:
      'Radial log-power profile: per ring of `radial`, the mean over its frequency bins of log10(power + 1e-10), channels averaged (ring 0 holds the DC). `compare` correlates it with a class’s mean.',
  })
  radialLogPower?: number[];

  @Field(() => Float, {
    nullable: true,
    description: 'The high-frequency energy sieve’s cut-off (from calibration), cycles per pixel.',
  })
  cutoff?: number;

  @Field(() => Float, { nullable: true, description: 'Share of non-DC energy above the cut-off (channels averaged).' })
  highFrequencyShare?: number;

  @Field(() => String, {
    nullable: true,
    description:
      'Log-magnitude spectrum, zero frequency centred, one tile per channel, the sieve’s cut-off drawn as a dashed ring: a base64 PNG.',
  })
  logMagnitudePng?: string;

  @Field(() => ImageError, { nullable: true })
  error?: ImageError;
}
