// SPDX-License-Identifier: MIT
// The official `openai` npm client against `ringinfer serve` on loopback: chat and completions,
// plain and streamed, n choices (and a batch of prompts), usage, stop strings, an abort mid-stream (the slot is freed: /metrics),
// 8 requests at once. Starts the server itself (--port 0, the port from its "listening on"
// line). Every wait is bounded.  node serve_openai.mjs RINGINFER SHARED_DIR
import OpenAI from 'openai';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [ri, shared] = process.argv.slice(2);
const DEADLINE_MS = 120000;
let failures = 0;
const check = (cond, what) => {
  console.log(`${cond ? 'ok  ' : 'FAIL'} ${what}`);
  if (!cond) failures++;
};
const withDeadline = (p, what) =>
  Promise.race([p, new Promise((_, rej) => setTimeout(() => rej(new Error(`timeout: ${what}`)), DEADLINE_MS).unref())]);

function startServer(args) {
  const srv = spawn(ri, ['serve', '--port', '0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  srv.stderr.on('data', (d) => (err += d));
  const port = new Promise((resolve, reject) => {
    let out = '';
    srv.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on http:\/\/\S*:(\d+)\n/);
      if (m) resolve(Number(m[1]));
    });
    srv.on('exit', (code) => reject(new Error(`server exited ${code}: ${err}`)));
  });
  return { srv, port: withDeadline(port, 'server start'), stderr: () => err };
}

const tmp = mkdtempSync(join(tmpdir(), 'serve-openai-'));
const tmpl = join(tmp, 'chat.jinja');
writeFileSync(tmpl, "{% for m in messages %}{{ m['content'] }}\n{% endfor %}");
const models = join(shared, 'models');
const { srv, port: portP, stderr } = startServer([
  '-m', join(models, 'stories260K.bin'), '--tokenizer', join(models, 'tok512.bin'),
  '--chat-template', tmpl, '--alias', 'stories', '--parallel', '4']);

async function metric(base, name) {
  const text = await (await fetch(`${base}/metrics`)).text();
  const m = text.match(new RegExp(`^${name} (\\S+)$`, 'm'));
  return m ? Number(m[1]) : NaN;
}

async function waitMetric(base, name, pred) {
  const end = Date.now() + DEADLINE_MS;
  let v;
  while (Date.now() < end) {
    v = await metric(base, name);
    if (pred(v)) return v;
    await new Promise((r) => setTimeout(r, 20));
  }
  return v;
}

