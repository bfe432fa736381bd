/**
 * PNG plots for the evaluation report: ROC curves, per-layer line plots and grids of spectrum heat maps.
 *
 * Why Vega 5: it is a declarative grammar kept by the UW Interactive Data Lab, and in Node its
 * headless view (`renderer: 'none'`) writes SVG in pure JavaScript — no `canvas`, no native binary
 * fetched at install — with axes, legends and layout from a small spec instead of hand-placed
 * coordinates. Vega 6 and Vega-Lite 6 are ESM-only, which neither our CommonJS output nor ts-jest
 * loads, so we pin the 5 line (still patched); Vega-Lite would only shorten the two specs below and
 * brings a second copy of vega-expression, so the specs are plain Vega. The SVG becomes PNG through
 * sharp's bundled librsvg, which already ships with the engine. Text is drawn with the system's
 * fonts through fontconfig: a machine without any (a bare Debian) draws boxes; `fonts-dejavu-core`
 * is enough.
 *
 * The heat maps skip Vega: a spectrum tile is an image already, so its pixels are written straight
 * into a raw RGB buffer (upscaled by an integer factor, nearest neighbour, so frequency bins stay
 * sharp squares) and only the labels are SVG, composited on top by sharp.
 */
import sharp from 'sharp';
import * as vega from 'vega';

/** SVG user units to PNG pixels: 2 keeps text crisp on high-density screens. */
const SCALE = 2;
/** Series colours (Tableau 10), distinguishable for up to ten series. */
const PALETTE: readonly string[] = vega.scheme('tableau10');
const FONT = 'DejaVu Sans, sans-serif';
/** Vega's look, shared by every chart: white background, light grid, no heavy frame. */
const CONFIG: vega.Config = {
  background: 'white',
  axis: { gridColor: '#e6e6e6', domainColor: '#888', tickColor: '#888', labelFont: FONT, titleFont: FONT },
  legend: { labelFont: FONT, titleFont: FONT, labelLimit: 320 },
  title: { font: FONT, fontSize: 14, anchor: 'start', offset: 8 },
};

export type RocCurveSeries = {
  readonly name: string;
  readonly fpr: readonly number[];
  readonly tpr: readonly number[];
};
export type LineSeries = { readonly name: string; readonly x: readonly string[]; readonly y: readonly number[] };
export type HeatmapTile = {
  readonly label: string;
  readonly width: number;
  readonly height: number;
  /** Row-major, `height` rows of `width`. */
  readonly values: ArrayLike<number>;
};
export type HeatmapGridOptions = {
  /** Tiles per row; default ⌈√tiles⌉. */
  readonly columns?: number;
  /** Draw log10(v + 1e-12), for spectra whose power spans decades. */
  readonly log?: boolean;
  /** Move the zero frequency from the corner to the centre (fftshift) before drawing. */
  readonly shift?: boolean;
  /**
   * With `shift`: a dashed ring at this frequency, in cycles per pixel, around the centre of every
   * tile (an ellipse on a non-square one): the high-frequency sieve's cut-off, say.
   */
  readonly ring?: number;
};

/** ROC curves of several detectors on one attack, over the chance diagonal. */
export async function rocPlot(title: string, curves: readonly RocCurveSeries[]): Promise<Buffer> {
  checkSeries(
    'ROC curve',
    curves.map((c) => ({ name: c.name, a: c.fpr.length, b: c.tpr.length })),
    'fpr',
    'tpr',
  );
  const values = curves.flatMap((c) => c.fpr.map((fpr, i) => ({ name: c.name, i, fpr, tpr: c.tpr[i] })));
  const spec: vega.Spec = {
    width: 300,
    height: 300,
    padding: 10,
    title,
    data: [{ name: 'points', values }],
    scales: [
      { name: 'x', type: 'linear', domain: [0, 1], range: 'width', nice: false },
      { name: 'y', type: 'linear', domain: [0, 1], range: 'height', nice: false },
      colourScale(curves.map((c) => c.name)),
    ],
    axes: [
      { orient: 'bottom', scale: 'x', title: 'false-positive rate', grid: true, tickCount: 5 },
      { orient: 'left', scale: 'y', title: 'true-positive rate', grid: true, tickCount: 5 },
    ],
    legends: [{ stroke: 'colour', title: 'detector', symbolType: 'stroke', symbolStrokeWidth: 3 }],
    marks: [
      {
        type: 'rule',
        encode: {
          enter: {
            x: { scale: 'x', value: 0 },
            y: { scale: 'y', value: 0 },
            x2: { scale: 'x', value: 1 },
            y2: { scale: 'y', value: 1 },
            stroke: { value: '#aaa' },
            strokeDash: { value: [4, 4] },
          },
        },
      },
      seriesMarks('fpr', 'tpr', false),
    ],
  };
  return renderVega(spec);
}

