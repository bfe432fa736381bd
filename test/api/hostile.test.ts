/**
 * The hostile-input suite, against a started server: every malformed or hostile kind of file we
 * could think of gets its own code, request-level abuse gets its request-level code, and after
 * each group a good request is answered correctly; the process is alive at the end. Every file is
 * made here, at test time. (Deep and aliased *queries* are the gateway's, test/api/gateway*.)
 */
import * as http from 'http';
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { OFF_THREAD_BODY_BYTES } from '../../src/server/jsonBodyParser';
import {
  errorCode,
  fixtureFiles,
  gql,
  gqlMultipart,
  GqlResponse,
  multipartBody,
  startServer,
  TestServer,
} from './helpers';
import {
  gifDeclaring,
  greyPng,
  jpegDeclaring,
  pngBomb,
  pngChunks,
  randomBytes,
  tiffDeclaring,
  webpDeclaring,
} from './hostileFiles';

const MiB = 1024 * 1024;
const LIMITS = {
  ADVSIEVE_MAX_FILE_BYTES: String(MiB),
  ADVSIEVE_MAX_FILES: '8',
  ADVSIEVE_MAX_IMAGES: '64',
  ADVSIEVE_MAX_BODY_BYTES: String(8 * MiB),
  ADVSIEVE_AUDIT: '0',
  // ADVSIEVE_MAX_PIXELS: the default, 40 000 000
};

const CLASSIFY = `mutation($images: [ImageInput!]!) { classify(images: $images) { index prediction { label } error { code message } } }`;

interface Row {
  index: number;
  prediction: { label: string } | null;
  error: { code: string; message: string } | null;
}
type Classified = GqlResponse<{ classify: Row[] }>;

let server: TestServer;
const files = fixtureFiles();
const trouser = fs.readFileSync(files.find((f) => f.includes('trouser'))!);
const b64 = (b: Buffer) => ({ base64: b.toString('base64') });

function codes(r: Classified): string[] {
  if (!r.body.data) throw new Error(`HTTP ${r.status}, no data: ${JSON.stringify(r.body.errors)}`);
  return r.body.data.classify.map((x) => x.error?.code ?? 'ok');
}

/** Each file as base64, in one request (at most 64); their codes in order. */
async function classifyAll(images: readonly Buffer[]): Promise<string[]> {
  const r = await gql<{ classify: Row[] }>(server, CLASSIFY, { images: images.map(b64) });
  expect(r.status).toBe(200);
  return codes(r);
}

/** The server still answers a good request correctly. */
async function expectHealthy(): Promise<void> {
  const r = await gql<{ classify: Row[] }>(server, CLASSIFY, { images: [b64(trouser)] });
  expect(r.status).toBe(200);
  expect(r.body.data!.classify[0].prediction!.label).toBe('Trouser');
}

async function rssBytes(): Promise<number> {
  const text = await (await fetch(`${server.base}/metrics`)).text();
  return Number(/^advsieve_process_resident_memory_bytes (\S+)/m.exec(text)![1]);
}

/** A raw HTTP/1.1 exchange: what the server sends back before it closes (or `waitMs` passes). */
function raw(head: string, body: Buffer | string, waitMs = 5000): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(server.port, '127.0.0.1');
    let received = '';
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(received);
    };
    const timer = setTimeout(done, waitMs);
    socket.on('data', (c: Buffer) => {
      received += c.toString('latin1');
      if (/\r\n\r\n[\s\S]*\}\s*$/.test(received)) done(); // a complete JSON answer
    });
    socket.on('error', done);
    socket.on('close', done);
    socket.write(head);
    socket.write(body);
  });
}

beforeAll(async () => {
  server = await startServer(LIMITS);
}, 120_000);

afterAll(async () => {
  expect(server.proc.exitCode).toBeNull(); // alive after everything
  expect((await server.stop()).code).toBe(0);
});

