/* The NCCL communicator (builds with CUDA and NCCL only). With a GPU: world 1 without
 * mpirun, and one rank per GPU under mpirun. Without one: a clear error, the rest skipped. */
#include "../test_util.h"
#include "spawn.h"

TestSuite(nccl, .init = tu_setup, .fini = tu_teardown);

Test(nccl, no_gpu_is_an_error_not_a_crash)
{
    if (wk_cuda_device_count() > 0) cr_skip_test("a GPU is present");
    cr_assert_null(wk_comm_nccl_new(wk_dist_world(), -1));
    cr_assert(strstr(wk_last_error(), "no CUDA device"), "%s", wk_last_error());
}

Test(nccl, world_of_one)
{
    if (wk_cuda_device_count() == 0) cr_skip_test("no CUDA device");
    sp_result r = sp_plain("worker_nccl", NULL, NULL, 180);
    cr_assert(r.started && !r.timed_out && r.exited && r.code == 0,
              "worker_nccl failed (see the output above)");
    cr_assert(strstr(r.output, "rank 0 of 1: all"));
    sp_free(&r);
}

Test(nccl, one_rank_per_gpu_under_mpirun)
{
    int n = wk_cuda_device_count();
    if (n == 0) cr_skip_test("no CUDA device");
    if (!sp_have_mpirun()) cr_skip_test("no MPI (built without it, or no mpirun in PATH)");
    int w = n < 2 ? n : 2;
    sp_result r = sp_mpirun(w, "worker_nccl", NULL, 300);
    cr_assert(r.started && !r.timed_out && r.exited && r.code == 0,
              "mpirun -np %d worker_nccl failed (see the output above)", w);
    for (int k = 0; k < w; k++) {
        char want[64];
        snprintf(want, sizeof want, "rank %d of %d: all", k, w);
        cr_assert(strstr(r.output, want), "rank %d did not pass", k);
    }
    sp_free(&r);
}
