/* placeholder: replaced by the loss tests */
#include "test_util.h"
