/* The data loader: order determinism, drop_last and the partial last batch, sharding
 * (disjoint, covering, equal batch counts for world sizes 1..4), O(1) resume in the
 * middle, prefetch on/off equality, seeks while the worker runs, errors, the engine
 * adapter.
 *
 * The prefetch thread is checked under helgrind (on a build without sanitizers):
 *   valgrind --tool=helgrind --trace-children=yes \
 *       build/tests/engine/test_engine_loader --jobs 1 2>&1 | grep "ERROR SUMMARY"
 * Every test runs in its own child process (traced with --trace-children): each of
 * those must report "0 errors". The Criterion runner process itself (the first pid)
 * reports one race inside libcriterion's own threads, which is not wick's.
 */
#include "test_util.h"

TestSuite(loader, .init = tu_setup, .fini = tu_teardown);

/* A dataset without get_batch whose sample i of pass e is ("x" = i, "e" = e,
 * "v" = [i + 0.5, -i]) so that batches show which indices and pass they hold. */
static int64_t probe_length(const wk_dataset *ds) { return *(const int64_t *)ds->self; }
static int probe_get(const wk_dataset *ds, int64_t i, int64_t e, void *const *rows)
{
    if (i < 0 || i >= probe_length(ds)) {
        wk_set_error("Probe: sample %lld out of range", (long long)i);
        return -1;
    }
    if (i == 7 && e == 99) {
        wk_set_error("Probe: sample 7 fails in pass 99");
        return -1;
    }
    *(int64_t *)rows[0] = i;
    *(int64_t *)rows[1] = e;
    float *v = rows[2];
    v[0] = (float)i + 0.5f;
    v[1] = -(float)i;
    return 0;
}
static void probe_destroy(wk_dataset *ds)
{
    free(ds->self);
    free(ds);
}
static wk_dataset *probe_new(int64_t n)
{
    wk_dataset *ds = calloc(1, sizeof *ds);
    int64_t *self = malloc(sizeof *self);
    *self = n;
    ds->type = "Probe";
    ds->self = self;
    ds->length = probe_length;
    ds->get = probe_get;
    ds->destroy = probe_destroy;
    ds->nfields = 3;
    ds->fields[0] = (wk_field){.name = "x", .dtype = WK_DTYPE_I64};
    ds->fields[1] = (wk_field){.name = "e", .dtype = WK_DTYPE_I64};
    ds->fields[2] = (wk_field){.name = "v", .dtype = WK_DTYPE_F32, .ndim = 1, .shape = {2}};
    return ds;
}

/* One batch recorded: its indices (field "x") and the pass (field "e"). */
typedef struct {
    int64_t n, pass;
    int64_t x[64];
} rec;

/* The rest of the current pass into recs (at most max); returns the number of batches. */
static int drain(wk_loader *l, rec *recs, int max)
{
    int nb = 0;
    for (;;) {
        wk_frame_begin();
        wk_batch b;
        int r = wk_loader_next(l, &b);
        cr_assert(r >= 0, "loader_next: %s", wk_last_error());
        if (r == 0) {
            wk_frame_end();
            return nb;
        }
        cr_assert(nb < max);
        wk_tensor *x = wk_batch_get(&b, "x"), *e = wk_batch_get(&b, "e"),
                  *v = wk_batch_get(&b, "v");
        cr_assert_not_null(x);
        cr_assert_eq(x->ndim, 1);
        cr_assert_eq(v->ndim, 2);
        cr_assert_eq(v->shape[1], 2);
        rec *rc = &recs[nb++];
        rc->n = x->shape[0];
        cr_assert(rc->n <= 64);
        const int64_t *px = wk_data(x), *pe = wk_data(e);
        const float *pv = wk_data(v);
        for (int64_t i = 0; i < rc->n; i++) {
            rc->x[i] = px[i];
            cr_assert_eq(pe[i], pe[0]);
            cr_assert(pv[2 * i] == (float)px[i] + 0.5f && pv[2 * i + 1] == -(float)px[i]);
        }
        rc->pass = pe[0];
        wk_frame_end();
    }
}

static bool same_recs(const rec *a, const rec *b, int n)
{
    for (int i = 0; i < n; i++) {
        if (a[i].n != b[i].n || a[i].pass != b[i].pass) return false;
        if (memcmp(a[i].x, b[i].x, (size_t)a[i].n * sizeof a[i].x[0])) return false;
    }
    return true;
}

