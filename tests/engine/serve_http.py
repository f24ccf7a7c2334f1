#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Raw HTTP checks of `ringinfer serve` on loopback (python's http.client and sockets, no
OpenAI client): exact SSE framing, every error status, stop strings, seeds, concurrency,
aborts, idle connections and a slow client, SIGTERM drain; `tp`: TP=2 under ringrun gives
the tokens of TP=1, and a killed worker rank gives errors, not a hang.

    serve_http.py basic|tp|kill   (paths from the environment, see serve.sh)
Every wait has a deadline; the server is started with --port 0 and found from its
"listening on" line."""
import atexit
import http.client
import json
import os
import random
import resource
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

TOP = os.environ["abs_top_builddir"]
RI = os.path.join(TOP, "engine", "ringinfer")
RR = os.path.join(TOP, "tools", "ringrun")
SHARED = os.environ["SHARED_DIR"]
STORIES = ["-m", os.path.join(SHARED, "models", "stories260K.bin"),
           "--tokenizer", os.path.join(SHARED, "models", "tok512.bin")]
TINY = ["-m", os.path.join(SHARED, "fixtures", "hf", "tiny-llama-f32")]
DEADLINE = float(os.environ.get("SERVE_TEST_DEADLINE", "120"))  # seconds, per wait
failures = []
TMPS = []
atexit.register(lambda: [shutil.rmtree(d, ignore_errors=True) for d in TMPS])


def mktemp(prefix):
    TMPS.append(tempfile.mkdtemp(prefix=prefix))
    return TMPS[-1]


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


class Server:
    """One server (one process, or ranks under ringrun, or ranks started here)."""

    def __init__(self, args, ranks=1, env=None, manual=False):
        self.tmp = mktemp("serve.")
        self.procs, self.out = [], []
        env = dict(os.environ, **(env or {}))
        cmd = [RI, "serve", "--port", "0"] + args
        if manual:  # one process per rank with our own ring configs (ringrun would stop all)
            for r, cfg in enumerate(ring_configs(self.tmp, ranks)):
                e = dict(env, RING_CONFIG=cfg)
                self.procs.append(subprocess.Popen(cmd, env=e, stdout=subprocess.PIPE,
                                                   stderr=open(os.path.join(self.tmp, "err%d" % r), "w")))
        elif ranks > 1:
            self.procs.append(subprocess.Popen([RR, "-n", str(ranks), "--"] + cmd, env=env,
                                               stdout=subprocess.PIPE,
                                               stderr=open(os.path.join(self.tmp, "err0"), "w")))
        else:
            self.procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE,
                                               stderr=open(os.path.join(self.tmp, "err0"), "w")))
        self.port = self._wait_port(self.procs[0])
        for p in self.procs:  # keep the pipes drained
            threading.Thread(target=self._drain, args=(p,), daemon=True).start()
        end = time.time() + DEADLINE  # it listens while it loads: /health 503 until ready
        while self.req("GET", "/health")[0] != 200:
            if time.time() > end or self.procs[0].poll() is not None:
                self.stop()
                raise RuntimeError("server never became ready: %s" % self.errors())
            time.sleep(0.02)

    def _wait_port(self, p):
        buf, end = b"", time.time() + DEADLINE
        while time.time() < end:
            r, _, _ = select.select([p.stdout], [], [], 0.5)
            if r:
                chunk = os.read(p.stdout.fileno(), 4096)
                if not chunk:
                    break
                buf += chunk
                m = re.search(rb"listening on http://[^\s]*:(\d+)\n", buf)
                if m:
                    return int(m.group(1))
            elif p.poll() is not None:
                break
        self.stop()
        raise RuntimeError("server did not start: %r %s" % (buf, self.errors()))

    def _drain(self, p):
        try:
            while os.read(p.stdout.fileno(), 4096):
                pass
        except OSError:
            pass

    def errors(self):
        t = ""
        for f in sorted(os.listdir(self.tmp)):
            if f.startswith("err"):
                t += open(os.path.join(self.tmp, f)).read()
        return t

    def conn(self, timeout=DEADLINE):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def req(self, method, path, body=None, headers=None, raw=None):
        c = self.conn()
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        payload = r.read()
        c.close()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), payload

    def post(self, path, body, **kw):
        st, h, p = self.req("POST", path, body, **kw)
        try:
            return st, h, json.loads(p)
        except ValueError:
            return st, h, p

    def metric(self, name):
        _, _, p = self.req("GET", "/metrics")
        m = re.search(r"^%s (\S+)$" % re.escape(name), p.decode(), re.M)
        return float(m.group(1)) if m else None

    def wait_metric(self, name, pred):
        end = time.time() + DEADLINE
        while time.time() < end:
            v = self.metric(name)
            if v is not None and pred(v):
                return v
            time.sleep(0.02)
        return self.metric(name)

    def stop(self, sig=signal.SIGTERM):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(sig)
        codes = []
        for p in self.procs:
            try:
                codes.append(p.wait(timeout=DEADLINE))
            except subprocess.TimeoutExpired:
                p.kill()
                codes.append(p.wait())
        san = [w for w in ("AddressSanitizer", "LeakSanitizer", "ThreadSanitizer", "runtime error:") if w in self.errors()]
        if san:  # sanitizer builds: a report is a failure even where the exit code is expected
            check(False, "sanitizer report (%s):\n%s" % (", ".join(san), self.errors()[-3000:]))
        return codes


def ring_configs(d, n):
    socks = []
    for _ in range(n + 1):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    job = random.getrandbits(62) + 1
    paths = []
    for r in range(n):
        cfg = {"master_ip": "127.0.0.1", "master_port": ports[0], "port": ports[1 + r],
               "right_ip": "127.0.0.1", "right_port": ports[1 + (r + 1) % n], "rank": r,
               "world_size": n, "job_id": "0x%016x" % job}
        p = os.path.join(d, "rank-%d.json" % r)
        json.dump(cfg, open(p, "w"))
        paths.append(p)
    return paths


def sse_events(raw):
    """Splits an SSE body into its data payloads; checks the framing byte for byte."""
    text = raw.decode("utf-8")
    parts = text.split("\n\n")
    ok = parts[-1] == "" and all(p.startswith("data: ") and "\n" not in p for p in parts[:-1])
    return ok, [p[6:] for p in parts[:-1]]


def stream(srv, path, body, headers=None):
    st, h, raw = srv.req("POST", path, dict(body, stream=True), headers=headers)
    return st, h, raw


def basic():
    tmp = mktemp("serve-basic.")
    key = os.path.join(tmp, "key")
    open(key, "w").write("sk-test-123\n")
    tmpl = os.path.join(tmp, "chat.jinja")
    open(tmpl, "w").write("{% for m in messages %}{{ m['content'] }}\n{% endfor %}")
    auth = {"Authorization": "Bearer sk-test-123"}
    srv = Server(STORIES + ["--parallel", "2", "--max-queue", "1", "--api-key-file", key,
                            "--chat-template", tmpl, "--alias", "stories", "--max-body", "4096"])
    try:
        st, h, p = srv.req("GET", "/health")
        check(st == 200 and json.loads(p) == {"status": "ok"}, "GET /health 200 when ready")
        st, _, p = srv.req("GET", "/v1/models", headers=auth)
        check(st == 200 and json.loads(p)["data"][0]["id"] == "stories", "GET /v1/models lists the alias")

        # non-streamed completion, then the same streamed: the same text, exact framing
        body = {"model": "stories", "prompt": "Once upon a time", "max_tokens": 24, "temperature": 0}
        st, h, full = srv.post("/v1/completions", body, headers=auth)
        check(st == 200 and h["content-type"] == "application/json"
              and full["object"] == "text_completion" and full["choices"][0]["finish_reason"] == "length"
              and full["usage"]["completion_tokens"] == 24 and full["usage"]["prompt_tokens"] > 0
              and full["usage"]["total_tokens"] == full["usage"]["prompt_tokens"] + 24,
              "completion: JSON with usage and finish_reason length")
        text = full["choices"][0]["text"]
        check(text.startswith(", there was a little girl"), "completion text is the greedy story: %r" % text)
        st, h, raw = stream(srv, "/v1/completions", dict(body, stream_options={"include_usage": True}), auth)
        ok, ev = sse_events(raw)
        check(st == 200 and h["content-type"] == "text/event-stream" and ok and ev[-1] == "[DONE]",
              "stream: 'data: X\\n\\n' events ending with 'data: [DONE]\\n\\n'")
        chunks = [json.loads(e) for e in ev[:-1]]
        usage = chunks[-1]
        check(usage["choices"] == [] and usage["usage"]["completion_tokens"] == 24
              and all(c["usage"] is None for c in chunks[:-1]), "stream: usage chunk last, usage null before")
        check(chunks[-2]["choices"][0]["finish_reason"] == "length"
              and all(c["choices"][0]["finish_reason"] is None for c in chunks[:-2]),
              "stream: finish_reason only on the last choice chunk")
        check("".join(c["choices"][0]["text"] for c in chunks[:-1]) == text, "stream text == non-streamed text")
        check(len({c["id"] for c in chunks}) == 1, "stream: one id for every chunk")

        # chat: role with the first token, finish on the last, same text as non-streamed
        cbody = {"messages": [{"role": "user", "content": "Lily and Ben"}], "max_tokens": 16, "temperature": 0}
        st, _, cfull = srv.post("/v1/chat/completions", cbody, headers=auth)
        check(st == 200 and cfull["object"] == "chat.completion"
              and cfull["choices"][0]["message"]["role"] == "assistant", "chat: non-streamed answer")
        st, _, raw = stream(srv, "/v1/chat/completions", cbody, auth)
        ok, ev = sse_events(raw)
        chunks = [json.loads(e) for e in ev[:-1]]
        first, last = chunks[0]["choices"][0], chunks[-1]["choices"][0]
        check(ok and ev[-1] == "[DONE]" and first["delta"].get("role") == "assistant"
              and first["delta"].get("content", "") != "" and last["delta"] == {}
              and last["finish_reason"] == "length"
              and all("role" not in c["choices"][0]["delta"] for c in chunks[1:])
              and chunks[0]["object"] == "chat.completion.chunk",
              "chat stream: role chunk carries the first token, finish_reason on the last")
        check("".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
              == cfull["choices"][0]["message"]["content"], "chat stream text == non-streamed text")
        st, _, p = srv.post("/apply-template", cbody, headers=auth)
        check(st == 200 and p == {"prompt": "Lily and Ben\n"}, "/apply-template renders the prompt: %r" % p)

        # stop strings: cut before the stop, never partly emitted, finish_reason stop
        cut = text.index(" Lily")
        for s in (True, False):
            b = dict(body, stop=["zzz", " Lily"])
            if s:
                st, _, raw = stream(srv, "/v1/completions", b, auth)
                got = "".join(json.loads(e)["choices"][0]["text"] for e in sse_events(raw)[1][:-1])
                fin = json.loads(sse_events(raw)[1][-2])["choices"][0]["finish_reason"]
            else:
                st, _, p = srv.post("/v1/completions", b, headers=auth)
                got, fin = p["choices"][0]["text"], p["choices"][0]["finish_reason"]
            check(got == text[:cut] and fin == "stop",
                  "stop string (%s): %r, finish %s" % ("streamed" if s else "plain", got, fin))

        # tokenize / detokenize round trip
        st, _, p = srv.post("/tokenize", {"content": "Once upon a time"}, headers=auth)
        ids = p.get("tokens") if isinstance(p, dict) else None
        st2, _, p2 = srv.post("/detokenize", {"tokens": ids}, headers=auth)
        check(st == 200 and ids and ids[0] == 1 and st2 == 200 and p2["content"] == "Once upon a time",
              "/tokenize then /detokenize gives the text back")
        st, _, p = srv.post("/v1/completions", dict(body, prompt=ids), headers=auth)
        check(st == 200 and p["choices"][0]["text"] == text, "prompt as token ids == prompt as text")

        # a prompt of 150 tokens is prefilled in chunks of 64 between other steps: the same
        # text as `ringinfer run` (one pass) gives
        rnd = random.Random(5)
        ids = [1] + [rnd.randrange(3, 512) for _ in range(149)]
        st, _, p = srv.post("/v1/completions", {"prompt": ids, "max_tokens": 16, "temperature": 0,
                                                "ignore_eos": True}, headers=auth)
        st2, _, p2 = srv.post("/detokenize", {"tokens": ids}, headers=auth)
        run = subprocess.run([RI, "run"] + STORIES + ["--prompt-ids", ",".join(map(str, ids)), "-n", "16",
                                                      "--temperature", "0"],
                             capture_output=True, text=True, timeout=DEADLINE)
        check(st == 200 and st2 == 200 and run.stdout == p2["content"] + p["choices"][0]["text"] + "\n",
              "a 150-token prompt prefilled in chunks answers what `ringinfer run` answers")

        # seeds: same seed, same tokens, alone or with others running
        sbody = {"prompt": "Once upon a time", "max_tokens": 30, "temperature": 1.0, "seed": 1234}
        a = srv.post("/v1/completions", sbody, headers=auth)[2]["choices"][0]["text"]
        res = {}

        def run(i, b):
            res[i] = srv.post("/v1/completions", b, headers=auth)

        ths = [threading.Thread(target=run, args=(i, sbody if i == 0 else dict(sbody, seed=i)))
               for i in range(3)]
        [t.start() for t in ths]
        [t.join(DEADLINE) for t in ths]
        b2 = res.get(0, (0, 0, {}))[2]
        check(b2.get("choices", [{}])[0].get("text") == a and a != text, "seed 1234 gives the same text alone and in company")
        check(srv.post("/v1/completions", dict(sbody, seed=99), headers=auth)[2]["choices"][0]["text"] != a,
              "another seed gives another text")

        # logprobs
        st, _, p = srv.post("/v1/chat/completions", dict(cbody, max_tokens=3, logprobs=True, top_logprobs=2), headers=auth)
        lp = p["choices"][0]["logprobs"]["content"] if st == 200 else []
        check(len(lp) == 3 and all(len(e["top_logprobs"]) == 2 and e["logprob"] <= 0
                                   and abs(e["top_logprobs"][0]["logprob"] - e["logprob"]) < 1e-6 for e in lp),
              "chat logprobs: one entry per token, greedy token is the top alternative")

        errors(srv, auth, body)
        queue_full(srv, auth)
    finally:
        codes = srv.stop()
        check(codes == [0], "SIGTERM: the idle server exits 0 (%s)" % codes)
        if failures:
            print(srv.errors())


def error_ok(st, h, p, status, code=None, param=None):
    e = p.get("error") if isinstance(p, dict) else None
    return (st == status and e is not None and set(e) == {"message", "type", "param", "code"}
            and (code is None or e["code"] == code) and (param is None or e["param"] == param)
            and h.get("content-type") == "application/json")


def errors(srv, auth, body):
    st, h, p = srv.post("/v1/completions", None, headers=auth, raw="{not json")
    check(error_ok(st, h, p, 400, "invalid_json"), "400 for a body that is not JSON")
    st, h, p = srv.post("/v1/completions", dict(body, temperature=7), headers=auth)
    check(error_ok(st, h, p, 400, param="temperature"), "400 naming temperature out of range")
    st, h, p = srv.post("/v1/completions", dict(body, max_tokens=0), headers=auth)
    check(error_ok(st, h, p, 400, param="max_tokens"), "400 for max_tokens 0")
    st, h, p = srv.post("/v1/completions", {"max_tokens": 3}, headers=auth)
    check(error_ok(st, h, p, 400, param="prompt"), "400 for a missing prompt")
    st, h, p = srv.post("/v1/completions", dict(body, prompt=[1, 99999]), headers=auth)
    check(error_ok(st, h, p, 400, param="prompt"), "400 for a token id out of range")
    long_ids = [1] + [400] * 600
    for s in (False, True):
        st, h, p = srv.post("/v1/completions", dict(body, prompt=long_ids, stream=s), headers=auth)
        check(error_ok(st, h, p, 400, "context_length_exceeded"),
              "context_length_exceeded (stream %s) as a plain 400 before any stream byte" % s)
    st, h, p = srv.post("/v1/completions", dict(body, max_tokens=600), headers=auth)
    check(error_ok(st, h, p, 400, "context_length_exceeded"), "prompt + max_tokens over the context: 400")
    # seeds beyond int64 (up to uint64) are taken, as fractions are refused
    st, h, p = srv.post("/v1/completions", dict(body, seed=17000000000000000000, temperature=1), headers=auth)
    check(st == 200, "a uint64 seed beyond int64 is accepted (%d)" % st)
    st, h, p = srv.post("/v1/completions", dict(body, seed=1.5), headers=auth)
    check(error_ok(st, h, p, 400, param="seed"), "400 naming a fractional seed")
    st, h, p = srv.post("/v1/completions", dict(body, unknown_field={"x": 1}, presence_penalty=0), headers=auth)
    check(st == 200, "unknown fields are accepted")
    st, h, p = srv.post("/v1/completions", body)
    check(error_ok(st, h, p, 401) and h.get("www-authenticate") == "Bearer", "401 without the API key")
    st, h, p = srv.post("/v1/completions", body, headers={"Authorization": "Bearer sk-test-124"})
    check(error_ok(st, h, p, 401), "401 with a wrong API key")
    st, h, p = srv.post("/v1/nothing", body, headers=auth)
    check(error_ok(st, h, p, 404), "404 for an unknown path")
    st, h, p = srv.req("GET", "/v1/completions", headers=auth)
    check(error_ok(st, h, json.loads(p), 405) and h.get("allow") == "POST", "405 with Allow: POST")
    st, h, p = srv.post("/v1/completions", None, headers=auth, raw=json.dumps(dict(body, pad="x" * 5000)))
    check(error_ok(st, h, p, 413), "413 for a body over --max-body")


def queue_full(srv, auth):
    """--parallel 2, --max-queue 1: of 8 long requests sent at once, at most 3 are served (2
    run, 1 waits) and the others get 503 with Retry-After (each runs 400 steps)."""
    res = []

    def run():
        res.append(srv.post("/v1/completions", {"prompt": [1], "max_tokens": 400, "temperature": 0},
                            headers=auth))

    ths = [threading.Thread(target=run) for _ in range(8)]
    [t.start() for t in ths]
    [t.join(DEADLINE) for t in ths]
    busy = [r for r in res if r[0] == 503]
    done = [r for r in res if r[0] == 200 and r[2]["usage"]["completion_tokens"] == 400]
    # The server holds at most --parallel running + --max-queue waiting sequences: 3 places,
    # taken by the first requests of the burst; the others are refused while those run (400
    # steps each, far longer than a burst of 8), so 1..3 are answered and the rest refused.
    check(len(res) == 8 and len(busy) + len(done) == 8 and 1 <= len(done) <= 3
          and all(error_ok(*r, 503) and r[1].get("retry-after") == "1" for r in busy),
          "queue full: %d answered, %d got 503 with Retry-After" % (len(done), len(busy)))
    check(srv.wait_metric("ringinfer_requests_running", lambda v: v == 0) == 0
          and srv.metric("ringinfer_requests_waiting") == 0, "slots and queue empty afterwards (/metrics)")


def by_index(chunks, field):
    """Per choice index: the concatenated text (completions) or delta content (chat)."""
    out = {}
    for c in chunks:
        for ch in c["choices"]:
            piece = ch["text"] if field == "text" else ch["delta"].get("content", "")
            out[ch["index"]] = out.get(ch["index"], "") + piece
    return out


def choices():
    """'n' choices per request (and per prompt of a batch of prompts): each choice its own
    sequence (queued beyond --parallel), index on every choice and stream chunk, finish_reason, stop strings and logprobs per choice,
    usage counting the prompt once, choice i's seeded stream the same alone, in company and
    whatever n, /metrics and a disconnect freeing every slot of the request."""
    tmp = mktemp("serve-n.")
    tmpl = os.path.join(tmp, "chat.jinja")
    open(tmpl, "w").write("{% for m in messages %}{{ m['content'] }}\n{% endfor %}")
    srv = Server(STORIES + ["--parallel", "2", "--max-queue", "4", "--chat-template", tmpl, "--alias", "stories"])
    try:
        # greedy n=2: two identical choices, each the n=1 answer; usage counts the prompt once
        body = {"prompt": "Once upon a time", "max_tokens": 12, "temperature": 0}
        one = srv.post("/v1/completions", body)[2]
        g0 = srv.metric("ringinfer_generation_tokens_total")
        f0 = srv.metric("ringinfer_requests_finished_total")
        st, h, p = srv.post("/v1/completions", dict(body, n=2))
        ch = p.get("choices", []) if st == 200 else []
        check(st == 200 and set(p) == {"id", "object", "created", "model", "choices", "usage"}
              and [c["index"] for c in ch] == [0, 1]
              and all(set(c) == {"index", "text", "logprobs", "finish_reason"} and c["finish_reason"] == "length"
                      and c["text"] == one["choices"][0]["text"] and c["logprobs"] is None for c in ch)
              and p["usage"] == {"prompt_tokens": one["usage"]["prompt_tokens"], "completion_tokens": 24,
                                 "total_tokens": one["usage"]["prompt_tokens"] + 24,
                                 "prompt_tokens_details": {"cached_tokens": 0}},
              "n=2 greedy completion: choices 0 and 1 both the n=1 text, usage prompt once + 2x12: %r" % (p,))
        check(srv.metric("ringinfer_generation_tokens_total") - g0 == 24
              and srv.metric("ringinfer_requests_finished_total") - f0 == 1,
              "n=2 on /metrics: 24 tokens generated, one request finished")

        # streamed n=2 chat: exact bytes of the finish and usage chunks, role with each choice's
        # first token, one choice per chunk, the text of the non-streamed answer per index
        cbody = {"messages": [{"role": "user", "content": "Lily and Ben"}], "max_tokens": 10, "temperature": 0, "n": 2}
        st, _, cfull = srv.post("/v1/chat/completions", cbody)
        want = cfull["choices"][0]["message"]["content"] if st == 200 else None
        check(st == 200 and [c["index"] for c in cfull["choices"]] == [0, 1]
              and all(c["message"] == {"role": "assistant", "content": want} and c["finish_reason"] == "length"
                      for c in cfull["choices"]) and cfull["usage"]["completion_tokens"] == 20,
              "n=2 chat: two assistant messages, usage 20 completion tokens")
        st, h, raw = stream(srv, "/v1/chat/completions", dict(cbody, stream_options={"include_usage": True}))
        ok, ev = sse_events(raw)
        chunks = [json.loads(e) for e in ev[:-1]] if ok else []
        cid, created = (chunks[0]["id"], chunks[0]["created"]) if chunks else ("", 0)
        check(st == 200 and ok and ev[-1] == "[DONE]" and ev.count("[DONE]") == 1
              and all(len(c["choices"]) == 1 and set(c) == {"id", "object", "created", "model", "choices", "usage"}
                      and c["id"] == cid for c in chunks[:-1]),
              "n=2 chat stream: framing, one choice per chunk, one id")
        for i in (0, 1):
            mine = [c["choices"][0] for c in chunks[:-1] if c["choices"][0]["index"] == i]
            fin = ('{"id":"%s","object":"chat.completion.chunk","created":%d,"model":"stories","choices":'
                   '[{"index":%d,"delta":{},"logprobs":null,"finish_reason":"length"}],"usage":null}' % (cid, created, i))
            check(len(mine) >= 2 and mine[0]["delta"].get("role") == "assistant" and mine[0]["delta"].get("content")
                  and all("role" not in m["delta"] for m in mine[1:])
                  and all(m["finish_reason"] is None for m in mine[:-1]) and fin in ev
                  and "".join(m["delta"].get("content", "") for m in mine) == want,
                  "n=2 chat stream, choice %d: role with its first token, its text, finish chunk byte for byte" % i)
        usage = ('{"id":"%s","object":"chat.completion.chunk","created":%d,"model":"stories","choices":[],'
                 '"usage":{"prompt_tokens":%d,"completion_tokens":20,"total_tokens":%d,'
                 '"prompt_tokens_details":{"cached_tokens":0}}}'
                 % (cid, created, cfull["usage"]["prompt_tokens"], cfull["usage"]["prompt_tokens"] + 20))
        check(ev[-2:] == [usage, "[DONE]"], "n=2 chat stream: one usage chunk (prompt once, 2x10) then [DONE]")

        # seeded n=3: choice i draws from its own stream: the same alone, streamed, in company
        # of other requests and with another n; the three differ
        sbody = {"prompt": "Once upon a time", "max_tokens": 30, "temperature": 1.0, "seed": 1234}
        alone1 = srv.post("/v1/completions", sbody)[2]["choices"][0]["text"]
        st, _, p = srv.post("/v1/completions", dict(sbody, n=3))
        t3 = [c["text"] for c in p["choices"]] if st == 200 else []
        check(len(t3) == 3 and t3[0] == alone1 and len(set(t3)) == 3,
              "seeded n=3: three different texts, choice 0 the n=1 text: %r" % t3)
        res = {}

        def run(i, b):
            if i == 0:
                res[i] = stream(srv, "/v1/completions", b)
            else:
                res[i] = srv.post("/v1/completions", b)

        ths = [threading.Thread(target=run, args=(i, dict(sbody, n=3) if i == 0 else dict(sbody, seed=i, n=i)))
               for i in range(3)]
        [t.start() for t in ths]
        [t.join(DEADLINE) for t in ths]
        st, _, raw = res.get(0, (0, {}, b""))
        ok, ev = sse_events(raw)
        got = by_index([json.loads(e) for e in ev[:-1]], "text") if ok and st == 200 else {}
        check(got == {0: t3[0], 1: t3[1], 2: t3[2]} if len(t3) == 3 else False,
              "seeded n=3 streamed beside other requests: the same three texts")
        st, _, p = srv.post("/v1/completions", dict(sbody, n=5, logprobs=0))  # more choices than slots: queued
        t5 = [c["text"] for c in p["choices"]] if st == 200 else []
        check(len(t5) == 5 and t5[:3] == t3 and [c["index"] for c in p["choices"]] == list(range(5))
              and p["usage"]["completion_tokens"] == sum(len(c["logprobs"]["tokens"]) for c in p["choices"])
              and srv.metric("ringinfer_requests_running") == 0 and srv.metric("ringinfer_sequences_waiting") == 0,
              "n=5 on 2 slots: all five answered, choices 0..2 those of n=3")

        # a batch of prompts: prompt p's choices are p*n .. p*n+n-1, each drawing what that
        # prompt alone draws; usage counts each prompt once
        other = dict(sbody, prompt="Lily and Ben", n=2)
        st, _, po = srv.post("/v1/completions", other)
        st2, _, pb = srv.post("/v1/completions", dict(sbody, prompt=["Once upon a time", "Lily and Ben"], n=2))
        want = t3[:2] + [c["text"] for c in po["choices"]] if st == 200 else None
        check(st2 == 200 and [c["text"] for c in pb["choices"]] == want
              and [c["index"] for c in pb["choices"]] == [0, 1, 2, 3]
              and pb["usage"]["prompt_tokens"] == one["usage"]["prompt_tokens"] + po["usage"]["prompt_tokens"]
              and pb["usage"]["completion_tokens"] == sum(c["usage"]["completion_tokens"] for c in (po, srv.post(
                  "/v1/completions", dict(sbody, n=2))[2])),
              "two prompts x n=2: each prompt's choices as alone, usage of both prompts once")
        st, _, raw = stream(srv, "/v1/completions", dict(sbody, prompt=["Once upon a time", "Lily and Ben"], n=2))
        ok, ev = sse_events(raw)
        got = by_index([json.loads(e) for e in ev[:-1]], "text") if ok and st == 200 else {}
        check(want is not None and got == dict(enumerate(want)), "two prompts x n=2 streamed: the same texts by index")
        st, h, p = srv.post("/v1/completions", dict(body, prompt=["Once", 7]))
        check(error_ok(st, h, p, 400, param="prompt") and "'prompt'[1]" in p["error"]["message"],
              "a batch with a prompt that is neither text nor ids: 400 naming it")
        st, h, p = srv.post("/v1/completions", dict(body, prompt=["Once", "upon", "a", "time"], n=2))
        check(error_ok(st, h, p, 400, param="n"), "4 prompts x n=2 beyond 2 + 4 sequences: 400")

        # stop strings per choice: cut where each choice's own text has it
        stop = next((t3[1][k:k + 4] for k in range(len(t3[1]) - 4) if t3[1][k:k + 4] not in t3[0]), None)
        st, _, p = srv.post("/v1/completions", dict(sbody, n=3, stop=stop))
        exp = [(t[:t.index(stop)], "stop") if stop in t else (t, "length") for t in t3]
        check(stop is not None and st == 200
              and [(c["text"], c["finish_reason"]) for c in p["choices"]] == exp,
              "seeded n=3 with stop %r: each choice cut at its own stop: %r" % (stop, exp))
        st, _, p = srv.post("/v1/completions", dict(sbody, n=2, logprobs=1))
        check(st == 200 and [c["text"] for c in p["choices"]] == t3[:2]
              and all("".join(c["logprobs"]["tokens"]) == c["text"] and len(c["logprobs"]["top_logprobs"][0]) == 1
                      for c in p["choices"]),
              "n=2 logprobs: each choice's entries spell its own text")
        st, _, p = srv.post("/v1/chat/completions", dict(cbody, n=2, max_tokens=3, logprobs=True, top_logprobs=2))
        check(st == 200 and all(len(c["logprobs"]["content"]) == 3 for c in p["choices"]), "n=2 chat logprobs per choice")

        # bad n: 400 naming it; n beyond --parallel + --max-queue can never be taken in
        for bad in (0, 1.5, "2", 7):
            st, h, p = srv.post("/v1/completions", dict(body, n=bad))
            check(error_ok(st, h, p, 400, param="n"), "n=%r: 400 naming n (%s)" % (bad, p.get("error", {}).get("message")))
        st, h, p = srv.post("/v1/completions", dict(body, stream_options={"include_usage": True}))
        check(error_ok(st, h, p, 400, param="stream_options"), "stream_options without stream: 400")
        st, _, p = srv.post("/v1/completions", dict(body, max_completion_tokens=5))
        check(st == 200 and p["usage"]["completion_tokens"] == 5, "max_completion_tokens bounds the answer")
    finally:
        codes = srv.stop()
        check(codes == [0], "n server exits 0 on SIGTERM (%s)" % codes)
        if failures:
            print(srv.errors())

    # A disconnect frees every slot of the request and its waiting choices, counted once; a
    # request whose choices do not fit beside a running one gets 503. tiny-llama: 500 tokens
    # take far longer than the checks between the first event and the hang-up.
    srv = Server(TINY + ["--parallel", "2", "--max-queue", "4"])
    try:
        # tiny-llama's byte-level pieces are often part of a character: the logprob tokens
        # still travel as valid UTF-8 (U+FFFD), plain and streamed
        lbody = {"prompt": [1], "max_tokens": 100, "temperature": 1, "seed": 3, "logprobs": 5, "n": 2}
        st, _, raw = srv.req("POST", "/v1/completions", lbody)
        st2, _, raw2 = stream(srv, "/v1/completions", lbody)
        try:
            p = json.loads(raw.decode("utf-8"))
            ok, ev = sse_events(raw2)
            toks = [t for c in p["choices"] for t in c["logprobs"]["tokens"]]
            good = (st == 200 and st2 == 200 and ok and len(toks) == p["usage"]["completion_tokens"]
                    and "\ufffd" in "".join(toks))
        except (UnicodeDecodeError, ValueError, KeyError) as e:
            good, toks = False, str(e)
        check(good, "logprob tokens are valid UTF-8, a piece of a character as U+FFFD (%d tokens)" % len(toks))
        c = srv.conn()
        c.request("POST", "/v1/completions", body=json.dumps(
            {"prompt": [1], "max_tokens": 500, "temperature": 0, "stream": True, "ignore_eos": True, "n": 5}),
            headers={"Content-Type": "application/json"})
        r = c.getresponse()
        first = r.readline()
        check(first.startswith(b"data: ") and srv.wait_metric("ringinfer_sequences_waiting", lambda v: v == 3) == 3
              and srv.metric("ringinfer_requests_running") == 2 and srv.metric("ringinfer_requests_waiting") == 1,
              "n=5 on 2 slots: 2 running, 3 waiting (/metrics)")
        st, h, p = srv.post("/v1/completions", {"prompt": [1], "max_tokens": 2, "n": 2})
        check(error_ok(st, h, p, 503, "queue_full") and h.get("retry-after") == "1",
              "2 more choices beside 2 running + 3 waiting (of 2 + 4): 503 with Retry-After")
        c.sock.shutdown(socket.SHUT_RDWR)
        c.close()
        check(srv.wait_metric("ringinfer_requests_cancelled_total", lambda v: v >= 1) == 1
              and srv.wait_metric("ringinfer_requests_running", lambda v: v == 0) == 0
              and srv.metric("ringinfer_sequences_waiting") == 0 and srv.metric("ringinfer_requests_waiting") == 0
              and srv.metric("ringinfer_requests_cancelled_total") == 1,
              "disconnect of n=5: one request cancelled, both slots and the 3 waiting choices freed")
        st, _, p = srv.post("/v1/completions", {"prompt": [1], "max_tokens": 3, "n": 2, "temperature": 0})
        check(st == 200 and len(p["choices"]) == 2, "the freed slots serve the next request")
    finally:
        codes = srv.stop()
        check(codes == [0], "tiny n server exits 0 on SIGTERM (%s)" % codes)


def cache():
    """Prompt caching: a prompt that starts like one a slot fed before takes the whole chunks
    they share (never its last token), reports them as usage.prompt_tokens_details.cached_tokens
    and on /metrics, and answers exactly as without the cache; cache_prompt=false computes it
    all; the n choices of a request compute their prompt once (the others copy its KV). At TP=1
    and TP=2."""
    rnd = random.Random(5)
    base = [1] + [rnd.randrange(3, 512) for _ in range(70)]  # 71 tokens: 4 chunks of 16 to take
    other = [1] + [rnd.randrange(3, 512) for _ in range(52)]
    for ranks in [int(r) for r in os.environ.get("SERVE_TEST_RANKS", "1 2").split()]:
        srv = Server(STORIES + ["--parallel", "2", "--chunk", "16"], ranks=ranks)
        try:
            def ask(p, **kw):
                body = dict({"prompt": p, "max_tokens": 12, "temperature": 0, "ignore_eos": True, "logprobs": 0}, **kw)
                st, _, r = srv.post("/v1/completions", body)
                if st != 200:
                    return None, None
                return ([c["logprobs"]["tokens"] for c in r["choices"]],
                        r["usage"]["prompt_tokens_details"]["cached_tokens"])
            m0 = srv.metric("ringinfer_prompt_tokens_cached_total")
            c0 = srv.metric("ringinfer_prompt_tokens_total")
            cold, k0 = ask(base)
            warm, k1 = ask(base)
            off, k2 = ask(base, cache_prompt=False)
            m1 = srv.metric("ringinfer_prompt_tokens_cached_total")
            check(cold and k0 == 0 and k1 == 64 and k2 == 0 and warm == cold and off == cold,
                  "TP=%d: the same 71-token prompt again takes 64 cached tokens, same tokens; "
                  "cache_prompt=false none (%r %r %r)" % (ranks, k0, k1, k2))
            check(m1 - m0 == 64 and srv.metric("ringinfer_prompt_tokens_total") - c0 == 3 * 71 - 64,
                  "TP=%d: /metrics counts 64 cached and the rest computed" % ranks)
            # a longer prompt sharing 40 tokens: 32 taken; the answer as computed from scratch
            longer = base[:40] + other
            a, k3 = ask(longer)
            b, k4 = ask(longer, cache_prompt=False)
            check(a and a == b and k3 == 32 and k4 == 0,
                  "TP=%d: a prompt sharing 40 tokens takes 32 (two chunks), same answer (%r)" % (ranks, k3))
            # seeded n=3 on a new prompt through 2 slots: choice 1 copies choice 0's prompt KV,
            # choice 2 takes it from a freed slot; every choice as computed without any cache
            body = dict(temperature=0.9, seed=11, n=3, max_tokens=10)
            m2 = srv.metric("ringinfer_prompt_tokens_cached_total")
            shared, k5 = ask(other + base, **body)
            m3 = srv.metric("ringinfer_prompt_tokens_cached_total")
            alone, k6 = ask(other + base, cache_prompt=False, **body)
            m4 = srv.metric("ringinfer_prompt_tokens_cached_total")
            check(shared and len(shared) == 3 and shared == alone and len(set(map(tuple, shared))) > 1,
                  "TP=%d: seeded n=3 with shared prompt KV gives the choices computed without it" % ranks)
            check(k5 == 0 and k6 == 0 and m3 - m2 == 2 * 112 and m4 == m3,
                  "TP=%d: n=3 of a 124-token prompt: usage 0 cached (the prompt counts once), "
                  "/metrics 2x112 cached; none with cache_prompt=false (%r)" % (ranks, m3 - m2))
            st, h, p = srv.post("/v1/completions", {"prompt": base, "cache_prompt": "yes"})
            check(error_ok(st, h, p, 400, param="cache_prompt"), "cache_prompt of the wrong type: 400")
        finally:
            srv.stop()


def greedy_ids(srv, prompt, n):
    st, _, p = srv.post("/v1/completions", {"prompt": prompt, "max_tokens": n, "temperature": 0,
                                            "logprobs": 0})
    return p["choices"][0]["logprobs"]["tokens"] if st == 200 else None


def batching():
    """Continuous batching: greedy answers are the same token ids whether a request runs alone
    or decodes in one batch with others (prompts of several lengths, some prefilled in chunks
    while others decode, more requests than slots so slots are reused); at TP=1 and TP=2."""
    rnd = random.Random(11)
    prompts = [[1] + [rnd.randrange(3, 512) for _ in range(n - 1)] for n in (5, 40, 3, 90, 17, 1, 60)]
    for ranks in [int(r) for r in os.environ.get("SERVE_TEST_RANKS", "1 2").split()]:
        srv = Server(STORIES + ["--parallel", "4", "--chunk", "16", "--max-queue", "16"], ranks=ranks)
        try:
            def ask(p, n):
                st, _, r = srv.post("/v1/completions", {"prompt": p, "max_tokens": n, "temperature": 0,
                                                        "ignore_eos": True, "logprobs": 0})
                return r["choices"][0]["logprobs"]["tokens"] if st == 200 else None
            s0 = srv.metric("ringinfer_steps_total")
            alone = [ask(p, 12 + i) for i, p in enumerate(prompts)]
            s1 = srv.metric("ringinfer_steps_total")
            res = {}

            def run(i):
                res[i] = ask(prompts[i], 12 + i)

            ths = [threading.Thread(target=run, args=(i,)) for i in range(len(prompts))]
            [t.start() for t in ths]
            [t.join(DEADLINE) for t in ths]
            together = [res.get(i) for i in range(len(prompts))]
            s2 = srv.metric("ringinfer_steps_total")
            check(all(alone) and together == alone,
                  "TP=%d: %d concurrent greedy requests through 4 slots give the tokens each gets alone"
                  % (ranks, len(prompts)))
            # one step decodes every running sequence: together takes fewer steps than one by one
            check(s2 - s1 < s1 - s0, "TP=%d: batched steps: %d together, %d one by one" % (ranks, s2 - s1, s1 - s0))
        finally:
            srv.stop()


def tp():
    """TP=2 and 4 under ringrun: the same tokens as TP=1 (greedy and seeded), on stories260K."""
    outs = {}
    for n in (1, 2, 4):
        srv = Server(STORIES, ranks=n)
        try:
            g = srv.post("/v1/completions", {"prompt": "Once upon a time", "max_tokens": 40, "temperature": 0})
            s = srv.post("/v1/completions", {"prompt": "Once upon a time", "max_tokens": 40,
                                             "temperature": 0.8, "top_p": 0.9, "seed": 7})
            s2 = srv.post("/v1/completions", {"prompt": "Once upon a time", "max_tokens": 40,
                                              "temperature": 0.8, "top_p": 0.9, "seed": 7, "n": 2})
            outs[n] = (g[2]["choices"][0]["text"], s[2]["choices"][0]["text"],
                       [c["text"] for c in s2[2]["choices"]])
            if n > 1:  # a client gone mid-stream frees both slots of its n=2 on every rank
                c = srv.conn()
                c.request("POST", "/v1/completions", body=json.dumps(
                    {"prompt": [1], "max_tokens": 480, "temperature": 0, "stream": True, "ignore_eos": True,
                     "n": 2}), headers={"Content-Type": "application/json"})
                first = c.getresponse().readline()
                c.sock.shutdown(socket.SHUT_RDWR)
                c.close()
                ended = srv.wait_metric("ringinfer_requests_cancelled_total", lambda v: v == 1)
                # (a machine slow enough to let 480 steps pass first finishes it instead)
                ended = ended or srv.wait_metric("ringinfer_requests_finished_total", lambda v: v == 4) == 4
                again = srv.post("/v1/completions", {"prompt": "Once upon a time", "max_tokens": 40,
                                                     "temperature": 0.8, "top_p": 0.9, "seed": 7, "n": 2})
                check(first.startswith(b"data: ") and ended
                      and srv.wait_metric("ringinfer_requests_running", lambda v: v == 0) == 0
                      and [c["text"] for c in again[2]["choices"]] == outs[n][2],
                      "TP=%d: a hang-up on an n=2 stream frees its slots; the next n=2 answers the same" % n)
        finally:
            codes = srv.stop()
        # ringrun exits 128+15 when it forwarded a SIGTERM; a rank that failed would be named
        clean = codes == [0] if n == 1 else (codes == [143] and "ringrun: rank" not in srv.errors())
        check(clean, "TP=%d server stops cleanly on SIGTERM (%s)" % (n, codes))
        if not clean:
            print(srv.errors())
    check(outs.get(1) == outs.get(2) == outs.get(4) and outs[1][0] and len(outs[1][2]) == 2
          and outs[1][2][0] == outs[1][1] and outs[1][2][0] != outs[1][2][1],
          "TP=2 and TP=4 give the tokens of TP=1 (greedy, seeded, seeded n=2)")


def kill():
    """A SIGKILLed or SIGSTOPped worker rank: the open stream ends with an error event, /health
    turns 503, new completions get 503; nothing waits past twice the collective deadline."""
    op_ms = 5000  # above the time a sanitizer build of rank 1 may load later than rank 0
    srv = Server(TINY, ranks=2, manual=True, env={"COLL_OP_TIMEOUT_MS": str(op_ms), "RING_OP_TIMEOUT_MS": str(op_ms), "RING_LOG_LEVEL": "error"})
    try:
        c = srv.conn(timeout=DEADLINE)
        c.request("POST", "/v1/completions", body=json.dumps(
            {"prompt": [1], "max_tokens": 500, "temperature": 0, "stream": True}),
            headers={"Content-Type": "application/json"})
        r = c.getresponse()
        first = r.readline()
        t0 = time.time()
        srv.procs[1].kill()
        rest = r.read()
        waited = time.time() - t0
        ok, ev = sse_events(first + rest) if first.startswith(b"data: ") else (False, [])
        good = ok and ev[-1] == "[DONE]" and any('"error"' in e for e in ev) and waited < 2 * op_ms / 1000 + 1
        check(good, "killed worker: the stream ends with an error event in %.2f s" % waited)
        if not good:
            print("  first %r, last events %r" % (first[:200], ev[-3:]))
        st, h, p = srv.req("GET", "/health")
        check(st == 503 and "rank lost" in p.decode(), "killed worker: /health 503")
        st, h, p = srv.post("/v1/completions", {"prompt": [1], "max_tokens": 3})
        check(error_ok(st, h, p, 503), "killed worker: completions 503")
    finally:
        codes = srv.stop()
        check(codes[0] == 1, "rank 0 exits 1 after losing a rank (%s)" % codes)
        if failures:
            print(srv.errors())

    # A worker that stops answering (SIGSTOP): nothing closes, the collective deadline fires.
    srv = Server(TINY, ranks=2, manual=True, env={"COLL_OP_TIMEOUT_MS": str(op_ms), "RING_OP_TIMEOUT_MS": str(op_ms), "RING_LOG_LEVEL": "error"})
    try:
        c = srv.conn(timeout=DEADLINE)
        c.request("POST", "/v1/completions", body=json.dumps(
            {"prompt": [1], "max_tokens": 500, "temperature": 0, "stream": True, "ignore_eos": True}),
            headers={"Content-Type": "application/json"})
        r = c.getresponse()
        first = r.readline()
        t0 = time.time()
        srv.procs[1].send_signal(signal.SIGSTOP)
        rest = r.read()
        waited = time.time() - t0
        ok, ev = sse_events(first + rest) if first.startswith(b"data: ") else (False, [])
        check(ok and ev[-1] == "[DONE]" and any('"error"' in e for e in ev) and waited < 2 * op_ms / 1000 + 1,
              "stopped worker: the stream ends with an error event in %.2f s (deadline %.1f s)" % (waited, op_ms / 1000))
        st, h, p = srv.req("GET", "/health")
        check(st == 503, "stopped worker: /health 503")
    finally:
        srv.procs[1].send_signal(signal.SIGKILL)
        srv.procs[1].wait()
        codes = srv.stop()
        check(codes[0] == 1, "rank 0 exits 1 after a stopped rank (%s)" % codes)


def slow():
    """Many idle connections and a client that does not read do not stop other requests;
    an abort mid-stream frees the slot; SIGTERM drains a running request."""
    srv = Server(TINY + ["--parallel", "2", "--drain-timeout", "20"])
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        n_idle = 1000 if hard >= 1200 else max(hard - 100, 10)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n_idle + 100), hard))
        idle = []
        for i in range(n_idle):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=DEADLINE)
            if i % 2:
                s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n")  # headers never end
            idle.append(s)
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        slow.connect(("127.0.0.1", srv.port))
        b = json.dumps({"prompt": [1], "max_tokens": 400, "temperature": 0, "stream": True})
        slow.sendall(("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                      % (len(b), b)).encode())  # and never read
        t0 = time.time()
        st, _, p = srv.post("/v1/completions", {"prompt": [1, 5, 9], "max_tokens": 8, "temperature": 0})
        check(st == 200 and p["usage"]["completion_tokens"] == 8,
              "%d idle connections and a non-reading client: another request answers (%.2f s)"
              % (n_idle, time.time() - t0))

        # abort mid-stream: read one event, hang up; the slot is freed
        before = srv.metric("ringinfer_requests_cancelled_total")
        c = srv.conn()
        c.request("POST", "/v1/completions", body=json.dumps(
            {"prompt": [1], "max_tokens": 500, "temperature": 0, "stream": True}),
            headers={"Content-Type": "application/json"})
        r = c.getresponse()
        r.readline()
        c.sock.shutdown(socket.SHUT_RDWR)
        c.close()
        check(srv.wait_metric("ringinfer_requests_cancelled_total", lambda v: v == before + 1) == before + 1,
              "abort mid-stream: counted cancelled")
        slow.close()
        for s in idle:
            s.close()
        check(srv.wait_metric("ringinfer_requests_running", lambda v: v == 0) == 0, "abort: slots free again")

        # SIGTERM while a stream runs: it completes, then the server exits 0
        c = srv.conn()
        c.request("POST", "/v1/completions", body=json.dumps(
            {"prompt": [1], "max_tokens": 300, "temperature": 0, "stream": True}),
            headers={"Content-Type": "application/json"})
        r = c.getresponse()
        first = r.readline()
        srv.procs[0].send_signal(signal.SIGTERM)
        ok, ev = sse_events(first + r.read())
        fin = [json.loads(e)["choices"][0]["finish_reason"] for e in ev[:-1]]
        check(ok and ev[-1] == "[DONE]" and fin[-1] in ("length", "stop"), "SIGTERM: the running stream finishes")
        code = srv.procs[0].wait(timeout=DEADLINE)
        check(code == 0, "SIGTERM: the server exits 0 after draining")
        try:
            socket.create_connection(("127.0.0.1", srv.port), timeout=2).close()
            refused = False
        except OSError:
            refused = True
        check(refused, "SIGTERM: no longer listening")
    finally:
        srv.stop()
        if failures:
            print(srv.errors())


def templates():
    """POST /apply-template with the chat requests of the shared chat-template fixtures: the
    rendered prompt is the golden render byte for byte (errors: 400 with the message)."""
    d = os.path.join(SHARED, "fixtures", "chat-templates")
    for name in sorted(f[:-5] for f in os.listdir(d) if f.endswith(".json")):
        fx = json.load(open(os.path.join(d, name + ".json")))
        srv = Server(STORIES + ["--chat-template", os.path.join(d, name + ".jinja")])
        try:
            good = 0
            for case in fx["cases"]:
                v = dict(case["vars"])
                body = {"messages": v.pop("messages")}
                if "add_generation_prompt" in v:
                    body["add_generation_prompt"] = v.pop("add_generation_prompt")
                body["chat_template_kwargs"] = v  # bos/eos tokens, tools, date_string...
                st, _, p = srv.post("/apply-template", body)
                if "expected" in case:
                    ok = st == 200 and p.get("prompt") == case["expected"]
                else:
                    ok = st == 400 and case.get("error", "") in p["error"]["message"]
                if not ok:
                    print("  %s %s: %s %r" % (name, case["name"], st, p))
                good += ok
            check(good == len(fx["cases"]), "%s: %d/%d cases render as the golden file" % (name, good, len(fx["cases"])))
        finally:
            srv.stop()

    # The template, BOS and EOS of a model folder's tokenizer_config.json.
    fx = json.load(open(os.path.join(d, "meta-llama-Llama-3.1-8B-Instruct.json")))
    case = fx["cases"][0]
    folder = mktemp("serve-model.")
    hf = os.path.join(SHARED, "fixtures", "hf", "tiny-llama-f32")
    for f in os.listdir(hf):
        os.symlink(os.path.join(hf, f), os.path.join(folder, f))
    json.dump({"chat_template": open(os.path.join(d, fx["template"])).read(), "bos_token": case["vars"]["bos_token"],
               "eos_token": {"content": case["vars"]["eos_token"]}},
              open(os.path.join(folder, "tokenizer_config.json"), "w"))
    srv = Server(["-m", folder])
    try:
        body = {"messages": case["vars"]["messages"], "add_generation_prompt": case["vars"]["add_generation_prompt"],
                "chat_template_kwargs": {"date_string": case["vars"]["date_string"]}}
        st, _, p = srv.post("/apply-template", body)
        check(st == 200 and p.get("prompt") == case["expected"],
              "tokenizer_config.json: its chat_template, bos_token and eos_token are used")
        st, _, p = srv.post("/v1/chat/completions", dict(body, max_tokens=4, temperature=0))
        check(st == 200 and p["usage"]["completion_tokens"] >= 1, "chat completion on an HF folder with its template")
    finally:
        srv.stop()
    bad = os.path.join(folder, "bad.jinja")
    open(bad, "w").write("{% for m in messages %}{{ m.content }")
    p = subprocess.run([RI, "serve", "--port", "0", "-m", folder, "--chat-template", bad],
                       capture_output=True, text=True, timeout=DEADLINE)
    check(p.returncode != 0 and "chat template" in p.stderr and "line 1" in p.stderr,
          "a template the renderer cannot parse stops the start with its line: %r" % p.stderr.strip()[-120:])


if __name__ == "__main__":
    {"basic": basic, "choices": choices, "cache": cache, "batching": batching, "tp": tp, "kill": kill, "slow": slow, "templates": templates}[sys.argv[1]]()
    print("%d failure(s)" % len(failures))
    sys.exit(1 if failures else 0)
