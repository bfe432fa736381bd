import * as fs from 'fs';

/**
 * This process's soft limit on open files (Linux: /proc/self/limits); 1024, the usual default,
 * where it cannot be read. Node has no getrlimit; the connection limits are derived from it.
 */
export function openFileLimit(limitsText?: string): number {
  let text = limitsText;
  if (text === undefined) {
    try {
      text = fs.readFileSync('/proc/self/limits', 'utf8');
    } catch {
      return 1024; // not Linux
    }
  }
  const line = text.match(/^Max open files\s+(\d+|unlimited)/m);
  if (!line) return 1024;
  return line[1] === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(line[1]);
}
