/* The communicator: every collective on 1 (in process, and MPI as a singleton), 2 and 3
 * ranks against values computed here; argument errors; the world-1 path. */
#include "../test_util.h"
#include "comm_values.h"
#include "spawn.h"

TestSuite(comm, .init = tu_setup, .fini = tu_teardown);

static wk_tensor *get(const wk_safetensors *st, const char *name)
{
    wk_tensor *t = wk_safetensors_get(st, name);
    cr_assert_not_null(t, "%s missing: %s", name, wk_last_error());
    return t;
}

static void check_rank(const char *dir, int r, int w, int backend)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/rank%d.safetensors", dir, r);
    wk_safetensors st;
    cr_assert_eq(wk_safetensors_load(path, &st), 0, "rank %d wrote no results: %s", r,
                 wk_last_error());
    const int64_t *info = wk_data(get(&st, "info"));
    cr_assert_eq(info[0], r);
    cr_assert_eq(info[1], w);
    cr_assert_eq(info[2], r, "local rank %lld (one node)", (long long)info[2]);
    cr_assert_eq(info[3], w);
    cr_assert_eq(info[4], backend, "backend %lld", (long long)info[4]);

    const wk_dtype dts[] = {WK_DTYPE_F32, WK_DTYPE_F64, WK_DTYPE_I32, WK_DTYPE_I64};
    for (int d = 0; d < 4; d++) {
        for (int op = 0; op < WK_COMM_OP_COUNT; op++) {
            char name[64];
            snprintf(name, sizeof name, "allreduce.%s.%s", wk_comm_op_name((wk_comm_op)op),
                     wk_dtype_name(dts[d]));
            wk_tensor *t = get(&st, name);
            cr_assert_eq(t->dtype, dts[d]);
            for (int64_t i = 0; i < CV_N; i++) {
                if (dts[d] == WK_DTYPE_I64) {
                    int64_t got = ((int64_t *)wk_data(t))[i], e = cv_expect_int(w, op, i);
                    cr_assert_eq(got, e, "rank %d %s[%lld] = %lld, expected %lld", r, name,
                                 (long long)i, (long long)got, (long long)e);
                } else {
                    bool integer = dts[d] == WK_DTYPE_I32;
                    double e = cv_expect_float(w, op, i, integer);
                    double got = tu_at(t, i);
                    double tol = dts[d] == WK_DTYPE_F32 ? 1e-6 * fabs(e) : 1e-12 * fabs(e);
                    cr_assert(fabs(got - e) <= tol, "rank %d %s[%lld] = %.9g, expected %.9g", r,
                              name, (long long)i, got, e);
                }
            }
        }
    }
    wk_tensor *ia = get(&st, "iallreduce.sum.float32"), *ib = get(&st, "iallreduce.max.int64");
    for (int64_t i = 0; i < CV_N; i++) {
        cr_assert_eq(tu_at(ia, i), cv_expect_float(w, WK_COMM_SUM, i, false));
        cr_assert_eq(((int64_t *)wk_data(ib))[i], cv_expect_int(w, WK_COMM_MAX, i));
    }

    wk_tensor *bc = get(&st, "broadcast.float64");
    for (int64_t i = 0; i < CV_N; i++) cr_assert_eq(tu_at(bc, i), cv_float(w - 1, i));
    char text[32];
    snprintf(text, sizeof text, "from rank %d", w - 1);
    cr_assert_str_eq(wk_safetensors_meta(&st, "broadcast_text"), text);

    wk_tensor *g = get(&st, "allgather.float32"), *gi = get(&st, "allgather.int64");
    expect_shape(g, w * CV_GATHER);
    for (int q = 0; q < w; q++)
        for (int i = 0; i < CV_GATHER; i++) {
            cr_assert_eq(tu_at(g, q * CV_GATHER + i), q * 10 + i);
            cr_assert_eq(((int64_t *)wk_data(gi))[q * CV_GATHER + i], cv_int(q, i));
        }

    wk_tensor *m = get(&st, "tensor.allreduce");
    for (int i = 0; i < 12; i++) cr_assert_eq(tu_at(m, i), (double)(i + 1) * w * (w + 1) / 2);
    wk_tensor *tg = get(&st, "tensor.allgather");
    expect_shape(tg, w, 2, 3);
    for (int i = 0; i < w * 6; i++) cr_assert_eq(tu_at(tg, i), i / 6);

    cr_assert_eq(tu_at(get(&st, "barrier.saw_file"), 0), 1, "rank %d passed the barrier "
                 "before rank 0 reached it", r);

    wk_tensor *ag = get(&st, "agree");
    cr_assert_eq(tu_at(ag, 0), 1);
    cr_assert_eq(tu_at(ag, 1), -1);
    cr_assert_eq(tu_at(ag, 2), 0);
    cr_assert_eq(tu_at(ag, 3), w - 1);
    cr_assert_eq(tu_at(ag, 4), 10, "agree_any: %g", tu_at(ag, 4));
    char msg[128];
    snprintf(msg, sizeof msg, "rank %d failed: boom on rank %d", w - 1, w - 1);
    cr_assert(strstr(wk_safetensors_meta(&st, "agree_message"), msg), "message \"%s\"",
              wk_safetensors_meta(&st, "agree_message"));

    wk_tensor *ms = get(&st, "metric_state");
    cr_assert_eq(tu_at(ms, 0), w);
    cr_assert_eq(tu_at(ms, 1), w * (w - 1) / 2.0);
    cr_assert_eq(tu_at(ms, 2), 0.25 * w * (w - 1) / 2.0);

    const int64_t *seeds = wk_data(get(&st, "seeds"));
    for (int s = 0; s < WK_SEED_COUNT; s++) {
        uint64_t e = wk_dist_seed(42, (wk_seed_stream)s, r);
        cr_assert_eq((uint64_t)seeds[s], e);
        if (!wk_seed_stream_per_rank((wk_seed_stream)s))
            cr_assert_eq(e, wk_dist_seed(42, (wk_seed_stream)s, 0));
    }

    const int64_t *sync = wk_data(get(&st, "module.in_sync"));
    cr_assert_eq(sync[0], w > 1 ? 0 : 1, "before the broadcast: %lld", (long long)sync[0]);
    cr_assert_eq(sync[1], 1);
    cr_assert_eq(sync[2], w > 1 ? 0 : 1);
    cr_assert_eq(sync[3], 1);
    wk_tensor *rm = get(&st, "module.running_mean");
    for (int i = 0; i < 4; i++) cr_assert_eq(tu_at(rm, i), (w - 1) / 2.0);
    /* the weights are rank 0's initialisation (seed 100) */
    wk_generator gen = wk_generator_make(100);
    wk_module *lin = wk_linear_new(3, 4, true, &gen);
    wk_tensor *wr = get(&st, "module.weight");
    cr_assert_eq(memcmp(wk_data(wr), wk_data(wk_module_param(lin, "weight")), 12 * 4), 0);
    wk_module_free(lin);

    if (w > 1) {
        cr_assert_eq(tu_at(get(&st, "module.mismatch_rc"), 0), -1);
        const char *mm = wk_safetensors_meta(&st, "mismatch_message");
        snprintf(msg, sizeof msg, "rank %d failed: ddp_broadcast_module: tensor weight differs",
                 w - 1);
        cr_assert(strstr(mm, msg), "message \"%s\"", mm);
    }
    wk_safetensors_free(&st);
}

