// workers.js: runs the worker scenario of test_workers.py with the real
// zeebe-node client and prints one JSON line at the end.
//
//   node workers.js ADDRESS BPMN_PATH INSTANCES TIME_LIMIT_S [PACE_MS]
//
// PACE_MS: each of the 4 creators waits this long between creations, so
// the run spans the leader kill (default 0).
//
// Data flow: deploy BPMN_PATH -> create INSTANCES instances of "workers"
// (amount alternating big/small), a few at a time, recording every
// acknowledged processInstanceKey -> zeebe-node workers for every task
// type activate jobs (short job timeout, so jobs lost with a killed
// leader come back) and complete them, recording each activation (job
// key, instance, time received, deadline) and each acknowledged
// completion (job key, time) -> stops when every created instance's
// "finish" job completion was acknowledged, or at the time limit.
// Progress lines "created N" / "finished N" go to stderr so the test can
// kill a leader mid-run. Output: {"created": [...], "finished": [...],
// "activations": [[jobKey, pik, receivedMs, deadlineMs, type], ...],
// "completions": [[jobKey, ackedMs], ...], "createFailed": n, "errors": [..]}
'use strict';
const { ZBClient } = require('zeebe-node');

async function main() {
  const [address, bpmn, nArg, tArg, paceArg = '0'] = process.argv.slice(2);
  const pace = Number(paceArg);
  const total = Number(nArg);
  const deadline = Date.now() + Number(tArg) * 1000;
  const zbc = new ZBClient(address, {
    useTLS: false,
    loglevel: 'NONE',
    retry: true,
    maxRetries: 50,
    maxRetryTimeout: 2000,
  });
  const created = [];
  const finished = new Set();
  const activations = [];
  const completions = [];
  const errors = [];
  let createFailed = 0;
  const note = (e) => { if (errors.length < 10) errors.push(String(e && e.message ? e.message : e)); };
  // A run that outlives its time limit by WATCHDOG_S says where it is
  // stuck (on stderr) and exits 3, so a hang fails with a reason.
  const WATCHDOG_S = 30;
  let phase = 'deploy';
  let creating = 0;
  const watchdog = setTimeout(() => {
    process.stderr.write('watchdog: stuck in phase "' + phase + '" ' + WATCHDOG_S +
      ' s after the time limit: created ' + created.length + ', finished ' +
      finished.size + ', creates in flight ' + creating + ', errors ' +
      JSON.stringify(errors) + '\n', () => process.exit(3));
  }, Number(tArg) * 1000 + WATCHDOG_S * 1000);

  await zbc.deployResource({ processFilename: bpmn });

  phase = 'create';
  const types = ['w-prepare', 'w-big', 'w-small', 'w-left', 'w-right', 'w-finish'];
  const workers = types.map((type) => zbc.createWorker({
    taskType: type,
    timeout: 3000,
    maxJobsToActivate: 32,
    pollInterval: 100,
    longPoll: 2000,
    loglevel: 'NONE',
    taskHandler: async (job) => {
      activations.push([job.key, job.processInstanceKey, Date.now(), Number(job.deadline), type]);
      try {
        const res = await job.complete({ [type.replace('-', '_')]: true });
        completions.push([job.key, Date.now()]);
        if (type === 'w-finish') {
          finished.add(job.processInstanceKey);
          if (finished.size % 20 === 0) process.stderr.write('finished ' + finished.size + '\n');
        }
        return res;
      } catch (e) {
        note(e);
        throw e;
      }
    },
  }));

  let next = 0;
  async function creator() {
    while (next < total && Date.now() < deadline) {
      const i = next++;
      creating++;
      try {
        const res = await zbc.createProcessInstance({
          bpmnProcessId: 'workers',
          variables: { i, amount: i % 2 === 0 ? 500 : 5 },
        });
        created.push(String(res.processInstanceKey));
        if (created.length % 20 === 0) process.stderr.write('created ' + created.length + '\n');
      } catch (e) {
        createFailed++;
        note(e);
      } finally {
        creating--;
      }
      if (pace > 0) await new Promise((r) => setTimeout(r, pace));
    }
  }
  await Promise.all(Array.from({ length: 4 }, creator));
  phase = 'wait for instances to finish';
  while (Date.now() < deadline && created.some((k) => !finished.has(k))) {
    await new Promise((r) => setTimeout(r, 100));
  }
  phase = 'close workers';
  for (const w of workers) {
    try { await w.close(1000); } catch (e) { /* closing */ }
  }
  phase = 'close client';
  try { await zbc.close(2000); } catch (e) { /* closing */ }
  phase = 'write result';
  clearTimeout(watchdog);
  // Exit only once the (large) line is flushed into the pipe.
  process.stdout.write(JSON.stringify({
    created, finished: [...finished], activations, completions, createFailed, errors,
  }) + '\n', () => process.exit(0));
}

main().catch((e) => { console.error(e); process.exit(1); });
