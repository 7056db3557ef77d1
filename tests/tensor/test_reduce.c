/* placeholder: replaced by the reduce tests */
#include "test_util.h"