describe('not images', () => {
  test('empty, one byte, random bytes and other formats’ magic bytes: EMPTY_IMAGE / UNSUPPORTED_FORMAT', async () => {
    const kinds = [
      Buffer.alloc(0),
      Buffer.from([0x89]),
      randomBytes(1000, 1),
      randomBytes(100_000, 2),
      Buffer.from('<!doctype html><html><body><img src=x onerror=alert(1)></body></html>'),
      Buffer.from('%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n'),
      Buffer.concat([Buffer.from('PK\x03\x04', 'latin1'), randomBytes(200, 3)]),
      Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]), randomBytes(200, 4)]),
      Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 0]), randomBytes(200, 5)]),
      Buffer.from('{"not": "an image"}'),
      Buffer.from('BM'), // BMP and ICO are not accepted formats
      Buffer.concat([Buffer.from([0, 0, 1, 0, 1, 0]), randomBytes(100, 6)]),
    ];
    expect(await classifyAll(kinds)).toEqual([
      'EMPTY_IMAGE',
      ...Array<string>(kinds.length - 1).fill('UNSUPPORTED_FORMAT'),
    ]);
    await expectHealthy();
  });

  test('SVG with an external entity and remote references: UNSUPPORTED_FORMAT, nothing fetched or read', async () => {
    const hits: string[] = [];
    const bait = http.createServer((req, res) => {
      hits.push(req.url ?? '');
      res.end('<svg xmlns="http://www.w3.org/2000/svg"/>');
    });
    await new Promise<void>((r) => bait.listen(0, '127.0.0.1', r));
    const port = (bait.address() as net.AddressInfo).port;
    const secretFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'advsieve-xxe-')), 'secret.txt');
    fs.writeFileSync(secretFile, 'TOP-SECRET-7f3a');
    try {
      const svgs = [
        `<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY xxe SYSTEM "file://${secretFile}">]>` +
          `<svg xmlns="http://www.w3.org/2000/svg" width="28" height="28"><text>&xxe;</text></svg>`,
        `<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="28" height="28">` +
          `<image href="http://127.0.0.1:${port}/href.png" width="28" height="28"/><image xlink:href="http://127.0.0.1:${port}/xlink.png"/></svg>`,
        `<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY % remote SYSTEM "http://127.0.0.1:${port}/dtd">%remote;]><svg/>`,
        `<svg xmlns="http://www.w3.org/2000/svg"><style>@import url(http://127.0.0.1:${port}/css);</style></svg>`,
        // entity expansion ("billion laughs")
        `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">` +
          Array.from({ length: 9 }, (_, i) => `<!ENTITY lol${i + 1} "${`&lol${i || ''};`.repeat(10)}">`).join('') +
          `]><svg xmlns="http://www.w3.org/2000/svg"><text>&lol9;</text></svg>`,
      ].map((s) => Buffer.from(s));
      const r = await gql<{ classify: Row[] }>(server, CLASSIFY, { images: svgs.map(b64) });
      expect(codes(r)).toEqual(Array(svgs.length).fill('UNSUPPORTED_FORMAT'));
      // Also as uploads named and typed as SVG.
      const up = await gqlMultipart<{ classify: Row[] }>(server, CLASSIFY, svgs.slice(0, 2), {
        parts: svgs
          .slice(0, 2)
          .map((data, i) => ({ name: String(i), filename: `x${i}.svg`, contentType: 'image/svg+xml', data })),
      });
      expect(codes(up)).toEqual(['UNSUPPORTED_FORMAT', 'UNSUPPORTED_FORMAT']);
      await new Promise((r2) => setTimeout(r2, 200)); // time for a stray fetch to land
      expect(hits).toEqual([]);
      expect(JSON.stringify([r.body, up.body])).not.toContain('TOP-SECRET');
    } finally {
      await new Promise((r) => bait.close(r));
      fs.rmSync(path.dirname(secretFile), { recursive: true, force: true });
    }
    await expectHealthy();
  });
});

