/* placeholder: replaced by the attention tests */
#include "test_util.h"
