// publish_many.js: publishes N messages through a Tandem gateway with the
// real zeebe-node client, C at a time, and prints one JSON line:
// {"acked": [keys...], "failed": count, "errors": [first few messages]}. Bounded: stops after N messages
// or the time limit, whichever comes first.
//
//   node publish_many.js ADDRESS N CONCURRENCY TIME_LIMIT_S [NAME]
'use strict';
const { ZBClient } = require('zeebe-node');

async function main() {
  const [address, nArg, cArg, tArg, name = 'load'] = process.argv.slice(2);
  const total = Number(nArg);
  const concurrency = Number(cArg);
  const deadline = Date.now() + Number(tArg) * 1000;
  if (!address || !(total > 0) || !(concurrency > 0) || !(Number(tArg) > 0)) {
    console.error('usage: node publish_many.js ADDRESS N CONCURRENCY TIME_LIMIT_S [NAME]');
    process.exit(2);
  }
  const zbc = new ZBClient(address, {
    useTLS: false,
    loglevel: 'NONE',
    retry: false,
  });
  const acked = [];
  const errors = [];
  let failed = 0;
  let next = 0;
  async function worker() {
    while (next < total && Date.now() < deadline) {
      const i = next++;
      try {
        const res = await zbc.publishMessage({
          name,
          correlationKey: 'ck-' + i,
          variables: { i },
          timeToLive: 0,
        });
        acked.push(String(res.key));
      } catch (e) {
        failed++;
        if (errors.length < 5) {
          errors.push(String(e && e.message ? e.message : e));
        }
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  await zbc.close();
  process.stdout.write(JSON.stringify({ acked, failed, errors }) + '\n');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
