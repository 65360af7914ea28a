/* kv_disk.c — the disk KV store (kv_disk.h): checkpoint container format,
 * crash-safe writes, startup scan with per-file verdicts, LRU eviction under
 * a byte budget, longest-prefix lookup, verified loads; and the save-policy
 * arithmetic of the reference. */
#include "kv_disk.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "kv_snapshot.h"

static const char FILE_MAGIC[8] = {'F', 'P', 'K', 'V', 'C', 'K', 'P', 'T'};
#define HDR_HASHED 144u   /* header bytes covered by the header SHA-256 */
#define TMP_MARK ".tmp."

/* ---- policy ---------------------------------------------------------------- */

const char *kv_save_reason_name(int reason) {
    static const char *const names[] = {"unknown", "cold", "continued", "evict", "shutdown", "explicit"};
    return reason >= 0 && reason <= KV_SAVE_EXPLICIT ? names[reason] : "unknown";
}

void kv_policy_defaults(kv_policy *p) {
    p->min_tokens = 512;
    p->cold_max_tokens = 30000;
    p->continued_interval = 10000;
    p->boundary_trim = 32;
    p->boundary_align = 2048;
    p->anchor_user = -1;
    p->anchor_assistant = -1;
}

int kv_policy_check(const kv_policy *p, char *err, size_t errlen) {
    if (p->min_tokens < 1) {
        snprintf(err, errlen, "--kv-cache-min-tokens must be > 0 (got %d)", p->min_tokens);
        return -1;
    }
    if (p->cold_max_tokens < 0 || (p->cold_max_tokens && p->cold_max_tokens < p->min_tokens)) {
        snprintf(err, errlen, "--kv-cache-cold-max-tokens must be 0 (off) or >= --kv-cache-min-tokens %d (got %d)",
                 p->min_tokens, p->cold_max_tokens);
        return -1;
    }
    if (p->continued_interval < 0 || p->boundary_trim < 0 || p->boundary_align < 0) {
        snprintf(err, errlen, "the --kv-cache-*-tokens knobs must be >= 0");
        return -1;
    }
    return 0;
}

int kv_policy_cold_len(const kv_policy *p, const int32_t *tokens, int n) {
    if (!p->cold_max_tokens || n < p->min_tokens || n > p->cold_max_tokens) return 0;
    if (p->anchor_user >= 0 && p->anchor_assistant >= 0) {
        int first_a = -1, last_u = -1;
        for (int i = 0; i < n && first_a < 0; i++) {
            if (tokens[i] == p->anchor_assistant) first_a = i;
            else if (tokens[i] == p->anchor_user) last_u = i;
        }
        if (first_a >= 0 && last_u >= p->min_tokens) return last_u;
    }
    if (n > p->min_tokens + p->boundary_trim) {
        int len = n - p->boundary_trim;
        if (p->boundary_align > 0) len -= len % p->boundary_align;
        if (len >= p->min_tokens) return len;
    }
    return n;
}

int kv_policy_continued_step(const kv_policy *p) {
    if (p->continued_interval <= 0) return 0;
    if (p->boundary_align <= 0) return p->continued_interval;
    const int64_t a = p->boundary_align;
    const int64_t step = (p->continued_interval + a - 1) / a * a;
    return step > INT32_MAX ? INT32_MAX : (int)step;
}

/* ---- hashing helpers ------------------------------------------------------ */

static void sha256(const void *p, size_t n, uint8_t out[32]) {
    unsigned len = 32;
    EVP_Digest(p, n, out, &len, EVP_sha256(), NULL);
}

void kv_disk_key(const int32_t *tokens, int n, uint8_t out[32]) {
    sha256(tokens, (size_t)n * sizeof(int32_t), out);   /* host is little-endian (kv_snapshot.c) */
}

void kv_disk_model_fingerprint(const model *m, uint8_t out[32]) {
    const gguf_file *g = m->gguf;
    uint8_t size_le[8];
    for (int i = 0; i < 8; i++) size_le[i] = (uint8_t)((uint64_t)g->size >> (8 * i));
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned len = 32;
    EVP_DigestInit_ex(c, EVP_sha256(), NULL);
    EVP_DigestUpdate(c, size_le, sizeof size_le);
    EVP_DigestUpdate(c, g->base, (size_t)g->data_offset);
    EVP_DigestFinal_ex(c, out, &len);
    EVP_MD_CTX_free(c);
}

