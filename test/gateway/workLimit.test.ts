/** Item 5 of issue 11: a document's work is its fields' real cost, aliases and fragments included. */
import { parse } from 'graphql';
import { DEFAULT_QUERY_LIMITS, documentWork, QueryLimiter } from '../../src/gateway/queryLimits';
import { TOKENS_PER_IMAGE } from '../../src/request/fieldCosts';
import { buildApiSchema } from '../../src/schema';

const work = (doc: string) => documentWork(parse(doc));
const spectra = (n: number) =>
  `query($i: ImageInput!) { ${Array.from({ length: n }, (_, k) => `s${k}: spectrum(image: $i) { width }`).join(' ')} }`;

test('per field, per alias, per literal image; fragments too; the costliest operation of a document', () => {
  expect(work('{ model { id } }')).toBe(0);
  expect(work(spectra(16))).toBe(16 * TOKENS_PER_IMAGE.spectrum);
  expect(work('mutation($i: [ImageInput!]!) { screen(images: $i) { index } }')).toBe(1);
  expect(work('mutation { defend(images: [{base64: "a"}, {base64: "b"}]) { index } }')).toBe(
    2 * TOKENS_PER_IMAGE.defend,
  );
  expect(
    work(
      'query($i: ImageInput!) { ...F ... on Query { t: trajectory(image: $i) { sha256 } } } fragment F on Query { spectrum(image: $i) { width } }',
    ),
  ).toBe(TOKENS_PER_IMAGE.spectrum + TOKENS_PER_IMAGE.trajectory);
  expect(work(`${spectra(2)} query B($i: ImageInput!) { spectrum(image: $i) { width } }`)).toBe(
    2 * TOKENS_PER_IMAGE.spectrum,
  );
  // A cyclic fragment is counted once (validation refuses it).
  expect(work('query { ...A } fragment A on Query { ...A model { id } }')).toBe(0);
});

test('the limiter refuses a document over the work limit, and a batch whose work adds up over it', async () => {
  const limiter = new QueryLimiter(await buildApiSchema(), DEFAULT_QUERY_LIMITS, false);
  expect(limiter.check(spectra(16))).toEqual([]);
  const one = limiter.checkWithWork(spectra(16));
  expect(one).toEqual({ errors: [], work: 48 });
  expect(limiter.workError(8 * one.work)?.extensions).toMatchObject({
    code: 'QUERY_TOO_COSTLY',
    limit: 'maxWork',
    limitValue: 64,
  });
  expect(limiter.workError(64)).toBeUndefined();
  const tight = new QueryLimiter(await buildApiSchema(), { ...DEFAULT_QUERY_LIMITS, maxWork: 10 }, false);
  expect(tight.check(spectra(4)).map((e) => e.extensions.code)).toEqual(['QUERY_TOO_COSTLY']);
});