Test(loader, order_without_shuffle_and_partial_last_batch)
{
    wk_dataset *ds = probe_new(10);
    wk_loader *l = wk_loader_new(ds, &(wk_loader_opts){.batch_size = 4});
    cr_assert_not_null(l, "%s", wk_last_error());
    cr_assert_eq(wk_loader_length(l), 3);
    rec r[8];
    cr_assert_eq(drain(l, r, 8), 3);
    cr_assert_eq(r[0].n, 4);
    cr_assert_eq(r[2].n, 2);
    for (int b = 0; b < 3; b++)
        for (int i = 0; i < r[b].n; i++) cr_assert_eq(r[b].x[i], b * 4 + i);
    cr_assert_eq(drain(l, r, 8), 0, "the pass is over until the next epoch");
    cr_assert_eq(wk_loader_set_epoch(l, 1), 0);
    cr_assert_eq(drain(l, r, 8), 3);
    cr_assert_eq(r[0].pass, 1);
    wk_loader_free(l);
    /* drop_last */
    l = wk_loader_new(ds, &(wk_loader_opts){.batch_size = 4, .drop_last = true, .shuffle = true});
    cr_assert_eq(wk_loader_length(l), 2);
    cr_assert_eq(drain(l, r, 8), 2);
    cr_assert(r[0].n == 4 && r[1].n == 4);
    wk_loader_free(l);
    /* batch larger than the dataset */
    l = wk_loader_new(ds, &(wk_loader_opts){.batch_size = 64});
    cr_assert_eq(drain(l, r, 8), 1);
    cr_assert_eq(r[0].n, 10);
    wk_loader_free(l);
    l = wk_loader_new(ds, &(wk_loader_opts){.batch_size = 64, .drop_last = true});
    cr_assert_eq(wk_loader_length(l), 0);
    cr_assert_eq(drain(l, r, 8), 0);
    wk_loader_free(l);
    wk_dataset_free(ds);
}

Test(loader, shuffle_is_deterministic_per_seed_and_epoch)
{
    wk_dataset *ds = probe_new(50);
    wk_loader_opts o = {.batch_size = 8, .shuffle = true, .seed = 42};
    wk_loader *a = wk_loader_new(ds, &o), *b = wk_loader_new(ds, &o);
    o.seed = 43;
    wk_loader *c = wk_loader_new(ds, &o);
    rec ra[8], rb[8], rc[8], ra1[8];
    cr_assert_eq(drain(a, ra, 8), 7);
    cr_assert_eq(drain(b, rb, 8), 7);
    cr_assert_eq(drain(c, rc, 8), 7);
    cr_assert(same_recs(ra, rb, 7), "same seed, other batches");
    cr_assert(!same_recs(ra, rc, 7), "other seed, same batches");
    /* a permutation of 0..49, not the identity */
    int seen[50] = {0}, in_place = 0, pos = 0;
    for (int i = 0; i < 7; i++)
        for (int j = 0; j < ra[i].n; j++, pos++) {
            seen[ra[i].x[j]]++;
            in_place += ra[i].x[j] == pos;
        }
    for (int i = 0; i < 50; i++) cr_assert_eq(seen[i], 1);
    cr_assert(in_place < 10);
    /* the next epoch is another order, the same for both loaders */
    cr_assert_eq(wk_loader_set_epoch(a, 1), 0);
    cr_assert_eq(wk_loader_set_epoch(b, 1), 0);
    cr_assert_eq(drain(a, ra1, 8), 7);
    cr_assert_eq(drain(b, rb, 8), 7);
    cr_assert(same_recs(ra1, rb, 7));
    ra[0].pass = 1; /* compare indices only */
    for (int i = 0; i < 7; i++) ra[i].pass = 1;
    cr_assert(!same_recs(ra, ra1, 7), "epochs 0 and 1 have the same order");
    wk_loader_free(a), wk_loader_free(b), wk_loader_free(c);
    wk_dataset_free(ds);
}

