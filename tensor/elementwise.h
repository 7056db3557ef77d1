/* placeholder: filled by the elementwise work */
#ifndef WK_ELEMENTWISE_H
#define WK_ELEMENTWISE_H
#include "tensor.h"
#endif