/**
 * Lines over a categorical x axis (layer names, in the order first given), one per series. Non-finite
 * y values leave a gap instead of failing the plot.
 */
export async function linePlot(
  title: string,
  xLabel: string,
  yLabel: string,
  series: readonly LineSeries[],
): Promise<Buffer> {
  checkSeries(
    'line',
    series.map((s) => ({ name: s.name, a: s.x.length, b: s.y.length })),
    'x',
    'y',
  );
  const categories = [...new Set(series.flatMap((s) => s.x))];
  const values = series.flatMap((s) =>
    s.x.map((x, i) => ({ name: s.name, i, x, y: Number.isFinite(s.y[i]) ? s.y[i] : null })),
  );
  // Slant the labels when the layer names would not fit side by side.
  const longest = Math.max(...categories.map((c) => c.length));
  const slant = categories.length * longest * 7 > Math.max(360, categories.length * 40);
  const spec: vega.Spec = {
    width: Math.max(360, categories.length * 40),
    height: 260,
    padding: 10,
    title,
    data: [{ name: 'points', values }],
    scales: [
      { name: 'x', type: 'point', domain: categories, range: 'width', padding: 0.5 },
      { name: 'y', type: 'linear', domain: { data: 'points', field: 'y' }, range: 'height', nice: true, zero: false },
      colourScale(series.map((s) => s.name)),
    ],
    axes: [
      {
        orient: 'bottom',
        scale: 'x',
        title: xLabel,
        labelAngle: slant ? -40 : 0,
        labelAlign: slant ? 'right' : 'center',
        labelBaseline: slant ? 'middle' : 'top',
        labelLimit: 130,
      },
      { orient: 'left', scale: 'y', title: yLabel, grid: true },
    ],
    legends: [{ stroke: 'colour', title: 'series', symbolType: 'stroke', symbolStrokeWidth: 3 }],
    marks: [seriesMarks('x', 'y', true)],
  };
  return renderVega(spec);
}

/**
 * A grid of small heat maps (viridis), each scaled to its own minimum and maximum — the range is
 * printed under the label — so classes with less energy still show their shape. A constant tile
 * draws the middle colour; non-finite values draw grey.
 */
