/* mkmodel_write.h — writes a whole synthetic deepseek4 GGUF: metadata
 * (model keys of model-spec §2.2 and the synthetic tokenizer), the tensor
 * directory of mkmodel_plan, and the tensor bytes, generated in parallel
 * chunks while the previous round of chunks is being written. */
#ifndef FP_MKMODEL_WRITE_H
#define FP_MKMODEL_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "gguf.h"
#include "mkmodel_plan.h"
#include "mkmodel_vocab.h"

typedef struct mkmodel_progress {
    size_t tensors_done, tensors_total;
    uint64_t bytes_done, bytes_total;   /* tensor bytes (padding excluded) */
    double seconds;                     /* since the start of mkmodel_write */
    int syncing;                        /* 1: all bytes written, fsync under way */
} mkmodel_progress;

/* Called from the writing thread after each round (about every 32 MiB) and
 * once before the final fsync. */
typedef void (*mkmodel_progress_fn)(void *ud, const mkmodel_progress *p);

typedef struct mkmodel_result {
    size_t n_tensors;
    uint64_t file_bytes;
    size_t n_merges;
    uint32_t special[MKMODEL_SP_COUNT];
    double seconds;
} mkmodel_result;

/* Adds every metadata key, in the reference tool's order, to w. */
void mkmodel_put_metadata(gguf_writer *w, const mkmodel_config *c, const mkmodel_vocab *v);

/* Writes c to path (via path.tmp, renamed when complete) using n_threads
 * workers. progress may be NULL; res may be NULL. 0 / -1 with err. */
int mkmodel_write(const mkmodel_config *c, const char *path, int n_threads, mkmodel_progress_fn progress,
                  void *ud, mkmodel_result *res, char *err, size_t errlen);

#endif
