/* Data parallel: W ranks with batch B/W end where one process with batch B ends (an MLP,
 * and a model with BatchNorm using its running statistics), bucketing does not change the
 * result, metric states reduce to the single-process values; the bucket layout and the
 * errors of wk_ddp in a world of one. */
#include "../test_util.h"
#include "spawn.h"

TestSuite(ddp, .init = tu_setup, .fini = tu_teardown);

#define STEPS "20"

static char *train(const char *dir, const char *model, int world, const char *batch,
                   const char *bucket)
{
    static int runs;
    char *out = malloc(4096);
    snprintf(out, 4096, "%s/%s-w%d-%d", dir, model, world, runs++);
    const char *args[] = {model, out, batch, STEPS, bucket, NULL};
    sp_result r = world == 0 ? sp_plain("worker_train", args, NULL, 120)
                             : sp_mpirun(world, "worker_train", args, 180);
    cr_assert(r.started && !r.timed_out && r.exited && r.code == 0,
              "worker_train %s on %d ranks failed (see the output above)", model, world);
    sp_free(&r);
    return out;
}

static void load(const char *out, int rank, wk_safetensors *st)
{
    char path[4200];
    snprintf(path, sizeof path, "%s.rank%d.safetensors", out, rank);
    cr_assert_eq(wk_safetensors_load(path, st), 0, "%s", wk_last_error());
}

/* Every tensor of a within rtol of b's (relative to b's largest magnitude, so that
 * elements near zero are judged on the tensor's scale); bitwise when rtol is 0. */
static void compare(const wk_safetensors *a, const wk_safetensors *b, double rtol,
                    const char *what)
{
    cr_assert_eq(a->count, b->count);
    double worst = 0;
    for (int i = 0; i < a->count; i++) {
        wk_tensor *x = a->items[i].tensor, *y = wk_safetensors_get(b, a->items[i].name);
        cr_assert_not_null(y, "%s: %s missing", what, a->items[i].name);
        cr_assert_eq(wk_numel(x), wk_numel(y));
        if (rtol == 0) {
            cr_assert_eq(memcmp(wk_data(x), wk_data(y),
                                (size_t)wk_numel(x) * wk_dtype_size(x->dtype)), 0,
                         "%s: %s differs", what, a->items[i].name);
            continue;
        }
        double scale = 0;
        for (int64_t k = 0; k < wk_numel(y); k++) scale = fmax(scale, fabs(tu_at(y, k)));
        for (int64_t k = 0; k < wk_numel(x); k++) {
            double d = fabs(tu_at(x, k) - tu_at(y, k));
            worst = fmax(worst, d / fmax(scale, 1e-30));
            cr_assert(d <= rtol * scale, "%s: %s[%lld] = %.9g, expected %.9g", what,
                      a->items[i].name, (long long)k, tu_at(x, k), tu_at(y, k));
        }
    }
    if (rtol) fprintf(stderr, "%s: largest relative difference %.3g\n", what, worst);
}

static double meta_num(const wk_safetensors *st, const char *key)
{
    const char *v = wk_safetensors_meta(st, key);
    cr_assert_not_null(v, "metadata %s missing", key);
    return strtod(v, NULL);
}

static void equivalence(const char *model, int world, const char *batch)
{
    if (!sp_have_mpirun()) cr_skip_test("no MPI (built without it, or no mpirun in PATH)");
    char *dir = sp_tempdir();
    char *one = train(dir, model, 0, batch, "0");
    char *many = train(dir, model, world, batch, "0");
    wk_safetensors ref, st0;
    load(one, 0, &ref);
    load(many, 0, &st0);
    char what[64];
    snprintf(what, sizeof what, "%s: %d ranks vs 1", model, world);
    compare(&st0, &ref, 1e-5, what);
    /* the ranks agree bitwise and saw the same reduced metrics */
    for (int r = 1; r < world; r++) {
        wk_safetensors st;
        load(many, r, &st);
        compare(&st, &st0, 0, "rank vs rank 0");
        cr_assert_eq(meta_num(&st, "val/accuracy"), meta_num(&st0, "val/accuracy"));
        cr_assert_eq(meta_num(&st, "val/loss"), meta_num(&st0, "val/loss"));
        cr_assert_eq(meta_num(&st, "in_sync"), 1);
        wk_safetensors_free(&st);
    }
    cr_assert_eq(meta_num(&st0, "val/accuracy"), meta_num(&ref, "val/accuracy"),
                 "accuracy counts summed across ranks");
    double l0 = meta_num(&st0, "val/loss"), lr = meta_num(&ref, "val/loss");
    cr_assert(fabs(l0 - lr) <= 1e-5 * fabs(lr), "val/loss %.9g vs %.9g", l0, lr);
    wk_safetensors_free(&ref);
    wk_safetensors_free(&st0);
    free(one);
    free(many);
    sp_rmdir(dir);
}

