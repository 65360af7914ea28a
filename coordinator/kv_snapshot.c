/* kv_snapshot.c — serialise / restore a session's complete state (format in
 * kv_snapshot.h). Arrays are written as the host's bytes: the format is
 * little-endian and so is every host we build for (checked at compile time),
 * which keeps a multi-GB save a handful of large writes. */
#include "kv_snapshot.h"

#include <stdlib.h>
#include <string.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "kv snapshots are little-endian");

#define HDR_WORDS 10
#define LAYER_WORDS 8

/* Per-layer record of the payload header. */
typedef struct snap_layer {
    uint32_t ratio, n_raw, n_comp, n_idx, attn_rows, attn_width, idx_rows, idx_width;
} snap_layer;

static int coff_of(int ratio) { return ratio == 4 ? 2 : 1; }

static snap_layer layer_geom(const model_hparams *hp, int l, int n_tokens) {
    snap_layer g;
    memset(&g, 0, sizeof g);
    const int r = hp->compress_ratio[l];
    g.ratio = (uint32_t)r;
    g.n_raw = (uint32_t)(n_tokens < hp->n_swa ? n_tokens : hp->n_swa);
    if (r) {
        g.n_comp = (uint32_t)(n_tokens / r);
        g.attn_rows = (uint32_t)(coff_of(r) * r);
        g.attn_width = (uint32_t)(coff_of(r) * hp->head_dim);
    }
    if (r == 4) {
        g.n_idx = (uint32_t)(n_tokens / 4);
        g.idx_rows = 8;
        g.idx_width = (uint32_t)(2 * hp->idx_head_dim);
    }
    return g;
}

size_t kv_snapshot_bytes(const model_hparams *hp, int n_tokens, int kind) {
    const size_t D = (size_t)hp->head_dim, ID = (size_t)hp->idx_head_dim, F = sizeof(float);
    size_t b = 4 * HDR_WORDS + (size_t)hp->n_layer * 4 * LAYER_WORDS;
    b += (size_t)n_tokens * sizeof(int32_t) + (size_t)hp->n_vocab * F;
    for (int l = 0; l < hp->n_layer; l++) {
        const snap_layer g = layer_geom(hp, l, n_tokens);
        b += g.n_raw * D * F;
        if (kind == KV_SNAP_FULL) b += g.n_comp * D * F + g.n_idx * ID * F;
        b += 2 * (size_t)g.attn_rows * g.attn_width * F;
        b += 2 * (size_t)g.idx_rows * g.idx_width * F;
    }
    return b;
}

static const model_hparams *session_hp(fp_session *s) { return &engine_model(session_engine(s))->hp; }

size_t kv_snapshot_size(fp_session *s, int kind) {
    return kv_snapshot_bytes(session_hp(s), session_n_tokens(s), kind);
}

/* ---- writing --------------------------------------------------------------- */

