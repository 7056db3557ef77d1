/* The values each rank contributes in the communicator tests: shared by the worker that
 * runs the collectives and the test that computes what they must give. */
#ifndef WK_TEST_DIST_COMM_VALUES_H
#define WK_TEST_DIST_COMM_VALUES_H

#include <stdbool.h>
#include <stdint.h>

#include "wick.h"

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

/* What an all-reduce of op (a wk_comm_op) over w ranks gives for element i: of the float
 * values, or with i32 of the int32 values (cv_int mod 100000). */
static inline double cv_expect_float(int w, int op, int64_t i, bool i32)
{
    double acc = 0;
    for (int r = 0; r < w; r++) {
        double v = i32 ? (double)(cv_int(r, i) % 100000) : cv_float(r, i);
        if (op == WK_COMM_MAX) acc = r == 0 || v > acc ? v : acc;
        else if (op == WK_COMM_MIN) acc = r == 0 || v < acc ? v : acc;
        else acc += v;
    }
    if (op == WK_COMM_AVG) acc = i32 ? (double)((int64_t)acc / w) : acc / w;
    return acc;
}
/* The same for the int64 values (C division for avg). */
static inline int64_t cv_expect_int(int w, int op, int64_t i)
{
    int64_t acc = 0;
    for (int r = 0; r < w; r++) {
        int64_t v = cv_int(r, i);
        if (op == WK_COMM_MAX) acc = r == 0 || v > acc ? v : acc;
        else if (op == WK_COMM_MIN) acc = r == 0 || v < acc ? v : acc;
        else acc += v;
    }
    return op == WK_COMM_AVG ? acc / w : acc;
}
#endif
