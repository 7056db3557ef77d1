/* placeholder: replaced by the init tests */
#include "test_util.h"