static void hex32(const uint8_t k[32], char out[65]) {
    static const char hx[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hx[k[i] >> 4];
        out[2 * i + 1] = hx[k[i] & 15];
    }
    out[64] = 0;
}

static int unhex32(const char *s, uint8_t k[32]) {
    for (int i = 0; i < 64; i++) {
        const char c = s[i];
        int v;
        if (c >= '0' && c <= '9') v = c - '0';
        else if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
        else return -1;
        if (i & 1) k[i / 2] |= (uint8_t)v;
        else k[i / 2] = (uint8_t)(v << 4);
    }
    return 0;
}

/* ---- file header ------------------------------------------------------------
 *   0   8  magic "FPKVCKPT"          88   8  created, Unix seconds
 *   8   4  version (1)               96   8  payload bytes
 *  12   4  header bytes (176)       104  32  payload SHA-256
 *  16  32  model fingerprint        136   8  reserved (0)
 *  48  32  key = SHA-256(tokens)    144  32  SHA-256 of bytes [0, 144)
 *  80   4  token count
 *  84   4  save reason
 * All integers little-endian; the payload (kv_snapshot format) follows. */

typedef struct file_hdr {
    uint32_t version;
    uint8_t fingerprint[32], key[32], payload_sha[32];
    uint32_t n_tokens, reason;
    uint64_t created, payload_bytes;
} file_hdr;

static void put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get32(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}
static uint64_t get64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void hdr_encode(const file_hdr *h, uint8_t b[KV_DISK_HEADER_BYTES]) {
    memset(b, 0, KV_DISK_HEADER_BYTES);
    memcpy(b, FILE_MAGIC, 8);
    put32(b + 8, h->version);
    put32(b + 12, KV_DISK_HEADER_BYTES);
    memcpy(b + 16, h->fingerprint, 32);
    memcpy(b + 48, h->key, 32);
    put32(b + 80, h->n_tokens);
    put32(b + 84, h->reason);
    put64(b + 88, h->created);
    put64(b + 96, h->payload_bytes);
    memcpy(b + 104, h->payload_sha, 32);
    sha256(b, HDR_HASHED, b + HDR_HASHED);
}

enum { HDR_OK = 0, HDR_FOREIGN = 1, HDR_DAMAGED = 2 };

/* Verdict on a file's first bytes. HDR_FOREIGN: a well-formed file this
 * build must not use but may belong to someone else (other model, newer
 * version) -> left alone. HDR_DAMAGED: one of ours that cannot be valid
 * (truncated, corrupt header) -> deleted. why gets the reason. */
