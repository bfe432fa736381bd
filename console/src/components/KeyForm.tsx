/** The API key field: what the user types is kept for this tab only (sessionStorage) and never shown again. */
import { useState } from 'preact/hooks';
import { storedKey, storeKey } from '../api';

/** `asv_<id>_<secret>` → `asv_<id>_…`: enough to tell keys apart, nothing of the secret. */
export function keyHint(key: string): string {
  // Key ids hold no '_' (src/gateway/apiKeys.ts); the secret, base64url, may.
  const id = /^asv_[^_]{1,64}_/.exec(key);
  return id ? `${id[0]}…` : `${key.slice(0, 4)}…`;
}

export function KeyForm({ onChange }: { onChange: () => void }) {
  const [draft, setDraft] = useState('');
  const current = storedKey();
  const use = (e: Event) => {
    e.preventDefault();
    storeKey(draft.trim());
    setDraft('');
    onChange();
  };
  const forget = () => {
    storeKey('');
    onChange();
  };
  return (
    <form class="key-form" onSubmit={use}>
      <label for="api-key">API key</label>
      <input
        id="api-key"
        name="api-key"
        type="password"
        autocomplete="off"
        spellcheck={false}
        placeholder={current ? keyHint(current) : 'asv_…'}
        value={draft}
        onInput={(e) => setDraft((e.target as HTMLInputElement).value)}
      />
      <button type="submit" disabled={draft.trim() === ''}>
        Use key
      </button>
      <button type="button" onClick={forget} disabled={!current}>
        Forget
      </button>
      <span class="muted key-state" data-testid="key-state">
        {current ? `Using ${keyHint(current)} (this tab only)` : 'No key: only a service without keys answers'}
      </span>
    </form>
  );
}
