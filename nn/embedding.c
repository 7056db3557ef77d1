/* The embedding op (rows of a table at integer indices) with its backward, and the
 * Embedding layer. */
#include "../autograd/node-impl.h"
#include "../tensor/profiler-impl.h"
#include "../tensor/index-impl.h"
#include "linear.h"

/* The rows' gradients summed into zeros of weight's shape in index order (the same
 * rows accumulate deterministically); the padding row (i[0]) gets none. */
static int embedding_backward(wki_node *n, wk_tensor *g, wk_tensor **grads)
{
    wk_tensor *w = n->inputs[0], *idx = n->saved[0]; /* idx: flat, contiguous */
    int64_t D = w->shape[1], L = wk_numel(idx);
    wk_tensor *g2 = wk_reshape(g, WK_SHAPE(L, D));    /* (L, D) */
    wk_tensor *r = g2 ? wki_index_add_zeros("embedding", w->shape, 2, 0, idx, g2) : NULL;
    wk_tensor_free(g2);
    if (r && n->i[0] != WK_NO_PADDING) {
        wk_tensor *row = wk_select(r, 0, n->i[0]);
        bool ok = row && wk_fill_(row, 0);
        wk_tensor_free(row);
        if (!ok) {
            wk_tensor_free(r);
            r = NULL;
        }
    }
    grads[0] = r;
    return r ? 0 : -1;
}

static bool check_args(const wk_tensor *w, const wk_tensor *idx, int64_t *padding_idx)
{
    const char *op = "embedding";
    if (!wki_same_device(op, w, idx) || !wki_require_cpu(op, w)) return false;
    if (w->ndim != 2) {
        wk_set_error("embedding: weight must be 2-d (num_embeddings, embedding_dim), got "
                     "shape %s",
                     wki_shape_s(w));
        return false;
    }
    if (w->dtype == WK_DTYPE_BF16 || w->dtype == WK_DTYPE_F16) {
        wk_set_error("embedding: weight is %s, a storage type; convert with wk_to_dtype(t, "
                     "WK_DTYPE_F32) first",
                     wk_dtype_name(w->dtype));
        return false;
    }
    if (w->dtype != WK_DTYPE_F32 && w->dtype != WK_DTYPE_F64) {
        wk_set_error("embedding: weight must be float32 or float64, got %s",
                     wk_dtype_name(w->dtype));
        return false;
    }
    if (idx->dtype != WK_DTYPE_I64 && idx->dtype != WK_DTYPE_I32) {
        wk_set_error("embedding: indices must be int64 or int32, got %s",
                     wk_dtype_name(idx->dtype));
        return false;
    }
    if (idx->ndim >= WK_MAX_DIMS) {
        wk_set_error("embedding: indices of shape %s would give more than %d dims",
                     wki_shape_s(idx), WK_MAX_DIMS);
        return false;
    }
    int64_t V = w->shape[0], p = *padding_idx;
    if (p != WK_NO_PADDING && (p < -V || p >= V)) {
        wk_set_error("embedding: padding_idx %lld is out of range for %lld embeddings",
                     (long long)p, (long long)V);
        return false;
    }
    if (p != WK_NO_PADDING && p < 0) *padding_idx = p + V;
    return true;
}

/* Every entry of the contiguous flat index in [0, V), else an error naming it. */
static bool check_range(const wk_tensor *flat, const wk_tensor *w)
{
    int64_t n = wk_numel(flat), V = w->shape[0];
    const int64_t *p64 = wk_data(flat);
    const int32_t *p32 = wk_data(flat);
    for (int64_t i = 0; i < n; i++) {
        int64_t v = flat->dtype == WK_DTYPE_I64 ? p64[i] : p32[i];
        if (v >= 0 && v < V) continue;
        wk_set_error("embedding: index %lld (at flat position %lld) is out of range for %lld "
                     "embeddings (weight shape %s)",
                     (long long)v, (long long)i, (long long)V, wki_shape_s(w));
        return false;
    }
    return true;
}

