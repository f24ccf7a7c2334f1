/* SPDX-License-Identifier: MIT */
// Peer harness: Gloo all-reduce (float32 sum) over Gloo's TCP transport on "lo".
// One process per rank, started by peers.sh; ranks meet through a FileStore in a
// directory all of them share. --algo picks the algorithm:
//   ring_chunked  gloo::AllreduceRingChunked<float> (in place)
//   allreduce     gloo::allreduce() with AllreduceOptions (out of place)
#include "harness.h"

#include <gloo/allreduce.h>
#include <gloo/allreduce_ring_chunked.h>
#include <gloo/math.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/file_store.h>
#include <gloo/transport/tcp/device.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <vector>

namespace {

// Tags keep the combine's messages apart from the measured all-reduce's.
constexpr uint32_t kBenchTag = 1;
constexpr uint32_t kCombineTag = 2;

struct GlooCtx {
    std::shared_ptr<gloo::Context> context;
    bool use_options_api = false;
    float *in = nullptr, *out = nullptr;
    size_t count = 0;
    std::unique_ptr<gloo::AllreduceRingChunked<float>> ring;
};

int fail(const char *what, const std::exception &e)
{
    std::fprintf(stderr, "gloo_allreduce: %s failed: %s\n", what, e.what());
    return -1;
}

void max_double(void *c, const void *a, const void *b, size_t n)
{
    auto *o = static_cast<double *>(c);
    auto *x = static_cast<const double *>(a);
    auto *y = static_cast<const double *>(b);
    for (size_t i = 0; i < n; i++)
        o[i] = x[i] > y[i] ? x[i] : y[i];
}

int gloo_setup(void *p, float *in, float *out, size_t count)
{
    auto *c = static_cast<GlooCtx *>(p);
    c->in = in;
    c->out = out;
    c->count = count;
    if (c->use_options_api)
        return 0;
    if (count > static_cast<size_t>(__INT_MAX__)) {
        std::fprintf(stderr, "gloo_allreduce: %zu elements exceed the ring's int count\n", count);
        return -1;
    }
    try {
        // The constructor registers the buffer with the pairs: done outside timing.
        std::vector<float *> ptrs{in};
        c->ring.reset(new gloo::AllreduceRingChunked<float>(c->context, ptrs,
                                                             static_cast<int>(count)));
    } catch (const std::exception &e) {
        return fail("AllreduceRingChunked setup", e);
    }
    return 0;
}

int gloo_run(void *p)
{
    auto *c = static_cast<GlooCtx *>(p);
    try {
        if (c->use_options_api) {
            gloo::AllreduceOptions opts(c->context);
            opts.setInput(c->in, c->count);
            opts.setOutput(c->out, c->count);
            opts.setReduceFunction(
                static_cast<void (*)(void *, const void *, const void *, size_t)>(
                    &gloo::sum<float>));
            opts.setTag(kBenchTag);
            gloo::allreduce(opts);
        } else {
            c->ring->run();
        }
    } catch (const std::exception &e) {
        return fail(c->use_options_api ? "gloo::allreduce" : "AllreduceRingChunked::run", e);
    }
    return 0;
}

void gloo_teardown(void *p)
{
    auto *c = static_cast<GlooCtx *>(p);
    c->ring.reset();
}

int gloo_combine(void *p, double *v, int n, enum hb_combine how)
{
    auto *c = static_cast<GlooCtx *>(p);
    try {
        gloo::AllreduceOptions opts(c->context);
        opts.setOutput(v, static_cast<size_t>(n));
        if (how == HB_MAX)
            opts.setReduceFunction(max_double);
        else
            opts.setReduceFunction(
                static_cast<void (*)(void *, const void *, const void *, size_t)>(
                    &gloo::sum<double>));
        opts.setTag(kCombineTag);
        gloo::allreduce(opts);
    } catch (const std::exception &e) {
        return fail("combine (gloo::allreduce)", e);
    }
    return 0;
}

} // namespace

int main(int argc, char **argv)
{
    struct hb_opts o;
    int rc = hb_parse(argc, argv, &o, 1);
    if (rc != 0)
        return rc > 0 ? 0 : 2;

    GlooCtx ctx;
    struct hb_ops ops = {};
    std::string algo = o.algo;
    if (algo == "ring_chunked") {
        ops.impl = "gloo-ring-chunked";
        ops.in_place = 1;
    } else if (algo == "allreduce") {
        ops.impl = "gloo-allreduce";
        ctx.use_options_api = true;
    } else {
        std::fprintf(stderr, "gloo_allreduce: unknown --algo '%s' (ring_chunked | allreduce)\n",
                     o.algo);
        return 2;
    }
    ops.rank = o.rank;
    ops.nranks = o.nranks;
    ops.ctx = &ctx;
    ops.setup = gloo_setup;
    ops.allreduce = gloo_run;
    ops.teardown = gloo_teardown;
    ops.combine = gloo_combine;

    try {
        gloo::transport::tcp::attr attr;
        attr.iface = "lo";
        attr.ai_family = AF_INET; // 127.0.0.1, not ::1
        auto dev = gloo::transport::tcp::CreateDevice(attr);
        gloo::rendezvous::FileStore store(o.store);
        auto rctx = std::make_shared<gloo::rendezvous::Context>(o.rank, o.nranks);
        rctx->setTimeout(std::chrono::seconds(o.timeout_s));
        rctx->connectFullMesh(store, dev);
        ctx.context = rctx;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "gloo_allreduce: rank %d: rendezvous in '%s' failed: %s\n", o.rank,
                     o.store, e.what());
        return 2;
    }
    return hb_run(&o, &ops);
}
