/*
 * apikey.h -- the API keys the server accepts, and the generated key file.
 *
 * Keys are kept only as BLAKE2b hashes; a presented key is hashed and
 * compared against every stored hash with sodium_memcmp, so neither the
 * length nor the content of a key leaks through timing.
 *
 * Where keys come from (apikey_setup):
 *   --api-key / USERDB_API_KEY given     -> exactly those;
 *   else with a data dir                 -> DATA_DIR/api-key, created 0600
 *                                           with a fresh random key when
 *                                           missing; its path is printed;
 *   else (--no-persist, no key given)    -> a fresh random key, printed.
 * There is always at least one key: the server never runs open.
 */
#ifndef UD_NET_APIKEY_H
#define UD_NET_APIKEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"

#define APIKEY_GEN_LEN 43 /* base64url of 32 random bytes */

struct keyset {
	unsigned n;
	uint8_t hash[CONFIG_MAX_KEYS][32];
};

/* Fill ks as described above; messages go to out (key file path or the
 * generated key) and err.  Returns 0 or -1. */
int apikey_setup(struct keyset *ks, const struct server_config *cfg, FILE *out,
		 FILE *err);
/* Add one key.  0 or -1 when full. */
int keyset_add(struct keyset *ks, const char *key, size_t len);
/* True when key is one of the set (constant time in the set size). */
bool keyset_check(const struct keyset *ks, const char *key, size_t len);
/* Write a fresh random key (NUL-terminated) into out[APIKEY_GEN_LEN + 1]. */
void apikey_generate(char *out);

#endif
