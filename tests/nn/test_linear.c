/* placeholder: replaced by the linear tests */
#include "test_util.h"
