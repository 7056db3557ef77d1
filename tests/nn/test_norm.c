/* placeholder: replaced by the norm tests */
#include "test_util.h"
