/* Built-in datasets. Each returns a new wk_dataset (free with wk_dataset_free) or NULL
 * with an error. Image fields are "inputs" (float32) and "labels" (int64).
 *
 *   wk_dataset *train = wk_mnist_new("/usr/share/datasets/fashion-mnist", true,
 *                                    &(wk_mnist_opts){.flatten = true});
 *   wk_dataset *tr, *val;
 *   wk_dataset_split(train, 3000, 0, &tr, &val);   // 57000 / 3000 after a seeded shuffle
 */
#ifndef WK_ENGINE_DATASETS_H
#define WK_ENGINE_DATASETS_H

#include "dataset.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- image augmentations (applied per sample, seeded by (seed, epoch, index)) ---- */
typedef struct {
    int crop_padding;        /* random crop back to HxW after zero padding by this (0: off) */
    bool hflip;              /* random horizontal flip with probability 0.5 */
    uint64_t seed;
} wk_augment_opts;

/* ---- MNIST / Fashion-MNIST (IDX files, gzip or not) ---- */
typedef struct {
    bool flatten;            /* inputs as [784] instead of [1, 28, 28] */
    double mean, std;        /* after scaling to [0, 1]: (x - mean) / std (std 0 = off) */
    wk_augment_opts augment;
} wk_mnist_opts;

/* The train (60000) or test (10000) part from dir/{train,t10k}-{images-idx3,labels-idx1}-
 * ubyte[.gz]. Errors name the file; a missing folder hints at the Debian package. */
wk_dataset *wk_mnist_new(const char *dir, bool train, const wk_mnist_opts *opts_or_NULL);

/* ---- in-memory tensors ---- */
/* Samples are the rows (dim 0) of each tensor; all must have the same number of rows.
 * The tensors are copied (contiguous); names are copied. */
wk_dataset *wk_tensor_dataset_new(const char *const *names, wk_tensor *const *tensors, int n);

/* ---- synthetic ---- */
/* MMEngine's runner tutorial set: label in {0, 1} (alternating), radius 3*(label+1) plus
 * N(0, 1) noise, uniform angle; "inputs" [2] float32, "labels" int64. */
wk_dataset *wk_two_circles_new(int64_t size, uint64_t seed);
/* y = x . w + b + noise*N(0,1) with w ~ N(0,1), b = 0.5: "inputs" [features], "targets" [1]. */
wk_dataset *wk_regression_new(int64_t size, int features, double noise, uint64_t seed);

/* ---- byte-level text (language models) ---- */
/* Windows of block_size+1 bytes of a file (or of every regular file of a folder, sorted,
 * concatenated): sample i is the window at a position drawn from (seed, epoch, i), split
 * into "inputs" [block_size] and "targets" [block_size] (int64, shifted by one).
 * `size` samples per pass (0: file length / block_size). */
wk_dataset *wk_byte_text_new(const char *path, int64_t block_size, int64_t size,
                             uint64_t seed);

/* ---- subsets ---- */
/* The samples at `indices` of ds (borrowed: free the subset first). */
wk_dataset *wk_subset_new(wk_dataset *ds, const int64_t *indices, int64_t n);
/* Split ds after a shuffle seeded by seed: the last `holdout` samples of the shuffled
 * order go to *second, the rest to *first (both subsets of ds). 0 or -1. */
int wk_dataset_split(wk_dataset *ds, int64_t holdout, uint64_t seed, wk_dataset **first,
                     wk_dataset **second);

#ifdef __cplusplus
}
#endif
#endif
