int main(void) { return 0; } /* the smallest program posix_spawn can run: the spawn limit */
