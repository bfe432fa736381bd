/**
 * The offline corpus (src/models/corpus.ts) on a fake package tree: one picture per wallpaper and
 * per light/dark pair, disjoint and seeded splits, links to the packages' files, a rerun that
 * replaces the splits, and a missing package named with its install command.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { buildCorpus, CORPUS_SOURCES, describeCorpus, MissingCorpusSourceError } from '../../src/models/corpus';

let root: string;
let out: string;

/** Writes `bytes` bytes at root/rel (the corpus never decodes, so any content will do). */
function put(rel: string, bytes = 10): void {
  const file = path.join(root, rel);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, Buffer.alloc(bytes, 1));
}

beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'advsieve-corpus-'));
  out = path.join(root, 'out');
  for (const topic of ['animals', 'food/fruit', 'signs'])
    for (let i = 0; i < 10; i++) put(`usr/share/openclipart/png/${topic}/clip${i}.png`);
  put('usr/share/openclipart/png/README.txt');
  for (const name of ['Altai', 'Canopee', 'Flow']) {
    put(`usr/share/wallpapers/${name}/contents/images/5120x2880.png`, 500);
    put(`usr/share/wallpapers/${name}/contents/images/1280x1024.jpg`, 50);
    put(`usr/share/wallpapers/${name}/contents/screenshot.png`, 5);
    put(`usr/share/wallpapers/${name}/metadata.json`);
  }
  for (const name of ['adwaita', 'pixels', 'wood']) {
    put(`usr/share/backgrounds/gnome/${name}-l.webp`);
    put(`usr/share/backgrounds/gnome/${name}-d.webp`);
  }
  put('usr/share/backgrounds/gnome/drool-l.svg');
  put('usr/share/backgrounds/mate/nature/Garden.jpg');
  put('usr/share/backgrounds/mate/nature/Storm.jpg', 80);
  put('usr/share/backgrounds/mate/nature/Storm_3840x2160.jpg', 800);
  put('usr/share/backgrounds/mate/desktop/Stripes.png');
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const names = (dir: string) => (fs.existsSync(dir) ? fs.readdirSync(dir).sort() : []);

test('one picture per wallpaper and variant pair, smallest file; splits disjoint, linked, recorded', () => {
  const split = buildCorpus({ out, calibration: 20, evaluation: 5, seed: 1, root });
  expect(describeCorpus(split)).toBe('Drawing 20 + 5, Neutral 7 + 1');
  const neutral = [...names(path.join(out, 'calibration', 'Neutral')), ...names(path.join(out, 'evaluation', 'Neutral'))];
  expect(neutral.sort()).toEqual([
    'gnome-backgrounds--adwaita-d.webp',
    'gnome-backgrounds--pixels-d.webp',
    'gnome-backgrounds--wood-d.webp',
    'mate-backgrounds--Garden.jpg',
    'mate-backgrounds--Storm.jpg',
    'plasma-workspace-wallpapers--Altai--contents--images--1280x1024.jpg',
    'plasma-workspace-wallpapers--Canopee--contents--images--1280x1024.jpg',
    'plasma-workspace-wallpapers--Flow--contents--images--1280x1024.jpg',
  ]);
  for (const c of ['Drawing', 'Neutral']) {
    const cal = names(path.join(out, 'calibration', c));
    const ev = names(path.join(out, 'evaluation', c));
    expect(cal.filter((n) => ev.includes(n))).toEqual([]);
    for (const n of cal) {
      const link = path.join(out, 'calibration', c, n);
      expect(fs.lstatSync(link).isSymbolicLink()).toBe(true);
      expect(fs.readlinkSync(link).startsWith(path.join(root, 'usr', 'share'))).toBe(true);
    }
  }
  expect(names(path.join(out, 'calibration', 'Drawing')).every((n) => /^openclipart-png--.*\.png$/.test(n))).toBe(true);
  const record = JSON.parse(fs.readFileSync(path.join(out, 'corpus.json'), 'utf8'));
  expect(record.seed).toBe(1);
  expect(record.evaluation.Neutral).toHaveLength(1);
  expect(record.sources.map((s: { package: string }) => s.package)).toEqual(CORPUS_SOURCES.map((s) => s.package));
});

test('the seed decides the sample; a rerun replaces the splits; --copy copies', () => {
  buildCorpus({ out, calibration: 10, evaluation: 5, seed: 1, root });
  const first = names(path.join(out, 'calibration', 'Drawing'));
  expect(first).toHaveLength(10);
  buildCorpus({ out, calibration: 10, evaluation: 5, seed: 1, root });
  expect(names(path.join(out, 'calibration', 'Drawing'))).toEqual(first);
  buildCorpus({ out, calibration: 10, evaluation: 5, seed: 2, root, copy: true });
  const other = names(path.join(out, 'calibration', 'Drawing'));
  expect(other).toHaveLength(10);
  expect(other).not.toEqual(first);
  expect(fs.lstatSync(path.join(out, 'calibration', 'Drawing', other[0])).isFile()).toBe(true);
});

test('a missing package is named with the command that installs it; bad counts are refused', () => {
  fs.renameSync(path.join(root, 'usr/share/backgrounds/mate'), path.join(root, 'mate'));
  try {
    expect(() => buildCorpus({ out, calibration: 10, evaluation: 5, seed: 1, root })).toThrow(MissingCorpusSourceError);
    expect(() => buildCorpus({ out, calibration: 10, evaluation: 5, seed: 1, root })).toThrow(
      /backgrounds\/mate\/nature is missing: install the Debian package mate-backgrounds \(apt-get install mate-backgrounds\)/,
    );
  } finally {
    fs.renameSync(path.join(root, 'mate'), path.join(root, 'usr/share/backgrounds/mate'));
  }
  expect(() => buildCorpus({ out, calibration: 0, evaluation: 5, seed: 1, root })).toThrow(/calibration must be an integer ≥ 1; got 0/);
});
