#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Lean load generator for `ringinfer serve`: the same requests and report as serve_bench.mjs
(vLLM's serving-benchmark format), over python's http.client, one thread per concurrent client,
each request written in one send. It shows the server's own latencies; serve_bench.mjs shows
what a user of the openai npm client sees (on this host its Node.js client adds tens of ms).

    serve_bench.py --base-url http://127.0.0.1:PORT --concurrency C --num-prompts N
                   [--input-len 32] [--output-len 128] [--vocab 512] [--seed 0]
                   [--temperature 0] [--top-p 1]
"""
import argparse
import http.client
import json
import random
import statistics
import threading
import time
import urllib.parse


def one(host, port, prompt, out_len, temperature, top_p):
    body = json.dumps({"prompt": prompt, "max_tokens": out_len, "temperature": temperature,
                       "top_p": top_p, "stream": True,
                       "stream_options": {"include_usage": True}, "ignore_eos": True})
    c = http.client.HTTPConnection(host, port, timeout=600)
    t0 = time.perf_counter()
    c.request("POST", "/v1/completions", body=body.encode(),  # headers and body in one send
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    ttft, last, itl, usage = None, t0, [], None
    while True:
        ln = r.readline()
        if not ln:
            break
        if not ln.startswith(b"data: ") or ln.startswith(b"data: [DONE]"):
            continue
        now = time.perf_counter()
        ch = json.loads(ln[6:])
        if ch.get("usage"):
            usage = ch["usage"]
        if ch.get("choices") and ch["choices"][0].get("text"):
            if ttft is None:
                ttft = now - t0
            else:
                itl.append(now - last)
            last = now
    c.close()
    lat = last - t0
    n = usage["completion_tokens"] if usage else 0
    return {"ttft": ttft or 0, "itl": itl, "lat": lat, "out": n,
            "in": usage["prompt_tokens"] if usage else 0,
            "tpot": (lat - ttft) / (n - 1) if n > 1 and ttft else 0}


def pct(a, p):
    s = sorted(a)
    if not s:
        return 0
    k = (len(s) - 1) * p / 100
    f, c = int(k), min(int(k) + 1, len(s) - 1)
    return s[f] + (s[c] - s[f]) * (k - f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--num-prompts", type=int)
    ap.add_argument("--input-len", type=int, default=32)
    ap.add_argument("--output-len", type=int, default=128)
    ap.add_argument("--vocab", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--temperature", type=float, default=0.0)
    ap.add_argument("--top-p", type=float, default=1.0)
    a = ap.parse_args()
    u = urllib.parse.urlparse(a.base_url)
    num = a.num_prompts or 4 * a.concurrency
    rnd = random.Random(a.seed)
    prompts = [[1] + [rnd.randrange(3, a.vocab) for _ in range(a.input_len - 1)] for _ in range(num)]
    results, lock, nxt = [], threading.Lock(), [0]

    def client():
        while True:
            with lock:
                if nxt[0] >= num:
                    return
                i = nxt[0]
                nxt[0] += 1
            r = one(u.hostname, u.port, prompts[i], a.output_len, a.temperature, a.top_p)
            with lock:
                results.append(r)

    t0 = time.perf_counter()
    th = [threading.Thread(target=client) for _ in range(a.concurrency)]
    [t.start() for t in th]
    [t.join() for t in th]
    dur = time.perf_counter() - t0
    out = sum(r["out"] for r in results)
    inp = sum(r["in"] for r in results)

    def line(k, v):
        print("%-40s %s" % (k, v))

    def sec(t):
        n = 50 - len(t)
        print("-" * (n // 2) + t + "-" * (n - n // 2))

    print("{s:{c}^{n}}".format(s=" Serving Benchmark Result ", n=50, c="="))
    line("Successful requests:", len(results))
    line("Maximum request concurrency:", a.concurrency)
    line("Benchmark duration (s):", "%.2f" % dur)
    line("Total input tokens:", inp)
    line("Total generated tokens:", out)
    line("Request throughput (req/s):", "%.2f" % (len(results) / dur))
    line("Output token throughput (tok/s):", "%.2f" % (out / dur))
    line("Total Token throughput (tok/s):", "%.2f" % ((inp + out) / dur))
    for title, name, vals in (("Time to First Token", "TTFT", [r["ttft"] for r in results]),
                              ("Time per Output Token (excl. 1st token)", "TPOT", [r["tpot"] for r in results]),
                              ("Inter-token Latency", "ITL", [x for r in results for x in r["itl"]])):
        sec(title)
        ms = [v * 1000 for v in vals]
        line("Mean %s (ms):" % name, "%.2f" % (statistics.mean(ms) if ms else 0))
        line("Median %s (ms):" % name, "%.2f" % pct(ms, 50))
        line("P99 %s (ms):" % name, "%.2f" % pct(ms, 99))
    print("=" * 50)


if __name__ == "__main__":
    main()
