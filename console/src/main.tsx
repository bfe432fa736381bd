/**
 * The operator console: five pages over the public GraphQL API, chosen by the URL's hash
 * (#/screen, #/compare, #/audit, #/model, #/live) so that each is a link, bookmarkable and
 * reachable with the keyboard. Changing the API key remounts the page, which then asks again with
 * the new key's scopes.
 */
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { KeyForm } from './components/KeyForm';
import { AuditPage } from './pages/AuditPage';
import { ComparePage } from './pages/ComparePage';
import { LivePage } from './pages/LivePage';
import { ModelPage } from './pages/ModelPage';
import { ScreenPage } from './pages/ScreenPage';

const PAGES = [
  { id: 'screen', title: 'Screen', Page: ScreenPage },
  { id: 'compare', title: 'Compare', Page: ComparePage },
  { id: 'audit', title: 'Audit', Page: AuditPage },
  { id: 'model', title: 'Model', Page: ModelPage },
  { id: 'live', title: 'Live', Page: LivePage },
] as const;

function pageOf(hash: string) {
  const id = hash.replace(/^#\/?/, '');
  return PAGES.find((p) => p.id === id) ?? PAGES[0];
}

function App() {
  const [page, setPage] = useState(() => pageOf(location.hash));
  const [keyVersion, setKeyVersion] = useState(0);
  useEffect(() => {
    const follow = () => setPage(pageOf(location.hash));
    addEventListener('hashchange', follow);
    return () => removeEventListener('hashchange', follow);
  }, []);
  useEffect(() => {
    document.title = `${page.title} · advsieve console`;
  }, [page]);
  const { Page } = page;
  return (
    <>
      {/* Not a #main link: the hash is the page's route. */}
      <button type="button" class="skip" onClick={() => document.getElementById('main')?.focus()}>
        Skip to content
      </button>
      <header class="top">
        <h1>advsieve console</h1>
        <KeyForm onChange={() => setKeyVersion((v) => v + 1)} />
      </header>
      <nav class="pages" aria-label="Pages">
        <ul>
          {PAGES.map((p) => (
            <li key={p.id}>
              <a href={`#/${p.id}`} aria-current={p.id === page.id ? 'page' : undefined}>
                {p.title}
              </a>
            </li>
          ))}
        </ul>
      </nav>
      <main id="main" tabIndex={-1}>
        <Page key={`${page.id}-${keyVersion}`} />
      </main>
    </>
  );
}

const root = document.getElementById('app')!;
root.textContent = ''; // the "Loading…" line; Preact would keep what it did not render
render(<App />, root);