int kv_snapshot_write(fp_session *s, int kind, const kv_sink *out, char *err, size_t errlen) {
    if (kind != KV_SNAP_FULL && kind != KV_SNAP_TAIL) {
        snprintf(err, errlen, "unknown snapshot kind %d", kind);
        return -1;
    }
    const model_hparams *hp = session_hp(s);
    kv_state *kv = session_kv(s);
    const int n = session_n_tokens(s);
    const size_t D = (size_t)hp->head_dim, ID = (size_t)hp->idx_head_dim, F = sizeof(float);
    uint32_t hdr[HDR_WORDS] = {KV_SNAP_MAGIC, KV_SNAP_VERSION, (uint32_t)kind, (uint32_t)hp->n_layer,
                               (uint32_t)hp->n_swa, (uint32_t)hp->head_dim, (uint32_t)hp->idx_head_dim,
                               (uint32_t)hp->n_vocab, (uint32_t)n, 0};
    if (out->write(out->ud, hdr, sizeof hdr)) goto io;
    for (int l = 0; l < hp->n_layer; l++) {
        const layer_kv *L = &kv->layers[l];
        snap_layer g = layer_geom(hp, l, n);
        /* The live counts must agree with the token count: a mismatch means
         * the session is not in a consistent state and must not be saved. */
        if ((int)g.n_comp != (L->ratio ? L->n_comp : 0) || (int)g.n_idx != (L->ratio == 4 ? L->n_idx : 0)) {
            snprintf(err, errlen, "layer %d: %d compressed rows for %d tokens (session inconsistent)", l,
                     L->n_comp, n);
            return -1;
        }
        if (out->write(out->ud, &g, sizeof g)) goto io;
    }
    if (n && out->write(out->ud, session_tokens(s), (size_t)n * sizeof(int32_t))) goto io;
    if (out->write(out->ud, session_logits(s), (size_t)hp->n_vocab * F)) goto io;
    for (int l = 0; l < hp->n_layer; l++) {
        const layer_kv *L = &kv->layers[l];
        const snap_layer g = layer_geom(hp, l, n);
        /* Raw window in position order: n-n_raw .. n-1, each at p % n_swa. */
        for (int p = n - (int)g.n_raw; p < n; p++)
            if (out->write(out->ud, L->raw + (size_t)(p % hp->n_swa) * D, D * F)) goto io;
        if (L->ratio) {
            if (kind == KV_SNAP_FULL && g.n_comp && out->write(out->ud, L->comp, g.n_comp * D * F)) goto io;
            const size_t fb = (size_t)g.attn_rows * g.attn_width * F;
            if (out->write(out->ud, L->attn.s_kv, fb) || out->write(out->ud, L->attn.s_sc, fb)) goto io;
        }
        if (L->ratio == 4) {
            if (kind == KV_SNAP_FULL && g.n_idx && out->write(out->ud, L->idx, g.n_idx * ID * F)) goto io;
            const size_t fb = (size_t)g.idx_rows * g.idx_width * F;
            if (out->write(out->ud, L->idxc.s_kv, fb) || out->write(out->ud, L->idxc.s_sc, fb)) goto io;
        }
    }
    return 0;
io:
    snprintf(err, errlen, "write failed while saving the session snapshot");
    return -1;
}

/* ---- header validation ------------------------------------------------------ */

/* Check a payload header against a session: same model geometry, fits the
 * session's context and compressed capacity, and row counts consistent with
 * the token count. Fills *n_out and *kind_out. */
static int check_header(fp_session *s, const uint32_t *hdr, const snap_layer *gl, int *n_out, int *kind_out,
                        char *err, size_t errlen) {
    const model_hparams *hp = session_hp(s);
    const kv_state *kv = session_kv(s);
    if (hdr[0] != KV_SNAP_MAGIC) {
        snprintf(err, errlen, "not a session snapshot (bad magic 0x%08x)", hdr[0]);
        return -1;
    }
    if (hdr[1] != KV_SNAP_VERSION) {
        snprintf(err, errlen, "snapshot version %u is not supported (this build reads %u)", hdr[1],
                 KV_SNAP_VERSION);
        return -1;
    }
    if (hdr[2] != KV_SNAP_FULL && hdr[2] != KV_SNAP_TAIL) {
        snprintf(err, errlen, "unknown snapshot kind %u", hdr[2]);
        return -1;
    }
    if (hdr[3] != (uint32_t)hp->n_layer || hdr[4] != (uint32_t)hp->n_swa || hdr[5] != (uint32_t)hp->head_dim ||
        hdr[6] != (uint32_t)hp->idx_head_dim || hdr[7] != (uint32_t)hp->n_vocab) {
        snprintf(err, errlen,
                 "snapshot is for another model shape (layers %u, window %u, head %u, indexer head %u, vocab %u)",
                 hdr[3], hdr[4], hdr[5], hdr[6], hdr[7]);
        return -1;
    }
    if (hdr[8] > (uint32_t)session_ctx(s)) {
        snprintf(err, errlen, "snapshot holds %u tokens, more than the session context %d (raise --ctx)", hdr[8],
                 session_ctx(s));
        return -1;
    }
    const int n = (int)hdr[8];
    if (gl) {
        for (int l = 0; l < hp->n_layer; l++) {
            const snap_layer want = layer_geom(hp, l, n);
            if (memcmp(&want, &gl[l], sizeof want) != 0) {
                snprintf(err, errlen, "snapshot layer %d record does not match %d tokens of this model", l, n);
                return -1;
            }
            if (want.n_comp > (uint32_t)kv->layers[l].cap_comp) {
                snprintf(err, errlen, "snapshot layer %d: %u compressed rows exceed the session capacity %d", l,
                         want.n_comp, kv->layers[l].cap_comp);
                return -1;
            }
        }
    }
    *n_out = n;
    *kind_out = (int)hdr[2];
    return 0;
}

