import sharp from 'sharp';
import * as vega from 'vega';
import { fftShift, heatmapGrid, linePlot, rocPlot } from '../../src/report/plots';

type Rgb = readonly [number, number, number];

async function decode(png: Buffer) {
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const { format } = await sharp(png).metadata();
  return { format, width: info.width, height: info.height, data };
}

/** Pixels within `tolerance` of `rgb` in every channel. */
function countColour(data: Buffer, [r, g, b]: Rgb, tolerance = 0): number {
  let n = 0;
  for (let i = 0; i < data.length; i += 3) {
    if (
      Math.abs(data[i] - r) <= tolerance &&
      Math.abs(data[i + 1] - g) <= tolerance &&
      Math.abs(data[i + 2] - b) <= tolerance
    )
      n++;
  }
  return n;
}

const hex = (h: string): Rgb => [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16)) as unknown as Rgb;
const palette: string[] = vega.scheme('tableau10');
const curve = (name: string, bend: number) => {
  const fpr = Array.from({ length: 50 }, (_, i) => i / 49);
  return { name, fpr, tpr: fpr.map((f) => f ** bend) };
};

test('rocPlot draws a PNG with each curve in its own colour, for one and for eight detectors', async () => {
  for (const count of [1, 8]) {
    const curves = Array.from({ length: count }, (_, i) => curve(`detector ${i}`, 1 / (i + 2)));
    const png = await decode(await rocPlot('ROC on FGSM', curves));
    expect(png.format).toBe('png');
    expect(png.width).toBeGreaterThan(600);
    expect(png.width).toBeLessThan(1600);
    expect(png.height).toBeGreaterThan(600);
    expect(png.height).toBeLessThan(1000);
    // The last series' colour appears (line and legend), so every series was drawn.
    expect(countColour(png.data, hex(palette[count - 1]), 8)).toBeGreaterThan(200);
  }
});

test('linePlot draws categorical x in the given order, one to eight series, with gaps for NaN', async () => {
  const layers = ['conv1', 'pool1', 'conv2', 'pool2', 'dense', 'logits'];
  for (const count of [1, 8]) {
    const series = Array.from({ length: count }, (_, s) => ({
      name: `attack ${s}`,
      x: layers,
      y: layers.map((_, l) => (l === 2 && s === 0 ? NaN : l * (s + 1))),
    }));
    const png = await decode(await linePlot('Distance per layer', 'layer', 'distance', series));
    expect(png.format).toBe('png');
    expect(png.width).toBeGreaterThan(700);
    expect(png.height).toBeGreaterThan(500);
    expect(countColour(png.data, hex(palette[count - 1]), 8)).toBeGreaterThan(100);
  }
  const single = await decode(await linePlot('One layer', 'layer', 'distance', [{ name: 'a', x: ['only'], y: [1] }]));
  expect(
    (await sharp(single.data, { raw: { width: single.width, height: single.height, channels: 3 } }).stats()).isOpaque,
  ).toBe(true);
});

test('plots reject malformed series, naming the bad one', async () => {
  await expect(rocPlot('t', [])).rejects.toThrow(/at least one series/);
  await expect(rocPlot('t', [{ name: 'hf', fpr: [0, 1], tpr: [0] }])).rejects.toThrow(/"hf".*got 2 and 1/);
  await expect(linePlot('t', 'x', 'y', [curveAsLine('a'), curveAsLine('a')])).rejects.toThrow(/"a" repeats/);
});

function curveAsLine(name: string) {
  return { name, x: ['a', 'b'], y: [1, 2] };
}

test('text is drawn with a real font, not missing-glyph boxes (needs fonts-dejavu-core on Debian)', async () => {
  // Without any font every glyph renders as the same box, so two titles of one length look alike.
  const curves = [curve('d', 0.5)];
  const a = await rocPlot('IIII', curves);
  const b = await rocPlot('WWWW', curves);
  expect(a.equals(b)).toBe(false);
});

test('fftShift moves the zero frequency to the centre, as numpy.fft.fftshift does', () => {
  // numpy.fft.fftshift(numpy.arange(12).reshape(3, 4)) → [[10, 11, 8, 9], [2, 3, 0, 1], [6, 7, 4, 5]]
  expect(
    Array.from(
      fftShift(
        Array.from({ length: 12 }, (_, i) => i),
        3,
        4,
      ),
    ),
  ).toEqual([10, 11, 8, 9, 2, 3, 0, 1, 6, 7, 4, 5]);
  expect(Array.from(fftShift([0, 1, 2, 3, 4], 1, 5))).toEqual([3, 4, 0, 1, 2]);
  expect(() => fftShift([1, 2, 3], 2, 2)).toThrow(/2×2 = 4 values, got 3/);
});

