#!/usr/bin/env node
// Writes test/fixtures/fashion/: the first two official test images of each class as 8-bit grey
// PNGs, and labels.json (file → class index). Run once; the files are committed.
'use strict';
const fs = require('fs');
const path = require('path');
const sharp = require('sharp');
const { loadFashionMnist, FASHION_LABELS } = require('../dist/data/fashionMnist');

(async () => {
  const out = path.join(__dirname, '..', 'test', 'fixtures', 'fashion');
  fs.mkdirSync(out, { recursive: true });
  const test = loadFashionMnist('test', process.argv[2]);
  const perClass = new Array(10).fill(0);
  const labels = {};
  for (let i = 0; i < test.count && perClass.some((n) => n < 2); i++) {
    const label = test.labels[i];
    if (perClass[label] >= 2) continue;
    perClass[label]++;
    const px = Buffer.alloc(784);
    for (let k = 0; k < 784; k++) px[k] = Math.round(test.pixels[i * 784 + k] * 255);
    const slug = FASHION_LABELS[label].toLowerCase().replace(/[^a-z]+/g, '-');
    const file = `test-${String(i).padStart(4, '0')}-${slug}.png`;
    await sharp(px, { raw: { width: 28, height: 28, channels: 1 } })
      .png()
      .toFile(path.join(out, file));
    labels[file] = label;
  }
  fs.writeFileSync(path.join(out, 'labels.json'), JSON.stringify(labels, null, 2) + '\n');
  console.log(`wrote ${Object.keys(labels).length} fixtures to ${out}`);
})();