async function main() {
  const port = await portP;
  const base = `http://127.0.0.1:${port}`;
  const end = Date.now() + DEADLINE_MS; // it listens while it loads: /health 503 until ready
  while ((await fetch(`${base}/health`)).status !== 200) {
    if (Date.now() > end) throw new Error('server never became ready');
    await new Promise((r) => setTimeout(r, 20));
  }
  const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'unused', timeout: DEADLINE_MS, maxRetries: 0 });
  const models = await client.models.list();
  check(models.data[0].id === 'stories', 'models.list names the alias');

  const msgs = [{ role: 'user', content: 'Lily and Ben' }];
  const chat = await client.chat.completions.create({ model: 'stories', messages: msgs, max_tokens: 20, temperature: 0 });
  const answer = chat.choices[0].message.content;
  check(answer.length > 0 && chat.choices[0].finish_reason === 'length' && chat.usage.completion_tokens === 20,
    `chat: ${JSON.stringify(answer)}, usage ${JSON.stringify(chat.usage)}`);

  const stream = await client.chat.completions.create({ model: 'stories', messages: msgs, max_tokens: 20, temperature: 0,
    stream: true, stream_options: { include_usage: true } });
  let text = '', roles = 0, finish = null, usage = null;
  for await (const c of stream) {
    if (c.usage) usage = c.usage;
    if (!c.choices.length) continue;
    if (c.choices[0].delta.role) roles++;
    text += c.choices[0].delta.content ?? '';
    if (c.choices[0].finish_reason) finish = c.choices[0].finish_reason;
  }
  check(text === answer && roles === 1 && finish === 'length' && usage?.completion_tokens === 20,
    'chat stream: same text, one role, finish_reason length, usage chunk');

  const comp = await client.completions.create({ model: 'stories', prompt: 'Once upon a time', max_tokens: 30, temperature: 0 });
  const ctext = comp.choices[0].text;
  check(ctext.startsWith(', there was') && comp.usage.prompt_tokens > 0, `completion: ${JSON.stringify(ctext)}`);
  const cs = await client.completions.create({ model: 'stories', prompt: 'Once upon a time', max_tokens: 30, temperature: 0, stream: true });
  let st = '';
  for await (const c of cs) st += c.choices[0]?.text ?? '';
  check(st === ctext, 'completion stream: same text');

  // n: 2 choices, plain and streamed: greedy gives the n=1 answer twice; seeded, each index
  // its own text, the same streamed; usage counts the prompt once.
  const two = await client.chat.completions.create({ model: 'stories', messages: msgs, max_tokens: 20, temperature: 0, n: 2 });
  check(two.choices.length === 2 && two.choices.every((c, i) => c.index === i && c.message.content === answer
    && c.finish_reason === 'length') && two.usage.completion_tokens === 40 && two.usage.prompt_tokens === chat.usage.prompt_tokens,
  `chat n=2: both choices the greedy answer, usage ${JSON.stringify(two.usage)}`);
  const seeded = { model: 'stories', prompt: 'Once upon a time', max_tokens: 24, temperature: 1, seed: 42, n: 2 };
  const sc = await client.completions.create(seeded);
  const stexts = sc.choices.map((c) => c.text);
  const sstream = await client.completions.create({ ...seeded, stream: true, stream_options: { include_usage: true } });
  const per = ['', ''];
  let sfin = 0, susage = null;
  for await (const c of sstream) {
    if (c.usage) susage = c.usage;
    for (const ch of c.choices) {
      per[ch.index] += ch.text;
      if (ch.finish_reason) sfin++;
    }
  }
  check(stexts.length === 2 && stexts[0] !== stexts[1] && per[0] === stexts[0] && per[1] === stexts[1] && sfin === 2
    && susage?.completion_tokens === sc.usage.completion_tokens,
  `completion n=2 seeded: two texts, the same streamed by index, a finish_reason each: ${JSON.stringify(stexts)}`);

  // A batch of two prompts, n: 2 each: prompt p's choices at index 2p and 2p+1.
  const batch = await client.completions.create({ model: 'stories', prompt: ['Once upon a time', 'Lily and Ben'],
    max_tokens: 30, temperature: 0, n: 2 });
  const bt = batch.choices.map((c) => c.text);
  check(batch.choices.map((c) => c.index).join() === '0,1,2,3' && bt[0] === ctext && bt[1] === ctext
    && bt[2] === bt[3] && bt[2] !== ctext && batch.usage.completion_tokens === 120,
  `completion of two prompts x n=2: ${JSON.stringify(bt.map((t) => t.slice(0, 20)))}`);

  const stop = ' Lily';
  const cut = ctext.indexOf(stop);
  const stopped = await client.completions.create({ model: 'stories', prompt: 'Once upon a time', max_tokens: 30, temperature: 0, stop: [stop] });
  check(cut > 0 && stopped.choices[0].text === ctext.slice(0, cut) && stopped.choices[0].finish_reason === 'stop',
    `stop string: ${JSON.stringify(stopped.choices[0].text)}`);
  const ss = await client.completions.create({ model: 'stories', prompt: 'Once upon a time', max_tokens: 30, temperature: 0, stop, stream: true });
  let sst = '';
  for await (const c of ss) sst += c.choices[0]?.text ?? '';
  check(sst === ctext.slice(0, cut), 'stop string, streamed: nothing of the stop string is sent');

  // Abort mid-stream: the slot frees at the next step (checked on /metrics). On tiny-llama
  // (about 2 ms a token here), so 500 tokens outlast the abort by far.
  const tiny = startServer(['-m', join(shared, 'fixtures', 'hf', 'tiny-llama-f32')]);
  try {
    const tbase = `http://127.0.0.1:${await tiny.port}`;
    const end = Date.now() + DEADLINE_MS;
    while ((await fetch(`${tbase}/health`)).status !== 200) {
      if (Date.now() > end) throw new Error('tiny server never became ready');
      await new Promise((r) => setTimeout(r, 20));
    }
    const tclient = new OpenAI({ baseURL: `${tbase}/v1`, apiKey: 'unused', timeout: DEADLINE_MS, maxRetries: 0 });
    const ctrl = new AbortController();
    const long = await tclient.completions.create({ model: 'tiny', prompt: [1], max_tokens: 500, temperature: 0,
      stream: true, ignore_eos: true }, { signal: ctrl.signal });
    let got = 0;
    try {
      for await (const c of long) {
        if (c.choices[0]?.text !== undefined) got++;
        if (got === 1) ctrl.abort();
      }
    } catch (e) {
      /* the client reports the abort */
    }
    const cancelled = await waitMetric(tbase, 'ringinfer_requests_cancelled_total', (v) => v === 1);
    const generated = await metric(tbase, 'ringinfer_generation_tokens_total');
    check(cancelled === 1 && generated < 500, `abort mid-stream: cancelled ${cancelled}, ${generated} of 500 tokens generated`);
    check((await waitMetric(tbase, 'ringinfer_requests_running', (v) => v === 0)) === 0, 'abort: no slot stays busy');
  } finally {
    tiny.srv.kill('SIGTERM');
  }

  // 8 at once on 4 slots: each gets the answer it gets alone.
  const many = await Promise.all(Array.from({ length: 8 }, () =>
    client.chat.completions.create({ model: 'stories', messages: msgs, max_tokens: 20, temperature: 0 })));
  check(many.every((r) => r.choices[0].message.content === answer), 'concurrency 8: every answer equals the one alone');

  // An error comes back as the client's APIError with the status.
  try {
    await client.completions.create({ model: 'stories', prompt: 'x', max_tokens: 3, temperature: 9 });
    check(false, 'temperature 9 is refused');
  } catch (e) {
    check(e.status === 400 && e.param === 'temperature', `temperature 9: ${e.status} ${e.message}`);
  }
}

let code = 1;
try {
  await withDeadline(main(), 'tests');
  code = failures ? 1 : 0;
} catch (e) {
  console.log(`FAIL ${e.stack}`);
}
srv.kill('SIGTERM');
const exit = await withDeadline(new Promise((r) => srv.on('exit', (c, s) => r(c ?? s))), 'server exit').catch(() => 'timeout');
check(exit === 0, `server exits 0 on SIGTERM (${exit})`);
if (failures || code) console.log(stderr());
process.exit(failures ? 1 : code);
