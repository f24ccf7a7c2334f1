/* SPDX-License-Identifier: MIT */
/* Local launcher: the process that comes up first on a node (local rank 0) spawns one
 * copy of its own program per further local GPU and hands each the NCCL id over a
 * loopback rendezvous guarded by a random token. Children inherit stdout and stderr, so
 * nothing they print is lost, and die with their leader (PR_SET_PDEATHSIG). */
#include "coll_private.h"
#include "common/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* argv of this process, from /proc/self/cmdline (NULL-terminated, one allocation). */
static char **self_argv(void)
{
    int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    ssize_t n;
    while (buf && (n = read(fd, buf + len, cap - len - 1)) > 0) {
        len += (size_t)n;
        if (len + 1 == cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) free(buf);
            buf = nb;
        }
    }
    close(fd);
    if (!buf) return NULL;
    buf[len] = '\0';
    size_t argc = 0;
    for (size_t i = 0; i < len; i++)
        argc += buf[i] == '\0';
    /* One block: the pointer array, then the strings. */
    char **argv = malloc((argc + 1) * sizeof(char *) + len + 1);
    if (argv) {
        char *s = (char *)(argv + argc + 1);
        memcpy(s, buf, len + 1);
        for (size_t i = 0; i < argc; i++) {
            argv[i] = s;
            s += strlen(s) + 1;
        }
        argv[argc] = NULL;
    }
    free(buf);
    return argv;
}

