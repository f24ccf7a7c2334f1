#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Model files that used to run with exit 0 (issue 15): each must fail with one line naming the
cause. Models come from eng-genmodel (random weights in the real formats) and are then edited:
overlapping data_offsets, a duplicate tensor name, bytes after the header's JSON, a tensor in two
shards or not in the shard the index names, rms_norm_eps <= 0 or a string, rope_theta <= 0, a
shape whose size overflows, huge offsets, a NaN in a norm; inputs found by fuzzing (a tensor name
with a newline, 400000 names, a billion layers, a cut float, a vocab_size of -2^31); and
misdirections: a model.safetensors given instead of its folder, a tokenizer.json given as
--tokenizer."""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

top = os.environ.get("abs_top_builddir") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
RI = os.path.join(top, "engine", "ringinfer")
GEN = os.path.join(top, "engine", "eng-genmodel")
fails = 0


def read_st(path):
    with open(path, "rb") as f:
        b = f.read()
    n = struct.unpack("<Q", b[:8])[0]
    return json.loads(b[8:8 + n]), b[8 + n:]


def write_st(path, header, data, raw_header=None):
    h = raw_header if raw_header is not None else json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)


def run(label, args, want):
    global fails
    env = {k: v for k, v in os.environ.items() if k != "RING_CONFIG"}
    p = subprocess.run([RI, "run"] + args, env=env, capture_output=True, text=True, timeout=60)
    lines = [x for x in p.stderr.splitlines() if x.startswith("ringinfer: rank")]
    if p.returncode == 0 or want not in p.stderr or len(lines) != 1:
        print("FAIL %s: exit %d, want one error line with '%s':\n%s" % (label, p.returncode, want, p.stderr[-1500:]))
        fails += 1
    else:
        print("%s: exit %d: %s" % (label, p.returncode, lines[0]))


def main():
    if not (os.access(RI, os.X_OK) and os.access(GEN, os.X_OK)):
        print("SKIP: ringinfer or eng-genmodel not built")
        return 77
    with tempfile.TemporaryDirectory() as d:
        base = os.path.join(d, "base")
        subprocess.run([GEN, "--out", base, "--format", "hf"], check=True, capture_output=True)
        st = os.path.join(base, "model.safetensors")
        hdr, data = read_st(st)
        names = [k for k in hdr if k != "__metadata__"]
        ids = ["--prompt-ids", "1,2", "-n", "2", "--temperature", "0"]
        # The unedited model runs.
        p = subprocess.run([RI, "run", "-m", base] + ids, capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            print("FAIL: the unedited model does not run:\n" + p.stderr)
            return 1

        def variant(name, edit_header=None, raw=None, data_=None, cfg=None):
            v = os.path.join(d, name)
            shutil.copytree(base, v)
            h = json.loads(json.dumps(hdr))
            if edit_header:
                edit_header(h)
            write_st(os.path.join(v, "model.safetensors"), h, data if data_ is None else data_, raw)
            if cfg:
                with open(os.path.join(v, "config.json")) as f:
                    c = json.load(f)
                cfg(c)
                with open(os.path.join(v, "config.json"), "w") as f:
                    json.dump(c, f)
            return v

        by_off = sorted(names, key=lambda k: hdr[k]["data_offsets"][0])
        a, b = by_off[0], by_off[1]

        def overlap(h):
            h[b]["data_offsets"] = [h[a]["data_offsets"][0], h[a]["data_offsets"][0] + (h[b]["data_offsets"][1] - h[b]["data_offsets"][0])]
        run("overlapping data_offsets", ["-m", variant("overlap", overlap)] + ids, "overlap")
        # Duplicate key: JSON text with the first tensor's entry written twice.
        text = json.dumps(hdr)
        first = json.dumps({a: hdr[a]})[1:-1]
        raw = ("{" + first + ", " + text[1:]).encode()
        run("duplicate tensor name", ["-m", variant("dup", raw=raw)] + ids, "appears twice")
        run("bytes after the header JSON", ["-m", variant("trail", raw=json.dumps(hdr).encode() + b"garbage")] + ids,
            "after the header's JSON")
        # Found by fuzzing (tests/fuzz): a name with a newline is escaped, the message one line;
        # 400000 names with a duplicate at the end are refused in linear time, not quadratic.
        raw = ("{" + json.dumps({"bad\nname": {"dtype": "Q4", "shape": [1], "data_offsets": [0, 1]}})[1:-1]
               + ", " + text[1:]).encode()
        run("tensor name with a newline", ["-m", variant("newline", raw=raw)] + ids, "tensor bad\\x0aname")
        pad = "".join('"pad%06d": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}, ' % i for i in range(400000))
        raw = ("{" + pad + text[1:-1] + ", " + first + "}").encode()
        run("400000 names and a duplicate", ["-m", variant("many", raw=raw)] + ids, "appears twice")

        def overflow(h):
            h[a]["shape"] = [2 ** 32, 2 ** 32, 2 ** 32]
        run("shape size overflows", ["-m", variant("ovf", overflow)] + ids, "overflows")

        def huge(h):
            h[a]["data_offsets"] = [2 ** 70, 2 ** 70 + 8]
        run("huge data_offsets", ["-m", variant("huge", huge)] + ids, "ends at byte")
        run("rms_norm_eps 0", ["-m", variant("eps0", cfg=lambda c: c.update(rms_norm_eps=0))] + ids, "rms_norm_eps")
        run("rms_norm_eps a string", ["-m", variant("epss", cfg=lambda c: c.update(rms_norm_eps="1e-5"))] + ids,
            "rms_norm_eps")
        run("rope_theta negative", ["-m", variant("theta", cfg=lambda c: c.update(rope_theta=-1))] + ids, "rope_theta")
        # A config that asks for a billion layers: refused, not a terabyte allocation (fuzzing).
        run("a billion layers", ["-m", variant("layers", cfg=lambda c: c.update(num_hidden_layers=10 ** 9))] + ids,
            "num_hidden_layers")
        run("a vocabulary past 2^22", ["-m", variant("vocab", cfg=lambda c: c.update(vocab_size=2 ** 22 + 1))] + ids,
            "vocab_size 4194305 > 4194304")
        # A NaN in a norm weight (f32): caught at load, not as NaN logits.
        norm = "model.norm.weight"
        if hdr[norm]["dtype"] == "F32":
            o = hdr[norm]["data_offsets"][0]
            bad = data[:o] + struct.pack("<f", float("nan")) + data[o + 4:]
            run("NaN in a norm", ["-m", variant("nan", data_=bad)] + ids, "must be finite")
        # Shards: a tensor in two shards; a tensor not in the shard the index names.
        sh = os.path.join(d, "sharded")
        subprocess.run([GEN, "--out", sh, "--format", "hf", "--shards", "2"], check=True, capture_output=True)
        with open(os.path.join(sh, "model.safetensors.index.json")) as f:
            index = json.load(f)
        files = sorted(set(index["weight_map"].values()))
        h0, d0 = read_st(os.path.join(sh, files[0]))
        h1, d1 = read_st(os.path.join(sh, files[1]))
        moved = [k for k in h1 if k != "__metadata__"][0]
        two = os.path.join(d, "two")
        shutil.copytree(sh, two)
        # Append shard 1's tensor to shard 0 as well.
        h0b = json.loads(json.dumps(h0))
        s, e = h1[moved]["data_offsets"]
        h0b[moved] = dict(h1[moved], data_offsets=[len(d0), len(d0) + e - s])
        write_st(os.path.join(two, files[0]), h0b, d0 + d1[s:e])
        run("tensor in two shards", ["-m", two] + ids, "appears twice")
        wrong = os.path.join(d, "wrongshard")
        shutil.copytree(sh, wrong)
        index2 = json.loads(json.dumps(index))
        index2["weight_map"][moved] = files[0]
        with open(os.path.join(wrong, "model.safetensors.index.json"), "w") as f:
            json.dump(index2, f)
        run("tensor not in the shard the index names", ["-m", wrong] + ids, "puts tensor %s in %s" % (moved, files[0]))
        # Misdirections.
        run("model.safetensors instead of its folder", ["-m", st] + ids, "give -m the folder")
        tok = os.path.join(d, "tokenizer.json")
        with open(tok, "w") as f:
            f.write('{"model": {"type": "BPE"}}')
        binm = os.path.join(d, "m.bin")
        subprocess.run([GEN, "--out", binm, "--vocab", "512"], check=True, capture_output=True)
        run("tokenizer.json as --tokenizer", ["-m", binm, "--tokenizer", tok, "-p", "hi", "-n", "1"],
            "a JSON file, not a llama2.c tokenizer")
        # A vocab_size of -2^31 in a llama2.c header (fuzzing: negating it was undefined).
        with open(binm, "rb") as f:
            b = bytearray(f.read())
        b[20:24] = struct.pack("<i", -2 ** 31)
        binv = os.path.join(d, "v.bin")
        with open(binv, "wb") as f:
            f.write(b)
        run("llama2.c vocab_size -2^31", ["-m", binv] + ids, "not a llama2.c v0 checkpoint")
        # A llama2.c checkpoint with 3 bytes after its last float (fuzzing): not silently ignored.
        with open(binm, "ab") as f:
            f.write(b"\0\0\0")
        run("llama2.c checkpoint with a cut float", ["-m", binm] + ids, "not a whole number of floats")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
