/* SPDX-License-Identifier: MIT */
/* RING_CONFIG: parse, validate and write the per-rank JSON file. */
#include "ring_private.h"

#include <cJSON.h>
#include <stddef.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CONFIG_MAX_BYTES (1 << 20)

/* The smallest caller's struct accepted: through world_size, mistral.rs's fields. */
#define CONFIG_MIN_SIZE (offsetof(ring_config, world_size) + sizeof(int))

const char *ring_transport_name(ring_transport_kind kind)
{
    static const char *const names[] = {[RING_TRANSPORT_TCP] = "tcp",
                                        [RING_TRANSPORT_VERBS] = "verbs",
                                        [RING_TRANSPORT_AUTO] = "auto",
                                        [RING_TRANSPORT_SHM] = "shm"};
    return (unsigned)kind < sizeof names / sizeof names[0] ? names[kind] : NULL;
}

static void config_defaults(ring_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->struct_size = sizeof *cfg;
    strcpy(cfg->master_ip, "0.0.0.0");
    strcpy(cfg->right_ip, "0.0.0.0");
    cfg->transport = RING_TRANSPORT_TCP;
}

/* Write the part of a whole config that a caller's struct of `size` bytes holds. */
static void config_copy_out(ring_config *dst, const ring_config *src, size_t size)
{
    memcpy(dst, src, size < sizeof *src ? size : sizeof *src);
    dst->struct_size = size;
}

ring_status ring_config_copy_in(ring_config *dst, const ring_config *src, char *err, size_t errlen)
{
    config_defaults(dst);
    size_t size = src->struct_size;
    if (size < CONFIG_MIN_SIZE)
        return ring_errf(RING_ERR_INVALID_ARG, err, errlen,
                         "ring_config.struct_size is %zu: set it with ring_config_init()", size);
    memcpy(dst, src, size < sizeof *dst ? size : sizeof *dst);
    dst->struct_size = sizeof *dst;
    return RING_OK;
}

void ring_config_init_sized(ring_config *cfg, size_t size)
{
    if (!cfg || size < CONFIG_MIN_SIZE) return;
    ring_config full;
    config_defaults(&full);
    config_copy_out(cfg, &full, size);
}

/* User text quoted in a message: control bytes escaped, long text cut, so the message
 * stays one printable line whatever the file holds. */
static const char *printable(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p && o + 8 < cap; p++) {
        if (*p >= 0x20 && *p < 0x7f && *p != '\\')
            out[o++] = (char)*p;
        else
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", *p);
    }
    if (o + 8 >= cap && o >= 3) memcpy(out + o - 3, "...", 3);
    out[o] = 0;
    return out;
}

static const char *json_type_name(const cJSON *it)
{
    if (cJSON_IsString(it)) return "a string";
    if (cJSON_IsNumber(it)) return "a number";
    if (cJSON_IsBool(it)) return "a boolean";
    if (cJSON_IsNull(it)) return "null";
    if (cJSON_IsArray(it)) return "an array";
    if (cJSON_IsObject(it)) return "an object";
    return "invalid";
}

/* Read an integer field into *out. required: missing is an error. */
static ring_status get_int(const cJSON *root, const char *origin, const char *key, int required,
                           long long lo, long long hi, int *out, char *err, size_t errlen)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!it) {
        if (!required) return RING_OK;
        return ring_errf(RING_ERR_CONFIG, err, errlen, "%s: missing field '%s'", origin, key);
    }
    if (!cJSON_IsNumber(it))
        return ring_errf(RING_ERR_CONFIG, err, errlen, "%s: field '%s' must be an integer, got %s",
                         origin, key, json_type_name(it));
    double v = it->valuedouble;
    if (v != floor(v) || !isfinite(v))
        return ring_errf(RING_ERR_CONFIG, err, errlen, "%s: field '%s' must be an integer, got %g",
                         origin, key, v);
    if (v < (double)lo || v > (double)hi)
        return ring_errf(RING_ERR_CONFIG, err, errlen,
                         "%s: field '%s' must be in %lld..%lld, got %.0f", origin, key, lo, hi, v);
    *out = (int)v;
    return RING_OK;
}

