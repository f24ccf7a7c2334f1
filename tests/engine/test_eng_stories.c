/* SPDX-License-Identifier: MIT */
/* stories260K (a real trained llama2.c checkpoint): position-0 logits and the first 32
 * greedy ids of its README, at tensor-parallel sizes 1, 2 and 4 (in-process shards). */
#include "test_eng_harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static const float ref_logits[5] = {-6.222911f, 8.404342f, -6.223737f, -6.222542f, -6.221951f};
static const int ref_ids[32] = {403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315,
                                421, 395, 317, 426, 338, 401, 396, 267, 337, 410, 408,
                                419, 292, 411, 322, 265, 282, 295, 433, 426, 385};

int main(void)
{
    char path[4096], err[512];
    snprintf(path, sizeof(path), "%s/models/stories260K.bin", test_shared_dir());
    test_need_path(path);
    static const int tps[] = {1, 2, 4};
    for (size_t i = 0; i < sizeof(tps) / sizeof(tps[0]); i++) {
        int tp = tps[i], bos = 1, ids[32];
        float logits[512];
        if (eng_h_generate(path, tp, &bos, 1, 32, logits, ids, err, sizeof(err)) != 0) {
            TEST_FAIL("tp=%d: %s", tp, err);
            continue;
        }
        double worst = 0;
        for (int k = 0; k < 5; k++)
            worst = fmax(worst, fabs(logits[k] - ref_logits[k]));
        int bad_id = -1;
        for (int k = 0; k < 32 && bad_id < 0; k++)
            if (ids[k] != ref_ids[k]) bad_id = k;
        printf("tp=%d: max |logit - ref| = %.2e, ids %s\n", tp, worst,
               bad_id < 0 ? "match" : "DIFFER");
        if (worst > 1e-4) test_failures++;
        if (bad_id >= 0) {
            TEST_FAIL("tp=%d: id %d is %d, expected %d", tp, bad_id, ids[bad_id], ref_ids[bad_id]);
        }
    }
    TEST_DONE();
}