describe('damaged images', () => {
  test('truncated PNGs and JPEGs at several cut points: CORRUPT_IMAGE (a PNG missing only IEND decodes)', async () => {
    const chunks = pngChunks(trouser);
    const idat = chunks.find((c) => c.type === 'IDAT')!;
    const pngCuts = [8, 20, 33, idat.offset + 4, idat.offset + 8 + 10, idat.offset + 8 + Math.floor(idat.length / 2)];
    const jpeg = await sharp(trouser).resize(280, 280).jpeg({ quality: 90 }).toBuffer();
    const jpegCuts = [3, 20, 200, Math.floor(jpeg.length / 2), jpeg.length - 2];
    const images = [
      ...pngCuts.map((n) => trouser.subarray(0, n)),
      trouser.subarray(0, chunks.find((c) => c.type === 'IEND')!.offset),
      ...jpegCuts.map((n) => jpeg.subarray(0, n)),
    ];
    expect(await classifyAll(images)).toEqual([
      ...pngCuts.map(() => 'CORRUPT_IMAGE'),
      'ok', // all pixel data present: the missing end marker is tolerated, as browsers do
      ...jpegCuts.map(() => 'CORRUPT_IMAGE'),
    ]);
    await expectHealthy();
  });

  test('bad CRCs, damaged compressed data, lying chunk lengths and header fields: CORRUPT_IMAGE', async () => {
    const chunks = pngChunks(trouser);
    const ihdr = chunks.find((c) => c.type === 'IHDR')!;
    const idat = chunks.find((c) => c.type === 'IDAT')!;
    const patched = (f: (b: Buffer) => void) => {
      const b = Buffer.from(trouser);
      f(b);
      return b;
    };
    const images = [
      patched((b) => (b[ihdr.offset + 8 + 13] ^= 0xff)), // IHDR CRC
      patched((b) => (b[idat.offset + 8 + idat.length] ^= 0xff)), // IDAT CRC
      patched((b) => (b[idat.offset + 8 + 5] ^= 0x55)), // IDAT data, CRC now wrong too
      patched((b) => b.writeUInt32BE(0xfffffff0, idat.offset)), // IDAT length far past the end
      patched((b) => b.writeUInt32BE(0, idat.offset)), // IDAT length 0
      patched((b) => (b[ihdr.offset + 8 + 8] = 7)), // bit depth 7
      patched((b) => (b[ihdr.offset + 8 + 9] = 5)), // colour type 5
      greyPng(28, 28, randomBytes(300, 7)), // valid chunks, IDAT not zlib
      greyPng(0, 0, Buffer.alloc(0)), // zero size
    ];
    expect(await classifyAll(images)).toEqual(Array(images.length).fill('CORRUPT_IMAGE'));
    await expectHealthy();
  });
});