static int hdr_decode(const uint8_t *b, size_t got, uint64_t file_size, const uint8_t fp[32], file_hdr *h,
                      char *why, size_t whylen) {
    if (got < 8 || memcmp(b, FILE_MAGIC, 8) != 0) {
        snprintf(why, whylen, got < 8 ? "truncated (%zu bytes, no header)" : "not a checkpoint file (bad magic)",
                 got);
        return HDR_DAMAGED;
    }
    if (got < 16) {
        snprintf(why, whylen, "truncated (%zu bytes, header incomplete)", got);
        return HDR_DAMAGED;
    }
    h->version = get32(b + 8);
    if (h->version != KV_DISK_VERSION || get32(b + 12) != KV_DISK_HEADER_BYTES) {
        snprintf(why, whylen, "unknown format version %u (this build reads version %u)", h->version,
                 KV_DISK_VERSION);
        return HDR_FOREIGN;
    }
    if (got < KV_DISK_HEADER_BYTES) {
        snprintf(why, whylen, "truncated (%zu bytes, header incomplete)", got);
        return HDR_DAMAGED;
    }
    uint8_t hs[32];
    sha256(b, HDR_HASHED, hs);
    if (memcmp(hs, b + HDR_HASHED, 32) != 0) {
        snprintf(why, whylen, "header checksum mismatch (corrupt header)");
        return HDR_DAMAGED;
    }
    memcpy(h->fingerprint, b + 16, 32);
    memcpy(h->key, b + 48, 32);
    h->n_tokens = get32(b + 80);
    h->reason = get32(b + 84);
    h->created = get64(b + 88);
    h->payload_bytes = get64(b + 96);
    memcpy(h->payload_sha, b + 104, 32);
    if (memcmp(h->fingerprint, fp, 32) != 0) {
        snprintf(why, whylen, "written for another model (fingerprint differs)");
        return HDR_FOREIGN;
    }
    if (h->n_tokens == 0 || h->n_tokens > INT32_MAX) {
        snprintf(why, whylen, "bad token count %u", h->n_tokens);
        return HDR_DAMAGED;
    }
    if (file_size != KV_DISK_HEADER_BYTES + h->payload_bytes) {
        snprintf(why, whylen, "%s (file has %llu bytes, header says %llu)",
                 file_size < KV_DISK_HEADER_BYTES + h->payload_bytes ? "truncated" : "trailing garbage",
                 (unsigned long long)file_size, (unsigned long long)(KV_DISK_HEADER_BYTES + h->payload_bytes));
        return HDR_DAMAGED;
    }
    return HDR_OK;
}

/* ---- the store -------------------------------------------------------------- */

typedef struct entry {
    uint8_t key[32];
    int n_tokens;
    uint64_t bytes;
    int64_t last_used_ns;      /* file mtime: survives restarts */
    int writing;               /* space reserved, file not yet in place */
    int pins;                  /* > 0: not evictable (about to be loaded) */
} entry;

struct kv_disk {
    char dir[4096];
    int dirfd, lockfd;
    uint64_t budget;
    uint8_t fp[32];
    kv_log_fn log;
    void *log_ud;
    void (*save_progress)(void *, uint64_t, uint64_t);
    void *progress_ud;
    pthread_mutex_t mu;
    entry *e;
    int n, cap;
    uint64_t used;             /* bytes of indexed files + reservations */
    kv_disk_stats st;
};

static void logf_(kv_disk *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(kv_disk *d, const char *fmt, ...) {
    if (!d->log) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    d->log(d->log_ud, msg);
}

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void file_name(const uint8_t key[32], char out[80]) {
    char hx[65];
    hex32(key, hx);
    snprintf(out, 80, "%s%s", hx, KV_DISK_SUFFIX);
}

static int find_entry(const kv_disk *d, const uint8_t key[32], int n_tokens) {
    for (int i = 0; i < d->n; i++)
        if (d->e[i].n_tokens == n_tokens && memcmp(d->e[i].key, key, 32) == 0) return i;
    return -1;
}

static int add_entry(kv_disk *d, const entry *x) {
    if (d->n == d->cap) {
        const int nc = d->cap ? 2 * d->cap : 64;
        entry *ne = realloc(d->e, (size_t)nc * sizeof *ne);
        if (!ne) return -1;
        d->e = ne;
        d->cap = nc;
    }
    d->e[d->n++] = *x;
    return 0;
}

static void drop_entry(kv_disk *d, int i) {
    d->used -= d->e[i].bytes;
    d->e[i] = d->e[--d->n];
}

/* Delete the least recently used checkpoints (never one being written)
 * until `need` more bytes fit in the budget. Returns 0 when they fit. */
static int make_room(kv_disk *d, uint64_t need) {
    while (d->used + need > d->budget) {
        int v = -1;
        for (int i = 0; i < d->n; i++)
            if (!d->e[i].writing && !d->e[i].pins && (v < 0 || d->e[i].last_used_ns < d->e[v].last_used_ns)) v = i;
        if (v < 0) return -1;   /* everything left is pinned or being written */
        char name[80];
        file_name(d->e[v].key, name);
        if (unlinkat(d->dirfd, name, 0) && errno != ENOENT) {
            logf_(d, "kv-disk: cannot delete %s/%s for eviction: %s", d->dir, name, strerror(errno));
            return -1;
        }
        logf_(d, "kv-disk: evicted %s (%d tokens, %.1f MiB, least recently used)", name, d->e[v].n_tokens,
              d->e[v].bytes / 1048576.0);
        d->st.evictions++;
        drop_entry(d, v);
    }
    return 0;
}

static int mkdir_p(const char *path, char *err, size_t errlen) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp) {
        snprintf(err, errlen, "--kv-disk-dir path is too long");
        return -1;
    }
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(tmp, 0700) && errno != EEXIST) goto bad;
        *p = '/';
    }
    if (mkdir(tmp, 0700) && errno != EEXIST) goto bad;
    return 0;
