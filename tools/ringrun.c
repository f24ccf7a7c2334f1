/* SPDX-License-Identifier: MIT */
/* ringrun: start N local ranks, each with its own RING_CONFIG, prefix their output
 * with the rank, forward signals, and stop everyone when one rank fails.
 *
 * A rank is a process group: what it starts is signalled with it, and the group is killed when
 * its leader exits, so no process outlives ringrun. The ranks die with ringrun even under
 * SIGKILL (PR_SET_PDEATHSIG), and a watchdog process started first kills what is left of their
 * groups and removes the config folder when ringrun vanishes without cleaning up.
 *
 *   ringrun -n N [--transport T] [--base-port P] [--timeout S] [--keep-configs] -- CMD ARGS...
 *   ringrun --print-configs --hosts h0,h1,... [--transport T] [--base-port P] [--out DIR]
 *
 * Local ranks get "transport": "shm" unless --transport says otherwise: on one host it took
 * 1.1x-3.5x loopback TCP's bandwidth from 64 KiB on and was level below (docs/BENCHMARKS.md
 * section 35). Without a writable /dev/shm they get tcp. Configs for several hosts keep libring's
 * default (tcp). RING_TRANSPORT still overrides both.
 */
#include "ring.h"
#include "common/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_RANKS 1024
#define LINE_MAX_BYTES 8192
#define GRACE_MS 5000

typedef struct stream {
    int fd;   /* read end of the child's pipe; -1 when closed */
    FILE *to; /* our stdout or stderr */
    size_t used;
    char buf[LINE_MAX_BYTES];
} stream;

typedef struct rank_proc {
    pid_t pid; /* also the process group of the rank */
    int status;
    int done;
    int64_t kill_at; /* after the leader exits: when to SIGKILL what is left; -1 none */
    stream out, err;
} rank_proc;

typedef struct launcher {
    int n;
    rank_proc *ranks;
    int sigpipe[2]; /* written by the signal handler: the one way a signal reaches the loop */
    int watch_fd;   /* write end of the watchdog's pipe; -1 without one */
    int out_lost;   /* our stdout or stderr failed (EPIPE: the reader left) */
    char dir[64];
} launcher;

/* The handler's only access to the launcher: the write end of its self-pipe. A signal
 * handler can reach nothing else, so this one descriptor is kept in a static. */
static volatile sig_atomic_t sig_fd = -1;

static void on_signal(int sig)
{
    unsigned char b = (unsigned char)sig;
    if (sig_fd >= 0) {
        ssize_t n = write(sig_fd, &b, 1);
        (void)n;
    }
}

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: ringrun -n N [--transport T] [--base-port P] [--timeout S] [--keep-configs]\n"
        "               -- CMD ARGS...\n"
        "       ringrun --print-configs --hosts h0,h1,... [--transport T] [--base-port P]\n"
        "               [--out DIR]\n"
        "Starts N ranks on this host, each with RING_CONFIG naming its own file (and\n"
        "RING_LOCAL_RANKS=N unless set); they meet over loopback TCP and move their data\n"
        "through shared memory unless --transport says otherwise.\n"
        "  -n N             number of ranks (a power of 2)\n"
        "  --transport T    the configs' \"transport\": tcp, shm, verbs or auto (default: shm for\n"
        "                   -n, tcp for --print-configs; RING_TRANSPORT overrides it)\n"
        "  --base-port P    master port P, rank r listens on P+1+r (default: free ports)\n"
        "  --timeout S      stop every rank after S seconds (exit 124)\n"
        "  --keep-configs   keep the per-rank files (their folder is printed)\n"
        "  --print-configs  write rank-R.json for a multi-host ring (one rank per host entry)\n");
}

static uint64_t random_job_id(void)
{
    uint64_t id = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (read(fd, &id, sizeof id) != (ssize_t)sizeof id) id = 0;
        close(fd);
    }
    if (!id) id = ((uint64_t)getpid() << 32) ^ (uint64_t)rc_now_ms();
    return id;
}

/* The lowest port of the kernel's ephemeral range, where connect() draws local ports. */
static int ephemeral_low(void)
{
    int lo = 32768;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        if (fscanf(f, "%d", &lo) != 1) lo = 32768;
        fclose(f);
    }
    return lo;
}

