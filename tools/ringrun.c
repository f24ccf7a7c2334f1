/* ringrun: start N local ranks, each with its own RING_CONFIG, prefix their output
 * with the rank, forward signals, and stop everyone when one rank fails.
 *
 *   ringrun -n N [--base-port P] [--timeout S] [--keep-configs] -- CMD ARGS...
 *   ringrun --print-configs --hosts h0,h1,... [--base-port P] [--out DIR]
 */
#include "ring.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_RANKS 1024
#define LINE_MAX_BYTES 8192
#define GRACE_MS 5000

typedef struct stream {
    int fd;       /* read end of the child's pipe; -1 when closed */
    FILE *to;     /* our stdout or stderr */
    size_t used;
    char buf[LINE_MAX_BYTES];
} stream;

typedef struct rank_proc {
    pid_t pid;
    int status;
    int done;
    stream out, err;
} rank_proc;

typedef struct launcher {
    int n;
    rank_proc *ranks;
    int sigpipe[2]; /* written by the signal handler: the one way a signal reaches the loop */
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
    fprintf(f,
            "usage: ringrun -n N [--base-port P] [--timeout S] [--keep-configs] -- CMD ARGS...\n"
            "       ringrun --print-configs --hosts h0,h1,... [--base-port P] [--out DIR]\n"
            "Starts N ranks on this host over loopback, each with RING_CONFIG naming its own file.\n"
            "  -n N             number of ranks (a power of 2)\n"
            "  --base-port P    master port P, rank r listens on P+1+r (default: free ports)\n"
            "  --timeout S      stop every rank after S seconds (exit 124)\n"
            "  --keep-configs   keep the per-rank files (their folder is printed)\n"
            "  --print-configs  write rank-R.json for a multi-host ring (one rank per host entry)\n");
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t random_job_id(void)
{
    uint64_t id = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (read(fd, &id, sizeof id) != (ssize_t)sizeof id) id = 0;
        close(fd);
    }
    if (!id) id = ((uint64_t)getpid() << 32) ^ (uint64_t)now_ms();
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
    for (int i = 0; i < got; i++) close(fds[i]);
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

static int write_configs(const char *dir, char **hosts, int n, const int *ports, uint64_t job,
                         int quiet)
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
static void drain(stream *s, int rank, int final)
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
                fprintf(s->to, "[%d] %.*s\n", rank, (int)(i - start), s->buf + start);
                start = i + 1;
            }
        }
        /* A line longer than the buffer, or the tail at EOF, goes out as it is. */
        if (start == 0 && (s->used == sizeof s->buf || (s->fd < 0 && s->used))) {
            fprintf(s->to, "[%d] %.*s\n", rank, (int)s->used, s->buf);
            start = s->used;
        }
        memmove(s->buf, s->buf + start, s->used - start);
        s->used -= start;
        fflush(s->to);
        if (s->fd < 0 || final || s->used < sizeof s->buf) return;
    }
}