bad:
    snprintf(err, errlen, "cannot create --kv-disk-dir %s: %s", tmp, strerror(errno));
    return -1;
}

/* Index one directory entry that looks like a checkpoint. */
static void scan_one(kv_disk *d, const char *name) {
    const size_t nl = strlen(name), sl = strlen(KV_DISK_SUFFIX);
    if (strstr(name, KV_DISK_SUFFIX TMP_MARK)) {
        /* We hold the directory lock, so no writer is alive: a temp file is
         * what a crash mid-write left behind. */
        if (unlinkat(d->dirfd, name, 0) == 0) logf_(d, "kv-disk: removed %s (unfinished write)", name);
        return;
    }
    if (nl != 64 + sl || strcmp(name + 64, KV_DISK_SUFFIX) != 0) return;   /* not ours */
    uint8_t key[32];
    if (unhex32(name, key)) return;
    const int fd = openat(d->dirfd, name, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
        if (fd >= 0) close(fd);
        logf_(d, "kv-disk: skipped %s: cannot open or not a regular file", name);
        d->st.skipped++;
        return;
    }
    uint8_t b[KV_DISK_HEADER_BYTES];
    const ssize_t got = pread(fd, b, sizeof b, 0);
    close(fd);
    file_hdr h;
    char why[256];
    const int v = hdr_decode(b, got < 0 ? 0 : (size_t)got, (uint64_t)sb.st_size, d->fp, &h, why, sizeof why);
    if (v == HDR_OK && memcmp(h.key, key, 32) != 0) {
        snprintf(why, sizeof why, "file name does not match the key in its header");
        d->st.skipped++;
        logf_(d, "kv-disk: skipped %s: %s", name, why);
        return;
    }
    if (v != HDR_OK) {
        d->st.skipped++;
        if (v == HDR_DAMAGED && unlinkat(d->dirfd, name, 0) == 0)
            logf_(d, "kv-disk: skipped %s: %s; deleted", name, why);
        else logf_(d, "kv-disk: skipped %s: %s; left in place", name, why);
        return;
    }
    entry x = {.n_tokens = (int)h.n_tokens, .bytes = (uint64_t)sb.st_size,
               .last_used_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec};
    memcpy(x.key, key, 32);
    if (add_entry(d, &x) == 0) d->used += x.bytes;
}

kv_disk *kv_disk_open(const kv_disk_opts *o, char *err, size_t errlen) {
    if (!o->dir || !*o->dir) {
        snprintf(err, errlen, "no --kv-disk-dir given");
        return NULL;
    }
    if (o->budget_bytes == 0) {
        snprintf(err, errlen, "--kv-disk-space-mb must be > 0");
        return NULL;
    }
    if (mkdir_p(o->dir, err, errlen)) return NULL;
    kv_disk *d = calloc(1, sizeof *d);
    if (!d) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    d->dirfd = d->lockfd = -1;
    snprintf(d->dir, sizeof d->dir, "%s", o->dir);
    d->budget = o->budget_bytes;
    memcpy(d->fp, o->fingerprint, 32);
    d->log = o->log;
    d->log_ud = o->log_ud;
    d->save_progress = o->save_progress;
    d->progress_ud = o->progress_ud;
    pthread_mutex_init(&d->mu, NULL);
    d->dirfd = open(o->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d->dirfd < 0) {
        snprintf(err, errlen, "cannot open --kv-disk-dir %s: %s", o->dir, strerror(errno));
        goto bad;
    }
    d->lockfd = openat(d->dirfd, ".lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (d->lockfd < 0 || flock(d->lockfd, LOCK_EX | LOCK_NB)) {
        snprintf(err, errlen, "--kv-disk-dir %s is in use by another process (lock %s/.lock); give each server its own directory",
                 o->dir, o->dir);
        goto bad;
    }
    DIR *dh = opendir(o->dir);
    if (!dh) {
        snprintf(err, errlen, "cannot list --kv-disk-dir %s: %s", o->dir, strerror(errno));
        goto bad;
    }
    struct dirent *de;
    while ((de = readdir(dh))) scan_one(d, de->d_name);
    closedir(dh);
    d->st.budget = d->budget;
    if (make_room(d, 0)) logf_(d, "kv-disk: cannot get under the budget of %.1f MiB", d->budget / 1048576.0);
    logf_(d, "kv-disk: %s: %d checkpoints, %.1f of %.1f MiB", d->dir, d->n, d->used / 1048576.0,
          d->budget / 1048576.0);
    return d;
bad:
    kv_disk_close(d);
    return NULL;
}

