#!/usr/bin/env node
// Times ONNX Runtime (CPU, npm onnxruntime-node 1.30.0 from bench/ort) on the ConvNeXt-T ONNX export:
// random float32 input [B,3,S,S], W warm-up runs, then N timed runs; prints one JSON line
//   {"engine":"onnxruntime","batch","threads","median_ms","images_per_s","peak_rss_mb","max_rss_mb",...}
// peak_rss_mb = the process's max RSS minus node's own max RSS measured at start, before ORT is loaded.
//   node bench/ort_bench.js [--model build/bench/convnext_tiny.onnx] [--batch 1] [--threads 2] [--size 224]
//                           [--iters 10] [--warmup 2] [--check]
// Session: intraOpNumThreads = T, interOpNumThreads = 1, graphOptimizationLevel 'all', executionMode
// 'sequential'. --check only runs batches 1 and 2 once and verifies the output shape is [B,1000].
'use strict';
const baselineKB = process.resourceUsage().maxRSS;  // KB, before ORT is loaded
const path = require('path');

function parseArgs(argv) {
  const a = {model: path.join(__dirname, '..', 'build', 'bench', 'convnext_tiny.onnx'), batch: 1, threads: 2,
             size: 224, iters: 10, warmup: 2, check: false};
  for (let i = 0; i < argv.length; ++i) {
    const k = argv[i].replace(/^--/, '');
    if (k === 'check') { a.check = true; continue; }
    if (!(k in a) || i + 1 >= argv.length) throw new Error(`bad argument ${argv[i]}`);
    a[k] = k === 'model' ? argv[++i] : Number(argv[++i]);
  }
  return a;
}

function randomInput(ort, b, s) {
  const n = b * 3 * s * s, data = new Float32Array(n);
  let x = 0x9e3779b9 >>> 0;  // xorshift32, uniform in [-1, 1)
  for (let i = 0; i < n; ++i) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    data[i] = x / 2147483648 - 1;
  }
  return new ort.Tensor('float32', data, [b, 3, s, s]);
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const ort = require(path.join(__dirname, 'ort', 'node_modules', 'onnxruntime-node'));
  const session = await ort.InferenceSession.create(a.model, {
    intraOpNumThreads: a.threads, interOpNumThreads: 1, graphOptimizationLevel: 'all', executionMode: 'sequential'});
  const inName = session.inputNames[0], outName = session.outputNames[0];
  if (a.check) {
    for (const b of [1, 2]) {
      const out = (await session.run({[inName]: randomInput(ort, b, a.size)}))[outName];
      const ok = out.dims.length === 2 && out.dims[0] === b && out.dims[1] === 1000;
      console.log(`check batch ${b}: output ${outName} [${out.dims}] ${ok ? 'OK' : 'WRONG (want [' + b + ',1000])'}`);
      if (!ok) process.exit(1);
    }
    return;
  }
  const feeds = {[inName]: randomInput(ort, a.batch, a.size)};
  for (let i = 0; i < a.warmup; ++i) await session.run(feeds);
  const ms = [];
  for (let i = 0; i < a.iters; ++i) {
    const t0 = process.hrtime.bigint();
    await session.run(feeds);
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  ms.sort((x, y) => x - y);
  const h = ms.length >> 1, median = ms.length % 2 ? ms[h] : (ms[h - 1] + ms[h]) / 2;
  const maxKB = process.resourceUsage().maxRSS;
  console.log(JSON.stringify({
    engine: 'onnxruntime', version: require(path.join(__dirname, 'ort', 'node_modules', 'onnxruntime-node', 'package.json')).version,
    batch: a.batch, size: a.size, threads: a.threads, iters: a.iters, median_ms: median, min_ms: ms[0],
    images_per_s: a.batch * 1000 / median, peak_rss_mb: (maxKB - baselineKB) / 1024, max_rss_mb: maxKB / 1024,
    node_baseline_rss_mb: baselineKB / 1024}));
}

main().catch((e) => { console.error(e && e.stack || e); process.exit(1); });
