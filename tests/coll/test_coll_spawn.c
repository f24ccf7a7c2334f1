/* SPDX-License-Identifier: MIT */
/* The local launcher on CPU: the leader spawns copies of this program, hands each the
 * blob over loopback, and reports a child that dies (by local rank, pid and status). */
#include "coll_private.h"
#include "../check.h"

#include <sys/wait.h>
#include <unistd.h>

static const coll_logger quiet = {.level = COLL_LOG_ERROR, .rank = 0};

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "ok";
    char err[512];
    coll_env env;
    coll_env_read(&env, NULL, NULL); /* the real environment: children get COLL_LOCAL_* */
    if (coll_env_isset(&env, KNOB_LOCAL_RANK)) {
        long rank;
        if (coll_env_int(&env, KNOB_LOCAL_RANK, 1, 63, 0, &rank, err, sizeof(err))) return 10;
        if (!strcmp(mode, "die") && rank == 2) {
            fprintf(stderr, "test child local rank 2 exits with 3 on purpose\n");
            return 3;
        }
        uint8_t blob[COLL_RDV_BLOB];
        coll_status st =
            coll_spawn_join(&env, (int)rank, 3, 3, blob, 10000, &quiet, err, sizeof(err));
        if (st) {
            fprintf(stderr, "child %ld: %s\n", rank, err);
            return 11;
        }
        for (int i = 0; i < COLL_RDV_BLOB; i++)
            if (blob[i] != (uint8_t)(i ^ 0x5a)) return 12;
        return 0;
    }
    uint8_t blob[COLL_RDV_BLOB];
    for (int i = 0; i < COLL_RDV_BLOB; i++)
        blob[i] = (uint8_t)(i ^ 0x5a);
    coll_spawn sp;
    coll_status st = coll_spawn_local(&sp, 3, 3, blob, 10000, &quiet, err, sizeof(err));
    if (!strcmp(mode, "ok")) {
        CHECK(st == COLL_OK);
        CHECK(sp.n == 2);
        CHECK(coll_spawn_reap(&sp, 10000, &quiet, err, sizeof(err)) == COLL_OK);
        /* Then the failing case, as a fresh leader. */
        pid_t pid = fork();
        if (pid == 0) {
            execl("/proc/self/exe", argv[0], "die", (char *)NULL);
            _exit(127);
        }
        int status;
        waitpid(pid, &status, 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    } else {
        /* Child 2 dies before the hand-off: reported at once, not at the deadline. */
        CHECK(st == COLL_ERR_PEER_CLOSED);
        CHECK_STR(err, "local rank 2");
        CHECK_STR(err, "exited with status 3");
        CHECK(sp.n == 0); /* reaped */
    }
    TEST_DONE();
}
