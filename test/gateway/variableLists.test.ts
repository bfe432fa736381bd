/** The walk that counts the list entries of an operation's variables before graphql-js coerces them. */
import { listEntriesOver } from '../../src/gateway/variableLists';

const images = (n: number) => Array.from({ length: n }, () => ({ base64: 'iVBORw0KGgo=' }));

test('the images a request may have pass; one list entry more does not, counted over every list and variable', () => {
  expect(listEntriesOver({ i: images(4), options: { defend: true, top: 3 } }, 4)).toBe(false);
  expect(listEntriesOver({ i: images(5) }, 4)).toBe(true);
  expect(listEntriesOver({ a: images(2), b: images(2) }, 4)).toBe(false);
  expect(listEntriesOver({ a: images(2), b: images(3) }, 4)).toBe(true);
  // A list in a list is one entry, unread: graphql-js refuses it where an ImageInput belongs, unread too.
  expect(listEntriesOver({ i: [[{}, {}, {}, {}, {}, {}]] }, 4)).toBe(false);
  expect(listEntriesOver({ i: [[], [], [], [], []] }, 4)).toBe(true);
  expect(listEntriesOver({ f: { nested: { deeper: [1, 2, 3, 4, 5] } } }, 4)).toBe(true);
  for (const nothing of [undefined, null, 'text', 7, {}, { sha256: 'ab', first: 500 }]) {
    expect(listEntriesOver(nothing, 4)).toBe(false);
  }
});

test('a list of millions is refused from its length, without looking at its entries', () => {
  const huge = new Array<unknown>(5_000_000);
  // Entries that would throw if read: the walk must stop before it reaches them.
  const poisoned = new Proxy(huge, {
    get: (target, key) => {
      if (key === 'length') return target.length;
      if (typeof key === 'string' && /^\d+$/.test(key)) throw new Error(`entry ${key} was read`);
      return Reflect.get(target, key) as unknown;
    },
  });
  expect(listEntriesOver({ i: poisoned }, 256)).toBe(true);
});

test('deep nesting does not overflow the stack; uploads and other class instances are not walked', () => {
  let deep: unknown = {};
  for (let i = 0; i < 200_000; i++) deep = { a: deep };
  expect(listEntriesOver(deep, 4)).toBe(false);
  let deepLists: unknown = [];
  for (let i = 0; i < 200_000; i++) deepLists = [{ a: deepLists }];
  expect(listEntriesOver(deepLists, 4)).toBe(true); // lists under objects in lists are walked, and counted
  class Upload {
    readonly chunks = [1, 2, 3, 4, 5, 6];
  }
  expect(listEntriesOver({ i: [{ file: new Upload() }] }, 4)).toBe(false);
});
