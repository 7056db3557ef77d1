/* placeholder: filled by the index work */
#ifndef WK_INDEX_H
#define WK_INDEX_H
#include "tensor.h"
#endif