void kv_disk_close(kv_disk *d) {
    if (!d) return;
    if (d->lockfd >= 0) close(d->lockfd);   /* releases the flock */
    if (d->dirfd >= 0) close(d->dirfd);
    pthread_mutex_destroy(&d->mu);
    free(d->e);
    free(d);
}

const char *kv_disk_dir(const kv_disk *d) { return d->dir; }

void kv_disk_stats_get(kv_disk *d, kv_disk_stats *st) {
    pthread_mutex_lock(&d->mu);
    *st = d->st;
    st->files = 0;
    st->bytes = 0;
    for (int i = 0; i < d->n; i++)
        if (!d->e[i].writing) {
            st->files++;
            st->bytes += d->e[i].bytes;
        }
    st->budget = d->budget;
    pthread_mutex_unlock(&d->mu);
}

/* ---- save --------------------------------------------------------------- */

typedef struct hash_sink {
    EVP_MD_CTX *md;
    FILE *f;
    uint64_t done, total;
    kv_disk *d;
} hash_sink;

static int hash_write(void *ud, const void *p, size_t n) {
    hash_sink *h = ud;
    if (fwrite(p, 1, n, h->f) != n) return -1;
    EVP_DigestUpdate(h->md, p, n);
    const uint64_t before = h->done;
    h->done += n;
    /* Report about every 64 MiB, and at the end. */
    if (h->d->save_progress && (h->done >> 26 != before >> 26 || h->done == h->total))
        h->d->save_progress(h->d->progress_ud, h->done, h->total);
    return 0;
}

/* Write the file to a temporary name, make it durable, rename it into
 * place, make the rename durable. */
static int write_file(kv_disk *d, fp_session *s, const file_hdr *h0, const char *name, char *err, size_t errlen) {
    char tmp[160];
    snprintf(tmp, sizeof tmp, "%s%s%ld", name, TMP_MARK, (long)getpid());
    const int fd = openat(d->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create %s/%s: %s", d->dir, tmp, strerror(errno));
        return -1;
    }
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        close(fd);
        unlinkat(d->dirfd, tmp, 0);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    setvbuf(f, NULL, _IOFBF, 1 << 20);
    file_hdr h = *h0;
    uint8_t hb[KV_DISK_HEADER_BYTES];
    memset(hb, 0, sizeof hb);   /* placeholder: an unfinished file has no valid header */
    hash_sink hs = {.md = EVP_MD_CTX_new(), .f = f, .total = h.payload_bytes, .d = d};
    int ok = hs.md && fwrite(hb, 1, sizeof hb, f) == sizeof hb;
    if (ok) {
        EVP_DigestInit_ex(hs.md, EVP_sha256(), NULL);
        const kv_sink out = {hash_write, &hs};
        char serr[256];
        if (kv_snapshot_write(s, KV_SNAP_FULL, &out, serr, sizeof serr)) {
            snprintf(err, errlen, "writing %s/%s: %s", d->dir, tmp, serr);
            ok = 0;
        } else if (hs.done != h.payload_bytes) {
            snprintf(err, errlen, "snapshot size changed while saving (%llu != %llu)",
                     (unsigned long long)hs.done, (unsigned long long)h.payload_bytes);
            ok = 0;
        }
    }
    if (ok) {
        unsigned len = 32;
        EVP_DigestFinal_ex(hs.md, h.payload_sha, &len);
        hdr_encode(&h, hb);
        ok = fseek(f, 0, SEEK_SET) == 0 && fwrite(hb, 1, sizeof hb, f) == sizeof hb && fflush(f) == 0 &&
             fsync(fd) == 0;
        if (!ok) snprintf(err, errlen, "writing %s/%s: %s", d->dir, tmp, strerror(errno));
    }
    EVP_MD_CTX_free(hs.md);
    if (fclose(f) && ok) {
        snprintf(err, errlen, "closing %s/%s: %s", d->dir, tmp, strerror(errno));
        ok = 0;
    }
    if (ok && renameat(d->dirfd, tmp, d->dirfd, name)) {
        snprintf(err, errlen, "renaming %s/%s: %s", d->dir, tmp, strerror(errno));
        ok = 0;
    }
    if (!ok) {
        unlinkat(d->dirfd, tmp, 0);
        return -1;
    }
    fsync(d->dirfd);   /* the rename itself must survive a crash */
    return 0;
}