/* n free loopback ports, at random below the ephemeral range: a port the kernel chose
 * (bind to 0) and we released could go to any client socket before a rank binds it;
 * below that range only another launcher choosing at random can take it. */
static int free_ports(int n, int *ports)
{
    int fds[MAX_RANKS + 1];
    int got = 0, lo = 10000, hi = ephemeral_low();
    uint64_t x = random_job_id();
    for (int tries = 0; got < n && tries < 1000 && hi > lo; tries++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
        int port = lo + (int)(x % (uint64_t)(hi - lo));
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        if (fd < 0) break;
        if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) { /* taken, or ours already */
            close(fd);
            continue;
        }
        fds[got] = fd;
        ports[got++] = port;
    }
    for (int i = 0; i < got; i++)
        close(fds[i]);
    if (got < n) errno = EADDRINUSE;
    return got == n ? 0 : -1;
}

static int parse_int(const char *s, const char *what, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || !*s || v < lo || v > hi) {
        fprintf(stderr, "ringrun: %s must be an integer in %d..%d, got '%s'\n", what, lo, hi, s);
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* --transport's value as a ring_transport_kind, or -1 with a message. */
static int parse_transport(const char *s)
{
    for (int k = 0; ring_transport_name(k); k++)
        if (strcmp(s, ring_transport_name(k)) == 0) return k;
    fprintf(stderr, "ringrun: --transport must be tcp, shm, verbs or auto, got '%.40s'\n", s);
    return -1;
}

static int write_configs(const char *dir, char **hosts, int n, const int *ports, uint64_t job,
                         ring_transport_kind tp, int quiet)
{
    char err[512], path[512];
    for (int r = 0; r < n; r++) {
        ring_config cfg;
        ring_config_init(&cfg);
        snprintf(cfg.master_ip, sizeof cfg.master_ip, "%s", hosts[0]);
        snprintf(cfg.right_ip, sizeof cfg.right_ip, "%s", hosts[(r + 1) % n]);
        cfg.master_port = ports[0];
        cfg.port = ports[1 + r];
        cfg.right_port = ports[1 + (r + 1) % n];
        cfg.rank = r;
        cfg.world_size = n;
        cfg.job_id = job;
        cfg.has_job_id = 1;
        cfg.transport = tp;
        snprintf(path, sizeof path, "%s/rank-%d.json", dir, r);
        if (ring_config_write(path, &cfg, err, sizeof err) != RING_OK) {
            fprintf(stderr, "ringrun: %s\n", err);
            return -1;
        }
        if (!quiet) printf("%s (host %s)\n", path, hosts[r]);
    }
    return 0;
}

/* Copy complete lines from a child's pipe to our stream, prefixed with the rank. */
static void drain(launcher *L, stream *s, int rank, int final)
{
    for (;;) {
        if (s->fd >= 0 && !final) {
            ssize_t n = read(s->fd, s->buf + s->used, sizeof s->buf - s->used);
            if (n > 0) {
                s->used += (size_t)n;
            } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                close(s->fd);
                s->fd = -1;
            }
        }
        size_t start = 0;
        for (size_t i = 0; i < s->used; i++) {
            if (s->buf[i] == '\n') {
                if (!L->out_lost)
                    fprintf(s->to, "[%d] %.*s\n", rank, (int)(i - start), s->buf + start);
                start = i + 1;
            }
        }
        /* A line longer than the buffer, or the tail at EOF, goes out as it is. */
        if (start == 0 && (s->used == sizeof s->buf || (s->fd < 0 && s->used))) {
            if (!L->out_lost) fprintf(s->to, "[%d] %.*s\n", rank, (int)s->used, s->buf);
            start = s->used;
        }
        memmove(s->buf, s->buf + start, s->used - start);
        s->used -= start;
        if (!L->out_lost && (fflush(s->to) != 0 || ferror(s->to))) {
            if (!L->out_lost) L->out_lost = errno == EPIPE ? EPIPE : errno ? errno : EIO;
            clearerr(s->to);
        }
        if (s->fd < 0 || final || s->used < sizeof s->buf) return;
    }
}

/* Signals each running rank's whole process group (the rank and what it started). */
static void signal_all(launcher *L, int sig)
{
    for (int r = 0; r < L->n; r++)
        if (!L->ranks[r].done && L->ranks[r].pid > 0) kill(-L->ranks[r].pid, sig);
}

