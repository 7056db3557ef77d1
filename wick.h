/* wick: one include for the whole public API.
 *   #include <wick/wick.h>     (installed; pkg-config --cflags --libs wick)
 *   #include "wick.h"          (inside this tree) */
#ifndef WICK_H
#define WICK_H

#include "tensor/tensor.h"
#include "tensor/creation.h"
#include "tensor/random.h"
#include "tensor/elementwise.h"
#include "tensor/reduce.h"
#include "tensor/linalg.h"
#include "tensor/index.h"
#include "tensor/print.h"
#include "tensor/safetensors.h"
#include "autograd/autograd.h"

#endif