Test(loader, shards_are_disjoint_cover_and_padded)
{
    for (int64_t n = 1; n <= 23; n += 11) {
        wk_dataset *ds = probe_new(n);
        for (int world = 1; world <= 4; world++) {
            for (int shuffle = 0; shuffle < 2; shuffle++) {
                int count[64] = {0};
                int64_t nb0 = -1, total = 0;
                for (int rank = 0; rank < world; rank++) {
                    wk_loader *l = wk_loader_new(
                        ds, &(wk_loader_opts){.batch_size = 3, .shuffle = shuffle, .seed = 9,
                                              .rank = rank, .world_size = world,
                                              .prefetch = rank % 2});
                    cr_assert_not_null(l, "%s", wk_last_error());
                    rec r[16];
                    int nb = drain(l, r, 16);
                    cr_assert_eq(nb, wk_loader_length(l));
                    if (nb0 < 0) nb0 = nb;
                    cr_assert_eq(nb, nb0, "world %d: rank %d has %d batches, rank 0 %lld",
                                 world, rank, nb, (long long)nb0);
                    int64_t mine = 0;
                    for (int b = 0; b < nb; b++)
                        for (int i = 0; i < r[b].n; i++) count[r[b].x[i]]++, mine++;
                    cr_assert_eq(mine, (n + world - 1) / world, "equal shards");
                    total += mine;
                    wk_loader_free(l);
                }
                /* every sample at least once; only the wrap-around padding repeats */
                int64_t pad = total - n;
                cr_assert(pad >= 0 && pad < world);
                int64_t repeats = 0;
                for (int64_t i = 0; i < n; i++) {
                    cr_assert(count[i] >= 1, "n %lld world %d: sample %lld missing",
                              (long long)n, world, (long long)i);
                    repeats += count[i] - 1;
                }
                cr_assert_eq(repeats, pad);
            }
        }
        wk_dataset_free(ds);
    }
    /* with n divisible by world the shards are exactly disjoint */
    wk_dataset *ds = probe_new(24);
    int count[24] = {0};
    for (int rank = 0; rank < 4; rank++) {
        wk_loader *l = wk_loader_new(ds, &(wk_loader_opts){.batch_size = 5, .shuffle = true,
                                                           .seed = 1, .rank = rank,
                                                           .world_size = 4});
        rec r[8];
        int nb = drain(l, r, 8);
        for (int b = 0; b < nb; b++)
            for (int i = 0; i < r[b].n; i++) count[r[b].x[i]]++;
        wk_loader_free(l);
    }
    for (int i = 0; i < 24; i++) cr_assert_eq(count[i], 1);
    wk_dataset_free(ds);
}

/* Resume after k batches (in pass 2) on a fresh loader equals the uninterrupted run,
 * tensors compared bit for bit. */
static void check_resume(int prefetch_a, int prefetch_b)
{
    wk_dataset *ds = wk_two_circles_new(70, 5);
    wk_loader_opts o = {.batch_size = 8, .shuffle = true, .seed = 77, .prefetch = prefetch_a};
    wk_loader *full = wk_loader_new(ds, &o);
    cr_assert_eq(wk_loader_set_epoch(full, 2), 0);
    enum { NB = 9 };
    cr_assert_eq(wk_loader_length(full), NB);
    float xs[NB][8][2];
    int64_t ys[NB][8], ns[NB];
    wk_loader_state mid = {0};
    for (int b = 0; b < NB; b++) {
        if (b == 4) mid = wk_loader_get_state(full);
        wk_frame_begin();
        wk_batch batch;
        cr_assert_eq(wk_loader_next(full, &batch), 1, "%s", wk_last_error());
        wk_tensor *x = wk_batch_get(&batch, "inputs"), *y = wk_batch_get(&batch, "labels");
        ns[b] = y->shape[0];
        memcpy(xs[b], wk_data(x), (size_t)ns[b] * 2 * sizeof(float));
        memcpy(ys[b], wk_data(y), (size_t)ns[b] * sizeof(int64_t));
        wk_frame_end();
    }
    cr_assert_eq(mid.epoch, 2);
    cr_assert_eq(mid.next_batch, 4);
    cr_assert_eq(mid.seed, 77);
    o.prefetch = prefetch_b;
    wk_loader *resumed = wk_loader_new(ds, &o);
    cr_assert_eq(wk_loader_set_state(resumed, &mid), 0, "%s", wk_last_error());
    for (int b = 4; b < NB; b++) {
        wk_frame_begin();
        wk_batch batch;
        cr_assert_eq(wk_loader_next(resumed, &batch), 1);
        wk_tensor *x = wk_batch_get(&batch, "inputs"), *y = wk_batch_get(&batch, "labels");
        cr_assert_eq(y->shape[0], ns[b]);
        cr_assert_eq(memcmp(wk_data(x), xs[b], (size_t)ns[b] * 2 * sizeof(float)), 0,
                     "batch %d differs after resume", b);
        cr_assert_eq(memcmp(wk_data(y), ys[b], (size_t)ns[b] * sizeof(int64_t)), 0);
        wk_frame_end();
    }
    wk_batch batch;
    cr_assert_eq(wk_loader_next(resumed, &batch), 0);
    wk_loader_state end = wk_loader_get_state(resumed);
    cr_assert(end.epoch == 2 && end.next_batch == NB);
    wk_loader_free(full), wk_loader_free(resumed);
    wk_dataset_free(ds);
}

