/* placeholder: filled by the reduce work */
#ifndef WK_REDUCE_H
#define WK_REDUCE_H
#include "tensor.h"
#endif
