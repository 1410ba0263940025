/* fuzz.h — what every harness of tests/fuzz/ shares.
 *
 * A harness is one LLVMFuzzerTestOneInput. It is linked twice: with
 * libFuzzer (clang, -fsanitize=fuzzer,address,undefined: the fuzz_<name>
 * programs that scripts/fuzz runs), and with replay_main.c (any compiler:
 * the test_fuzz_replay_<name> programs that ctest runs over the checked-in
 * corpus, under ASan + UBSan in scripts/test's sanitizer build and under
 * valgrind in its -Werror build).
 *
 * A harness checks properties, not only "did not crash": FUZZ_CHECK
 * prints what broke and aborts, which both drivers report as a crash. */
#ifndef IDEM_FUZZ_H
#define IDEM_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond, ...)                                                                      \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);   \
			fprintf(stderr, __VA_ARGS__);                                              \
			fputc('\n', stderr);                                                       \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#endif
