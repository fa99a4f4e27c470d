// bench/peers/cluster.js: cowdag's customer_score on node's `cluster`.
// node cannot share a heap built before the fork, so the primary only forks
// and each worker builds its own copy of the customer store, with the same
// generator as cowdag's (load/state.h).  POST /dags/customer_score/run
// answers what cowdag answers: the z-scores (sample std, ddof 1) of the
// requested customers' total spend.
//   node cluster.js PORT WORKERS   (RECORDS, SEED from the environment)
'use strict';
const cluster = require('node:cluster');
const http = require('node:http');

const port = Number(process.argv[2] || 18193);
const workers = Number(process.argv[3] || 2);

// {id: {id, name, segment, spend, tags}}, as load/state.h says.  The
// multiply is done modulo 2^32 (Math.imul): only the low 31 bits are kept.
function generateRecords(count, seed) {
  const store = new Map();
  let x = seed;
  for (let i = 0; i < count; i++) {
    const spend = [];
    for (let j = 0; j < 12; j++) {
      x = (Math.imul(1103515245, x) + 12345) & 0x7fffffff;
      spend.push((x % 100000) / 100);
    }
    store.set(i, { id: i, name: `customer-${i}`, segment: i % 16, spend, tags: [`t${i % 7}`, `t${i % 11}`] });
  }
  return store;
}

function customerScore(customers, ids) {
  const totals = ids.map((id) => {
    const rec = customers.get(id);
    if (rec === undefined) throw new Error(`lookup: no key ${id}`);
    let s = 0;
    for (const v of rec.spend) s += v;
    return s;
  });
  const n = totals.length;
  let sum = 0;
  for (const t of totals) sum += t;
  const mean = sum / n;
  let sq = 0;
  for (const t of totals) sq += (t - mean) * (t - mean);
  const std = n > 1 ? Math.sqrt(sq / (n - 1)) : NaN;
  return totals.map((t) => (t - mean) / std); // NaN is written as null
}

function reply(res, status, doc) {
  const body = JSON.stringify(doc);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

function serve() {
  const customers = generateRecords(Number(process.env.RECORDS || 200000), Number(process.env.SEED || 42));
  http.createServer((req, res) => {
    if (req.url !== '/dags/customer_score/run' || req.method !== 'POST') {
      reply(res, 404, { error: { code: 'not_found', message: 'POST /dags/customer_score/run only' } });
      return;
    }
    const start = process.hrtime.bigint();
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      let ids;
      try {
        ids = JSON.parse(Buffer.concat(chunks)).inputs.ids;
        if (!Array.isArray(ids)) throw new Error('ids is not an array');
      } catch (e) {
        reply(res, 400, { error: { code: 'bad_json', message: String(e.message) } });
        return;
      }
      let scores;
      try {
        scores = customerScore(customers, ids);
      } catch (e) {
        reply(res, 422, { error: { code: 'op_error', message: e.message } });
        return;
      }
      const elapsed = Number(process.hrtime.bigint() - start) / 1000;
      reply(res, 200, { dag: 'customer_score', outputs: { scores }, stats: { elapsed_us: Math.round(elapsed), pid: process.pid } });
    });
  }).listen(port, '127.0.0.1', () => console.error(`worker ${process.pid} ready`));
}

if (cluster.isPrimary) {
  for (let i = 0; i < workers; i++) cluster.fork();
  cluster.on('exit', (w, code, signal) => console.error(`worker ${w.process.pid} exited (${signal || code})`));
  const stop = () => {
    for (const w of Object.values(cluster.workers)) w.process.kill('SIGTERM');
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} else {
  serve();
}