/* ---- reading ---------------------------------------------------------------- */

/* Read the window and frontiers of every layer (and, for FULL, the rows). */
static int read_layers(fp_session *s, const kv_source *in, int n, int kind) {
    const model_hparams *hp = session_hp(s);
    kv_state *kv = session_kv(s);
    const size_t D = (size_t)hp->head_dim, ID = (size_t)hp->idx_head_dim, F = sizeof(float);
    for (int l = 0; l < hp->n_layer; l++) {
        layer_kv *L = &kv->layers[l];
        const snap_layer g = layer_geom(hp, l, n);
        for (int p = n - (int)g.n_raw; p < n; p++)
            if (in->read(in->ud, L->raw + (size_t)(p % hp->n_swa) * D, D * F)) return -1;
        if (L->ratio) {
            if (kind == KV_SNAP_FULL && g.n_comp && in->read(in->ud, L->comp, g.n_comp * D * F)) return -1;
            L->n_comp = (int)g.n_comp;
            const size_t fb = (size_t)g.attn_rows * g.attn_width * F;
            if (in->read(in->ud, L->attn.s_kv, fb) || in->read(in->ud, L->attn.s_sc, fb)) return -1;
        }
        if (L->ratio == 4) {
            if (kind == KV_SNAP_FULL && g.n_idx && in->read(in->ud, L->idx, g.n_idx * ID * F)) return -1;
            L->n_idx = (int)g.n_idx;
            const size_t fb = (size_t)g.idx_rows * g.idx_width * F;
            if (in->read(in->ud, L->idxc.s_kv, fb) || in->read(in->ud, L->idxc.s_sc, fb)) return -1;
        }
    }
    return 0;
}

int kv_snapshot_read(fp_session *s, const kv_source *in, char *err, size_t errlen) {
    const model_hparams *hp = session_hp(s);
    uint32_t hdr[HDR_WORDS];
    if (in->read(in->ud, hdr, sizeof hdr)) {
        snprintf(err, errlen, "snapshot is truncated (no header)");
        return -1;
    }
    snap_layer *gl = malloc((size_t)hp->n_layer * sizeof *gl);
    int32_t *toks = NULL;
    float *logits = NULL;
    int n = 0, kind = 0;
    if (!gl) goto oom;
    /* Geometry first (without layer records) so a foreign header cannot make
     * us read an absurd number of layer records. */
    if (check_header(s, hdr, NULL, &n, &kind, err, errlen)) goto fail;
    if (in->read(in->ud, gl, (size_t)hp->n_layer * sizeof *gl)) {
        snprintf(err, errlen, "snapshot is truncated (layer records)");
        goto fail;
    }
    if (check_header(s, hdr, gl, &n, &kind, err, errlen)) goto fail;
    if (kind != KV_SNAP_FULL) {
        snprintf(err, errlen, "a TAIL snapshot needs a donor session (kv_snapshot_restore_tail)");
        goto fail;
    }
    toks = malloc((size_t)(n ? n : 1) * sizeof *toks);
    logits = malloc((size_t)hp->n_vocab * sizeof *logits);
    if (!toks || !logits) goto oom;
    /* From here on the session is being overwritten: any failure resets it. */
    if ((n && in->read(in->ud, toks, (size_t)n * sizeof *toks)) ||
        in->read(in->ud, logits, (size_t)hp->n_vocab * sizeof *logits) || read_layers(s, in, n, kind)) {
        session_reset(s);
        snprintf(err, errlen, "snapshot of %d tokens is truncated or unreadable", n);
        goto fail;
    }
    for (int i = 0; i < n; i++)
        if (toks[i] < 0 || toks[i] >= hp->n_vocab) {
            session_reset(s);
            snprintf(err, errlen, "snapshot token %d has id %d outside the vocabulary", i, toks[i]);
            goto fail;
        }
    session_set_history(s, toks, n, logits);
    free(gl);
    free(toks);
    free(logits);
    return 0;
oom:
    snprintf(err, errlen, "out of memory reading a snapshot");
fail:
    free(gl);
    free(toks);
    free(logits);
    return -1;
}

