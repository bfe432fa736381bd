/** A service URL (DATABASE_URL, REDIS_URL) as it may be logged: its password replaced; `what` names one that is no URL. */
export function redactedUrl(url: string, what = 'URL'): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return `(a ${what} that is not a URL)`;
  }
}
