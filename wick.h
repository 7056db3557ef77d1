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
#include "tensor/profiler.h"
#include "autograd/autograd.h"
#include "nn/module.h"
#include "nn/init.h"
#include "nn/activation.h"
#include "nn/loss.h"
#include "nn/linear.h"
#include "nn/conv.h"
#include "nn/norm.h"
#include "nn/container.h"
#include "nn/state_dict.h"
#include "nn/model.h"
#include "optim/optimizer.h"
#include "optim/scheduler.h"
#include "optim/clip.h"
#include "optim/ema.h"
#include "engine/engine.h"
#include "engine/handlers.h"
#include "engine/dataset.h"
#include "engine/datasets.h"
#include "engine/idx.h"
#include "engine/loader.h"
#include "engine/metric.h"
#include "engine/checkpoint.h"
#include "engine/trainer.h"
#include "engine/profiler_handler.h"

#endif