/* ---- memory and FILE sinks/sources ------------------------------------------ */

typedef struct membuf {
    uint8_t *p;
    size_t len, cap, off;
} membuf;

static int mem_write(void *ud, const void *p, size_t n) {
    membuf *m = ud;
    if (m->len + n > m->cap) return -1;   /* sized exactly by kv_snapshot_size */
    memcpy(m->p + m->len, p, n);
    m->len += n;
    return 0;
}

static int mem_read(void *ud, void *p, size_t n) {
    membuf *m = ud;
    if (n > m->len - m->off) return -1;
    memcpy(p, m->p + m->off, n);
    m->off += n;
    return 0;
}

static int file_write(void *ud, const void *p, size_t n) { return fwrite(p, 1, n, ud) == n ? 0 : -1; }
static int file_read(void *ud, void *p, size_t n) { return fread(p, 1, n, ud) == n ? 0 : -1; }

int kv_snapshot_save_buf(fp_session *s, int kind, void **buf, size_t *len, char *err, size_t errlen) {
    const size_t sz = kv_snapshot_size(s, kind);
    membuf m = {.p = malloc(sz), .cap = sz};
    if (!m.p) {
        snprintf(err, errlen, "out of memory for a %.1f MiB snapshot", sz / 1048576.0);
        return -1;
    }
    const kv_sink out = {mem_write, &m};
    if (kv_snapshot_write(s, kind, &out, err, errlen)) {
        free(m.p);
        return -1;
    }
    *buf = m.p;
    *len = m.len;
    return 0;
}

int kv_snapshot_save_into(fp_session *s, int kind, void *buf, size_t cap, size_t *len, char *err,
                          size_t errlen) {
    const size_t sz = kv_snapshot_size(s, kind);
    if (sz > cap) {
        snprintf(err, errlen, "snapshot needs %zu bytes, buffer has %zu", sz, cap);
        return -1;
    }
    membuf m = {.p = buf, .cap = cap};
    const kv_sink out = {mem_write, &m};
    if (kv_snapshot_write(s, kind, &out, err, errlen)) return -1;
    *len = m.len;
    return 0;
}

int kv_snapshot_load_buf(fp_session *s, const void *buf, size_t len, char *err, size_t errlen) {
    membuf m = {.p = (uint8_t *)buf, .len = len};
    const kv_source in = {mem_read, &m};
    if (kv_snapshot_read(s, &in, err, errlen)) return -1;
    if (m.off != len) {
        session_reset(s);
        snprintf(err, errlen, "snapshot has %zu trailing bytes", len - m.off);
        return -1;
    }
    return 0;
}

int kv_snapshot_save_file(fp_session *s, FILE *f, char *err, size_t errlen) {
    const kv_sink out = {file_write, f};
    return kv_snapshot_write(s, KV_SNAP_FULL, &out, err, errlen);
}

int kv_snapshot_load_file(fp_session *s, FILE *f, char *err, size_t errlen) {
    const kv_source in = {file_read, f};
    return kv_snapshot_read(s, &in, err, errlen);
}

/* ---- buffer inspection and tail restore -------------------------------------- */

int kv_snapshot_peek(const void *buf, size_t len, int *n_tokens, int *kind) {
    uint32_t hdr[HDR_WORDS];
    if (len < sizeof hdr) return -1;
    memcpy(hdr, buf, sizeof hdr);
    if (hdr[0] != KV_SNAP_MAGIC || hdr[1] != KV_SNAP_VERSION || hdr[8] > INT32_MAX) return -1;
    if (n_tokens) *n_tokens = (int)hdr[8];
    if (kind) *kind = (int)hdr[2];
    return 0;
}