static void run_ranks(int w)
{
    if (!sp_have_mpirun()) cr_skip_test("no MPI (built without it, or no mpirun in PATH)");
    char *dir = sp_tempdir();
    cr_assert_not_null(dir);
    sp_result res = sp_mpirun(w, "worker_comm", (const char *[]){dir, NULL}, 120);
    cr_assert(res.started && !res.timed_out && res.exited && res.code == 0,
              "mpirun -np %d worker_comm failed (see the output above)", w);
    sp_free(&res);
    for (int r = 0; r < w; r++) check_rank(dir, r, w, WK_COMM_BACKEND_MPI);
    sp_rmdir(dir);
}

Test(comm, two_ranks) { run_ranks(2); }
Test(comm, three_ranks) { run_ranks(3); }

Test(comm, mpi_singleton_without_mpirun)
{
    if (!wk_dist_have_mpi()) cr_skip_test("built without MPI");
    char *dir = sp_tempdir();
    static char force[] = "WK_DIST=mpi";
    sp_result res = sp_plain("worker_comm", (const char *[]){dir, NULL}, (char *[]){force, NULL},
                             120);
    cr_assert(res.started && !res.timed_out && res.exited && res.code == 0,
              "worker_comm with WK_DIST=mpi failed (see the output above)");
    sp_free(&res);
    check_rank(dir, 0, 1, WK_COMM_BACKEND_MPI);
    sp_rmdir(dir);
}

