/*
 * fuzz_util.h -- shared by the libFuzzer harnesses in tests/fuzz.
 *
 * Each harness defines LLVMFuzzerTestOneInput.  It links either libFuzzer
 * (UD_FUZZ=ON, clang) or replay_main.c, which runs the inputs named on its
 * command line once each (ctest replays the corpus and the regressions that
 * way in the ordinary builds).  A broken property is reported with
 * FUZZ_CHECK, which prints the reason and aborts, so libFuzzer keeps the
 * input as a crash.
 */
#ifndef UD_FUZZ_UTIL_H
#define UD_FUZZ_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "userdb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond, ...)                                                  \
	do {                                                                   \
		if (!(cond))                                                   \
			fuzz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);     \
	} while (0)

void fuzz_fail(const char *file, int line, const char *cond, const char *fmt,
	       ...) __attribute__((noreturn, format(printf, 4, 5)));

/* Records of a multi-record input are separated by this marker (the
 * harnesses' dictionaries know it). */
#define FUZZ_SEP     "UDSEP"
#define FUZZ_SEP_LEN 5

/* Cut data[0..size) at every FUZZ_SEP: calls fn for each piece in order
 * (pieces may be empty) until fn returns non-zero, which is returned. */
int fuzz_split(const uint8_t *data, size_t size,
	       int (*fn)(void *ctx, const uint8_t *p, size_t n), void *ctx);

/* A fresh empty directory under /dev/shm (else /tmp) for one input, its
 * path in out[256]; fuzz_rmdir removes it and everything in it. */
void fuzz_mkdtemp(char out[256]);
void fuzz_rmdir(const char *dir);
/* Write data to dir/name (created or replaced). */
void fuzz_write_file(const char *dir, const char *name, const void *data,
		     size_t n);

/* True when s[0..n) is exactly one JSON text that jansson accepts (strict
 * UTF-8; integers beyond int64 are refused by jansson, not by JSON, and
 * count as accepted). */
bool fuzz_json_ok(const char *s, size_t n);

#endif
