/* Frames: scoped lifetimes for tensors made inside a training step. Each thread has a
 * stack of frames over one array of handles; a frame owns the handles from its start
 * index to the end. The array only grows, so a steady loop does not allocate here. */
#include <stdlib.h>

#include "tensor-impl.h"

#define MAX_DEPTH 256

static _Thread_local struct {
    wk_tensor **items;
    int32_t len, cap;
    int32_t starts[MAX_DEPTH];
    int depth;
    int overflow; /* frames opened beyond MAX_DEPTH (ignored, but matched) */
} fs;

void wk_frame_begin(void)
{
    if (fs.depth >= MAX_DEPTH) {
        fs.overflow++;
        wk_set_error("wk_frame_begin: more than %d nested frames", MAX_DEPTH);
        return;
    }
    fs.starts[fs.depth++] = fs.len;
}

int wk_frame_depth(void) { return fs.depth; }

void wki_frame_register(wk_tensor *t)
{
    t->frame = fs.depth;
    t->frame_slot = -1;
    if (!fs.depth) return;
    if (fs.len == fs.cap) {
        int32_t cap = fs.cap ? fs.cap * 2 : 256;
        wk_tensor **items = realloc(fs.items, (size_t)cap * sizeof *items);
        if (!items) { /* cannot track it: make it persistent rather than lose it */
            t->frame = 0;
            return;
        }
        fs.items = items;
        fs.cap = cap;
    }
    t->frame_slot = fs.len;
    fs.items[fs.len++] = t;
}

void wki_frame_thread_exit(void)
{
    if (fs.depth || fs.len) return; /* frames still open: their handles stay tracked */
    free(fs.items);
    fs.items = NULL;
    fs.cap = 0;
}

void wki_frame_unregister(wk_tensor *t)
{
    if (t->frame_slot >= 0 && t->frame_slot < fs.len && fs.items[t->frame_slot] == t)
        fs.items[t->frame_slot] = NULL;
    t->frame_slot = -1;
}

void wk_frame_end(void)
{
    if (fs.overflow) {
        fs.overflow--;
        return;
    }
    if (!fs.depth) return;
    int depth = fs.depth;
    int32_t start = fs.starts[depth - 1];
    /* Release in reverse order of creation; kept handles move down to the parent. */
    for (int32_t i = fs.len - 1; i >= start; i--) {
        wk_tensor *t = fs.items[i];
        if (!t || t->frame < depth) continue;
        t->frame_slot = -1;
        fs.items[i] = NULL;
        wk_tensor_free(t);
    }
    int32_t n = start;
    for (int32_t i = start; i < fs.len; i++) {
        wk_tensor *t = fs.items[i];
        if (!t) continue;
        t->frame_slot = n;
        fs.items[n++] = t;
    }
    fs.len = n;
    fs.depth--;
}

wk_tensor *wk_keep(wk_tensor *t)
{
    if (!t || t->frame == 0) return t;
    t->frame--;
    if (t->frame == 0) wki_frame_unregister(t);
    return t;
}