export async function heatmapGrid(
  title: string,
  tiles: readonly HeatmapTile[],
  options: HeatmapGridOptions = {},
): Promise<Buffer> {
  if (tiles.length === 0) throw new RangeError('heatmapGrid needs at least one tile');
  tiles.forEach(checkTile);
  const columns = options.columns ?? Math.ceil(Math.sqrt(tiles.length));
  if (!(Number.isInteger(columns) && columns > 0))
    throw new RangeError(`columns must be a positive integer, got ${columns}`);

  const layout = gridLayout(tiles, columns);
  const canvas = Buffer.alloc(layout.width * layout.height * 3, 255);
  const labels: string[] = [svgText(MARGIN, MARGIN + 16, title, 16, 'start', 'bold')];
  tiles.forEach((tile, t) => {
    const { left, top } = layout.cell(t);
    const drawn = tileValues(tile, options);
    const zoom = Math.max(1, Math.floor(TILE / Math.max(tile.width, tile.height)));
    const x0 = left + Math.floor((layout.box - tile.width * zoom) / 2);
    const y0 = top + Math.floor((layout.box - tile.height * zoom) / 2);
    paint(canvas, layout.width, drawn, tile.width, tile.height, zoom, x0, y0);
    if (options.shift && options.ring !== undefined) labels.push(ringSvg(options.ring, tile, zoom, x0, y0));
    const centre = left + layout.box / 2;
    labels.push(svgText(centre, top + layout.box + 16, fit(tile.label, layout.box, 13), 13, 'middle'));
    labels.push(svgText(centre, top + layout.box + 31, rangeText(tile.values), 11, 'middle', 'normal', '#555'));
  });
  labels.push(...colourBar(canvas, layout.width, layout.height, options.log));

  const overlay = `<svg xmlns="http://www.w3.org/2000/svg" width="${layout.width}" height="${layout.height}">${labels.join('')}</svg>`;
  return sharp(canvas, { raw: { width: layout.width, height: layout.height, channels: 3 } })
    .composite([{ input: Buffer.from(overlay), left: 0, top: 0 }])
    .png()
    .toBuffer();
}

/** The ring of HeatmapGridOptions.ring on a shifted tile drawn at (x0, y0), `zoom` pixels a bin. */
function ringSvg(frequency: number, tile: HeatmapTile, zoom: number, x0: number, y0: number): string {
  // Bin (⌊h/2⌋, ⌊w/2⌋) is the zero frequency once shifted; frequency f lies f·N bins from it.
  const cx = x0 + (Math.floor(tile.width / 2) + 0.5) * zoom;
  const cy = y0 + (Math.floor(tile.height / 2) + 0.5) * zoom;
  const [rx, ry] = [frequency * tile.width * zoom, frequency * tile.height * zoom];
  return `<ellipse cx="${cx}" cy="${cy}" rx="${rx}" ry="${ry}" fill="none" stroke="#ffffff" stroke-width="1.5" stroke-dasharray="4 3"/>`;
}

/**
 * Move the zero frequency of a row-major [height, width] spectrum from index (0, 0) to
 * (⌊height/2⌋, ⌊width/2⌋), as numpy.fft.fftshift does: element (y, x) goes to
 * ((y + ⌊height/2⌋) mod height, (x + ⌊width/2⌋) mod width).
 */
export function fftShift(values: ArrayLike<number>, height: number, width: number): Float32Array {
  if (values.length !== height * width) {
    throw new RangeError(`fftShift expected ${height}×${width} = ${height * width} values, got ${values.length}`);
  }
  const out = new Float32Array(values.length);
  const dy = Math.floor(height / 2);
  const dx = Math.floor(width / 2);
  for (let y = 0; y < height; y++) {
    const row = ((y + dy) % height) * width;
    for (let x = 0; x < width; x++) out[row + ((x + dx) % width)] = values[y * width + x];
  }
  return out;
}

// ---- Vega charts ----

async function renderVega(spec: vega.Spec): Promise<Buffer> {
  const view = new vega.View(vega.parse(spec, CONFIG), { renderer: 'none', logLevel: vega.Warn });
  try {
    const svg = await view.toSVG(SCALE);
    return await sharp(Buffer.from(svg)).png().toBuffer();
  } finally {
    view.finalize();
  }
}

/** Series must be named uniquely (the name keys colour and legend) and have matching x and y. */
function checkSeries(kind: string, series: Array<{ name: string; a: number; b: number }>, a: string, b: string): void {
  if (series.length === 0) throw new RangeError(`${kind} plot needs at least one series`);
  const seen = new Set<string>();
  for (const s of series) {
    if (seen.has(s.name)) throw new RangeError(`${kind} series names must be unique, "${s.name}" repeats`);
    seen.add(s.name);
    if (s.a !== s.b || s.a === 0) {
      throw new RangeError(
        `${kind} series "${s.name}" needs as many ${a} as ${b} values, at least one (got ${s.a} and ${s.b})`,
      );
    }
  }
}