Test(ddp, mlp_two_ranks_match_one) { equivalence("mlp", 2, "32"); }
Test(ddp, batchnorm_eval_two_ranks_match_one) { equivalence("bn", 2, "32"); }
Test(ddp, mlp_three_ranks_match_one) { equivalence("mlp", 3, "48"); }

Test(ddp, small_buckets_give_the_same_parameters)
{
    if (!sp_have_mpirun()) cr_skip_test("no MPI (built without it, or no mpirun in PATH)");
    char *dir = sp_tempdir();
    char *big = train(dir, "bn", 2, "32", "0");
    char *small = train(dir, "bn", 2, "32", "200");
    wk_safetensors a, b;
    load(big, 0, &a);
    load(small, 0, &b);
    cr_assert_eq(meta_num(&a, "buckets"), 1);
    cr_assert_gt(meta_num(&b, "buckets"), 4, "200-byte buckets: %g", meta_num(&b, "buckets"));
    compare(&b, &a, 0, "200-byte buckets vs one bucket");
    wk_safetensors_free(&a);
    wk_safetensors_free(&b);
    free(big);
    free(small);
    sp_rmdir(dir);
}

/* ---- in this process: a world of one ---- */

Test(ddp, buckets_reverse_order_by_dtype_and_size)
{
    wk_comm *c = wk_dist_world();
    wk_tensor *p[5] = {
        wk_requires_grad_(wk_keep(wk_zeros(WK_SHAPE(10), WK_DTYPE_F32)), true),   /* 40 B */
        wk_requires_grad_(wk_keep(wk_zeros(WK_SHAPE(10), WK_DTYPE_F64)), true),   /* 80 B */
        wk_requires_grad_(wk_keep(wk_zeros(WK_SHAPE(20), WK_DTYPE_F32)), true),   /* 80 B */
        wk_requires_grad_(wk_keep(wk_zeros(WK_SHAPE(50), WK_DTYPE_F32)), true),   /* 200 B */
        wk_requires_grad_(wk_keep(wk_zeros(WK_SHAPE(5), WK_DTYPE_F32)), true),    /* 20 B */
    };
    wk_ddp *d = wk_ddp_new(c, p, NULL, 5, &(wk_ddp_opts){.bucket_bytes = 120});
    cr_assert_not_null(d, "%s", wk_last_error());
    /* f32 in reverse: [4, 3] would be 220 B > 120, so [4], [3], [2, 0]; f64: [1] */
    cr_assert_eq(wk_ddp_num_buckets(d), 4);
    int n;
    const int *b0 = wk_ddp_bucket_params(d, 0, &n);
    cr_assert(n == 1 && b0[0] == 4);
    const int *b1 = wk_ddp_bucket_params(d, 1, &n);
    cr_assert(n == 1 && b1[0] == 3);
    const int *b2 = wk_ddp_bucket_params(d, 2, &n);
    cr_assert(n == 2 && b2[0] == 2 && b2[1] == 0, "bucket 2: %d params", n);
    const int *b3 = wk_ddp_bucket_params(d, 3, &n);
    cr_assert(n == 1 && b3[0] == 1);
    cr_assert_null(wk_ddp_bucket_params(d, 4, &n));
    wk_ddp_stats st = wk_ddp_get_stats(d);
    cr_assert_eq(st.nbuckets, 4);
    cr_assert_eq(st.bytes, 40 + 80 + 80 + 200 + 20);
    wk_ddp_free(d);

    d = wk_ddp_new(c, p, NULL, 5, NULL);
    cr_assert_eq(wk_ddp_num_buckets(d), 2, "25 MiB default: one bucket per dtype");
    wk_ddp_free(d);
    for (int i = 0; i < 5; i++) wk_tensor_free(p[i]);
}

