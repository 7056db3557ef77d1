/* The values each rank contributes in the communicator tests: shared by the worker that
 * runs the collectives and the test that computes what they must give. */
#ifndef WK_TEST_DIST_COMM_VALUES_H
#define WK_TEST_DIST_COMM_VALUES_H

#include <stdint.h>

#define CV_N 1003      /* elements per all-reduce: odd, not a multiple of anything */
#define CV_GATHER 7    /* elements per rank in the allgathers */

/* Rank r's element i: whole numbers (sums exact in float32), the sign alternating with i
 * so that max and min pick different ranks. */
static inline double cv_float(int r, int64_t i)
{
    return (i % 2 ? 1.0 : -1.0) * (double)((r + 1) * (i + 1)) + 0.5 * r;
}
/* int64: beyond float64's 53 bits, so a conversion through double would show. */
static inline int64_t cv_int(int r, int64_t i)
{
    return ((int64_t)1 << 58) * (i % 3 == 0 ? -1 : 1) + (int64_t)r * 1000003 + i;
}
#endif