describe('heatmapGrid', () => {
  const viridis: (t: number) => string = vega.scheme('viridis');
  const rgbOf = (css: string): Rgb => css.match(/\d+/g)!.map(Number) as unknown as Rgb;
  const delta = (size: number, at: number) => Float32Array.from({ length: size * size }, (_, i) => (i === at ? 1 : 0));

  test('draws labelled tiles in a grid, with constant and non-finite tiles in fixed colours', async () => {
    const tiles = [
      { label: 'ramp', width: 28, height: 28, values: Float32Array.from({ length: 784 }, (_, i) => i) },
      { label: 'constant', width: 28, height: 28, values: new Float32Array(784).fill(3) },
      { label: 'all NaN', width: 28, height: 28, values: new Float32Array(784).fill(NaN) },
      { label: 'zeros, log', width: 28, height: 28, values: new Float32Array(784) },
    ];
    const png = await decode(await heatmapGrid('Spectra', tiles, { columns: 2, log: true }));
    expect(png.format).toBe('png');
    // Two columns of 140-pixel tiles (28 × 5), two rows.
    expect(png.width).toBeGreaterThanOrEqual(2 * 140);
    expect(png.width).toBeLessThan(500);
    expect(png.height).toBeGreaterThanOrEqual(2 * 140);
    expect(png.height).toBeLessThan(600);
    // Constant tiles (3s, and 0s under log) draw the middle colour, not NaN's grey; the NaN tile is grey.
    expect(countColour(png.data, rgbOf(viridis(128 / 255)))).toBeGreaterThanOrEqual(2 * 140 * 140);
    expect(countColour(png.data, [190, 190, 190])).toBeGreaterThanOrEqual(140 * 140);
    // The ramp spans the whole scale.
    expect(countColour(png.data, rgbOf(viridis(0)))).toBeGreaterThanOrEqual(5 * 5);
    expect(countColour(png.data, rgbOf(viridis(1)))).toBeGreaterThanOrEqual(5 * 5);
  });

  test('shift draws a corner (zero-frequency) peak at the tile centre', async () => {
    // 4 × 4: fftshift sends (0, 0) to (2, 2), index 10.
    const draw = (values: Float32Array, shift: boolean) =>
      heatmapGrid('peak', [{ label: 'k', width: 4, height: 4, values }], { shift });
    const shifted = await draw(delta(4, 0), true);
    expect(shifted.equals(await draw(delta(4, 10), false))).toBe(true);
    expect(shifted.equals(await draw(delta(4, 0), false))).toBe(false);
  });

  test('ring draws the cut-off around the centre of a shifted tile: white pixels at that radius, none at the centre', async () => {
    // 28 × 28 zeros at zoom 5: the ring at 0.25 cycles/pixel is 0.25 · 28 · 5 = 35 pixels from the centre.
    const tile = { label: 'flat', width: 28, height: 28, values: new Float32Array(784) };
    const plain = await decode(await heatmapGrid('r', [tile], { shift: true }));
    const ringed = await decode(await heatmapGrid('r', [tile], { shift: true, ring: 0.25 }));
    expect([ringed.width, ringed.height]).toEqual([plain.width, plain.height]);
    const changed: Array<[number, number]> = [];
    for (let y = 0; y < plain.height; y++)
      for (let x = 0; x < plain.width; x++) {
        const i = (y * plain.width + x) * 3;
        if (ringed.data[i] !== plain.data[i] || ringed.data[i + 1] !== plain.data[i + 1]) changed.push([x, y]);
      }
    expect(changed.length).toBeGreaterThan(60);
    const cx = changed.reduce((a, [x]) => a + x, 0) / changed.length;
    const cy = changed.reduce((a, [, y]) => a + y, 0) / changed.length;
    for (const [x, y] of changed) expect(Math.abs(Math.hypot(x - cx, y - cy) - 35)).toBeLessThan(3);
  });

  test('rejects tiles whose values do not match their size, and empty grids', async () => {
    await expect(heatmapGrid('t', [{ label: 'bad', width: 3, height: 3, values: [1, 2] }])).rejects.toThrow(
      /"bad".*3×3 = 9 values, got 2/,
    );
    await expect(heatmapGrid('t', [])).rejects.toThrow(/at least one tile/);
    await expect(heatmapGrid('t', [{ label: 'a', width: 1, height: 1, values: [1] }], { columns: 0 })).rejects.toThrow(
      /columns/,
    );
  });
});