Test(comm, local_world_as_a_separate_program)
{
    char *dir = sp_tempdir();
    sp_result res = sp_plain("worker_comm", (const char *[]){dir, NULL}, NULL, 60);
    cr_assert(res.started && !res.timed_out && res.exited && res.code == 0,
              "worker_comm alone failed (see the output above)");
    sp_free(&res);
    check_rank(dir, 0, 1, WK_COMM_BACKEND_LOCAL);
    sp_rmdir(dir);
}

/* In this process: no launcher, so the local world of one rank. */
Test(comm, world_of_one_in_process)
{
    cr_assert_not(wk_dist_launched());
    wk_comm *c = wk_dist_world();
    cr_assert_not_null(c, "%s", wk_last_error());
    cr_assert_eq(wk_dist_world(), c, "the world is made once");
    cr_assert_eq(wk_comm_get_backend(c), WK_COMM_BACKEND_LOCAL);
    cr_assert_str_eq(wk_comm_backend_name(wk_comm_get_backend(c)), "local");
    cr_assert_eq(wk_comm_rank(c), 0);
    cr_assert_eq(wk_comm_size(c), 1);
    cr_assert_eq(wk_comm_local_rank(c), 0);
    cr_assert_eq(wk_comm_local_size(c), 1);

    double v[3] = {1.5, -2, 3};
    for (int op = 0; op < WK_COMM_OP_COUNT; op++) {
        cr_assert_eq(wk_comm_allreduce(c, v, 3, WK_DTYPE_F64, (wk_comm_op)op), 0);
        cr_assert(v[0] == 1.5 && v[1] == -2 && v[2] == 3, "%s changed a world-1 buffer",
                  wk_comm_op_name((wk_comm_op)op));
    }
    int64_t iv[2] = {7, -7};
    cr_assert_eq(wk_comm_allreduce(c, iv, 2, WK_DTYPE_I64, WK_COMM_AVG), 0);
    cr_assert(iv[0] == 7 && iv[1] == -7);
    cr_assert_eq(wk_comm_broadcast(c, v, 3, WK_DTYPE_F64, 0), 0);
    float s[2] = {1, 2}, rcv[2] = {0};
    cr_assert_eq(wk_comm_allgather(c, s, rcv, 2, WK_DTYPE_F32), 0);
    cr_assert(rcv[0] == 1 && rcv[1] == 2);
    cr_assert_eq(wk_comm_barrier(c), 0);
    wk_comm_request *req = NULL;
    cr_assert_eq(wk_comm_allreduce_start(c, v, 3, WK_DTYPE_F64, WK_COMM_SUM, &req), 0);
    cr_assert_eq(wk_comm_wait(req), 0);

    wk_tensor *t = tu_f32(WK_SHAPE(2, 2), 1, 2, 3, 4);
    cr_assert_eq(wk_comm_allreduce_tensor(c, wk_transpose(t, 0, 1), WK_COMM_SUM), 0);
    expect_values(t, 0, 1, 2, 3, 4);
    wk_tensor *gt = wk_comm_allgather_tensor(c, t);
    expect_shape(gt, 1, 2, 2);
    expect_values(gt, 0, 1, 2, 3, 4);

    cr_assert_eq(wk_dist_agree_ok(c, true, NULL), 1);
    wk_set_error("disk full");
    int failed = -2;
    cr_assert_eq(wk_dist_agree_ok(c, false, &failed), 0);
    cr_assert_eq(failed, 0);
    cr_assert_str_eq(wk_last_error(), "rank 0 failed: disk full");
    cr_assert_eq(wk_dist_agree_any(c, true), 1);
    cr_assert_eq(wk_dist_agree_any(c, false), 0);
    double st[2] = {3, 4};
    cr_assert_eq(wk_dist_metric_reduce(st, 2, c), 0);
    cr_assert(st[0] == 3 && st[1] == 4);

    /* argument errors, each named */
    cr_assert_eq(wk_comm_allreduce(c, s, 2, WK_DTYPE_U8, WK_COMM_SUM), -1);
    cr_assert(strstr(wk_last_error(), "cannot reduce uint8"), "%s", wk_last_error());
    cr_assert_eq(wk_comm_allreduce(c, s, -1, WK_DTYPE_F32, WK_COMM_SUM), -1);
    cr_assert(strstr(wk_last_error(), "negative"), "%s", wk_last_error());
    cr_assert_eq(wk_comm_allreduce(c, NULL, 2, WK_DTYPE_F32, WK_COMM_SUM), -1);
    cr_assert(strstr(wk_last_error(), "NULL"), "%s", wk_last_error());
    cr_assert_eq(wk_comm_allreduce(c, s, 2, WK_DTYPE_F32, (wk_comm_op)9), -1);
    cr_assert(strstr(wk_last_error(), "invalid reduction"), "%s", wk_last_error());
    cr_assert_eq(wk_comm_broadcast(c, s, 2, WK_DTYPE_F32, 1), -1);
    cr_assert(strstr(wk_last_error(), "root 1 is out of range for 1 ranks"), "%s",
              wk_last_error());
    cr_assert_eq(wk_comm_allreduce(NULL, s, 2, WK_DTYPE_F32, WK_COMM_SUM), -1);
    cr_assert_eq(wk_comm_allreduce_start(c, s, 2, WK_DTYPE_F32, WK_COMM_SUM, NULL), -1);
    cr_assert_eq(wk_comm_allreduce_tensor(c, NULL, WK_COMM_SUM), -1);
    cr_assert_eq(wk_comm_wait(NULL), 0);
    wk_comm_free(c); /* the world is the library's: a no-op */
    cr_assert_eq(wk_comm_size(c), 1);

    if (!wk_dist_have_nccl()) {
        cr_assert_null(wk_comm_nccl_new(c, -1));
        cr_assert(strstr(wk_last_error(), "without NCCL"), "%s", wk_last_error());
    }
    cr_assert_eq(wk_dist_finalize(), 0);
    cr_assert_null(wk_dist_world(), "a finalised world comes back");
    cr_assert(strstr(wk_last_error(), "finalised"), "%s", wk_last_error());
}

