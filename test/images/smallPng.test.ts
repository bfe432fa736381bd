/**
 * The one decode the service does on its own thread: a small plain model-sized PNG. It must give
 * what the full policy gives, and take nothing whose work is not bounded by a small size and a
 * handful of chunks (those go to a decode process).
 */
import * as fs from 'fs';
import sharp from 'sharp';
import {
  decodeImage,
  decodeSmallPlainPng,
  MAIN_THREAD_PNG_BYTES,
  MAIN_THREAD_PNG_CHUNKS,
} from '../../src/images/decode';
import { pngChunk, pngChunks, pngWithManyIdat } from '../api/hostileFiles';
import { fixtureLabels } from '../helpers/fixtures';

const GREY: [number, number, number] = [28, 28, 1];
const fixture = fs.readFileSync(fixtureLabels()[0].file);

test('a fixture decodes on the thread exactly as the full policy decodes it', async () => {
  const small = decodeSmallPlainPng(fixture, GREY);
  expect(small).toBeDefined();
  const full = await decodeImage(fixture, GREY, { fastPath: false });
  expect(small!.views.map((v) => v.name)).toEqual(['image']);
  expect(Array.from(small!.views[0].pixels)).toEqual(Array.from(full.pixels));
});

test(`more than ${MAIN_THREAD_PNG_CHUNKS} chunks: left to a decode process`, () => {
  const pieces = MAIN_THREAD_PNG_CHUNKS; // with IHDR and IEND, over the limit
  const split = pngWithManyIdat(fixture, pieces);
  expect(pngChunks(split).length).toBeGreaterThan(MAIN_THREAD_PNG_CHUNKS);
  expect(split.length).toBeLessThan(MAIN_THREAD_PNG_BYTES);
  expect(decodeSmallPlainPng(split, GREY)).toBeUndefined();
  // A few chunks more than one IDAT, within the limit: still here.
  expect(decodeSmallPlainPng(pngWithManyIdat(fixture, 4), GREY)).toBeDefined();
});

test('over 64 KiB, with alpha, or another size than the model’s: left to a decode process', async () => {
  // A valid file whose size is a text chunk (plain: the policy ignores it): small, it stays here.
  const withText = (bytes: number) =>
    Buffer.concat([fixture.subarray(0, -12), pngChunk('tEXt', Buffer.alloc(bytes, 0x61)), fixture.subarray(-12)]);
  expect(decodeSmallPlainPng(withText(1000), GREY)).toBeDefined();
  expect(decodeSmallPlainPng(withText(MAIN_THREAD_PNG_BYTES), GREY)).toBeUndefined();
  const alpha = await sharp(fixture).ensureAlpha().png().toBuffer();
  expect(decodeSmallPlainPng(alpha, GREY)).toBeUndefined();
  const larger = await sharp(fixture).resize(56, 56).png().toBuffer();
  expect(decodeSmallPlainPng(larger, GREY)).toBeUndefined();
});