Test(loader, resume_in_the_middle_equals_uninterrupted)
{
    check_resume(0, 0);
    check_resume(2, 0);
    check_resume(0, 3);
}

Test(loader, prefetch_resume)
{
    check_resume(2, 2);
}

Test(loader, prefetch_on_and_off_give_identical_batches)
{
    wk_dataset *ds = probe_new(61);
    for (int pf = 1; pf <= 16; pf *= 4) {
        wk_loader *a = wk_loader_new(ds, &(wk_loader_opts){.batch_size = 4, .shuffle = true,
                                                           .seed = 3});
        wk_loader *b = wk_loader_new(ds, &(wk_loader_opts){.batch_size = 4, .shuffle = true,
                                                           .seed = 3, .prefetch = pf});
        cr_assert_not_null(b, "%s", wk_last_error());
        for (int e = 0; e < 3; e++) {
            rec ra[16], rb[16];
            cr_assert_eq(wk_loader_set_epoch(a, e), 0);
            cr_assert_eq(wk_loader_set_epoch(b, e), 0);
            cr_assert_eq(drain(a, ra, 16), 16);
            cr_assert_eq(drain(b, rb, 16), 16);
            cr_assert(same_recs(ra, rb, 16), "prefetch %d, pass %d differs", pf, e);
            cr_assert_eq(ra[0].pass, e);
        }
        wk_loader_free(a), wk_loader_free(b);
    }
    wk_dataset_free(ds);
}

Test(loader, prefetch_set_state_while_the_worker_runs)
{
    wk_dataset *ds = probe_new(200);
    wk_loader *ref = wk_loader_new(ds, &(wk_loader_opts){.batch_size = 7, .shuffle = true,
                                                         .seed = 5});
    wk_loader *l = wk_loader_new(ds, &(wk_loader_opts){.batch_size = 7, .shuffle = true,
                                                       .seed = 5, .prefetch = 4});
    rec want[32], got[32];
    cr_assert_eq(wk_loader_set_epoch(ref, 3), 0);
    int nb = drain(ref, want, 32);
    cr_assert_eq(nb, 29);
    for (int k = 0; k < 20; k++) {
        /* take a few batches (the worker is filling its queue), then jump */
        wk_frame_begin();
        wk_batch b;
        for (int i = 0; i < k % 3; i++) cr_assert(wk_loader_next(l, &b) >= 0);
        wk_frame_end();
        int64_t at = (k * 7) % nb;
        cr_assert_eq(wk_loader_set_state(l, &(wk_loader_state){3, at, 5}), 0);
        wk_frame_begin();
        cr_assert_eq(wk_loader_next(l, &b), 1, "%s", wk_last_error());
        const int64_t *x = wk_data(wk_batch_get(&b, "x"));
        cr_assert_eq(memcmp(x, want[at].x, (size_t)want[at].n * sizeof *x), 0,
                     "jump %d to batch %lld", k, (long long)at);
        cr_assert_eq(((const int64_t *)wk_data(wk_batch_get(&b, "e")))[0], 3);
        wk_frame_end();
    }
    /* and the rest of a pass after a final jump */
    cr_assert_eq(wk_loader_set_state(l, &(wk_loader_state){3, 10, 5}), 0);
    cr_assert_eq(drain(l, got, 32), nb - 10);
    cr_assert(same_recs(got, want + 10, nb - 10));
    /* free while the worker is busy */
    cr_assert_eq(wk_loader_set_epoch(l, 4), 0);
    wk_loader_free(l);
    wk_loader_free(ref);
    wk_dataset_free(ds);
}

