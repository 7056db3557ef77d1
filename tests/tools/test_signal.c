#include "run.h"
Test(stub, nothing) {}
