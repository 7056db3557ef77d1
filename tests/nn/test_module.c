/* placeholder: replaced by the module tests */
#include "test_util.h"