wk_tensor *wk_embedding_ex(wk_tensor *weight, wk_tensor *indices, int64_t padding_idx)
{
    WKI_PROF_OP("embedding", weight, indices);
    if (!WKI_CHECK("embedding", weight, indices)) return NULL;
    if (!check_args(weight, indices, &padding_idx)) return NULL;
    int64_t shape[WK_MAX_DIMS];
    int nd = indices->ndim;
    for (int i = 0; i < nd; i++)
        shape[i] = indices->shape[i];
    shape[nd++] = weight->shape[1];
    /* the lookup itself is an index_select of the flat index; the node is ours */
    wk_no_grad_begin();
    wk_tensor *v = wk_reshape(indices, WK_SHAPE(wk_numel(indices)));
    wk_tensor *flat = v ? wk_contiguous(v) : NULL;
    wk_tensor *rows = flat && check_range(flat, weight) ? wk_index_select(weight, 0, flat) : NULL;
    wk_tensor *out = rows ? wk_reshape(rows, shape, nd) : NULL;
    wk_no_grad_end();
    wk_tensor_free(v);
    wk_tensor_free(rows);
    if (out && wki_grad_needed(1, (const wk_tensor *[]){weight})) {
        wki_node *n = wki_node_new(out, "embedding", embedding_backward, 1, &weight);
        if (n) {
            wki_node_save(n, 0, flat);
            n->i[0] = padding_idx;
        } else {
            wk_tensor_free(out);
            out = NULL;
        }
    }
    wk_tensor_free(flat);
    return out;
}

wk_tensor *wk_embedding(wk_tensor *weight, wk_tensor *indices)
{
    return wk_embedding_ex(weight, indices, WK_NO_PADDING);
}

typedef struct {
    int64_t num_embeddings, embedding_dim, padding_idx;
} embedding_cfg;

static wk_tensor *embedding_forward(wk_module *m, wk_tensor *x)
{
    const embedding_cfg *c = m->config;
    return wk_embedding_ex(wk_module_param(m, "weight"), x, c->padding_idx);
}

wk_module *wk_embedding_new(int64_t num_embeddings, int64_t embedding_dim, int64_t padding_idx,
                            wk_generator *g)
{
    int64_t V = num_embeddings, p = padding_idx;
    if (V < 0 || embedding_dim < 0) {
        wk_set_error("Embedding: num_embeddings and embedding_dim must be >= 0, got %lld and "
                     "%lld",
                     (long long)V, (long long)embedding_dim);
        return NULL;
    }
    if (p != WK_NO_PADDING && (p < -V || p >= V)) {
        wk_set_error("Embedding: padding_idx %lld must be within [-%lld, %lld) (num_embeddings)",
                     (long long)p, (long long)V, (long long)V);
        return NULL;
    }
    if (p != WK_NO_PADDING && p < 0) p += V;
    wk_module *m = wk_module_new("Embedding", embedding_forward, sizeof(embedding_cfg));
    if (!m) return NULL;
    embedding_cfg *c = m->config;
    c->num_embeddings = V;
    c->embedding_dim = embedding_dim;
    c->padding_idx = p;
    wk_tensor *w = wk_empty(WK_SHAPE(V, embedding_dim), WK_DTYPE_F32);
    bool ok = w && wk_normal_(w, 0, 1, g);
    if (ok && p != WK_NO_PADDING) {
        wk_tensor *row = wk_select(w, 0, p);
        ok = row && wk_fill_(row, 0);
        wk_tensor_free(row);
    }
    if (!ok) {
        wk_tensor_free(w);
        wk_module_free(m);
        return NULL;
    }
    if (!wk_module_add_parameter(m, "weight", w)) {
        wk_module_free(m);
        return NULL;
    }
    return m;
}
