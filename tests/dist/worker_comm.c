/* Runs every collective of the communicator on its rank and writes what it got to
 * <outdir>/rank<r>.safetensors; tests/dist/test_comm.c checks the files.
 *   mpirun -np 3 worker_comm <outdir> */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "comm_values.h"
#include "wick.h"

#define MAX_ITEMS 64

static wk_named_tensor items[MAX_ITEMS];
static int nitems;
static const char *meta_keys[8], *meta_values[8];
static char meta_store[8][600];
static int nmeta;

static void die(const char *what)
{
    fprintf(stderr, "worker_comm: %s: %s\n", what, wk_last_error());
    exit(1);
}

static void put(const char *name, wk_tensor *t)
{
    if (!t) die(name);
    items[nitems].name = strdup(name);
    items[nitems].tensor = t;
    nitems++;
}

static void meta(const char *key, const char *value)
{
    snprintf(meta_store[nmeta], sizeof meta_store[nmeta], "%s", value);
    meta_keys[nmeta] = key;
    meta_values[nmeta] = meta_store[nmeta];
    nmeta++;
}

static wk_tensor *values(int r, wk_dtype dt)
{
    wk_tensor *t = wk_empty(WK_SHAPE(CV_N), dt);
    for (int64_t i = 0; i < CV_N; i++) {
        if (dt == WK_DTYPE_F32) ((float *)wk_data(t))[i] = (float)cv_float(r, i);
        if (dt == WK_DTYPE_F64) ((double *)wk_data(t))[i] = cv_float(r, i);
        if (dt == WK_DTYPE_I32) ((int32_t *)wk_data(t))[i] = (int32_t)(cv_int(r, i) % 100000);
        if (dt == WK_DTYPE_I64) ((int64_t *)wk_data(t))[i] = cv_int(r, i);
    }
    return t;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: worker_comm <outdir>\n");
        return 2;
    }
    const char *out = argv[1];
    wk_comm *c = wk_dist_world();
    if (!c) die("dist_world");
    int r = wk_comm_rank(c), w = wk_comm_size(c);

    int64_t info[5] = {r, w, wk_comm_local_rank(c), wk_comm_local_size(c),
                       (int64_t)wk_comm_get_backend(c)};
    put("info", wk_from_array(info, WK_SHAPE(5), WK_DTYPE_I64));

    /* all-reduce: every op on every reducible dtype */
    const wk_dtype dts[] = {WK_DTYPE_F32, WK_DTYPE_F64, WK_DTYPE_I32, WK_DTYPE_I64};
    for (int d = 0; d < 4; d++) {
        for (int op = 0; op < WK_COMM_OP_COUNT; op++) {
            wk_tensor *t = values(r, dts[d]);
            if (wk_comm_allreduce(c, wk_data(t), CV_N, dts[d], (wk_comm_op)op) < 0)
                die("allreduce");
            char name[64];
            snprintf(name, sizeof name, "allreduce.%s.%s", wk_comm_op_name((wk_comm_op)op),
                     wk_dtype_name(dts[d]));
            put(name, t);
        }
    }

    /* non-blocking: two requests in flight, waited in order */
    wk_tensor *a = values(r, WK_DTYPE_F32), *b = values(r, WK_DTYPE_I64);
    wk_comm_request *ra, *rb;
    if (wk_comm_allreduce_start(c, wk_data(a), CV_N, WK_DTYPE_F32, WK_COMM_SUM, &ra) < 0 ||
        wk_comm_allreduce_start(c, wk_data(b), CV_N, WK_DTYPE_I64, WK_COMM_MAX, &rb) < 0 ||
        wk_comm_wait(ra) < 0 || wk_comm_wait(rb) < 0)
        die("allreduce_start");
    put("iallreduce.sum.float32", a);
    put("iallreduce.max.int64", b);

    /* broadcast from the last rank, numbers and bytes */
    wk_tensor *bc = values(r, WK_DTYPE_F64);
    if (wk_comm_broadcast(c, wk_data(bc), CV_N, WK_DTYPE_F64, w - 1) < 0) die("broadcast");
    put("broadcast.float64", bc);
    char text[32];
    snprintf(text, sizeof text, "from rank %d", r);
    if (wk_comm_broadcast(c, text, sizeof text, WK_DTYPE_U8, w - 1) < 0) die("broadcast u8");
    meta("broadcast_text", text);

    /* allgather: separate buffers, and in place */
    float send[CV_GATHER];
    for (int i = 0; i < CV_GATHER; i++) send[i] = (float)(r * 10 + i);
    wk_tensor *g = wk_empty(WK_SHAPE(w * CV_GATHER), WK_DTYPE_F32);
    if (wk_comm_allgather(c, send, wk_data(g), CV_GATHER, WK_DTYPE_F32) < 0) die("allgather");
    put("allgather.float32", g);
    wk_tensor *gi = wk_zeros(WK_SHAPE(w * CV_GATHER), WK_DTYPE_I64);
    int64_t *gp = wk_data(gi);
    for (int i = 0; i < CV_GATHER; i++) gp[r * CV_GATHER + i] = cv_int(r, i);
    if (wk_comm_allgather(c, gp + r * CV_GATHER, gp, CV_GATHER, WK_DTYPE_I64) < 0)
        die("allgather in place");
    put("allgather.int64", gi);

    /* tensors: a non-contiguous view reduced in place, a gathered tensor */
    wk_tensor *m = wk_empty(WK_SHAPE(3, 4), WK_DTYPE_F64);
    for (int i = 0; i < 12; i++) ((double *)wk_data(m))[i] = (r + 1) * (i + 1);
    wk_tensor *mt = wk_transpose(m, 0, 1);
    if (wk_comm_allreduce_tensor(c, mt, WK_COMM_SUM) < 0) die("allreduce_tensor");
    wk_tensor_free(mt);
    put("tensor.allreduce", m);
    wk_tensor *small = wk_full(WK_SHAPE(2, 3), (double)r, WK_DTYPE_F32);
    put("tensor.allgather", wk_comm_allgather_tensor(c, small));
    wk_tensor_free(small);

    /* barrier: rank 0 writes a file late; after the barrier every rank must see it */
    char flag[4096];
    snprintf(flag, sizeof flag, "%s/before_barrier", out);
    if (r == 0) {
        usleep(300000);
        FILE *f = fopen(flag, "w");
        if (f) fclose(f);
    }
    if (wk_comm_barrier(c) < 0) die("barrier");
    int64_t seen = access(flag, F_OK) == 0;
    put("barrier.saw_file", wk_from_array(&seen, WK_SHAPE(1), WK_DTYPE_I64));

    /* agreement */
    int failed = -2;
    int64_t agree[5];
    agree[0] = wk_dist_agree_ok(c, true, &failed);
    agree[1] = failed;
    wk_set_error("boom on rank %d", r);
    agree[2] = wk_dist_agree_ok(c, r != w - 1, &failed);
    agree[3] = failed;
    meta("agree_message", wk_last_error());
    agree[4] = wk_dist_agree_any(c, r == w - 1) * 10 + wk_dist_agree_any(c, false);
    put("agree", wk_from_array(agree, WK_SHAPE(5), WK_DTYPE_I64));

    /* metric states, seeds */
    double st[3] = {1.0, (double)r, 0.25 * r};
    if (wk_dist_metric_reduce(st, 3, c) < 0) die("metric_reduce");
    put("metric_state", wk_from_array(st, WK_SHAPE(3), WK_DTYPE_F64));
    int64_t seeds[WK_SEED_COUNT];
    for (int s = 0; s < WK_SEED_COUNT; s++) seeds[s] = (int64_t)wk_dist_seed(42, s, r);
    put("seeds", wk_from_array(seeds, WK_SHAPE(WK_SEED_COUNT), WK_DTYPE_I64));

    /* modules: different per rank until broadcast; buffers averaged */
    wk_generator gen = wk_generator_make(100 + (uint64_t)r);
    wk_module *net = wk_sequential_new();
    wk_module_add_child(net, "0", wk_linear_new(3, 4, true, &gen));
    wk_module_add_child(net, "1", wk_batch_norm1d_new(4, 1e-5, 0.1, true, true));
    int64_t sync[4];
    sync[0] = wk_ddp_module_in_sync(c, net);
    if (wk_ddp_broadcast_module(c, net, 0) < 0) die("broadcast_module");
    sync[1] = wk_ddp_module_in_sync(c, net);
    wk_fill_(wk_module_find(net, "1.running_mean"), (double)r);
    sync[2] = wk_ddp_module_in_sync(c, net);
    if (wk_ddp_average_buffers(c, net) < 0) die("average_buffers");
    sync[3] = wk_ddp_module_in_sync(c, net);
    put("module.in_sync", wk_from_array(sync, WK_SHAPE(4), WK_DTYPE_I64));
    put("module.weight", wk_clone(wk_module_find(net, "0.weight")));
    put("module.running_mean", wk_clone(wk_module_find(net, "1.running_mean")));
    wk_module_free(net);

    /* a module whose structure differs on the last rank: an error everywhere, no hang */
    wk_module *odd = wk_linear_new(3, r == w - 1 && w > 1 ? 5 : 4, true, &gen);
    int64_t odd_rc = wk_ddp_broadcast_module(c, odd, 0);
    meta("mismatch_message", odd_rc < 0 ? wk_last_error() : "");
    put("module.mismatch_rc", wk_from_array(&odd_rc, WK_SHAPE(1), WK_DTYPE_I64));
    wk_module_free(odd);

    char path[4096];
    snprintf(path, sizeof path, "%s/rank%d.safetensors", out, r);
    if (wk_safetensors_save(path, items, nitems, meta_keys, meta_values, nmeta) < 0)
        die("save");
    for (int i = 0; i < nitems; i++) {
        free(items[i].name);
        wk_tensor_free(items[i].tensor);
    }
    if (wk_dist_finalize() < 0) die("finalize");
    return 0;
}