const int32_t *kv_snapshot_tokens(const void *buf, size_t len, int *n_tokens) {
    uint32_t hdr[HDR_WORDS];
    if (kv_snapshot_peek(buf, len, NULL, NULL)) return NULL;
    memcpy(hdr, buf, sizeof hdr);
    const size_t off = sizeof hdr + (size_t)hdr[3] * sizeof(snap_layer);
    if (hdr[3] > FP_MAX_LAYERS || off + (size_t)hdr[8] * sizeof(int32_t) > len) return NULL;
    *n_tokens = (int)hdr[8];
    return (const int32_t *)((const uint8_t *)buf + off);
}

int kv_snapshot_restore_tail(fp_session *dst, fp_session *donor, const void *buf, size_t len, char *err,
                             size_t errlen) {
    const model_hparams *hp = session_hp(dst);
    if (session_hp(donor) != hp && memcmp(session_hp(donor), hp, sizeof *hp) != 0) {
        snprintf(err, errlen, "donor session belongs to another model");
        return -1;
    }
    if (len < 4 * HDR_WORDS) {
        snprintf(err, errlen, "tail snapshot is truncated");
        return -1;
    }
    uint32_t hdr[HDR_WORDS];
    memcpy(hdr, buf, sizeof hdr);
    int n = 0, kind = 0;
    if (check_header(dst, hdr, NULL, &n, &kind, err, errlen)) return -1;
    const size_t lsz = (size_t)hp->n_layer * sizeof(snap_layer);
    if (len != kv_snapshot_bytes(hp, n, kind) || len < sizeof hdr + lsz) {
        snprintf(err, errlen, "snapshot of %d tokens has %zu bytes, expected %zu", n, len,
                 kv_snapshot_bytes(hp, n, kind));
        return -1;
    }
    snap_layer *gl = malloc(lsz);
    if (!gl) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    memcpy(gl, (const uint8_t *)buf + sizeof hdr, lsz);
    const int bad = check_header(dst, hdr, gl, &n, &kind, err, errlen);
    free(gl);
    if (bad) return -1;
    const int32_t *toks = (const int32_t *)((const uint8_t *)buf + sizeof hdr + lsz);
    /* The donor's rows are the snapshot's rows only if it saw the same tokens. */
    if (session_n_tokens(donor) < n ||
        (n && memcmp(session_tokens(donor), toks, (size_t)n * sizeof(int32_t)) != 0)) {
        snprintf(err, errlen, "donor session does not start with the snapshot's %d tokens", n);
        return -1;
    }
    if (dst != donor) {
        kv_state *dk = session_kv(dst), *sk = session_kv(donor);
        const size_t D = (size_t)hp->head_dim, ID = (size_t)hp->idx_head_dim;
        for (int l = 0; l < hp->n_layer; l++) {
            const snap_layer g = layer_geom(hp, l, n);
            if (g.n_comp) memcpy(dk->layers[l].comp, sk->layers[l].comp, g.n_comp * D * sizeof(float));
            if (g.n_idx) memcpy(dk->layers[l].idx, sk->layers[l].idx, g.n_idx * ID * sizeof(float));
        }
    }
    /* For a FULL buffer the rows are in the stream too; reading them again is
     * harmless (identical values) and keeps one code path. */
    membuf m = {.p = (uint8_t *)buf, .len = len, .off = sizeof hdr + lsz + (size_t)n * sizeof(int32_t)};
    const kv_source in = {mem_read, &m};
    const float *logits = (const float *)(m.p + m.off);
    m.off += (size_t)hp->n_vocab * sizeof(float);
    if (read_layers(dst, &in, n, kind)) {   /* cannot fail: the size was checked */
        session_reset(dst);
        snprintf(err, errlen, "tail snapshot unreadable");
        return -1;
    }
    /* tokens may alias dst's own history when rewinding in place: memmove. */
    session_set_history(dst, toks, n, logits);
    return 0;
}
