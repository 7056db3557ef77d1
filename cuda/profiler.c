/* The profiler's CUDA side: NVTX ranges (so Nsight Systems shows wick's ops, phases and
 * steps) and CUDA events for spans on a CUDA device. Built only with CUDA. NVTX is
 * header-only (nvtx3): without a tool attached its calls return at once. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>

#include <cuda_runtime_api.h>
#include <nvtx3/nvToolsExt.h>

#include "../tensor/profiler-impl.h"

void wki_cuda_prof_push(const char *name) { nvtxRangePushA(name); }
void wki_cuda_prof_pop(void) { nvtxRangePop(); }
uint64_t wki_cuda_prof_range_start(const char *name) { return nvtxRangeStartA(name); }
void wki_cuda_prof_range_end(uint64_t id) { nvtxRangeEnd(id); }

/* Events are created once and reused across sessions; `used` counts this session's. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static cudaEvent_t *events;
static int used, cap;

int wki_cuda_prof_event_record(void)
{
    int k = -1;
    pthread_mutex_lock(&mu);
    if (used == cap) {
        int ncap = cap ? 2 * cap : 256;
        cudaEvent_t *p = realloc(events, (size_t)ncap * sizeof *p);
        if (p) {
            events = p;
            for (; cap < ncap; cap++)
                if (cudaEventCreate(&events[cap]) != cudaSuccess) break;
            cudaGetLastError(); /* a failed create leaves a sticky error otherwise */
        }
    }
    if (used < cap && cudaEventRecord(events[used], 0) == cudaSuccess) k = used++;
    else cudaGetLastError();
    pthread_mutex_unlock(&mu);
    return k;
}

double wki_cuda_prof_elapsed_ms(int begin, int end)
{
    float ms = NAN;
    pthread_mutex_lock(&mu);
    if (begin >= 0 && end >= 0 && begin < used && end < used &&
        (cudaEventSynchronize(events[end]) != cudaSuccess ||
         cudaEventElapsedTime(&ms, events[begin], events[end]) != cudaSuccess)) {
        cudaGetLastError();
        ms = NAN;
    }
    pthread_mutex_unlock(&mu);
    return ms;
}

void wki_cuda_prof_events_reset(void)
{
    pthread_mutex_lock(&mu);
    used = 0;
    pthread_mutex_unlock(&mu);
}
