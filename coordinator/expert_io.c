/* expert_io.c — expert slab reads through io_uring (liburing), with a
 * pread fallback behind the same job interface (see expert_io.h). */
#include "expert_io.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct io_job {
    int used, pending, status;
    uint64_t tag;
    expert_io_seg seg[EXPERT_IO_MAX_SEGS];
    size_t done[EXPERT_IO_MAX_SEGS];
} io_job;

struct expert_io {
    int fd;
    int uring_ok;
    struct io_uring ring;
    int max_jobs, n_used;
    io_job *jobs;
    /* pread backend: finished jobs waiting to be reaped (job indices). */
    int *ready;
    int n_ready;
};

expert_io *expert_io_open(const char *path, int max_jobs, int force_pread, char *err, size_t errlen) {
    if (max_jobs < 1) max_jobs = 1;
    expert_io *io = calloc(1, sizeof(*io));
    if (!io) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    io->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (io->fd < 0) {
        snprintf(err, errlen, "cannot open %s for expert reads: %s", path, strerror(errno));
        free(io);
        return NULL;
    }
    /* Expert reads are scattered slabs: kernel readahead would only pull in
     * neighbouring experts nobody asked for. */
    posix_fadvise(io->fd, 0, 0, POSIX_FADV_RANDOM);
    io->max_jobs = max_jobs;
    io->jobs = calloc((size_t)max_jobs, sizeof(*io->jobs));
    io->ready = calloc((size_t)max_jobs, sizeof(*io->ready));
    if (!io->jobs || !io->ready) {
        snprintf(err, errlen, "out of memory");
        expert_io_close(io);
        return NULL;
    }
    unsigned entries = 8;
    while (entries < (unsigned)max_jobs * EXPERT_IO_MAX_SEGS && entries < 4096) entries <<= 1;
    if (!force_pread && io_uring_queue_init(entries, &io->ring, 0) == 0) io->uring_ok = 1;
    return io;
}

void expert_io_close(expert_io *io) {
    if (!io) return;
    if (io->uring_ok) {
        /* Jobs still in flight write into caller buffers: drain them first. */
        int pending = 0;
        for (int i = 0; i < io->max_jobs; i++) pending += io->jobs[i].used ? io->jobs[i].pending : 0;
        while (pending > 0) {
            struct io_uring_cqe *cqe;
            if (io_uring_wait_cqe(&io->ring, &cqe) != 0) break;
            io_uring_cqe_seen(&io->ring, cqe);
            pending--;
        }
        io_uring_queue_exit(&io->ring);
    }
    if (io->fd >= 0) close(io->fd);
    free(io->jobs);
    free(io->ready);
    free(io);
}

const char *expert_io_backend(const expert_io *io) { return io->uring_ok ? "io_uring" : "pread"; }
int expert_io_fd(const expert_io *io) { return io->fd; }
int expert_io_space(const expert_io *io) { return io->max_jobs - io->n_used; }
int expert_io_inflight(const expert_io *io) { return io->n_used; }

/* user_data encodes (job, segment) so a short read can be resumed. */
static int queue_seg(expert_io *io, int ji, int s) {
    io_job *j = &io->jobs[ji];
    struct io_uring_sqe *sqe = io_uring_get_sqe(&io->ring);
    if (!sqe) {
        io_uring_submit(&io->ring);
        sqe = io_uring_get_sqe(&io->ring);
        if (!sqe) return -1;
    }
    const size_t d = j->done[s];
    size_t len = j->seg[s].len - d;
    if (len > (1u << 30)) len = 1u << 30;
    io_uring_prep_read(sqe, io->fd, (char *)j->seg[s].dst + d, (unsigned)len, j->seg[s].off + d);
    io_uring_sqe_set_data64(sqe, (uint64_t)ji * EXPERT_IO_MAX_SEGS + (uint64_t)s);
    return 0;
}

