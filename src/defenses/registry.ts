/**
 * The defenses by name: one explicit list (for the CLI options and the GraphQL enum to be built
 * from, not listed again by hand) and one factory.
 */
import { BitDepthDefense, BitDepthOptions } from './bitDepth';
import { Defense, DefenseName } from './defense';
import { JpegDefense, JpegOptions } from './jpeg';
import { LowPassDefense, LowPassOptions } from './lowPass';
import { MedianDefense } from './median';

export const DEFENSE_NAMES: readonly DefenseName[] = ['lowpass', 'bitdepth', 'median', 'jpeg'];

/** The options each defense takes (the median has none). */
export interface DefenseOptionsByName {
  readonly lowpass: LowPassOptions;
  readonly bitdepth: BitDepthOptions;
  readonly median: Record<string, never>;
  readonly jpeg: JpegOptions;
}

/** The option names each defense accepts: a misspelt option is an error, not silently ignored. */
export const DEFENSE_OPTION_NAMES: { readonly [N in DefenseName]: readonly (keyof DefenseOptionsByName[N])[] } = {
  lowpass: ['radius', 'kind'],
  bitdepth: ['bits'],
  median: [],
  jpeg: ['quality'],
};

export function isDefenseName(name: string): name is DefenseName {
  return (DEFENSE_NAMES as readonly string[]).includes(name);
}

/** Builds a defense from its name; an unknown name is a RangeError listing the valid ones. */
export function makeDefense<N extends DefenseName>(name: N, options?: DefenseOptionsByName[N]): Defense;
export function makeDefense(name: string, options?: object): Defense;
export function makeDefense(name: string, options: object = {}): Defense {
  if (!isDefenseName(name)) {
    throw new RangeError(`unknown defense '${name}'; expected one of ${DEFENSE_NAMES.join(', ')}`);
  }
  const known = DEFENSE_OPTION_NAMES[name] as readonly string[];
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      const expected = known.length ? `one of ${known.join(', ')}` : 'no options';
      throw new RangeError(`${name} defense: unknown option '${key}'; expected ${expected}`);
    }
  }
  switch (name) {
    case 'lowpass':
      return new LowPassDefense(options as LowPassOptions);
    case 'bitdepth':
      return new BitDepthDefense(options as BitDepthOptions);
    case 'median':
      return new MedianDefense();
    case 'jpeg':
      return new JpegDefense(options as JpegOptions);
  }
}