/* The signals ringrun handles; blocked around fork so that a child never runs our handler. */
static void handled_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGHUP);
}

/* The watchdog: a process started before the ranks that outlives a killed ringrun. ringrun
 * sends it each rank's process group; EOF without the final 0 means ringrun died without
 * cleaning up, so it kills the groups (TERM, then KILL after the grace) and removes the
 * configs. It holds none of the ranks' pipes and only /dev/null as stdout. */
static void watchdog(int fd, const char *dir, int n, int keep)
{
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) { /* never keep a reader of ringrun's output waiting */
        dup2(devnull, 0);
        dup2(devnull, 1);
        dup2(devnull, 2);
        if (devnull > 2) close(devnull);
    }
    pid_t groups[MAX_RANKS];
    int ng = 0, clean = 0;
    int32_t v;
    for (;;) {
        ssize_t k = read(fd, &v, sizeof v);
        if (k < 0 && errno == EINTR) continue;
        if (k != (ssize_t)sizeof v) break;
        if (v == 0) {
            clean = 1;
            break;
        }
        if (ng < MAX_RANKS) groups[ng++] = (pid_t)v;
    }
    if (clean) _exit(0);
    int alive = 0;
    for (int i = 0; i < ng; i++)
        alive += kill(-groups[i], SIGTERM) == 0;
    for (int64_t end = rc_now_ms() + GRACE_MS; alive && rc_now_ms() < end;) {
        struct timespec ts = {0, 50 * 1000 * 1000}; /* no child to wait for: poll the groups */
        nanosleep(&ts, NULL);
        alive = 0;
        for (int i = 0; i < ng; i++)
            alive += kill(-groups[i], 0) == 0;
    }
    for (int i = 0; i < ng; i++)
        kill(-groups[i], SIGKILL);
    if (!keep) {
        char path[128];
        for (int r = 0; r < n; r++) {
            snprintf(path, sizeof path, "%s/rank-%d.json", dir, r);
            unlink(path);
        }
        rmdir(dir);
    }
    _exit(0);
}

static pid_t start_watchdog(launcher *L, int keep)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid == 0) {
        close(p[1]);
        /* Its own group: a terminal's ^C reaches ringrun, which stops the ranks itself. */
        setpgid(0, 0);
        watchdog(p[0], L->dir, L->n, keep);
    }
    close(p[0]);
    L->watch_fd = p[1];
    return pid;
}

static void tell_watchdog(launcher *L, int32_t v)
{
    if (L->watch_fd < 0) return;
    if (write(L->watch_fd, &v, sizeof v) != (ssize_t)sizeof v) {
        close(L->watch_fd);
        L->watch_fd = -1;
    }
}

static int exit_code_of(int status)
{
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return 1;
}