describe('size lies and bombs', () => {
  test('headers declaring millions to billions of pixels: IMAGE_TOO_LARGE from the header, in every format', async () => {
    const small = await sharp(trouser).resize(280, 280).jpeg().toBuffer();
    const webp = await sharp(trouser).webp({ lossless: true }).toBuffer();
    const tiff = await sharp(trouser).tiff().toBuffer();
    const images = [
      greyPng(100_000, 100_000, Buffer.alloc(10)),
      greyPng(2 ** 31 - 1, 2 ** 31 - 1, Buffer.alloc(10)),
      greyPng(1, 2 ** 31 - 1, Buffer.alloc(10)) /* 2.1 billion pixels in one column */,
      jpegDeclaring(small, 65_535, 65_535),
      jpegDeclaring(small, 7000, 7000),
      gifDeclaring(65_535, 65_535),
      webpDeclaring(webp, 16_383, 16_383),
      tiffDeclaring(tiff, 100_000, 100_000),
    ];
    const start = performance.now();
    const got = await classifyAll(images);
    expect(got).toEqual(Array(images.length).fill('IMAGE_TOO_LARGE'));
    expect(performance.now() - start).toBeLessThan(5000);
    await expectHealthy();
  });

  test('a real decompression bomb (20000×20000, 400 MB of pixels in a 0.4 MB PNG) is refused from its header, fast, without memory growth', async () => {
    const bomb = await pngBomb(20_000, 20_000);
    expect(bomb.length).toBeLessThan(MiB);
    const rssBefore = await rssBytes();
    const start = performance.now();
    const r = await gql<{ classify: Row[] }>(server, CLASSIFY, { images: [b64(bomb), b64(bomb), b64(trouser)] });
    const ms = performance.now() - start;
    expect(codes(r)).toEqual(['IMAGE_TOO_LARGE', 'IMAGE_TOO_LARGE', 'ok']);
    expect(r.body.data!.classify[0].error!.message).toMatch(
      /20000×20000 = 400000000 pixels exceeds the limit of 40000000/,
    );
    const up = await gqlMultipart<{ classify: Row[] }>(server, CLASSIFY, [bomb]);
    expect(codes(up)).toEqual(['IMAGE_TOO_LARGE']);
    expect(ms).toBeLessThan(2000);
    expect((await rssBytes()) - rssBefore).toBeLessThan(100 * MiB); // decoding it would take 400 MB
    await expectHealthy();
  });

  test('huge valid images: over the file size limit → PAYLOAD_TOO_LARGE; 4000×4000 within the limits → screened', async () => {
    const noise = randomBytes(1100 * 1100, 8);
    const heavy = await sharp(noise, { raw: { width: 1100, height: 1100, channels: 1 } })
      .png()
      .toBuffer();
    expect(heavy.length).toBeGreaterThan(MiB); // 1.2 megapixels, far below the pixel limit
    const asFile = await gqlMultipart(server, CLASSIFY, [heavy]);
    expect(asFile.status).toBe(413);
    expect(errorCode(asFile)).toBe('PAYLOAD_TOO_LARGE');
    const asBase64 = await gql(server, CLASSIFY, { images: [b64(heavy)] });
    expect(asBase64.status).toBe(413);
    expect(errorCode(asBase64)).toBe('PAYLOAD_TOO_LARGE');
    expect(asBase64.body.errors![0].extensions).toMatchObject({ limit: 'maxFileBytes' });

    const large = await sharp(trouser).resize(4000, 4000, { kernel: 'nearest' }).jpeg({ quality: 80 }).toBuffer();
    expect(large.length).toBeLessThan(MiB);
    const start = performance.now();
    const r = await gqlMultipart<{ classify: Row[] }>(server, CLASSIFY, [large]);
    expect(codes(r)).toEqual(['ok']);
    expect(r.body.data!.classify[0].prediction!.label).toBe('Trouser'); // resized to 28×28, still a trouser
    expect(performance.now() - start).toBeLessThan(5000);
    // As base64, the body is parsed and the images read off the service's thread
    // (src/server/jsonBodyParser.ts): the same answers, and a mangled one is that image's error.
    const text = large.toString('base64');
    expect(2 * text.length).toBeGreaterThan(OFF_THREAD_BODY_BYTES); // the body with both copies
    const mangled = `${text.slice(0, 200_000)}*${text.slice(200_001)}`;
    const viaJson = await gql<{ classify: Row[] }>(server, CLASSIFY, {
      images: [{ base64: text }, { base64: mangled }, b64(trouser)],
    });
    expect(codes(viaJson)).toEqual(['ok', 'INVALID_BASE64', 'ok']);
    expect(viaJson.body.data!.classify[0].prediction!.label).toBe('Trouser');
    await expectHealthy();
  });
});

