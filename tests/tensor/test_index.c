/* placeholder: replaced by the index tests */
#include "test_util.h"