function colourScale(names: string[]): vega.Scale {
  // Past ten series the palette repeats; the legend order still tells them apart.
  return { name: 'colour', type: 'ordinal', domain: names, range: names.map((_, i) => PALETTE[i % PALETTE.length]) };
}

/** One line per series (faceted by name, drawn in data order), with optional point symbols. */
function seriesMarks(x: string, y: string, symbols: boolean): vega.GroupMark {
  const position = {
    x: { scale: 'x', field: x },
    y: { scale: 'y', field: y },
    stroke: { scale: 'colour', field: 'name' },
  };
  const marks: vega.Mark[] = [
    {
      type: 'line',
      from: { data: 'series' },
      sort: { field: 'datum.i' },
      encode: { enter: { ...position, strokeWidth: { value: 2 }, defined: { signal: `datum.${y} !== null` } } },
    },
  ];
  if (symbols) {
    marks.push({
      type: 'symbol',
      from: { data: 'series' },
      encode: { enter: { ...position, fill: { value: 'white' }, size: { value: 30 }, strokeWidth: { value: 1.5 } } },
    });
  }
  return { type: 'group', from: { facet: { name: 'series', data: 'points', groupby: 'name' } }, marks };
}

// ---- Heat-map grid ----

/** Target edge of a tile in pixels; 28×28 images are drawn ×5, 32×32 ×4 (rounded down, at least ×1). */
const TILE = 140;
const MARGIN = 14;
const TITLE_HEIGHT = 30;
const LABEL_HEIGHT = 40;
const GAP = 14;
const BAR_HEIGHT = 36;
/** The colour bar's caption line, under the bar. */
const CAPTION_HEIGHT = 14;
/** Added before log10 so that zero power draws as the floor instead of −∞. */
const LOG_FLOOR = 1e-12;
const MISSING: readonly number[] = [190, 190, 190];

function checkTile(tile: HeatmapTile, t: number): void {
  const { width, height, values } = tile;
  if (!(Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0)) {
    throw new RangeError(`tile ${t} ("${tile.label}") needs positive integer width and height, got ${width}×${height}`);
  }
  if (values.length !== width * height) {
    throw new RangeError(
      `tile ${t} ("${tile.label}") expected ${width}×${height} = ${width * height} values, got ${values.length}`,
    );
  }
}

function gridLayout(tiles: readonly HeatmapTile[], columns: number) {
  const box = Math.max(
    ...tiles.map((t) => Math.max(1, Math.floor(TILE / Math.max(t.width, t.height))) * Math.max(t.width, t.height)),
  );
  const cols = Math.min(columns, tiles.length);
  const rows = Math.ceil(tiles.length / cols);
  const width = Math.max(2 * MARGIN + cols * box + (cols - 1) * GAP, 320);
  const height =
    MARGIN + TITLE_HEIGHT + rows * (box + LABEL_HEIGHT) + (rows - 1) * GAP + BAR_HEIGHT + CAPTION_HEIGHT + MARGIN;
  const cell = (t: number) => ({
    left: MARGIN + (t % cols) * (box + GAP),
    top: MARGIN + TITLE_HEIGHT + Math.floor(t / cols) * (box + LABEL_HEIGHT + GAP),
  });
  return { box, width, height, cell };
}

/** The tile's values as drawn: log10 and fftshift as asked, then scaled to [0, 1] (NaN where not finite). */
function tileValues(tile: HeatmapTile, options: HeatmapGridOptions): Float32Array {
  let v: Float32Array = Float32Array.from(tile.values, (x) => (options.log ? Math.log10(x + LOG_FLOOR) : x));
  if (options.shift) v = fftShift(v, tile.height, tile.width);
  const { min, max } = finiteRange(v);
  // A constant tile has no contrast to stretch: draw it in the middle colour instead of 0/0.
  return v.map((x) => (!Number.isFinite(x) ? NaN : max > min ? (x - min) / (max - min) : 0.5));
}