Test(ddp, world_of_one_keeps_grads_and_fills_missing_ones)
{
    wk_comm *c = wk_dist_world();
    wk_generator g = wk_generator_make(1);
    wk_module *lin = wk_linear_new(3, 2, true, &g);
    wk_ddp *d = wk_ddp_new_module(c, lin, NULL);
    cr_assert_not_null(d, "%s", wk_last_error());
    wk_tensor *w = wk_module_param(lin, "weight"), *b = wk_module_param(lin, "bias");
    wk_frame_begin();
    wk_tensor *x = tu_f32(WK_SHAPE(1, 3), 1, 2, 3);
    /* only the weight gets a grad */
    cr_assert_eq(wk_backward(wk_sum(wk_matmul(x, wk_transpose(w, 0, 1)), WK_ALL_DIMS, false)),
                 0);
    wk_frame_end();
    cr_assert_null(b->grad);
    cr_assert_eq(wk_ddp_allreduce_grads(d, true), 1, "%s", wk_last_error());
    expect_values(w->grad, 0, 1, 2, 3, 1, 2, 3);
    cr_assert_not_null(b->grad, "a missing grad becomes zeros");
    expect_values(b->grad, 0, 0, 0);
    cr_assert_eq(b->grad->frame, 0, "persistent");
    cr_assert_eq(wk_ddp_get_stats(d).calls, 1);

    wk_set_error("nan in the loss");
    cr_assert_eq(wk_ddp_allreduce_grads(d, false), 0);
    cr_assert_str_eq(wk_last_error(), "rank 0 failed: nan in the loss");

    /* a grad of the wrong shape is this rank's failure, agreed like any other */
    wk_tensor *saved = w->grad;
    w->grad = wk_keep(wk_zeros(WK_SHAPE(3), WK_DTYPE_F32));
    cr_assert_eq(wk_ddp_allreduce_grads(d, true), 0);
    cr_assert(strstr(wk_last_error(), "rank 0 failed: ddp_allreduce_grads: the grad of weight "
                                      "is float32 [3], its parameter float32 [2, 3]"),
              "%s", wk_last_error());
    wk_tensor_free(w->grad);
    w->grad = saved;
    wk_ddp_free(d);

    cr_assert_eq(wk_ddp_broadcast_module(c, lin, 0), 0);
    cr_assert_eq(wk_ddp_average_buffers(c, lin), 0);
    cr_assert_eq(wk_ddp_module_in_sync(c, lin), 1);
    cr_assert_eq(wk_ddp_broadcast_module(c, lin, 1), -1);
    cr_assert(strstr(wk_last_error(), "root 1 is out of range"), "%s", wk_last_error());
    wk_module_free(lin);
}

Test(ddp, errors)
{
    wk_comm *c = wk_dist_world();
    wk_tensor *f = wk_requires_grad_(wk_keep(wk_zeros(WK_SHAPE(2), WK_DTYPE_F32)), true);
    wk_tensor *i = wk_keep(wk_zeros(WK_SHAPE(2), WK_DTYPE_I64));
    expect_error(wk_ddp_new(NULL, &f, NULL, 1, NULL), "communicator is NULL");
    expect_error(wk_ddp_new(c, &f, NULL, 0, NULL), "no parameters");
    expect_error(wk_ddp_new(c, (wk_tensor *[]){f, f}, NULL, 2, NULL), "given twice");
    expect_error(wk_ddp_new(c, (wk_tensor *[]){f, i}, (const char *[]){"a", "steps"}, 2, NULL),
                 "rank 0 failed: ddp_new: steps is int64 (expected float32 or float64)");
    expect_error(wk_ddp_new(c, (wk_tensor *[]){f, NULL}, NULL, 2, NULL), "parameter 1 is NULL");
    expect_error(wk_ddp_new(c, &f, NULL, 1, &(wk_ddp_opts){.bucket_bytes = -5}), "negative");
    expect_error(wk_ddp_new_module(c, NULL, NULL), "module is NULL");
    cr_assert_eq(wk_ddp_allreduce_grads(NULL, true), -1);
    cr_assert_eq(wk_ddp_broadcast_module(c, NULL, 0), -1);
    cr_assert(strstr(wk_last_error(), "module is NULL"), "%s", wk_last_error());
    cr_assert_eq(wk_ddp_num_buckets(NULL), 0);
    wk_ddp_free(NULL);
    wk_tensor_free(f);
    wk_tensor_free(i);
}
