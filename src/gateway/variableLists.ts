/**
 * The list entries of an operation's variables, counted before graphql-js coerces them.
 *
 * Why before: graphql-js coerces every entry of a list variable into a fresh object before any
 * resolver runs, and the images limit (ADVSIEVE_MAX_IMAGES) is counted by the resolvers. A 15 MB
 * body of `[{}, {}, …]` (five million valid, empty `ImageInput`s) took 1.8 GB and 13 s of the main
 * thread to coerce, only to be refused then. Coercion errors are no such risk: graphql-js stops at
 * 50 of them.
 *
 * Why list entries: the schema's only input lists are image lists (`[ImageInput!]!`), so an
 * operation whose variables hold more entries than a request may have images cannot be served
 * anyway. Undeclared variables count as well (graphql-js ignores them, but no legitimate client
 * sends a list it does not use). A list held directly in a list counts as one entry, and its own
 * entries are not looked at: graphql-js refuses a list where an input object or a scalar belongs
 * with one error, without reading it, and the schema has no list of lists (a 100 000-deep `[[[…]]]`
 * stays graphql-js's BAD_USER_INPUT).
 */

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/**
 * Whether `variables` holds more than `max` list entries in all. A list's length is counted before
 * its entries are looked at, so the walk stops at the first list that passes the limit; it keeps a
 * stack of its own, so a deeply nested value cannot overflow the call stack. Only JSON's lists and
 * plain objects are walked (graphql-upload's `Upload`s stand where a multipart request's files go),
 * and lists in lists are not (see above).
 */
export function listEntriesOver(variables: unknown, max: number): boolean {
  const pending: unknown[] = [variables];
  let entries = 0;
  while (pending.length > 0) {
    const value = pending.pop();
    if (Array.isArray(value)) {
      entries += value.length;
      if (entries > max) return true;
      for (const entry of value as unknown[]) if (!Array.isArray(entry)) pending.push(entry);
    } else if (isPlainObject(value)) {
      for (const key in value) pending.push(value[key]);
    }
  }
  return false;
}
