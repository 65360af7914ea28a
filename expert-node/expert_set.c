/* expert_set.c — the node's RAM copy of its assigned experts (see
 * expert_set.h). */
#include "expert_set.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct expert_set {
    const expert_store *st;
    int fd;
    int n_layer, n_expert;
    uint8_t **held;                 /* [n_layer * n_expert], NULL = not held */
    uint64_t count, bytes;
};

expert_set *expert_set_open(const char *path, const expert_store *store, char *err, size_t errlen) {
    expert_set *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->st = store;
    s->n_layer = expert_store_n_layer(store);
    s->n_expert = expert_store_n_expert(store);
    s->held = calloc((size_t)s->n_layer * (size_t)s->n_expert, sizeof(*s->held));
    s->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (!s->held || s->fd < 0) {
        snprintf(err, errlen, "%s: %s", path, s->fd < 0 ? strerror(errno) : "out of memory");
        expert_set_close(s);
        return NULL;
    }
    return s;
}

void expert_set_close(expert_set *s) {
    if (!s) return;
    if (s->held)
        for (size_t i = 0; i < (size_t)s->n_layer * (size_t)s->n_expert; i++) free(s->held[i]);
    free(s->held);
    if (s->fd >= 0) close(s->fd);
    free(s);
}

static int read_full(int fd, uint8_t *dst, size_t len, uint64_t off) {
    while (len) {
        ssize_t r = pread(fd, dst, len, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return r < 0 ? -errno : -EIO;
        dst += r;
        len -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

static int load_one(expert_set *s, int l, int e, char *err, size_t errlen, int *code) {
    uint64_t off[3];
    size_t len[3];
    expert_store_offsets(s->st, l, e, off, len);
    uint8_t *buf = malloc(len[0] + len[1] + len[2]);
    if (!buf) {
        *code = 2;
        snprintf(err, errlen, "out of memory holding expert %d of layer %d", e, l);
        return -1;
    }
    size_t o = 0;
    for (int w = 0; w < 3; w++) {
        int r = read_full(s->fd, buf + o, len[w], off[w]);
        if (r) {
            free(buf);
            *code = 3;
            snprintf(err, errlen, "reading expert %d of layer %d: %s", e, l, strerror(-r));
            return -1;
        }
        /* these file pages now live in buf: do not keep a second copy cached */
        posix_fadvise(s->fd, (off_t)off[w], (off_t)len[w], POSIX_FADV_DONTNEED);
        o += len[w];
    }
    s->held[(size_t)l * s->n_expert + e] = buf;
    s->count++;
    s->bytes += o;
    return 0;
}

int expert_set_assign(expert_set *s, const int32_t *layers, const int32_t *experts, int n, uint64_t ram_limit,
                      expert_set_progress_fn fn, void *ud, int *code, char *err, size_t errlen) {
    *code = 0;
    const size_t N = (size_t)s->n_layer * (size_t)s->n_expert;
    uint8_t *want = calloc(N ? N : 1, 1);
    if (!want) {
        *code = 2;
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if (!expert_store_valid(s->st, layers[i], experts[i])) {
            *code = 1;
            snprintf(err, errlen, "assignment entry %d: layer %d expert %d does not exist (model has %d layers x %d experts)",
                     i, layers[i], experts[i], s->n_layer, s->n_expert);
            free(want);
            return -1;
        }
        want[(size_t)layers[i] * s->n_expert + experts[i]] = 1;
    }
    uint64_t total = 0, need = 0, todo = 0;
    for (size_t i = 0; i < N; i++) {
        if (!want[i]) continue;
        const uint64_t b = expert_store_expert_bytes(s->st, (int)(i / (size_t)s->n_expert));
        total++;
        need += b;
        if (!s->held[i]) todo++;
    }
    if (ram_limit && need > ram_limit) {
        *code = 2;
        snprintf(err, errlen, "assignment needs %.1f MiB, over this node's limit of %.1f MiB", need / 1048576.0,
                 ram_limit / 1048576.0);
        free(want);
        return -1;
    }
    /* free first so the peak stays at the new set's size */
    for (size_t i = 0; i < N; i++)
        if (s->held[i] && !want[i]) {
            s->bytes -= expert_store_expert_bytes(s->st, (int)(i / (size_t)s->n_expert));
            s->count--;
            free(s->held[i]);
            s->held[i] = NULL;
        }
    uint64_t done = total - todo;
    int rc = 0;
    if (fn && fn(ud, done, total, s->bytes)) {
        *code = 4;
        snprintf(err, errlen, "load aborted");
        rc = -1;
    }
    for (size_t i = 0; i < N && rc == 0; i++) {
        if (!want[i] || s->held[i]) continue;
        if (load_one(s, (int)(i / (size_t)s->n_expert), (int)(i % (size_t)s->n_expert), err, errlen, code)) {
            rc = -1;
            break;
        }
        done++;
        if (fn && fn(ud, done, total, s->bytes)) {
            *code = 4;
            snprintf(err, errlen, "load aborted");
            rc = -1;
        }
    }
    free(want);
    return rc;
}

int expert_set_get(const expert_set *s, int layer, int expert, expert_slabs *out) {
    if (!expert_store_valid(s->st, layer, expert)) return -1;
    const uint8_t *b = s->held[(size_t)layer * s->n_expert + expert];
    if (!b) return -1;
    uint64_t off[3];
    size_t len[3];
    expert_store_offsets(s->st, layer, expert, off, len);
    out->gate = b;
    out->up = b + len[0];
    out->down = b + len[0] + len[1];
    return 0;
}

uint64_t expert_set_count(const expert_set *s) { return s->count; }
uint64_t expert_set_bytes(const expert_set *s) { return s->bytes; }
