/* SPDX-License-Identifier: MIT */
/* Head-layout rules (mistral.rs messages, word for word) and the shard arithmetic. */
#include "eng.h"
#include "../check.h"

#include <stdio.h>
#include <string.h>

static void accept(int q, int kv, int ws)
{
    char err[256] = "";
    eng_status st = eng_tp_check_heads(q, kv, ws, err, sizeof(err));
    if (st != ENG_OK) {
        TEST_FAIL("(%d,%d,%d) rejected: %s", q, kv, ws, err);
    }
}

static void reject(int q, int kv, int ws, const char *msg)
{
    char err[256] = "";
    eng_status st = eng_tp_check_heads(q, kv, ws, err, sizeof(err));
    if (st != ENG_ERR_LAYOUT || strcmp(err, msg)) {
        TEST_FAIL("(%d,%d,%d): status %s, message '%s', expected '%s'", q, kv, ws,
                  eng_status_str(st), err, msg);
    }
}

/* Every rank's shard: heads tile the query heads, KV heads are the ones its query heads use,
 * FFN columns tile the width with sizes differing by at most one. */
static void shards(int q, int kv, int hid, int ws)
{
    eng_config c = {.n_heads = q, .n_kv_heads = kv, .hidden_dim = hid};
    int next_head = 0, next_col = 0, lo = hid, hi = 0;
    for (int r = 0; r < ws; r++) {
        eng_shard_info s;
        char err[256];
        if (eng_tp_shard(&c, r, ws, &s, err, sizeof(err)) != ENG_OK) {
            TEST_FAIL("shard (%d,%d,%d) rank %d: %s", q, kv, ws, r, err);
            return;
        }
        int group = q / kv;
        for (int h = s.head0; h < s.head0 + s.n_heads; h++) {
            int want = h / group, local = (h - s.head0) / (s.n_heads / s.n_kv_heads);
            if (s.kv_head0 + local != want) {
                TEST_FAIL("(%d,%d,%d) rank %d: head %d would use KV head %d, not %d", q, kv, ws, r,
                          h, s.kv_head0 + local, want);
            }
        }
        if (s.head0 != next_head || s.ffn0 != next_col) {
            TEST_FAIL("(%d,%d,%d) rank %d: shards do not tile", q, kv, ws, r);
        }
        next_head += s.n_heads;
        next_col += s.ffn;
        if (s.ffn < lo) lo = s.ffn;
        if (s.ffn > hi) hi = s.ffn;
        if (s.kv_replicated != (ws > kv)) test_failures++;
    }
    if (next_head != q || next_col != hid || hi - lo > 1) {
        TEST_FAIL("(%d,%d,%d) hid %d: heads %d, columns %d, sizes %d..%d", q, kv, ws, hid,
                  next_head, next_col, lo, hi);
    }
}

int main(void)
{
    accept(48, 12, 3);
    accept(32, 2, 4);
    accept(8, 4, 8);
    accept(16, 4, 8);
    reject(40, 8, 6,
           "Total number of attention heads (40) must be divisible by tensor parallel size (6).");
    reject(30, 8, 3,
           "Total number of KV heads (8) must be divisible by tensor parallel size (3) when KV "
           "heads are partitioned.");
    reject(24, 2, 3,
           "Tensor parallel size (3) must be divisible by total number of KV heads (2) when KV "
           "heads are replicated.");
    shards(48, 12, 11008, 3);
    shards(32, 2, 14336, 4);
    shards(8, 4, 172, 8); /* stories260K at 8: replicated KV, 172 = 4 x 22 + 4 x 21 */
    shards(16, 4, 512, 8);
    shards(6, 2, 250, 6);
    eng_config c = {.n_heads = 8, .n_kv_heads = 4, .hidden_dim = 172};
    eng_shard_info s;
    char err[256];
    if (eng_tp_shard(&c, 7, 8, &s, err, sizeof(err)) != ENG_OK || s.ffn != 21 || s.ffn0 != 151 ||
        s.kv_head0 != 3) {
        TEST_FAIL("stories260K rank 7 of 8: ffn %d at %d, KV head %d", s.ffn, s.ffn0, s.kv_head0);
    }
    if (eng_tp_shard(&c, 8, 8, &s, err, sizeof(err)) != ENG_ERR_INVALID_ARG) test_failures++;
    printf("%s\n", test_failures ? "FAILED" : "all layout cases pass");
    TEST_DONE();
}
