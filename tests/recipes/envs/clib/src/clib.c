#include "clib.h"
#include <zlib_fixture.h>

const char *clib_zlib_version(void) { return ZLIB_FIXTURE_VERSION; }
int clib_add(int a, int b) { return a + b; }
