#ifndef CLIB_H
#define CLIB_H
const char *clib_zlib_version(void);
int clib_add(int a, int b);
#endif
