/* The dataset interface's shared helpers. */
#include "../tensor/tensor-impl.h"
#include "dataset.h"

int64_t wk_dataset_length(const wk_dataset *ds)
{
    if (!ds || !ds->length) {
        wk_set_error("dataset_length: dataset is NULL or has no length");
        return -1;
    }
    return ds->length(ds);
}

void wk_dataset_free(wk_dataset *ds)
{
    if (!ds) return;
    if (ds->destroy) ds->destroy(ds);
}

size_t wk_field_row_bytes(const wk_field *f)
{
    int64_t n = wki_shape_numel(f->shape, f->ndim);
    return n < 0 ? 0 : (size_t)n * wk_dtype_size(f->dtype);
}
