// SPDX-License-Identifier: MIT
// Load generator for `ringinfer serve` with the official openai client, reporting in the
// format of vLLM's serving benchmark (benchmarks/benchmark_serving.py): time to first token,
// time per output token (excluding the first), inter-token latency, throughput.
//   node serve_bench.mjs --base-url http://127.0.0.1:PORT --concurrency C --num-prompts N
//        [--input-len 32] [--output-len 128] [--vocab 512] [--seed 0] [--model NAME]
//        [--temperature 0] [--top-p 1]
// Prompts are random token ids (vLLM's "random" dataset), sent as /v1/completions streams
// with ignore_eos so every request produces --output-len tokens. The first token's time
// is TTFT; every later chunk's gap is one ITL sample; TPOT = (latency - TTFT) / (tokens - 1).
import OpenAI from 'openai';

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
  if (a.startsWith('--')) acc.push([a.slice(2), all[i + 1]]);
  return acc;
}, []));
const base = args['base-url'];
const conc = Number(args.concurrency ?? 1);
const num = Number(args['num-prompts'] ?? 4 * conc);
const inLen = Number(args['input-len'] ?? 32);
const outLen = Number(args['output-len'] ?? 128);
const vocab = Number(args.vocab ?? 512);
const temperature = Number(args.temperature ?? 0), topP = Number(args['top-p'] ?? 1);
let seed = Number(args.seed ?? 0) + 1;
const rand = () => { // xorshift32: the same prompts every run
  seed ^= seed << 13; seed >>>= 0; seed ^= seed >>> 17; seed ^= seed << 5; seed >>>= 0;
  return seed / 4294967296;
};
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'unused', timeout: 600000, maxRetries: 0 });
const prompts = Array.from({ length: num }, () =>
  [1, ...Array.from({ length: inLen - 1 }, () => 3 + Math.floor(rand() * (vocab - 3)))]);

async function one(prompt) {
  const t0 = performance.now();
  const s = await client.completions.create({ model: args.model ?? 'm', prompt, max_tokens: outLen,
    temperature, top_p: topP, stream: true, stream_options: { include_usage: true }, ignore_eos: true });
  let last = t0, ttft = null, tokens = 0, inTok = 0;
  const itl = [];
  for await (const c of s) {
    const now = performance.now();
    if (c.usage) { tokens = c.usage.completion_tokens; inTok = c.usage.prompt_tokens; }
    if (!c.choices?.length || !c.choices[0].text) continue;
    if (ttft === null) ttft = now - t0; else itl.push(now - last);
    last = now;
  }
  const latency = last - t0;
  return { ttft, itl, latency, tokens, inTok, tpot: tokens > 1 ? (latency - ttft) / (tokens - 1) : 0 };
}

const results = [];
let next = 0;
const t0 = performance.now();
await Promise.all(Array.from({ length: conc }, async () => {
  while (next < num) results.push(await one(prompts[next++]));
}));
const dur = (performance.now() - t0) / 1000;

const mean = (a) => a.reduce((x, y) => x + y, 0) / (a.length || 1);
const pct = (a, p) => {
  const s = [...a].sort((x, y) => x - y);
  if (!s.length) return 0;
  const k = (s.length - 1) * p / 100, f = Math.floor(k), c = Math.ceil(k);
  return s[f] + (s[c] - s[f]) * (k - f);
};
const out = results.reduce((x, r) => x + r.tokens, 0), inp = results.reduce((x, r) => x + r.inTok, 0);
const ttft = results.map((r) => r.ttft), tpot = results.map((r) => r.tpot), itl = results.flatMap((r) => r.itl);
const line = (k, v) => console.log(`${k.padEnd(40)} ${v}`);
const sec = (t) => console.log(t.length >= 50 ? t : `${'-'.repeat(Math.floor((50 - t.length) / 2))}${t}${'-'.repeat(Math.ceil((50 - t.length) / 2))}`);
console.log('============ Serving Benchmark Result ============');
line('Successful requests:', results.length);
line('Maximum request concurrency:', conc);
line('Benchmark duration (s):', dur.toFixed(2));
line('Total input tokens:', inp);
line('Total generated tokens:', out);
line('Request throughput (req/s):', (results.length / dur).toFixed(2));
line('Output token throughput (tok/s):', (out / dur).toFixed(2));
line('Total Token throughput (tok/s):', ((inp + out) / dur).toFixed(2));
for (const [title, name, a] of [['Time to First Token', 'TTFT', ttft],
  ['Time per Output Token (excl. 1st token)', 'TPOT', tpot], ['Inter-token Latency', 'ITL', itl]]) {
  sec(title);
  line(`Mean ${name} (ms):`, mean(a).toFixed(2));
  line(`Median ${name} (ms):`, pct(a, 50).toFixed(2));
  line(`P99 ${name} (ms):`, pct(a, 99).toFixed(2));
}
console.log('='.repeat(50));
