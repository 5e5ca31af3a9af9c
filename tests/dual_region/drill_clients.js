// drill_clients.js: the clients of the dual-region drill
// (tests/dual_region/test_drill.py), with the real zeebe-node client.
//
//   node drill_clients.js ADDRESS BPMN_PATH CREATORS PACE_MS TIME_LIMIT_S DRAIN_S
//
// Data flow: deploy BPMN_PATH (process "drill") -> CREATORS loops each
// create an instance of "drill" every PACE_MS ms (no client-side retries:
// a creation refused or timed out while the cluster has no quorum is
// counted as failed and the loop goes on) -> a zeebe-node worker for job
// type "drill-work" activates the jobs and completes them. Every
// acknowledgement is one JSON line on stdout as it happens:
//   {"ev":"created","k":"<processInstanceKey>","t":<ms since epoch>}
//   {"ev":"finished","k":"<processInstanceKey>","t":<ms>}  (completion acked)
//   {"ev":"failed","t":<ms>,"e":"<message>"}              (a creation failed)
// When stdin closes (the test is done) or TIME_LIMIT_S passes, the
// creators stop; the worker goes on until every created instance finished
// or DRAIN_S more seconds passed; then {"ev":"done",...} and exit 0.
'use strict';
const { ZBClient } = require('zeebe-node');

function emit(obj) { process.stdout.write(JSON.stringify(obj) + '\n'); }

async function main() {
  const [address, bpmn, cArg, paceArg, tArg, drainArg] = process.argv.slice(2);
  const creators = Number(cArg);
  const pace = Number(paceArg);
  const hardDeadline = Date.now() + Number(tArg) * 1000;
  const drainS = Number(drainArg);
  if (!address || !bpmn || !(creators > 0) || !(pace >= 0) ||
      !(Number(tArg) > 0) || !(drainS >= 0)) {
    console.error('usage: drill_clients.js ADDRESS BPMN CREATORS PACE_MS TIME_LIMIT_S DRAIN_S');
    process.exit(2);
  }
  const zbc = new ZBClient(address, {
    useTLS: false, loglevel: 'NONE', retry: false,
  });
  const created = new Set();
  const finished = new Set();
  let stopping = false;
  process.stdin.on('end', () => { stopping = true; });
  process.stdin.on('error', () => { stopping = true; });
  process.stdin.resume();

  // Deploy with a few attempts (bounded): the cluster is up but a
  // partition may still be electing.
  for (let attempt = 0; ; attempt++) {
    try { await zbc.deployResource({ processFilename: bpmn }); break; } catch (e) {
      if (attempt >= 20) throw e;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  emit({ ev: 'deployed', t: Date.now() });

  const worker = zbc.createWorker({
    taskType: 'drill-work', timeout: 3000, maxJobsToActivate: 32,
    pollInterval: 100, longPoll: 2000, loglevel: 'NONE',
    taskHandler: async (job) => {
      const res = await job.complete({ done: true });
      const k = String(job.processInstanceKey);
      if (!finished.has(k)) {
        finished.add(k);
        emit({ ev: 'finished', k, t: Date.now() });
      }
      return res;
    },
  });

  let seq = 0;
  async function creator() {
    while (!stopping && Date.now() < hardDeadline) {
      const i = seq++;
      try {
        const res = await Promise.race([
          zbc.createProcessInstance({ bpmnProcessId: 'drill', variables: { i } }),
          new Promise((_, rej) => setTimeout(() => rej(new Error('client timeout 5s')), 5000)),
        ]);
        const k = String(res.processInstanceKey);
        created.add(k);
        emit({ ev: 'created', k, t: Date.now() });
      } catch (e) {
        emit({ ev: 'failed', t: Date.now(), e: String(e && e.message ? e.message : e).slice(0, 200) });
        await new Promise((r) => setTimeout(r, 200));
      }
      if (pace > 0) await new Promise((r) => setTimeout(r, pace));
    }
  }
  await Promise.all(Array.from({ length: creators }, creator));
  const drainDeadline = Math.min(Date.now() + drainS * 1000, hardDeadline + drainS * 1000);
  while (Date.now() < drainDeadline && [...created].some((k) => !finished.has(k))) {
    await new Promise((r) => setTimeout(r, 100));
  }
  try { await worker.close(1000); } catch (e) { /* closing */ }
  try { await zbc.close(2000); } catch (e) { /* closing */ }
  process.stdout.write(JSON.stringify({ ev: 'done', created: created.size, finished: finished.size }) + '\n',
    () => process.exit(0));
}

main().catch((e) => { console.error(e); process.exit(1); });
