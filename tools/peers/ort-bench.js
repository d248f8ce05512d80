// ort-bench.js: ONNX Runtime (onnxruntime-node) timings for tools/bench-peers.
//
//   node tools/peers/ort-bench.js SPEC.json
//
// SPEC: {"ort": "<path of the onnxruntime-node package>", "threads": N, "batch": 64,
//        "plan": {"lat": PLAN, "big": PLAN},
//        "models": [{"name": ..., "path": "model.onnx", "input": [c, h, w]}]}
// PLAN: {"min_runs", "max_runs", "budget", "cap", "warmup"}, as in tools/fer-bench.c.
// Prints one JSON object per model on its own line:
//   {"name", "latency_ms", "infer_1t", "infer_nt"} with {"median", "min", "runs"} in ms,
//   or {"name", "error"}. Sessions use every graph optimization, sequential execution,
//   one inter-op thread, and 1 intra-op thread (latency, infer_1t) or N (infer_nt).
'use strict';
const fs = require('fs');

const spec = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const ort = require(spec.ort);

const now = () => Number(process.hrtime.bigint()) / 1e9;

async function measure(fn, p) {
  let start = now(), t0;
  do { await fn(); } while (now() - start < p.warmup);
  const t = [];
  start = now();
  for (;;) {
    t0 = now();
    await fn();
    const dt = now() - t0;
    t.push(dt);
    const el = now() - start;
    if (t.length >= p.max_runs || (t.length >= p.min_runs && el >= p.budget) || el + dt > p.cap) break;
  }
  t.sort((a, b) => a - b);
  const n = t.length;
  const median = n % 2 ? t[(n - 1) / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
  return { median: median * 1e3, min: t[0] * 1e3, runs: n };
}

function input(batch, shape, seed) {
  const n = batch * shape[0] * shape[1] * shape[2];
  const data = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; data[i] = s / 4294967296; }
  return new ort.Tensor('float32', data, [batch, shape[0], shape[1], shape[2]]);
}

async function session(path, threads) {
  return ort.InferenceSession.create(path, {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
  });
}

async function main() {
  for (const m of spec.models) {
    try {
      const out = { name: m.name };
      const x1 = input(1, m.input, 1), xb = input(spec.batch, m.input, 2);
      let s = await session(m.path, 1);
      const feed = (x) => ({ [s.inputNames[0]]: x });
      const r1 = await s.run(feed(x1));
      const logits = r1[s.outputNames[0]].data;
      if (!Array.from(logits).every(Number.isFinite)) throw new Error('non-finite logits');
      out.latency_ms = await measure(() => s.run(feed(x1)), spec.plan.lat);
      out.infer_1t = await measure(() => s.run(feed(xb)), spec.plan.big);
      if (s.release) await s.release();
      s = await session(m.path, spec.threads);
      out.infer_nt = await measure(() => s.run(feed(xb)), spec.plan.big);
      if (s.release) await s.release();
      console.log(JSON.stringify(out));
    } catch (e) {
      console.log(JSON.stringify({ name: m.name, error: String(e && e.message ? e.message : e) }));
    }
  }
}

main().catch((e) => { console.error('ort-bench: ' + e); process.exit(1); });
