/* placeholder: replaced by the scheduler tests */
#include "test_util.h"