static void signal_all(launcher *L, int sig)
{
    for (int r = 0; r < L->n; r++)
        if (!L->ranks[r].done && L->ranks[r].pid > 0) kill(L->ranks[r].pid, sig);
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

static int spawn(launcher *L, int r, char **argv)
{
    int po[2], pe[2];
    if (pipe2(po, O_CLOEXEC) < 0 || pipe2(pe, O_CLOEXEC) < 0) {
        perror("ringrun: pipe");
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("ringrun: fork");
        return -1;
    }
    if (pid == 0) {
        char path[128];
        snprintf(path, sizeof path, "%s/rank-%d.json", L->dir, r);
        setenv("RING_CONFIG", path, 1);
        dup2(po[1], 1);
        dup2(pe[1], 2);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        execvp(argv[0], argv);
        fprintf(stderr, "ringrun: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    fcntl(po[0], F_SETFL, O_NONBLOCK);
    fcntl(pe[0], F_SETFL, O_NONBLOCK);
    L->ranks[r] = (rank_proc){.pid = pid, .out = {.fd = po[0], .to = stdout},
                              .err = {.fd = pe[0], .to = stderr}};
    return 0;
}

/* Run until every rank exits; the first failure stops the others. */
static int supervise(launcher *L, int timeout_s)
{
    int alive = L->n, first_fail = -1, code = 0;
    int64_t deadline = timeout_s > 0 ? now_ms() + (int64_t)timeout_s * 1000 : -1;
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
        int64_t t = now_ms();
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
        if (poll(pf, (nfds_t)np, wait_ms) < 0 && errno != EINTR) break;
        if (pf[0].revents & POLLIN) {
            unsigned char sig;
            while (read(L->sigpipe[0], &sig, 1) == 1) {
                if (sig == SIGINT || sig == SIGTERM) {
                    fprintf(stderr, "ringrun: got signal %d: forwarding to every rank\n", sig);
                    signal_all(L, sig);
                    if (kill_at < 0) kill_at = now_ms() + GRACE_MS;
                    if (!code) code = 128 + sig;
                }
            }
        }
        for (int r = 0; r < L->n; r++) {
            drain(&L->ranks[r].out, r, 0);
            drain(&L->ranks[r].err, r, 0);
        }
        pid_t pid;
        int status;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
            for (int r = 0; r < L->n; r++) {
                if (L->ranks[r].pid != pid) continue;
                L->ranks[r].done = 1;
                L->ranks[r].status = status;
                alive--;
                if (exit_code_of(status) != 0 && first_fail < 0 && code == 0) {
                    first_fail = r;
                    code = exit_code_of(status);
                    describe(r, status);
                    if (alive > 0) {
                        fprintf(stderr, "ringrun: stopping the other ranks\n");
                        signal_all(L, SIGTERM);
                        kill_at = now_ms() + GRACE_MS;
                    }
                }
            }
        }
    }
    for (int r = 0; r < L->n; r++) {
        drain(&L->ranks[r].out, r, 1);
        drain(&L->ranks[r].err, r, 1);
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

static int split_hosts(char *list, char **hosts, int cap)
{
    int n = 0;
    for (char *save = NULL, *h = strtok_r(list, ",", &save); h; h = strtok_r(NULL, ",", &save)) {
        if (n == cap) return -1;
        hosts[n++] = h;
    }
    return n;
}

int main(int argc, char **argv)
{
    int n = 0, base_port = 0, timeout_s = 0, keep = 0, print_configs = 0;
    char *hosts_arg = NULL;
    const char *out_dir = ".";
    enum { O_BASE = 1000, O_TIMEOUT, O_KEEP, O_PRINT, O_HOSTS, O_OUT };
    static const struct option opts[] = {
        {"np", required_argument, 0, 'n'},          {"base-port", required_argument, 0, O_BASE},
        {"timeout", required_argument, 0, O_TIMEOUT}, {"keep-configs", no_argument, 0, O_KEEP},
        {"print-configs", no_argument, 0, O_PRINT},   {"hosts", required_argument, 0, O_HOSTS},
        {"out", required_argument, 0, O_OUT},         {"help", no_argument, 0, 'h'},
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
        case O_KEEP: keep = 1; break;
        case O_PRINT: print_configs = 1; break;
        case O_HOSTS: hosts_arg = optarg; break;
        case O_OUT: out_dir = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }

    if (print_configs) {
        char *hosts[MAX_RANKS];
        int nh = hosts_arg ? split_hosts(hosts_arg, hosts, MAX_RANKS) : 0;
        if (nh <= 0) {
            fprintf(stderr, "ringrun: --print-configs needs --hosts h0,h1,... (one entry per rank)\n");
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
        for (int i = 0; i <= nh; i++) ports[i] = base_port + i;
        if (mkdir(out_dir, 0755) < 0 && errno != EEXIST) {
            fprintf(stderr, "ringrun: cannot create %s: %s\n", out_dir, strerror(errno));
            return 1;
        }
        if (write_configs(out_dir, hosts, nh, ports, random_job_id(), 0)) return 1;
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
        for (int i = 0; i <= n; i++) ports[i] = base_port + i;
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
    for (int r = 0; r < n; r++) hosts[r] = "127.0.0.1";
    if (write_configs(L.dir, hosts, n, ports, random_job_id(), 1)) return 1;
    if (keep) fprintf(stderr, "ringrun: configs in %s\n", L.dir);

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
    signal(SIGPIPE, SIG_IGN);

    int code = 0;
    for (int r = 0; r < n; r++) {
        if (spawn(&L, r, argv + optind) < 0) {
            L.n = r;
            signal_all(&L, SIGTERM);
            code = 1;
            break;
        }
    }
    int sup = supervise(&L, timeout_s);
    if (!code) code = sup;
    if (!keep) remove_configs(&L);
    free(L.ranks);
    return code;
}
