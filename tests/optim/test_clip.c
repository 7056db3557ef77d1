/* placeholder: replaced by the clip tests */
#include "test_util.h"
