// What the Node OFREP client runners share (evaluate.cjs: the server provider; evaluate-web.cjs:
// the web provider): read {"baseUrl", "token", "cases": [{name, key, kind, default,
// context}]} on stdin, evaluate each case with the runner's client, write one answer per case
// as JSON on stdout ({name, value, variant, reason, error_code, flag_metadata}). A runner
// gives `setUp(baseUrl, token) -> client` and `evaluate(client, method, c, context) ->
// details`; tests/interop/node_clients.py copies this file next to the runner.
'use strict';

const METHODS = {
  boolean: 'getBooleanDetails',
  string: 'getStringDetails',
  integer: 'getNumberDetails',
  float: 'getNumberDetails',
  object: 'getObjectDetails',
};

function orNull(value) {
  return value === undefined ? null : value;
}

async function readRequest() {
  let input = '';
  for await (const chunk of process.stdin) input += chunk;
  return JSON.parse(input);
}

async function evaluateCases({ OpenFeature, setUp, evaluate }) {
  const { baseUrl, token, cases } = await readRequest();
  const client = await setUp(baseUrl, token);
  const answers = [];
  for (const c of cases) {
    const { targetingKey, ...attributes } = c.context;
    const context = targetingKey === undefined ? attributes : { targetingKey, ...attributes };
    const d = await evaluate(client, METHODS[c.kind], c, context);
    answers.push({
      name: c.name,
      value: orNull(d.value),
      variant: orNull(d.variant),
      reason: orNull(d.reason),
      error_code: orNull(d.errorCode),
      flag_metadata: d.flagMetadata || {},
    });
  }
  process.stdout.write(JSON.stringify(answers));
  await OpenFeature.close();
}

function run(runner) {
  evaluateCases(runner).catch((err) => {
    process.stderr.write(String((err && err.stack) || err));
    process.exit(1);
  });
}

module.exports = { run };
