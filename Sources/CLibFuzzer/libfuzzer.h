// libFuzzer's entry point for programs that have their own main (compiler-rt, LLVM 13 and later).
// The fuzz targets need it because SwiftPM links every Swift executable with
// `--defsym main=<module>_main`, so libFuzzer's own main can never be the program's main.
// Only referenced when built with -D PAYWATCH_FUZZ -sanitize=fuzzer (which links libFuzzer).
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*UserCb)(const uint8_t *Data, size_t Size));