Test(comm, seeds)
{
    for (int s = 0; s < WK_SEED_COUNT; s++) {
        wk_generator g = wk_generator_split(&(wk_generator){42, 0}, (uint64_t)s);
        if (wk_seed_stream_per_rank((wk_seed_stream)s)) {
            cr_assert_eq(wk_dist_seed(42, (wk_seed_stream)s, 3),
                         wk_generator_split(&g, 3).seed, "the documented formula");
            cr_assert_neq(wk_dist_seed(42, (wk_seed_stream)s, 0),
                          wk_dist_seed(42, (wk_seed_stream)s, 1));
        } else {
            cr_assert_eq(wk_dist_seed(42, (wk_seed_stream)s, 5), g.seed);
        }
        for (int t = 0; t < s; t++)
            cr_assert_neq(wk_dist_seed(42, (wk_seed_stream)s, 0),
                          wk_dist_seed(42, (wk_seed_stream)t, 0), "streams %d and %d", s, t);
    }
    cr_assert(wk_seed_stream_per_rank(WK_SEED_DROPOUT));
    cr_assert(wk_seed_stream_per_rank(WK_SEED_AUGMENT));
    cr_assert_not(wk_seed_stream_per_rank(WK_SEED_SHUFFLE));
    cr_assert_not(wk_seed_stream_per_rank(WK_SEED_INIT));
    cr_assert_neq(wk_dist_seed(1, WK_SEED_SHUFFLE, 0), wk_dist_seed(2, WK_SEED_SHUFFLE, 0));
}
