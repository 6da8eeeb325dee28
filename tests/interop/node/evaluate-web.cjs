// Evaluates a case table with the published OFREP web provider (@openfeature/ofrep-web-provider)
// through @openfeature/web-sdk, in Node, against a flagapp server. Used by
// tests/flagapp/sdk/test_ofrep_node.py; the stdin/stdout protocol is harness.cjs'.
// The web SDK has a static context: each case sets its context (one bulk evaluation) and then
// evaluates from the provider's cache, as a page does.
'use strict';
const { OpenFeature } = require('@openfeature/web-sdk');
const { OFREPWebProvider } = require('@openfeature/ofrep-web-provider');
const { run } = require('./harness.cjs');

run({
  OpenFeature,
  async setUp(baseUrl, token) {
    const provider = new OFREPWebProvider({
      baseUrl,
      headers: [['Authorization', `Bearer ${token}`]],
      cacheMode: 'disabled', // no localStorage in Node
      changeDetection: 'none', // no EventSource in Node 20; one bulk per context
    });
    await OpenFeature.setProviderAndWait('flagapp', provider, {});
    return OpenFeature.getClient('flagapp');
  },
  async evaluate(client, method, c, context) {
    await OpenFeature.setContext('flagapp', context);
    return client[method](c.key, c.default);
  },
});