static void describe(int rank, int status)
{
    if (WIFEXITED(status))
        fprintf(stderr, "ringrun: rank %d exited with status %d\n", rank, WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        fprintf(stderr, "ringrun: rank %d was killed by signal %d (%s)\n", rank, WTERMSIG(status),
                strsignal(WTERMSIG(status)));
}

static int spawn(launcher *L, int r, char **argv, pid_t parent)
{
    int po[2], pe[2];
    if (pipe2(po, O_CLOEXEC) < 0 || pipe2(pe, O_CLOEXEC) < 0) {
        perror("ringrun: pipe");
        return -1;
    }
    sigset_t block, old;
    handled_signals(&block);
    sigprocmask(SIG_BLOCK, &block, &old);
    pid_t pid = fork();
    if (pid < 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        perror("ringrun: fork");
        return -1;
    }
    if (pid == 0) {
        /* Handlers reset while the signals are still blocked: ours must never run here. */
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(128 + SIGKILL); /* ringrun died before the prctl */
        char path[128];
        snprintf(path, sizeof path, "%s/rank-%d.json", L->dir, r);
        setenv("RING_CONFIG", path, 1);
        /* All N ranks share this host: libring sizes its threads per rank by it. */
        char local[16];
        snprintf(local, sizeof local, "%d", L->n);
        setenv("RING_LOCAL_RANKS", local, 0);
        /* No terminal input: a rank in a background group reading it would be stopped. */
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) dup2(devnull, 0);
        dup2(po[1], 1);
        dup2(pe[1], 2);
        sigprocmask(SIG_SETMASK, &old, NULL);
        execvp(argv[0], argv);
        fprintf(stderr, "ringrun: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    setpgid(pid, pid); /* also here, so that the group exists before we signal it */
    tell_watchdog(L, (int32_t)pid);
    sigprocmask(SIG_SETMASK, &old, NULL);
    close(po[1]);
    close(pe[1]);
    fcntl(po[0], F_SETFL, O_NONBLOCK);
    fcntl(pe[0], F_SETFL, O_NONBLOCK);
    L->ranks[r] = (rank_proc){.pid = pid,
                              .kill_at = -1,
                              .out = {.fd = po[0], .to = stdout},
                              .err = {.fd = pe[0], .to = stderr}};
    return 0;
}

/* Run until every rank exits; the first failure stops the others. */
static int supervise(launcher *L, int timeout_s)
{
    int alive = L->n, first_fail = -1, code = 0;
    int64_t deadline = timeout_s > 0 ? rc_now_ms() + (int64_t)timeout_s * 1000 : -1;
    int64_t kill_at = -1;
    struct pollfd *pf = calloc((size_t)(2 * L->n + 1), sizeof *pf);
    if (!pf) return 1;
    while (alive > 0 || 1) {
        int np = 0;
        pf[np++] = (struct pollfd){.fd = L->sigpipe[0], .events = POLLIN};
        int open_streams = 0;
        for (int r = 0; r < L->n; r++) {
            stream *ss[2] = {&L->ranks[r].out, &L->ranks[r].err};
            for (int j = 0; j < 2; j++) {
                pf[np++] = (struct pollfd){.fd = ss[j]->fd, .events = POLLIN};
                open_streams += ss[j]->fd >= 0;
            }
        }
        if (alive == 0 && open_streams == 0) break;
        int wait_ms = 200;
        int64_t t = rc_now_ms();
        if (deadline >= 0 && kill_at < 0) {
            if (t >= deadline) {
                fprintf(stderr, "ringrun: timeout after %d s: stopping every rank\n", timeout_s);
                signal_all(L, SIGTERM);
                kill_at = t + GRACE_MS;
                if (!code) code = 124;
            } else if (deadline - t < wait_ms) {
                wait_ms = (int)(deadline - t);
            }
        }
        if (kill_at >= 0 && t >= kill_at) {
            signal_all(L, SIGKILL);
            kill_at = t + 3600 * 1000;
        }
        for (int r = 0; r < L->n; r++) { /* what a finished rank left running */
            rank_proc *rp = &L->ranks[r];
            if (rp->done && rp->kill_at >= 0 && t >= rp->kill_at) {
                kill(-rp->pid, SIGKILL);
                rp->kill_at = -1;
            }
        }
        if (poll(pf, (nfds_t)np, wait_ms) < 0 && errno != EINTR) break;
        if (pf[0].revents & POLLIN) {
            unsigned char sig;
            while (read(L->sigpipe[0], &sig, 1) == 1) {
                if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) {
                    fprintf(stderr, "ringrun: got signal %d: forwarding to every rank\n", sig);
                    signal_all(L, sig);
                    if (kill_at < 0) kill_at = rc_now_ms() + GRACE_MS;
                    if (!code) code = 128 + sig;
                }
            }
        }
        int lost = L->out_lost;
        for (int r = 0; r < L->n; r++) {
            drain(L, &L->ranks[r].out, r, 0);
            drain(L, &L->ranks[r].err, r, 0);
        }
        if (!lost && L->out_lost) {
            /* Nobody reads the ranks' output any more (`ringrun ... | head`): like a program
             * killed by SIGPIPE, stop and exit 128 + SIGPIPE; other write errors exit 1. */
            fprintf(stderr, "ringrun: cannot write the ranks' output (%s): stopping every rank\n",
                    strerror(L->out_lost));
            signal_all(L, SIGTERM);
            if (kill_at < 0) kill_at = rc_now_ms() + GRACE_MS;
            if (!code) code = L->out_lost == EPIPE ? 128 + SIGPIPE : 1;
        }
        pid_t pid;
        int status;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
            for (int r = 0; r < L->n; r++) {
                if (L->ranks[r].pid != pid) continue;
                L->ranks[r].done = 1;
                L->ranks[r].status = status;
                alive--;
                /* The rank is over: what it started goes with it. */
                if (kill(-pid, SIGTERM) == 0) L->ranks[r].kill_at = rc_now_ms() + GRACE_MS;
                if (exit_code_of(status) != 0 && first_fail < 0 && code == 0) {
                    first_fail = r;
                    code = exit_code_of(status);
                    describe(r, status);
                    if (alive > 0) {
                        fprintf(stderr, "ringrun: stopping the other ranks\n");
                        signal_all(L, SIGTERM);
                        kill_at = rc_now_ms() + GRACE_MS;
                    }
                }
            }
        }
    }
    for (int r = 0; r < L->n; r++) {
        drain(L, &L->ranks[r].out, r, 1);
        drain(L, &L->ranks[r].err, r, 1);
        kill(-L->ranks[r].pid, SIGKILL); /* left over with its output closed */
    }
    free(pf);
    return code;
}