static void touch(kv_disk *d, const char *name, int fd) {
    const struct timespec ts[2] = {{0, UTIME_OMIT}, {0, UTIME_NOW}};
    if (fd >= 0) futimens(fd, ts);
    else utimensat(d->dirfd, name, ts, 0);
}

int kv_disk_save(kv_disk *d, fp_session *s, int reason, char *err, size_t errlen) {
    const int n = session_n_tokens(s);
    if (n <= 0) return 0;
    file_hdr h;
    memset(&h, 0, sizeof h);
    h.version = KV_DISK_VERSION;
    memcpy(h.fingerprint, d->fp, 32);
    kv_disk_key(session_tokens(s), n, h.key);
    h.n_tokens = (uint32_t)n;
    h.reason = (uint32_t)reason;
    h.created = (uint64_t)time(NULL);
    h.payload_bytes = kv_snapshot_size(s, KV_SNAP_FULL);
    const uint64_t total = KV_DISK_HEADER_BYTES + h.payload_bytes;
    char name[80];
    file_name(h.key, name);

    pthread_mutex_lock(&d->mu);
    const int i = find_entry(d, h.key, n);
    if (i >= 0) {
        /* The state of a token prefix is deterministic: same key, same bytes. */
        if (!d->e[i].writing) {
            d->e[i].last_used_ns = now_ns();
            touch(d, name, -1);
        }
        pthread_mutex_unlock(&d->mu);
        logf_(d, "kv-disk: %s save of %d tokens skipped: already stored", kv_save_reason_name(reason), n);
        return 0;
    }
    if (total > d->budget) {
        pthread_mutex_unlock(&d->mu);
        logf_(d, "kv-disk: %s save of %d tokens skipped: %.1f MiB exceeds the whole budget of %.1f MiB",
              kv_save_reason_name(reason), n, total / 1048576.0, d->budget / 1048576.0);
        return 0;
    }
    if (make_room(d, total)) {
        pthread_mutex_unlock(&d->mu);
        logf_(d, "kv-disk: %s save of %d tokens skipped: no room (the rest is pinned or being written)",
              kv_save_reason_name(reason), n);
        return 0;
    }
    entry x = {.n_tokens = n, .bytes = total, .last_used_ns = now_ns(), .writing = 1};
    memcpy(x.key, h.key, 32);
    if (add_entry(d, &x)) {
        pthread_mutex_unlock(&d->mu);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    d->used += total;   /* reserved before writing: the temp file counts too */
    pthread_mutex_unlock(&d->mu);

    const int rc = write_file(d, s, &h, name, err, errlen);

    pthread_mutex_lock(&d->mu);
    const int j = find_entry(d, h.key, n);
    if (j >= 0) {
        if (rc) drop_entry(d, j);
        else {
            d->e[j].writing = 0;
            d->e[j].last_used_ns = now_ns();
            d->st.saves++;
        }
    }
    pthread_mutex_unlock(&d->mu);
    if (rc) return -1;
    logf_(d, "kv-disk: saved %s (%s, %d tokens, %.1f MiB)", name, kv_save_reason_name(reason), n,
          total / 1048576.0);
    return 1;
}

/* ---- lookup and load ------------------------------------------------------ */

typedef struct cand {
    uint8_t key[32];
    int n_tokens;
} cand;

static int cmp_cand_len(const void *a, const void *b) {
    const int x = ((const cand *)a)->n_tokens, y = ((const cand *)b)->n_tokens;
    return (x > y) - (x < y);
}

/* Every indexed prefix of tokens[0..n) with length in [min, n], longest
 * first. The prompt is hashed once: the digest state is copied at each
 * candidate length, so the cost is O(n + candidates). */
static int matching(kv_disk *d, const int32_t *tokens, int n, int min_tokens, cand **out) {
    *out = NULL;
    pthread_mutex_lock(&d->mu);
    cand *c = malloc((size_t)(d->n ? d->n : 1) * sizeof *c);
    int k = 0;
    if (c)
        for (int i = 0; i < d->n; i++)
            if (!d->e[i].writing && d->e[i].n_tokens >= min_tokens && d->e[i].n_tokens <= n) {
                memcpy(c[k].key, d->e[i].key, 32);
                c[k++].n_tokens = d->e[i].n_tokens;
            }
    pthread_mutex_unlock(&d->mu);
    if (!c) return 0;
    qsort(c, (size_t)k, sizeof *c, cmp_cand_len);
    EVP_MD_CTX *md = EVP_MD_CTX_new(), *fin = EVP_MD_CTX_new();
    int m = 0, at = 0;
    uint8_t dig[32];
    unsigned len = 32;
    if (md && fin) {
        EVP_DigestInit_ex(md, EVP_sha256(), NULL);
        for (int i = 0; i < k; i++) {
            if (c[i].n_tokens > at) {
                EVP_DigestUpdate(md, tokens + at, (size_t)(c[i].n_tokens - at) * sizeof(int32_t));
                at = c[i].n_tokens;
                EVP_MD_CTX_copy_ex(fin, md);
                EVP_DigestFinal_ex(fin, dig, &len);
            }
            if (memcmp(dig, c[i].key, 32) == 0) c[m++] = c[i];
        }
    }
    EVP_MD_CTX_free(md);
    EVP_MD_CTX_free(fin);
    /* longest first */
    for (int i = 0; i < m / 2; i++) {
        const cand t = c[i];
        c[i] = c[m - 1 - i];
        c[m - 1 - i] = t;
    }
    *out = c;
    return m;
}

int kv_disk_find(kv_disk *d, const int32_t *tokens, int n, int min_tokens) {
    cand *c;
    const int m = matching(d, tokens, n, min_tokens, &c);
    const int best = m > 0 ? c[0].n_tokens : 0;
    free(c);
    return best;
}

void kv_disk_pin(kv_disk *d, const int32_t *tokens, int n, int delta) {
    uint8_t key[32];
    kv_disk_key(tokens, n, key);
    pthread_mutex_lock(&d->mu);
    const int i = find_entry(d, key, n);
    if (i >= 0) {
        d->e[i].pins += delta;
        if (d->e[i].pins < 0) d->e[i].pins = 0;
    }
    pthread_mutex_unlock(&d->mu);
}

int kv_disk_contains(kv_disk *d, const int32_t *tokens, int n) {
    uint8_t key[32];
    kv_disk_key(tokens, n, key);
    pthread_mutex_lock(&d->mu);
    const int i = find_entry(d, key, n);
    const int r = i >= 0 && !d->e[i].writing;
    pthread_mutex_unlock(&d->mu);
    return r;
}

typedef struct hash_source {
    EVP_MD_CTX *md;
    FILE *f;
    uint64_t left;
} hash_source;

static int hash_read(void *ud, void *p, size_t n) {
    hash_source *h = ud;
    if (n > h->left || fread(p, 1, n, h->f) != n) return -1;
    EVP_DigestUpdate(h->md, p, n);
    h->left -= n;
    return 0;
}

/* Load one candidate. 0 ok; 1 the file is bad (why filled, session reset if
 * touched); -1 hard error. */
static int load_one(kv_disk *d, fp_session *s, const cand *c, const int32_t *tokens, char *why, size_t whylen) {
    char name[80];
    file_name(c->key, name);
    const int fd = openat(d->dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, whylen, "cannot open: %s", strerror(errno));
        return 1;
    }
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    setvbuf(f, NULL, _IOFBF, 1 << 20);
    struct stat sb;
    uint8_t hb[KV_DISK_HEADER_BYTES];
    file_hdr h;
    int rc = 1;
    hash_source hs = {.md = EVP_MD_CTX_new(), .f = f};
    if (fstat(fd, &sb)) {
        snprintf(why, whylen, "cannot stat: %s", strerror(errno));
        goto out;
    }
    const size_t got = fread(hb, 1, sizeof hb, f);
    if (hdr_decode(hb, got, (uint64_t)sb.st_size, d->fp, &h, why, whylen) != HDR_OK) goto out;
    if (memcmp(h.key, c->key, 32) != 0 || (int)h.n_tokens != c->n_tokens) {
        snprintf(why, whylen, "header key or token count changed since indexing");
        goto out;
    }
    if (!hs.md) {
        snprintf(why, whylen, "out of memory");
        rc = -1;
        goto out;
    }
    EVP_DigestInit_ex(hs.md, EVP_sha256(), NULL);
    hs.left = h.payload_bytes;
    const kv_source in = {hash_read, &hs};
    char serr[256];
    if (kv_snapshot_read(s, &in, serr, sizeof serr)) {
        session_reset(s);
        snprintf(why, whylen, "payload rejected: %s", serr);
        goto out;
    }
    uint8_t dig[32];
    unsigned len = 32;
    EVP_DigestFinal_ex(hs.md, dig, &len);
    if (hs.left != 0 || memcmp(dig, h.payload_sha, 32) != 0) {
        session_reset(s);
        snprintf(why, whylen, hs.left ? "payload length disagrees with its snapshot" : "payload checksum mismatch");
        goto out;
    }
    if (session_n_tokens(s) != c->n_tokens ||
        memcmp(session_tokens(s), tokens, (size_t)c->n_tokens * sizeof(int32_t)) != 0) {
        session_reset(s);
        snprintf(why, whylen, "stored tokens differ from the prompt prefix");
        goto out;
    }
    touch(d, name, fd);
    rc = 0;
out:
    EVP_MD_CTX_free(hs.md);
    fclose(f);
    return rc;
}