describe('names and types lie', () => {
  test('a PNG named .jpg, a JPEG sent as image/png, images typed as SVG or executables: decoded by their bytes', async () => {
    const jpeg = await sharp(trouser).jpeg({ quality: 95 }).toBuffer();
    const parts = [
      { name: '0', filename: 'photo.jpg', contentType: 'image/jpeg', data: trouser },
      { name: '1', filename: 'image.png', contentType: 'image/png', data: jpeg },
      { name: '2', filename: 'logo.svg', contentType: 'image/svg+xml', data: trouser },
      { name: '3', filename: 'setup.exe', contentType: 'application/x-msdownload', data: jpeg },
      { name: '4', filename: '../../../etc/passwd', contentType: 'text/plain', data: trouser },
      {
        name: '5',
        filename: 'fake.png',
        contentType: 'image/png',
        data: Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>'),
      },
    ];
    const r = await gqlMultipart<{ classify: Row[] }>(
      server,
      CLASSIFY,
      parts.map((p) => p.data),
      { parts },
    );
    expect(codes(r)).toEqual(['ok', 'ok', 'ok', 'ok', 'ok', 'UNSUPPORTED_FORMAT']);
    expect(r.body.data!.classify.slice(0, 5).map((x) => x.prediction!.label)).toEqual(Array(5).fill('Trouser'));
    await expectHealthy();
  });
});

