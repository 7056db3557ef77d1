/* A failure on one rank ends the whole 2-rank job, with a message and a non-zero status,
 * in bounded time (a job still running after 60 s is killed and the test fails). */
#include "../test_util.h"
#include "spawn.h"

TestSuite(failure, .init = tu_setup, .fini = tu_teardown);

static sp_result run(const char *mode)
{
    if (!sp_have_mpirun()) cr_skip_test("no MPI (built without it, or no mpirun in PATH)");
    sp_result r = sp_mpirun(2, "worker_fail", (const char *[]){mode, NULL}, 60);
    cr_assert(r.started, "mpirun could not be started");
    cr_assert_not(r.timed_out, "the job hung: still running after 60 s");
    cr_assert(!r.exited || r.code != 0, "the job exited 0 although rank 1 failed");
    return r;
}

Test(failure, agreed_error_stops_every_rank_with_the_message)
{
    sp_result r = run("error");
    cr_assert(r.exited && r.code == 1, "status %d", r.code);
    /* both ranks say which rank failed and why */
    cr_assert(strstr(r.output, "rank 0 stops: rank 1 failed: forced failure at step 3"),
              "rank 0's message is missing");
    cr_assert(strstr(r.output, "rank 1 stops: rank 1 failed: forced failure at step 3"),
              "rank 1's message is missing");
    cr_assert_null(strstr(r.output, "finished without failing"));
    sp_free(&r);
}

Test(failure, exit_of_one_rank_ends_the_job)
{
    sp_result r = run("exit");
    cr_assert(strstr(r.output, "rank 1 exits at step 3"));
    cr_assert_null(strstr(r.output, "finished without failing"));
    sp_free(&r);
}

Test(failure, abort_ends_every_rank)
{
    sp_result r = run("abort");
    cr_assert(strstr(r.output, "wick: rank 1: forced abort at step 3; aborting all ranks"),
              "the abort message is missing");
    cr_assert_null(strstr(r.output, "finished without failing"));
    sp_free(&r);
}
