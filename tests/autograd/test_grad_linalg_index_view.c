/* placeholder: replaced by the linalg_index_view gradient tests */
#include "test_util.h"