int kv_disk_load(kv_disk *d, fp_session *s, const int32_t *tokens, int n, int min_tokens, char *err,
                 size_t errlen) {
    cand *c;
    const int m = matching(d, tokens, n, min_tokens, &c);
    int loaded = 0;
    for (int i = 0; i < m && !loaded; i++) {
        char why[512], name[80];
        file_name(c[i].key, name);
        const int rc = load_one(d, s, &c[i], tokens, why, sizeof why);
        if (rc < 0) {
            snprintf(err, errlen, "loading %s/%s: %s", d->dir, name, why);
            free(c);
            return -1;
        }
        pthread_mutex_lock(&d->mu);
        const int j = find_entry(d, c[i].key, c[i].n_tokens);
        if (rc == 0) {
            if (j >= 0) d->e[j].last_used_ns = now_ns();
            d->st.loads++;
            loaded = c[i].n_tokens;
        } else {
            /* A damaged checkpoint would fail again: remove it. */
            if (j >= 0 && !d->e[j].writing) {
                unlinkat(d->dirfd, name, 0);
                drop_entry(d, j);
            }
            d->st.rejected++;
        }
        pthread_mutex_unlock(&d->mu);
        if (rc == 0) logf_(d, "kv-disk: loaded %s (%d tokens)", name, loaded);
        else logf_(d, "kv-disk: rejected %s: %s; deleted", name, why);
    }
    free(c);
    if (m > 0 && !loaded) session_reset(s);   /* an attempt was made: never leave a half state */
    return loaded;
}