describe('too many, too big, malformed requests', () => {
  test('thousands of files in one multipart request, thousands of base64 images: PAYLOAD_TOO_LARGE', async () => {
    const n = 3000;
    const many = Array.from({ length: n }, () => trouser);
    const files = await gqlMultipart(server, CLASSIFY, many);
    expect(files.status).toBe(413);
    expect(errorCode(files)).toBe('PAYLOAD_TOO_LARGE');
    const images = await gql(server, CLASSIFY, { images: many.map(b64) });
    expect(images.status).toBe(413);
    expect(errorCode(images)).toBe('PAYLOAD_TOO_LARGE');
    expect(images.body.errors![0].extensions).toMatchObject({ limit: 'maxImages', limitValue: 64 });
    await expectHealthy();
  });

  test('multipart bodies whose map, files and sizes lie', async () => {
    // The map names three files; one is sent.
    const missing = await gqlMultipart(server, CLASSIFY, [trouser, trouser, trouser], {
      parts: [{ name: '0', filename: 'a.png', contentType: 'image/png', data: trouser }],
    });
    expect(missing.status).toBe(400);
    expect(errorCode(missing)).toBe('BAD_USER_INPUT');
    // The map points a file at a path that does not exist in the operation.
    const badPath = await gqlMultipart(server, CLASSIFY, [trouser], { map: { '0': ['variables.nowhere.7.file'] } });
    expect(badPath.status).toBe(400);
    expect(errorCode(badPath)).toBe('BAD_USER_INPUT');
    expect(badPath.body.errors![0].message).toMatch(
      /images\[0\]: give exactly one of 'file' and 'base64', got neither/,
    );
    // `map` and `operations` that are not JSON.
    const { body, contentType } = multipartBody(
      { query: CLASSIFY, variables: { images: [{ file: null }] } },
      { '0': ['variables.images.0.file'] },
      [{ name: '0', filename: 'a.png', contentType: 'image/png', data: trouser }],
    );
    const notJson = Buffer.from(
      body.toString('latin1').replace('{"0":["variables.images.0.file"]}', '{"0": [oops'),
      'latin1',
    );
    const r1 = await fetch(`${server.base}/graphql`, {
      method: 'POST',
      headers: { 'content-type': contentType, 'apollo-require-preflight': 'true' },
      body: notJson,
    });
    expect(r1.status).toBe(400);
    expect(((await r1.json()) as { errors: Array<{ extensions: { code: string } }> }).errors[0].extensions.code).toBe(
      'BAD_REQUEST',
    );
    // A body that stops in the middle of a file, its Content-Length claiming more: the server gives up, unharmed.
    const cut = body.subarray(0, body.length - 300);
    const answer = await raw(
      `POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: ${contentType}\r\nApollo-Require-Preflight: true\r\nContent-Length: ${body.length}\r\n\r\n`,
      cut,
      1500,
    );
    expect(answer).not.toMatch(/ 500 /);
    // A Content-Length of 10 GB: refused from the header.
    const huge = await raw(
      `POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n`,
      '{"query":"',
    );
    expect(huge).toMatch(/^HTTP\/1\.1 413/);
    expect(huge).toContain('PAYLOAD_TOO_LARGE');
    await expectHealthy();
  });

  test('JSON bodies: 100 MB, deep nesting, invalid UTF-8, not JSON', async () => {
    // 100 MB declared: refused from the Content-Length, before the body is read.
    const declared = await raw(
      `POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${100 * MiB}\r\n\r\n`,
      `{"query":"${'a'.repeat(65_536)}`,
    );
    expect(declared).toMatch(/^HTTP\/1\.1 413/);
    expect(declared).toContain('"code":"PAYLOAD_TOO_LARGE"');
    // 100 MB streamed without a Content-Length (chunked): the parser stops keeping it at the limit.
    const chunk = Buffer.alloc(MiB, 0x61);
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent === 0) controller.enqueue(Buffer.from('{"query":"'));
        if (sent >= 100) controller.close();
        else controller.enqueue(chunk);
        sent++;
      },
    });
    const chunked = await fetch(`${server.base}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: stream,
      duplex: 'half',
    } as RequestInit);
    expect(chunked.status).toBe(413);
    expect(
      ((await chunked.json()) as { errors: Array<{ extensions: { code: string } }> }).errors[0].extensions.code,
    ).toBe('PAYLOAD_TOO_LARGE');
    // Refused at depth 33, in the first chunk, and the connection closed (a hostile shape): bodies
    // small enough to lie whole in the socket buffers by then, so that the client reads the 400
    // rather than a reset (with 100 000 levels, 600 KB, CI once saw EPIPE).
    const depth = 10_000;
    const deep = `{"query":${JSON.stringify(CLASSIFY)},"variables":{"images":${'['.repeat(depth)}${']'.repeat(depth)}}}`;
    const nested = await fetch(`${server.base}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: deep,
    });
    expect(nested.status).toBe(400);
    expect(
      ((await nested.json()) as { errors: Array<{ extensions: { code: string } }> }).errors[0].extensions.code,
    ).toBe('BAD_USER_INPUT');
    const deepObject = `{"query":${JSON.stringify(CLASSIFY)},"variables":{"images":[{"base64":${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}}]}}`;
    const nestedObject = await fetch(`${server.base}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: deepObject,
    });
    expect(nestedObject.status).toBe(400);
    // Invalid UTF-8 inside a string: decoded to U+FFFD, so the base64 is invalid (that image alone).
    const invalidInString = Buffer.concat([
      Buffer.from(
        `{"query":${JSON.stringify(CLASSIFY)},"variables":{"images":[{"base64":"iVBO\xff\xfe\xc3"},{"base64":"${trouser.toString('base64')}"}]}}`,
        'latin1',
      ),
    ]);
    const r = await fetch(`${server.base}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json; charset=utf-8' },
      body: invalidInString,
    });
    const body = (await r.json()) as { data: { classify: Row[] } };
    expect(body.data.classify.map((x) => x.error?.code ?? 'ok')).toEqual(['INVALID_BASE64', 'ok']);
    // Invalid UTF-8 and garbage in the JSON structure itself.
    for (const garbage of [Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), Buffer.from('{"query": '), randomBytes(500, 9)]) {
      const g = await fetch(`${server.base}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: garbage,
      });
      expect(g.status).toBe(400);
      expect(((await g.json()) as { errors: Array<{ extensions: { code: string } }> }).errors[0].extensions.code).toBe(
        'BAD_REQUEST',
      );
    }
    await expectHealthy();
  });
});
