// Evaluates a case table with the published Node OFREP provider (@openfeature/ofrep-provider)
// through @openfeature/server-sdk against a flagapp server. Used by
// tests/flagapp/sdk/test_ofrep_node.py; the stdin/stdout protocol is harness.cjs'.
'use strict';
const { OpenFeature } = require('@openfeature/server-sdk');
const { OFREPProvider } = require('@openfeature/ofrep-provider');
const { run } = require('./harness.cjs');

run({
  OpenFeature,
  async setUp(baseUrl, token) {
    const provider = new OFREPProvider({ baseUrl, headers: [['Authorization', `Bearer ${token}`]] });
    await OpenFeature.setProviderAndWait('flagapp', provider);
    return OpenFeature.getClient('flagapp');
  },
  evaluate(client, method, c, context) {
    return client[method](c.key, c.default, context);
  },
});