Test(loader, errors)
{
    wk_dataset *ds = probe_new(10);
    expect_error(wk_loader_new(ds, &(wk_loader_opts){.batch_size = 0}), "batch_size must be > 0");
    expect_error(wk_loader_new(ds, NULL), "batch_size must be > 0");
    expect_error(wk_loader_new(NULL, &(wk_loader_opts){.batch_size = 1}), "dataset is NULL");
    expect_error(wk_loader_new(ds, &(wk_loader_opts){.batch_size = 1, .rank = 2,
                                                     .world_size = 2}),
                 "rank 2 is out of range for world_size 2");
    expect_error(wk_loader_new(ds, &(wk_loader_opts){.batch_size = 1, .rank = -1}),
                 "rank -1");
    expect_error(wk_loader_new(ds, &(wk_loader_opts){.batch_size = 1, .prefetch = 17}),
                 "prefetch must be 0..16");
    wk_loader *l = wk_loader_new(ds, &(wk_loader_opts){.batch_size = 3, .seed = 1});
    expect_error(wk_loader_set_state(l, &(wk_loader_state){0, 1, 2}) ? NULL : l,
                 "saved with seed 2, this loader has seed 1");
    expect_error(wk_loader_set_state(l, &(wk_loader_state){0, 5, 1}) ? NULL : l,
                 "(pass 0, batch 5) is out of range (4 batches per pass)");
    expect_error(wk_loader_set_state(l, &(wk_loader_state){-1, 0, 1}) ? NULL : l,
                 "out of range");
    expect_error(wk_loader_set_epoch(l, -1) ? NULL : l, "epoch -1 < 0");
    expect_error(wk_loader_next(l, NULL) >= 0 ? l : NULL, "loader or output is NULL");
    /* a failing sample: the error comes back from next (with and without prefetch) */
    for (int pf = 0; pf < 2; pf++) {
        wk_loader *f = wk_loader_new(ds, &(wk_loader_opts){.batch_size = 5, .prefetch = pf});
        cr_assert_eq(wk_loader_set_epoch(f, 99), 0);
        wk_batch b;
        wk_frame_begin();
        cr_assert_eq(wk_loader_next(f, &b), 1);
        wk_frame_end();
        wk_clear_error();
        cr_assert_eq(wk_loader_next(f, &b), -1);
        cr_assert(strstr(wk_last_error(), "sample 7 fails in pass 99"), "%s", wk_last_error());
        /* the position stays: a retry fails the same way, a seek past it goes on */
        wk_clear_error();
        cr_assert_eq(wk_loader_next(f, &b), -1);
        cr_assert(strstr(wk_last_error(), "sample 7 fails"), "%s", wk_last_error());
        cr_assert_eq(wk_loader_get_state(f).next_batch, 1);
        cr_assert_eq(wk_loader_set_epoch(f, 0), 0);
        rec r[4];
        cr_assert_eq(drain(f, r, 4), 2);
        wk_loader_free(f);
    }
    wk_loader_free(l);
    wk_loader_free(NULL);
    /* an empty dataset */
    wk_dataset *empty = probe_new(0);
    expect_error(wk_loader_new(empty, &(wk_loader_opts){.batch_size = 1}), "dataset is empty");
    wk_dataset_free(empty);
    wk_dataset_free(ds);
}

Test(loader, engine_source_rolls_over_epochs)
{
    wk_dataset *ds = probe_new(9);
    wk_loader *l = wk_loader_new(ds, &(wk_loader_opts){.batch_size = 4, .shuffle = true,
                                                       .prefetch = 2});
    wk_data_source src = wk_loader_source(l);
    cr_assert_eq(src.length(src.self), 3);
    for (int pass = 1; pass <= 2; pass++) {
        cr_assert_eq(src.reset(src.self), 0);
        int n = 0;
        const struct wk_batch *b;
        wk_frame_begin();
        while (src.next(src.self, &b) == 1) {
            cr_assert_eq(((const int64_t *)wk_data(wk_batch_get(b, "e")))[0], pass);
            n++;
        }
        wk_frame_end();
        cr_assert_eq(n, 3);
    }
    wk_loader_free(l);
    wk_dataset_free(ds);
}
