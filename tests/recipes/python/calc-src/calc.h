/* libcalc: the C library of the staging calculator recipe. */
int calc_add(int a, int b);
