/* TensorBoard event files: scalars as TFRecord-framed Event protobufs, readable by
 * TensorBoard's EventAccumulator (and tbparse) without TensorFlow.
 *
 *   wk_tb_writer *tb = wk_tb_writer_open_dir("work_dirs/run/tb", wk_wall_time());
 *   const char *tags[] = {"train/loss", "lr"};
 *   double vals[] = {0.41, 1e-3};
 *   wk_tb_writer_add_scalars(tb, 120, wk_wall_time(), tags, vals, 2);
 *   wk_tb_writer_close(tb);
 */
#ifndef WK_ENGINE_TENSORBOARD_H
#define WK_ENGINE_TENSORBOARD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wk_tb_writer wk_tb_writer;

/* Seconds since the Unix epoch (CLOCK_REALTIME), the wall_time TensorBoard expects. */
double wk_wall_time(void);

/* Standard CRC-32C (Castagnoli; crc32c("123456789") = 0xE3069283), via Intel ISA-L. */
uint32_t wk_crc32c(const void *data, size_t n);
/* The TFRecord checksum of data: CRC-32C masked as ((c >> 15) | (c << 17)) + 0xa282ead8. */
uint32_t wk_tfrecord_masked_crc(const void *data, size_t n);

/* Create (truncate) the event file at `path` and write the first record
 * (file_version "brain.Event:2") stamped `wall_time`. Returns NULL and sets the error when
 * the file cannot be created. Free with wk_tb_writer_close. */
wk_tb_writer *wk_tb_writer_open(const char *path, double wall_time);
/* Create `dir` if needed and open `dir/events.out.tfevents.<secs>.<hostname>.<pid>.0` there
 * (TensorBoard's file name; secs = the integer part of wall_time). */
wk_tb_writer *wk_tb_writer_open_dir(const char *dir, double wall_time);
/* Append one Event at (step, wall_time) whose Summary holds n scalars tags[i] = values[i]
 * (stored as float, TensorBoard's simple_value), then flush the file. Returns 0, or -1
 * with the error set (bad arguments, a failed write). */
int wk_tb_writer_add_scalars(wk_tb_writer *w, int64_t step, double wall_time,
                             const char *const *tags, const double *values, int n);
/* One scalar: wk_tb_writer_add_scalars with n = 1. */
int wk_tb_writer_add_scalar(wk_tb_writer *w, const char *tag, double value, int64_t step,
                            double wall_time);
/* The file's path (owned by the writer). */
const char *wk_tb_writer_path(const wk_tb_writer *w);
/* Close and free (NULL is a no-op). Returns 0, or -1 with the error set when the final
 * write failed. */
int wk_tb_writer_close(wk_tb_writer *w);

#ifdef __cplusplus
}
#endif
#endif
