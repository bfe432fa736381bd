/** Polls `check` every `everyMs` until it holds; throws 'condition not met in time' after `ms`. */
export async function waitFor(check: () => boolean, ms = 5000, everyMs = 20): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