static int pread_full(int fd, void *dst, size_t len, uint64_t off) {
    size_t done = 0;
    while (done < len) {
        const ssize_t r = pread(fd, (char *)dst + done, len - done, (off_t)(off + done));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -errno;
        if (r == 0) return -EIO;
        done += (size_t)r;
    }
    return 0;
}

int expert_io_read(expert_io *io, const expert_io_seg *segs, int n_segs, uint64_t tag) {
    if (n_segs < 1 || n_segs > EXPERT_IO_MAX_SEGS || io->n_used >= io->max_jobs) return -1;
    int ji = 0;
    while (io->jobs[ji].used) ji++;
    io_job *j = &io->jobs[ji];
    memset(j, 0, sizeof(*j));
    j->used = 1;
    j->tag = tag;
    io->n_used++;
    if (!io->uring_ok) {
        for (int s = 0; s < n_segs && j->status == 0; s++) j->status = pread_full(io->fd, segs[s].dst, segs[s].len, segs[s].off);
        io->ready[io->n_ready++] = ji;
        return 0;
    }
    for (int s = 0; s < n_segs; s++) {
        j->seg[s] = segs[s];
        if (segs[s].len == 0) continue;
        if (queue_seg(io, ji, s)) {
            /* Cannot happen with the ring sized for max_jobs full jobs; fall
             * back to a synchronous read rather than lose the segment. */
            j->status = j->status ? j->status : pread_full(io->fd, segs[s].dst, segs[s].len, segs[s].off);
            continue;
        }
        j->pending++;
    }
    if (j->pending == 0) io->ready[io->n_ready++] = ji;
    io_uring_submit(&io->ring);
    return 0;
}

static int take_ready(expert_io *io, expert_io_done *out, int max) {
    int n = 0;
    while (io->n_ready > 0 && n < max) {
        const int ji = io->ready[--io->n_ready];
        out[n].tag = io->jobs[ji].tag;
        out[n].status = io->jobs[ji].status;
        io->jobs[ji].used = 0;
        io->n_used--;
        n++;
    }
    return n;
}

int expert_io_reap(expert_io *io, expert_io_done *out, int max, int min_done, char *err, size_t errlen) {
    if (min_done > io->n_used) min_done = io->n_used;
    if (min_done > max) min_done = max;
    int n = take_ready(io, out, max);
    if (!io->uring_ok) return n;
    while (n < max) {
        struct io_uring_cqe *cqe;
        int rc;
        if (n < min_done) rc = io_uring_wait_cqe(&io->ring, &cqe);
        else rc = io_uring_peek_cqe(&io->ring, &cqe);
        if (rc == -EAGAIN) break;
        if (rc == -EINTR) continue;
        if (rc < 0) {
            snprintf(err, errlen, "io_uring wait failed: %s", strerror(-rc));
            return -1;
        }
        const uint64_t ud = io_uring_cqe_get_data64(cqe);
        const int res = cqe->res;
        io_uring_cqe_seen(&io->ring, cqe);
        const int ji = (int)(ud / EXPERT_IO_MAX_SEGS), s = (int)(ud % EXPERT_IO_MAX_SEGS);
        io_job *j = &io->jobs[ji];
        int finished = 1;
        if (res < 0) {
            if (!j->status) j->status = res;
        } else if (res == 0) {
            if (!j->status) j->status = -EIO;
        } else {
            j->done[s] += (size_t)res;
            if (j->done[s] < j->seg[s].len && !j->status) {
                /* Short read: resume where it stopped. */
                if (queue_seg(io, ji, s) == 0) {
                    io_uring_submit(&io->ring);
                    finished = 0;
                } else {
                    j->status = pread_full(io->fd, (char *)j->seg[s].dst + j->done[s], j->seg[s].len - j->done[s],
                                           j->seg[s].off + j->done[s]);
                }
            }
        }
        if (finished && --j->pending == 0) {
            io->ready[io->n_ready++] = ji;
            n += take_ready(io, out + n, max - n);
        }
    }
    return n;
}