static void describe_exit(int status, char *out, size_t len)
{
    if (WIFEXITED(status))
        snprintf(out, len, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(out, len, "was killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(out, len, "stopped (status 0x%x)", status);
}

/* Poll the children; report the first that exited (any exit if strict). */
static int check_children(coll_spawn *sp, int strict, char *err, size_t errlen)
{
    for (int i = 0; i < sp->n; i++) {
        if (!sp->reaped[i]) {
            int status;
            pid_t r = waitpid(sp->pid[i], &status, WNOHANG);
            if (r == sp->pid[i]) {
                sp->reaped[i] = 1;
                sp->status[i] = status;
                if (strict || !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
                    char how[96];
                    describe_exit(status, how, sizeof(how));
                    snprintf(err, errlen, "spawned worker local rank %d (pid %d) %s%s", i + 1,
                             (int)sp->pid[i], how,
                             strict ? " before the NCCL id hand-off (see its stderr above)"
                                    : " (see its stderr above)");
                    return 1;
                }
            }
        } else if (!(WIFEXITED(sp->status[i]) && WEXITSTATUS(sp->status[i]) == 0)) {
            char how[96];
            describe_exit(sp->status[i], how, sizeof(how));
            snprintf(err, errlen, "spawned worker local rank %d (pid %d) %s", i + 1,
                     (int)sp->pid[i], how);
            return 1;
        }
    }
    return 0;
}

int coll_spawn_check(coll_spawn *sp, char *err, size_t errlen)
{
    return check_children(sp, 0, err, errlen);
}

static coll_status handoff_check(void *ctx, char *err, size_t errlen)
{
    return check_children(ctx, 1, err, errlen) ? COLL_ERR_PEER_CLOSED : COLL_OK;
}

coll_status coll_spawn_local(coll_spawn *sp, int local_size, uint32_t global_ws,
                             const uint8_t *blob, int timeout_ms, const coll_logger *lg, char *err,
                             size_t errlen)
{
    memset(sp, 0, sizeof(*sp));
    if (local_size < 1 || local_size > COLL_MAX_LOCAL)
        return coll_fail(COLL_ERR_INVALID_ARG, err, errlen, "spawn: local size %d not in 1..%d",
                         local_size, COLL_MAX_LOCAL);
    if (local_size == 1) return COLL_OK;

    uint64_t token;
    if (getrandom(&token, sizeof(token), 0) != (ssize_t)sizeof(token))
        return coll_fail(COLL_ERR_SYSTEM, err, errlen, "spawn: getrandom: %s", strerror(errno));
    token |= 1; /* 0 means "no token" */
    int lfd, port;
    coll_status st = coll_rdv_listen("127.0.0.1", 0, &lfd, &port, err, errlen);
    if (st) return st;
    char addr[32], tok[32];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    snprintf(tok, sizeof(tok), "%016" PRIx64, token);

    char **argv = self_argv();
    if (!argv) {
        close(lfd);
        return coll_fail(COLL_ERR_SYSTEM, err, errlen, "spawn: cannot read /proc/self/cmdline");
    }
    pid_t leader = getpid();
    for (int k = 1; k < local_size; k++) {
        char **envp = coll_child_env(k, addr, tok);
        if (!envp) {
            st = coll_fail(COLL_ERR_NOMEM, err, errlen, "spawn: out of memory");
            break;
        }
        /* Signals blocked across fork: the host program's handlers (one calling
         * coll_comm_abort, say) must never run in the child, where they would act on the
         * parent's shared descriptors. The child resets them before unblocking. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        pid_t pid = fork();
        if (pid == 0) {
            /* Only async-signal-safe calls between fork and exec. */
            for (int sig = 1; sig < NSIG; sig++) {
                struct sigaction sa;
                if (sigaction(sig, NULL, &sa) == 0 && sa.sa_handler != SIG_DFL &&
                    sa.sa_handler != SIG_IGN) {
                    sa.sa_handler = SIG_DFL;
                    sa.sa_flags = 0;
                    sigaction(sig, &sa, NULL);
                }
            }
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            if (getppid() != leader) _exit(126);
            sigprocmask(SIG_SETMASK, &old, NULL);
            execve("/proc/self/exe", argv, envp);
            _exit(127);
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        coll_child_env_free(envp);
        if (pid < 0) {
            st = coll_fail(COLL_ERR_SYSTEM, err, errlen, "spawn: fork for local rank %d: %s", k,
                           strerror(errno));
            break;
        }
        sp->pid[sp->n++] = pid;
        coll_log(lg, COLL_LOG_DEBUG, "spawned local rank %d as pid %d", k, (int)pid);
    }
    free(argv);
    if (st) {
        close(lfd);
        coll_spawn_reap(sp, 0, lg, NULL, 0);
        return st;
    }
    coll_rdv_hello ex = {.token = token,
                         .global_ws = global_ws,
                         .local_ws = (uint32_t)local_size,
                         .nodes = (uint32_t)local_size,
                         .worker_id = 0};
    st = coll_rdv_serve(lfd, &ex, blob, timeout_ms, handoff_check, sp, lg, err, errlen);
    if (st) coll_spawn_reap(sp, 0, lg, NULL, 0);
    return st;
}

coll_status coll_spawn_join(const coll_env *env, int local_rank, int local_size, uint32_t global_ws,
                            uint8_t *blob, int timeout_ms, const coll_logger *lg, char *err,
                            size_t errlen)
{
    char host[64];
    int port;
    coll_status st =
        coll_parse_hostport(coll_env_get(env, KNOB_LOCAL_RDV), coll_knob_name(KNOB_LOCAL_RDV), host,
                            sizeof(host), &port, err, errlen);
    if (st) return st;
    const char *ts = coll_env_get(env, KNOB_LOCAL_TOKEN);
    char *end;
    errno = 0;
    uint64_t token = strtoull(ts, &end, 16);
    if (errno || end == ts || *end || token == 0)
        return coll_fail(COLL_ERR_CONFIG, err, errlen, "%s: not a token: '%s'",
                         coll_knob_name(KNOB_LOCAL_TOKEN), ts);
    coll_rdv_hello me = {.token = token,
                         .global_ws = global_ws,
                         .local_ws = (uint32_t)local_size,
                         .nodes = (uint32_t)local_size,
                         .worker_id = local_rank - 1};
    return coll_rdv_join(host, port, &me, blob, timeout_ms, lg, err, errlen);
}

coll_status coll_spawn_reap(coll_spawn *sp, int timeout_ms, const coll_logger *lg, char *err,
                            size_t errlen)
{
    int64_t t0 = rc_now_ms();
    int killed = 0;
    for (;;) {
        int left = 0;
        for (int i = 0; i < sp->n; i++) {
            if (sp->reaped[i]) continue;
            int status;
            if (waitpid(sp->pid[i], &status, WNOHANG) == sp->pid[i]) {
                sp->reaped[i] = 1;
                sp->status[i] = status;
            } else {
                left++;
            }
        }
        if (!left) break;
        int64_t ms = rc_now_ms() - t0;
        if (ms >= timeout_ms + (killed ? 3000 : 0)) {
            if (killed >= 2) break;
            for (int i = 0; i < sp->n; i++)
                if (!sp->reaped[i]) {
                    if (!killed)
                        coll_log(lg, COLL_LOG_ERROR,
                                 "spawned worker local rank %d (pid %d) still runs after %d ms: "
                                 "terminating it",
                                 i + 1, (int)sp->pid[i], timeout_ms);
                    kill(sp->pid[i], killed ? SIGKILL : SIGTERM);
                }
            killed++;
        }
        struct timespec nap = {0, 20 * 1000000};
        nanosleep(&nap, NULL);
    }
    coll_status st = COLL_OK;
    for (int i = 0; i < sp->n; i++) {
        int ok = sp->reaped[i] && WIFEXITED(sp->status[i]) && WEXITSTATUS(sp->status[i]) == 0;
        if (ok) continue;
        char how[96] = "could not be reaped";
        if (sp->reaped[i]) describe_exit(sp->status[i], how, sizeof(how));
        coll_log(lg, COLL_LOG_ERROR, "spawned worker local rank %d (pid %d) %s", i + 1,
                 (int)sp->pid[i], how);
        if (!st)
            st = coll_fail(COLL_ERR_FAILED, err, errlen, "spawned worker local rank %d (pid %d) %s",
                           i + 1, (int)sp->pid[i], how);
    }
    sp->n = 0;
    return st;
}
