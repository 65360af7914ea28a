/* expert_io.h — asynchronous reads of expert slabs from the coordinator's
 * GGUF file: io_uring when the kernel allows it, plain pread otherwise
 * (containers often forbid io_uring; the fallback keeps every path working).
 *
 * A job is up to EXPERT_IO_MAX_SEGS (offset, length, destination) segments —
 * an expert's gate, up and down slabs live in three different tensors — and
 * completes when all of them are read in full (short reads are resumed). */
#ifndef FP_EXPERT_IO_H
#define FP_EXPERT_IO_H

#include <stddef.h>
#include <stdint.h>

#define EXPERT_IO_MAX_SEGS 4

typedef struct expert_io expert_io;

typedef struct expert_io_seg {
    void *dst;
    size_t len;
    uint64_t off;       /* file offset */
} expert_io_seg;

typedef struct expert_io_done {
    uint64_t tag;
    int status;         /* 0, or -errno (EIO for a read past end of file) */
} expert_io_done;

/* max_jobs: jobs that may be in flight at once. force_pread: skip io_uring. */
expert_io *expert_io_open(const char *path, int max_jobs, int force_pread, char *err, size_t errlen);
void expert_io_close(expert_io *io);
const char *expert_io_backend(const expert_io *io);   /* "io_uring" or "pread" */
int expert_io_fd(const expert_io *io);

/* Jobs that can still be queued. */
int expert_io_space(const expert_io *io);
int expert_io_inflight(const expert_io *io);
/* Queue (and submit) one job. -1 when no space (reap first) or bad args. */
int expert_io_read(expert_io *io, const expert_io_seg *segs, int n_segs, uint64_t tag);
/* Completed jobs into out[max]; blocks until at least min_done jobs are
 * complete (0 = just poll; capped at the number in flight). Returns the
 * count, or -1 with err when the kernel interface itself fails. */
int expert_io_reap(expert_io *io, expert_io_done *out, int max, int min_done, char *err, size_t errlen);

#endif
