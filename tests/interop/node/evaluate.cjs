// Evaluates a case table with the published Node OFREP provider (@openfeature/ofrep-provider)
// through @openfeature/server-sdk against a flagapp server. Used by
// tests/flagapp/sdk/test_ofrep_node.py: reads {"baseUrl", "token", "cases": [{name, key, kind,
// default, context}]} on stdin, writes one answer per case as JSON on stdout.
'use strict';
const { OpenFeature } = require('@openfeature/server-sdk');
const { OFREPProvider } = require('@openfeature/ofrep-provider');

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
  const provider = new OFREPProvider({ baseUrl, headers: [['Authorization', `Bearer ${token}`]] });
  await OpenFeature.setProviderAndWait('flagapp', provider);
  const client = OpenFeature.getClient('flagapp');
  const answers = [];
  for (const c of cases) {
    const { targetingKey, ...attributes } = c.context;
    const context = targetingKey === undefined ? attributes : { targetingKey, ...attributes };
    const d = await client[METHODS[c.kind]](c.key, c.default, context);
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
