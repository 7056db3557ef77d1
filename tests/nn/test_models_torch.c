/* placeholder: replaced by the models_torch tests */
#include "test_util.h"