static ring_status get_str(const cJSON *root, const char *origin, const char *key, char *out,
                           size_t cap, int *present, char *err, size_t errlen)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, key);
    *present = 0;
    if (!it) return RING_OK;
    if (!cJSON_IsString(it))
        return ring_errf(RING_ERR_CONFIG, err, errlen, "%s: field '%s' must be a string, got %s",
                         origin, key, json_type_name(it));
    size_t n = strlen(it->valuestring);
    if (n == 0)
        return ring_errf(RING_ERR_CONFIG, err, errlen, "%s: field '%s' must not be empty", origin,
                         key);
    if (n >= cap)
        return ring_errf(RING_ERR_CONFIG, err, errlen,
                         "%s: field '%s' is too long (%zu bytes, at most %zu)", origin, key, n,
                         cap - 1);
    memcpy(out, it->valuestring, n + 1);
    *present = 1;
    return RING_OK;
}

static const char *const known_keys[] = {"master_ip",   "master_port", "port",       "right_ip",
                                         "right_port",  "rank",        "world_size", "job_id",
                                         "secret_file", "transport",   "checksum",   "tcp_streams"};

/* Line and column (1-based) of byte offset `off` in text. */
static void line_col(const char *text, size_t off, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off && text[i]; i++) {
        if (text[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

static ring_status config_parse(const char *json, const char *origin, ring_config *cfg,
                                const ring_logger *lg, char *err, size_t errlen)
{
    ring_status st = RING_OK;
    config_defaults(cfg);
    if (!json) return ring_errf(RING_ERR_INVALID_ARG, err, errlen, "%s: no text", origin);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(json, &end, 1);
    if (!root) {
        size_t off = end ? (size_t)(end - json) : 0;
        int line, col;
        line_col(json, off, &line, &col);
        return ring_errf(RING_ERR_CONFIG, err, errlen, "%s: invalid JSON at line %d, column %d",
                         origin, line, col);
    }
    if (!cJSON_IsObject(root)) {
        st = ring_errf(RING_ERR_CONFIG, err, errlen, "%s: expected a JSON object, got %s", origin,
                       json_type_name(root));
        goto free_json;
    }
    int present;
    RING_CHECK(get_str(root, origin, "master_ip", cfg->master_ip, sizeof cfg->master_ip, &present,
                       err, errlen),
               free_json);
    int has_master_ip = present;
    RING_CHECK(get_int(root, origin, "master_port", 1, 1, 65535, &cfg->master_port, err, errlen),
               free_json);
    RING_CHECK(get_int(root, origin, "port", 1, 1, 65535, &cfg->port, err, errlen), free_json);
    RING_CHECK(get_str(root, origin, "right_ip", cfg->right_ip, sizeof cfg->right_ip, &present, err,
                       errlen),
               free_json);
    RING_CHECK(get_int(root, origin, "right_port", 1, 1, 65535, &cfg->right_port, err, errlen),
               free_json);
    RING_CHECK(get_int(root, origin, "world_size", 1, 1, 1 << 20, &cfg->world_size, err, errlen),
               free_json);
    RING_CHECK(get_int(root, origin, "rank", 1, 0, 1 << 20, &cfg->rank, err, errlen), free_json);

    int ws = cfg->world_size;
    if (ws & (ws - 1)) {
        st = ring_errf(RING_ERR_CONFIG, err, errlen, "%s: world_size must be a power of 2, got %d",
                       origin, ws);
        goto free_json;
    }
    if (cfg->rank >= ws) {
        st = ring_errf(RING_ERR_CONFIG, err, errlen,
                       "%s: field 'rank' (%d) must be less than world_size (%d)", origin, cfg->rank,
                       ws);
        goto free_json;
    }
    if (cfg->rank != 0 && !has_master_ip) {
        st = ring_errf(RING_ERR_CONFIG, err, errlen,
                       "%s: field 'master_ip' is required when rank != 0 (this is rank %d)", origin,
                       cfg->rank);
        goto free_json;
    }
    if (cfg->rank == 0 && ws > 1 && cfg->port == cfg->master_port) {
        st = ring_errf(
            RING_ERR_CONFIG, err, errlen,
            "%s: rank 0 serves master_port and listens on port: they must differ, both are %d",
            origin, cfg->port);
        goto free_json;
    }

    /* Optional fields beyond mistral.rs's. */
    char shown[80];
    const cJSON *job = cJSON_GetObjectItemCaseSensitive(root, "job_id");
    if (job) {
        if (cJSON_IsString(job)) {
            char *e;
            errno = 0;
            unsigned long long v = strtoull(job->valuestring, &e, 0);
            if (errno || *e || !*job->valuestring) {
                st = ring_errf(
                    RING_ERR_CONFIG, err, errlen,
                    "%s: field 'job_id' must be an unsigned integer (text or number), got \"%s\"",
                    origin, printable(job->valuestring, shown, sizeof shown));
                goto free_json;
            }
            cfg->job_id = v;
        } else if (cJSON_IsNumber(job) && job->valuedouble >= 0 &&
                   job->valuedouble == floor(job->valuedouble)) {
            /* A JSON number is a double: exact only up to 2^53 (and larger casts are undefined). */
            if (job->valuedouble > 9007199254740992.0) {
                st = ring_errf(RING_ERR_CONFIG, err, errlen,
                               "%s: field 'job_id' %.0f is too large for a JSON number (above "
                               "2^53): write it as text, "
                               "e.g. \"0x...\"",
                               origin, job->valuedouble);
                goto free_json;
            }
            cfg->job_id = (uint64_t)job->valuedouble;
        } else {
            st =
                ring_errf(RING_ERR_CONFIG, err, errlen,
                          "%s: field 'job_id' must be an unsigned integer (text or number), got %s",
                          origin, json_type_name(job));
            goto free_json;
        }
        cfg->has_job_id = 1;
    }
    RING_CHECK(get_str(root, origin, "secret_file", cfg->secret_file, sizeof cfg->secret_file,
                       &present, err, errlen),
               free_json);
    const cJSON *ck = cJSON_GetObjectItemCaseSensitive(root, "checksum");
    if (ck && !cJSON_IsBool(ck)) {
        st = ring_errf(RING_ERR_CONFIG, err, errlen,
                       "%s: field 'checksum' must be true or false, got %s", origin,
                       json_type_name(ck));
        goto free_json;
    }
    cfg->checksum = ck && cJSON_IsTrue(ck);
    RING_CHECK(get_int(root, origin, "tcp_streams", 0, 1, RING_MAX_TCP_STREAMS, &cfg->tcp_streams,
                       err, errlen),
               free_json);
    char transport[16] = "tcp";
    RING_CHECK(
        get_str(root, origin, "transport", transport, sizeof transport, &present, err, errlen),
        free_json);
    int kind = 0;
    for (; ring_transport_name(kind); kind++)
        if (strcmp(transport, ring_transport_name(kind)) == 0) break;
    if (ring_transport_name(kind)) {
        cfg->transport = (ring_transport_kind)kind;
    } else {
        st = ring_errf(RING_ERR_CONFIG, err, errlen,
                       "%s: field 'transport' must be \"tcp\", \"shm\", \"verbs\" or \"auto\", got "
                       "\"%s\"",
                       origin, printable(transport, shown, sizeof shown));
        goto free_json;
    }

    /* Unknown keys are most often typos: say so, but go on. */
    for (const cJSON *it = root->child; it; it = it->next) {
        int known = 0;
        for (size_t i = 0; i < sizeof known_keys / sizeof known_keys[0]; i++)
            known |= it->string && strcmp(it->string, known_keys[i]) == 0;
        if (!known)
            ring_logf(lg, RING_LOG_WARN, cfg->rank, "%s: unknown field '%s' ignored", origin,
                      printable(it->string ? it->string : "?", shown, sizeof shown));
    }

free_json:
    cJSON_Delete(root);
    return st;
}

ring_status ring_config_parse_sized(const char *json, const char *origin, ring_config *cfg,
                                    size_t size, char *err, size_t errlen)
{
    if (!cfg || size < CONFIG_MIN_SIZE)
        return ring_errf(RING_ERR_INVALID_ARG, err, errlen, "%s: no ring_config to fill", origin);
    ring_config full;
    ring_logger lg = ring_logger_from_env();
    ring_status st = config_parse(json, origin, &full, &lg, err, errlen);
    config_copy_out(cfg, &full, size);
    return st;
}

ring_status ring_config_load_sized(const char *path, ring_config *cfg, size_t size, char *err,
                                   size_t errlen)
{
    if (!cfg || size < CONFIG_MIN_SIZE)
        return ring_errf(RING_ERR_INVALID_ARG, err, errlen, "%s: no ring_config to fill",
                         path ? path : "RING_CONFIG");
    ring_config full;
    ring_logger lg = ring_logger_from_env();
    ring_status st = ring_config_load_full(path, &full, &lg, err, errlen);
    config_copy_out(cfg, &full, size);
    return st;
}

ring_status ring_config_load_full(const char *path, ring_config *cfg, const ring_logger *lg,
                                  char *err, size_t errlen)
{
    ring_status st = RING_OK;
    config_defaults(cfg);
    if (!path || !*path)
        return ring_errf(RING_ERR_CONFIG, err, errlen,
                         "RING_CONFIG is not set: point it at this rank's JSON config file");
    /* O_NONBLOCK: a FIFO must be refused, not block open() past every deadline. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return ring_errf(RING_ERR_CONFIG, err, errlen, "%s: cannot open: %s", path,
                         strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return ring_errf(RING_ERR_CONFIG, err, errlen, "%s: not a regular file", path);
    }
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        return ring_errf(RING_ERR_NOMEM, err, errlen, "%s: out of memory", path);
    }
    char *text = malloc(CONFIG_MAX_BYTES + 1);
    if (!text) {
        st = ring_errf(RING_ERR_NOMEM, err, errlen, "%s: out of memory", path);
        goto close_file;
    }
    size_t n = fread(text, 1, CONFIG_MAX_BYTES + 1, f);
    if (ferror(f)) {
        st = ring_errf(RING_ERR_CONFIG, err, errlen, "%s: cannot read: %s", path, strerror(errno));
        goto free_text;
    }
    if (n > CONFIG_MAX_BYTES) {
        st = ring_errf(RING_ERR_CONFIG, err, errlen,
                       "%s: larger than %d bytes: not a RING_CONFIG file", path, CONFIG_MAX_BYTES);
        goto free_text;
    }
    if (memchr(text, 0, n)) {
        st = ring_errf(RING_ERR_CONFIG, err, errlen, "%s: contains a NUL byte: not a JSON file",
                       path);
        goto free_text;
    }
    text[n] = 0;
    st = config_parse(text, path, cfg, lg, err, errlen);
free_text:
    free(text);
close_file:
    fclose(f);
    return st;
}

ring_status ring_config_write(const char *path, const ring_config *given, char *err, size_t errlen)
{
    if (!given) return ring_errf(RING_ERR_INVALID_ARG, err, errlen, "%s: no config", path);
    ring_config whole, *cfg = &whole;
    ring_status st = ring_config_copy_in(&whole, given, err, errlen);
    if (st != RING_OK) return st;
    if (!ring_transport_name(cfg->transport))
        return ring_errf(RING_ERR_INVALID_ARG, err, errlen, "%s: transport %d is not valid", path,
                         (int)cfg->transport);
    /* cJSON writes the strings, so that any host name or path comes out escaped. */
    cJSON *o = cJSON_CreateObject();
    char job[24];
    snprintf(job, sizeof job, "0x%016llx", (unsigned long long)cfg->job_id);
    int ok =
        o && cJSON_AddStringToObject(o, "master_ip", cfg->master_ip) &&
        cJSON_AddNumberToObject(o, "master_port", cfg->master_port) &&
        cJSON_AddNumberToObject(o, "port", cfg->port) &&
        cJSON_AddStringToObject(o, "right_ip", cfg->right_ip) &&
        cJSON_AddNumberToObject(o, "right_port", cfg->right_port) &&
        cJSON_AddNumberToObject(o, "rank", cfg->rank) &&
        cJSON_AddNumberToObject(o, "world_size", cfg->world_size) &&
        (!cfg->has_job_id || cJSON_AddStringToObject(o, "job_id", job)) &&
        (!cfg->secret_file[0] || cJSON_AddStringToObject(o, "secret_file", cfg->secret_file)) &&
        (!cfg->checksum || cJSON_AddTrueToObject(o, "checksum")) &&
        (!cfg->tcp_streams || cJSON_AddNumberToObject(o, "tcp_streams", cfg->tcp_streams)) &&
        (cfg->transport == RING_TRANSPORT_TCP ||
         cJSON_AddStringToObject(o, "transport", ring_transport_name(cfg->transport)));
    char *text = ok ? cJSON_Print(o) : NULL;
    if (!text) {
        st = ring_errf(RING_ERR_NOMEM, err, errlen, "%s: out of memory", path);
        goto free_json;
    }
    /* O_NONBLOCK: a FIFO in the way fails at once (ENXIO or not regular) instead of blocking. */
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NONBLOCK, 0644);
    struct stat sb;
    if (fd >= 0 && (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode))) {
        close(fd);
        fd = -1;
        errno = EINVAL;
    }
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        st = ring_errf(RING_ERR_SYSTEM, err, errlen, "%s: cannot create: %s", path,
                       errno == EINVAL || errno == ENXIO ? "not a regular file" : strerror(errno));
        if (fd >= 0) close(fd);
        goto free_text;
    }
    int bad = fprintf(f, "%s\n", text) < 0;
    if (fclose(f) != 0 || bad)
        st = ring_errf(RING_ERR_SYSTEM, err, errlen, "%s: cannot write: %s", path, strerror(errno));
free_text:
    cJSON_free(text);
free_json:
    cJSON_Delete(o);
    return st;
}
