// The page of tests/browser/test_web_sdk_browser.py, bundled by esbuild (no CDN): the
// published @openfeature/web-sdk + @openfeature/ofrep-web-provider in a page on another
// origin than the flagapp server. It shows one boolean flag in #flag:
//   1. at once from the {% flagapp_bootstrap %} JSON in the page (an InMemoryProvider built
//      from it: no request before the first evaluation);
//   2. then from the OFREP web provider (client-side key, CORS, eventStreams SSE), re-rendered
//      on every ConfigurationChanged.
// window.flagappPage records what happened for the test to read.
import { InMemoryProvider, OpenFeature, ProviderEvents } from '@openfeature/web-sdk';
import { OFREPWebProvider } from '@openfeature/ofrep-web-provider';

// The bootstrap's OFREP bulk answer as InMemoryProvider flags. A flag without a value
// (the caller's default) or with an error is left out: the SDK then serves the default.
export function bootstrapFlags(bootstrap) {
  const flags = {};
  for (const f of bootstrap.flags || []) {
    if (!('value' in f) || 'errorCode' in f) continue;
    const variant = f.variant ?? 'value';
    flags[f.key] = { variants: { [variant]: f.value }, defaultVariant: variant, disabled: false };
  }
  return flags;
}

function start({ baseUrl, token, flagKey, context }) {
  const state = (window.flagappPage = { renders: [], errors: [] });
  const client = OpenFeature.getClient();
  const render = (source) => {
    const value = client.getBooleanValue(flagKey, false);
    document.getElementById('flag').textContent = String(value);
    state.renders.push({ source, value, at: performance.now() });
  };
  const bootstrap = JSON.parse(document.getElementById('flagapp-bootstrap').textContent);
  OpenFeature.setContext(context);
  OpenFeature.setProvider(new InMemoryProvider(bootstrapFlags(bootstrap)));
  state.ofrepRequestsBeforeFirstRender = performance
    .getEntriesByType('resource')
    .filter((e) => e.name.startsWith(baseUrl)).length;
  render('bootstrap');
  client.addHandler(ProviderEvents.ConfigurationChanged, () => render('changed'));
  client.addHandler(ProviderEvents.Error, (e) => state.errors.push(String(e && e.message)));
  OpenFeature.setProviderAndWait(
    new OFREPWebProvider({
      baseUrl,
      headers: [['Authorization', `Bearer ${token}`]],
      cacheMode: 'disabled',
      changeDetection: 'sse', // the bulk answer's eventStreams; no polling
      pollInterval: 0,
    }),
  ).then(
    () => render('ready'),
    (err) => state.errors.push(String(err)),
  );
}

window.FlagappPage = { start, bootstrapFlags };
