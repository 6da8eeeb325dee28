// Evaluates a case table with the published OFREP web provider (@openfeature/ofrep-web-provider)
// through @openfeature/web-sdk, in Node, against a flagapp server. Used by
// tests/flagapp/sdk/test_ofrep_node.py: reads {"baseUrl", "token", "cases": [{name, key, kind,
// default, context}]} on stdin, writes one answer per case as JSON on stdout.
// The web SDK has a static context: each case sets its context (one bulk evaluation) and then
// evaluates from the provider's cache, as a page does.
'use strict';
const { OpenFeature } = require('@openfeature/web-sdk');
const { OFREPWebProvider } = require('@openfeature/ofrep-web-provider');

const METHODS = {
  boolean: 'getBooleanDetails',
  string: 'getStringDetails',
  integer: 'getNumberDetails',
  float: 'getNumberDetails',
  object: 'getObjectDetails',
};

async function main() {
  let input = '';
  for await (const chunk of process.stdin) input += chunk;
  const { baseUrl, token, cases } = JSON.parse(input);
  const provider = new OFREPWebProvider({
    baseUrl,
    headers: [['Authorization', `Bearer ${token}`]],
    cacheMode: 'disabled', // no localStorage in Node
    changeDetection: 'none', // no EventSource in Node 20; one bulk per context
  });
  await OpenFeature.setProviderAndWait('flagapp', provider, {});
  const client = OpenFeature.getClient('flagapp');
  const answers = [];
  for (const c of cases) {
    const { targetingKey, ...attributes } = c.context;
    const context = targetingKey === undefined ? attributes : { targetingKey, ...attributes };
    await OpenFeature.setContext('flagapp', context);
    const d = client[METHODS[c.kind]](c.key, c.default);
    answers.push({
      name: c.name,
      value: d.value === undefined ? null : d.value,
      variant: d.variant === undefined ? null : d.variant,
      reason: d.reason === undefined ? null : d.reason,
      error_code: d.errorCode === undefined ? null : d.errorCode,
      flag_metadata: d.flagMetadata || {},
    });
  }
  process.stdout.write(JSON.stringify(answers));
  await OpenFeature.close();
}

main().catch((err) => {
  process.stderr.write(String((err && err.stack) || err));
  process.exit(1);
});