static void remove_configs(const launcher *L)
{
    char path[128];
    for (int r = 0; r < L->n; r++) {
        snprintf(path, sizeof path, "%s/rank-%d.json", L->dir, r);
        unlink(path);
    }
    rmdir(L->dir);
}

/* "h0,h1,..." -> hosts; an empty entry is an error (it would silently shrink the ring). */
static int split_hosts(char *list, char **hosts, int cap)
{
    int n = 0;
    for (char *h = list;; h++) {
        char *end = strchr(h, ',');
        if (end) *end = 0;
        if (!*h) {
            fprintf(stderr,
                    "ringrun: --hosts: entry %d is empty (one host per rank, comma "
                    "separated)\n",
                    n);
            return -1;
        }
        if (n == cap) {
            fprintf(stderr, "ringrun: --hosts: more than %d entries\n", cap);
            return -1;
        }
        hosts[n++] = h;
        if (!end) return n;
        h = end;
    }
}

int main(int argc, char **argv)
{
    int n = 0, base_port = 0, timeout_s = 0, keep = 0, print_configs = 0;
    char *hosts_arg = NULL;
    const char *out_dir = ".";
    int transport = -1; /* ring_transport_kind; -1: by mode */
    enum { O_BASE = 1000, O_TIMEOUT, O_KEEP, O_PRINT, O_HOSTS, O_OUT, O_TRANSPORT };
    static const struct option opts[] = {{"np", required_argument, 0, 'n'},
                                         {"base-port", required_argument, 0, O_BASE},
                                         {"timeout", required_argument, 0, O_TIMEOUT},
                                         {"keep-configs", no_argument, 0, O_KEEP},
                                         {"print-configs", no_argument, 0, O_PRINT},
                                         {"hosts", required_argument, 0, O_HOSTS},
                                         {"out", required_argument, 0, O_OUT},
                                         {"transport", required_argument, 0, O_TRANSPORT},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "+n:h", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            if (parse_int(optarg, "-n", 1, MAX_RANKS, &n)) return 2;
            break;
        case O_BASE:
            if (parse_int(optarg, "--base-port", 1, 65535, &base_port)) return 2;
            break;
        case O_TIMEOUT:
            if (parse_int(optarg, "--timeout", 1, 86400 * 7, &timeout_s)) return 2;
            break;
        case O_KEEP:
            keep = 1;
            break;
        case O_PRINT:
            print_configs = 1;
            break;
        case O_HOSTS:
            hosts_arg = optarg;
            break;
        case O_OUT:
            out_dir = optarg;
            break;
        case O_TRANSPORT:
            if ((transport = parse_transport(optarg)) < 0) return 2;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }

    if (print_configs) {
        char *hosts[MAX_RANKS];
        int nh = hosts_arg ? split_hosts(hosts_arg, hosts, MAX_RANKS) : 0;
        if (nh < 0) return 2;
        if (nh == 0) {
            fprintf(stderr,
                    "ringrun: --print-configs needs --hosts h0,h1,... (one entry per rank)\n");
            return 2;
        }
        if (n && n != nh) {
            fprintf(stderr, "ringrun: -n %d does not match the %d hosts given\n", n, nh);
            return 2;
        }
        if (nh & (nh - 1)) {
            fprintf(stderr, "ringrun: world_size must be a power of 2, got %d\n", nh);
            return 2;
        }
        if (!base_port) base_port = 29500;
        if (base_port + nh > 65535) {
            fprintf(stderr, "ringrun: --base-port %d leaves no room for %d ranks\n", base_port, nh);
            return 2;
        }
        int ports[MAX_RANKS + 1];
        for (int i = 0; i <= nh; i++)
            ports[i] = base_port + i;
        if (mkdir(out_dir, 0755) < 0 && errno != EEXIST) {
            fprintf(stderr, "ringrun: cannot create %s: %s\n", out_dir, strerror(errno));
            return 1;
        }
        if (write_configs(out_dir, hosts, nh, ports, random_job_id(),
                          transport < 0 ? RING_TRANSPORT_TCP : (ring_transport_kind)transport, 0))
            return 1;
        fflush(stdout);
        if (ferror(stdout)) {
            fprintf(stderr, "ringrun: cannot write to standard output: %s\n", strerror(errno));
            return 1;
        }
        printf("Copy rank-R.json to host R and run each rank there with RING_CONFIG=rank-R.json.\n"
               "Rank 0 serves the master port %d; rank R listens on port %d+R.\n",
               base_port, base_port + 1);
        return 0;
    }

    if (optind >= argc || n == 0) {
        usage(stderr);
        return 2;
    }
    if (n & (n - 1)) {
        fprintf(stderr, "ringrun: world_size must be a power of 2, got %d\n", n);
        return 2;
    }
    int ports[MAX_RANKS + 1];
    if (base_port) {
        if (base_port + n > 65535) {
            fprintf(stderr, "ringrun: --base-port %d leaves no room for %d ranks\n", base_port, n);
            return 2;
        }
        for (int i = 0; i <= n; i++)
            ports[i] = base_port + i;
    } else if (free_ports(n + 1, ports) < 0) {
        fprintf(stderr, "ringrun: cannot find free loopback ports: %s\n", strerror(errno));
        return 1;
    }

    launcher L = {.n = n};
    snprintf(L.dir, sizeof L.dir, "/tmp/ringrun.XXXXXX");
    if (!mkdtemp(L.dir)) {
        fprintf(stderr, "ringrun: cannot create a folder for the configs: %s\n", strerror(errno));
        return 1;
    }
    char *hosts[MAX_RANKS];
    for (int r = 0; r < n; r++)
        hosts[r] = "127.0.0.1";
    if (transport < 0) {
        transport = RING_TRANSPORT_SHM;
        /* shm's segments live in /dev/shm; a container without it still runs over loopback. */
        if (access("/dev/shm", W_OK | X_OK) != 0) {
            fprintf(stderr, "ringrun: /dev/shm is not writable (%s): the ranks use tcp\n",
                    strerror(errno));
            transport = RING_TRANSPORT_TCP;
        }
    }
    if (write_configs(L.dir, hosts, n, ports, random_job_id(), (ring_transport_kind)transport, 1))
        return 1;
    if (keep) fprintf(stderr, "ringrun: configs in %s\n", L.dir);

    L.watch_fd = -1;
    pid_t watch_pid = start_watchdog(&L, keep);
    if (watch_pid < 0) {
        perror("ringrun: watchdog");
        if (!keep) remove_configs(&L);
        return 1;
    }
    L.ranks = calloc((size_t)n, sizeof *L.ranks);
    if (!L.ranks || pipe2(L.sigpipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        perror("ringrun");
        return 1;
    }
    sig_fd = L.sigpipe[1];
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int code = 0;
    pid_t self = getpid();
    for (int r = 0; r < n; r++) {
        if (spawn(&L, r, argv + optind, self) < 0) {
            L.n = r;
            signal_all(&L, SIGTERM);
            code = 1;
            break;
        }
    }
    int sup = supervise(&L, timeout_s);
    if (!code) code = sup;
    if (!keep) remove_configs(&L);
    tell_watchdog(&L, 0); /* cleaned up: the watchdog leaves without touching anything */
    if (L.watch_fd >= 0) close(L.watch_fd);
    while (waitpid(watch_pid, NULL, 0) < 0 && errno == EINTR) {
    }
    free(L.ranks);
    return code;
}
