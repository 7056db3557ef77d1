/* placeholder: filled by the print work */
#ifndef WK_PRINT_H
#define WK_PRINT_H
#include "tensor.h"
#endif
