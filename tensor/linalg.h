/* placeholder: filled by the linalg work */
#ifndef WK_LINALG_H
#define WK_LINALG_H
#include "tensor.h"
#endif
