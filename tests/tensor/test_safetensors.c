/* placeholder: replaced by the safetensors tests */
#include "test_util.h"