function finiteRange(values: ArrayLike<number>): { min: number; max: number } {
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < values.length; i++) {
    if (Number.isFinite(values[i])) {
      min = Math.min(min, values[i]);
      max = Math.max(max, values[i]);
    }
  }
  return { min, max };
}

/** Viridis in 256 steps, from Vega's own scheme so the heat maps match the charts' tooling. */
const VIRIDIS: ReadonlyArray<readonly number[]> = (() => {
  const interpolate: (t: number) => string = vega.scheme('viridis');
  return Array.from({ length: 256 }, (_, i) => {
    const m = /rgb\((\d+), ?(\d+), ?(\d+)\)/.exec(interpolate(i / 255));
    if (!m) throw new Error(`unexpected colour from vega.scheme('viridis'): ${interpolate(i / 255)}`);
    return [Number(m[1]), Number(m[2]), Number(m[3])];
  });
})();

function colourOf(t: number): readonly number[] {
  return Number.isNaN(t) ? MISSING : VIRIDIS[Math.round(Math.min(1, Math.max(0, t)) * 255)];
}

/** Write a tile into the RGB canvas, each value as a zoom×zoom square. */
function paint(
  canvas: Buffer,
  canvasWidth: number,
  drawn: Float32Array,
  width: number,
  height: number,
  zoom: number,
  x0: number,
  y0: number,
): void {
  for (let y = 0; y < height * zoom; y++) {
    for (let x = 0; x < width * zoom; x++) {
      const rgb = colourOf(drawn[Math.floor(y / zoom) * width + Math.floor(x / zoom)]);
      canvas.set(rgb, ((y0 + y) * canvasWidth + x0 + x) * 3);
    }
  }
}

/** A viridis strip under the grid saying that colour is relative to each tile. */
function colourBar(canvas: Buffer, width: number, height: number, log?: boolean): string[] {
  const barWidth = 160;
  // The bar, then a caption line under it: beside the bar the caption would not fit a narrow grid.
  const top = height - MARGIN - 12 - CAPTION_HEIGHT;
  const left = MARGIN + 62;
  for (let x = 0; x < barWidth; x++) {
    for (let y = 0; y < 10; y++) canvas.set(colourOf(x / (barWidth - 1)), ((top + y) * width + left + x) * 3);
  }
  const scale = log ? 'log10 scale; ' : '';
  return [
    svgText(MARGIN, top + 9, 'tile min', 11, 'start', 'normal', '#555'),
    svgText(left + barWidth + 8, top + 9, 'tile max', 11, 'start', 'normal', '#555'),
    svgText(
      MARGIN,
      top + 10 + CAPTION_HEIGHT,
      `${scale}each tile scaled to its own range`,
      11,
      'start',
      'normal',
      '#555',
    ),
  ];
}

/** The tile's raw range (before any log), so tiles scaled apart can still be compared. */
function rangeText(values: ArrayLike<number>): string {
  const { min, max } = finiteRange(values);
  if (min > max) return 'no finite values';
  return `${formatNumber(min)} … ${formatNumber(max)}`;
}

function formatNumber(x: number): string {
  const a = Math.abs(x);
  return a === 0 || (a >= 1e-3 && a < 1e4) ? String(Number(x.toPrecision(3))) : x.toExponential(1);
}

/** Shorten a label to what fits in `width` pixels (DejaVu Sans averages ~0.6 em a character). */
function fit(label: string, width: number, fontSize: number): string {
  const chars = Math.floor(width / (0.6 * fontSize));
  return label.length <= chars ? label : `${label.slice(0, Math.max(1, chars - 1))}…`;
}

function svgText(
  x: number,
  y: number,
  text: string,
  size: number,
  anchor: 'start' | 'middle',
  weight = 'normal',
  colour = '#222',
): string {
  const escaped = text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  return `<text x="${x}" y="${y}" font-family="${FONT}" font-size="${size}" font-weight="${weight}" fill="${colour}" text-anchor="${anchor}">${escaped}</text>`;
}
