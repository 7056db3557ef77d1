/* placeholder: filled by the safetensors work */
#ifndef WK_SAFETENSORS_H
#define WK_SAFETENSORS_H
#include "tensor.h"
#endif
