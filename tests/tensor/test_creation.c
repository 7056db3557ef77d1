/* placeholder: replaced by the creation tests */
#include "test_util.h"
