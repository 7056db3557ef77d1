/* A data-parallel loop in which rank 1 fails at step 3, in one of three ways:
 *   error  its step reports an error: every rank learns it through the gradient
 *          all-reduce's agreement, prints it and exits 1 (a clean, agreed stop);
 *   exit   it exits with status 3 while the others wait in a collective: mpirun ends them;
 *   abort  it calls wk_dist_abort: MPI_Abort ends every rank.
 *   mpirun -np 2 worker_fail error|exit|abort */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wick.h"

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: worker_fail error|exit|abort\n");
        return 2;
    }
    const char *mode = argv[1];
    wk_comm *c = wk_dist_world();
    if (!c) {
        fprintf(stderr, "worker_fail: %s\n", wk_last_error());
        return 1;
    }
    int rank = wk_comm_rank(c);
    wk_generator g = wk_generator_make(3);
    wk_module *lin = wk_linear_new(8, 2, true, &g);
    wk_ddp *ddp = wk_ddp_new_module(c, lin, NULL);
    wk_tensor *ps[] = {wk_module_param(lin, "weight"), wk_module_param(lin, "bias")};
    wk_optimizer *opt = wk_sgd_new(ps, 2, WK_HPARAMS({"lr", 0.1}));
    if (!ddp || !opt || wk_ddp_broadcast_module(c, lin, 0) < 0) {
        fprintf(stderr, "worker_fail: setup: %s\n", wk_last_error());
        return 1;
    }
    for (int step = 0; step < 10; step++) {
        wk_frame_begin();
        wk_tensor *x = wk_randn(WK_SHAPE(4, 8), WK_DTYPE_F32, &g);
        bool ok = wk_backward(wk_sum(wk_module_forward(lin, x), WK_ALL_DIMS, false)) == 0;
        wk_frame_end();
        if (rank == 1 && step == 3) {
            if (!strcmp(mode, "exit")) {
                fprintf(stderr, "worker_fail: rank 1 exits at step 3\n");
                exit(3);
            }
            if (!strcmp(mode, "abort")) wk_dist_abort(c, 4, "forced abort at step %d", step);
            wk_set_error("forced failure at step %d", step);
            ok = false;
        }
        int r = wk_ddp_allreduce_grads(ddp, ok);
        if (r != 1) {
            fprintf(stderr, "worker_fail: rank %d stops: %s\n", rank, wk_last_error());
            wk_ddp_free(ddp);
            wk_optimizer_free(opt);
            wk_module_free(lin);
            wk_dist_finalize();
            return 1;
        }
        wk_optimizer_step(opt);
        wk_optimizer_zero_grad(opt);
    }
    printf("worker_fail: rank %d finished without failing\n", rank);
    wk_ddp_free(ddp);
    wk_optimizer_free(opt);
    wk_module_free(lin);
    wk_dist_finalize();
    return 0;
}
