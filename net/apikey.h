/*
 * apikey.h -- the API keys the server accepts: their scopes, names, the
 * key file (--api-key-file) and the generated key file.
 *
 * Keys are kept only as BLAKE2b hashes; a presented key is hashed and
 * compared against every stored hash with sodium_memcmp, so neither the
 * length nor the content of a key leaks through timing.  Keys are never
 * printed or logged; error messages name a file and a line, never a key.
 *
 * Scopes (SPEC §11).  admin may do everything; read every read (gets,
 * lists, logs, stats, metrics, export, the change stream); verify what read
 * may plus password verification.  An operation names the scope it needs
 * (SCOPE_ADMIN is 0, so an operation that names none needs admin).
 *
 * Names.  A key's name is its actor in activity events and its label in
 * /metrics: NAME from the key file, else key-N, the Nth key counting the
 * --api-key flags first, then the key file's key lines (the generated key
 * is key-1).  Names are [A-Za-z0-9._-], 1..KEY_NAME_MAX bytes.
 *
 * Where keys come from (apikey_setup):
 *   --api-key KEY[:SCOPE] flags (or USERDB_API_KEY), then the key file's
 *   lines; if neither gives a key:
 *     with a data dir                    -> DATA_DIR/api-key, created 0600
 *                                           with a fresh random key when
 *                                           missing; its path is printed;
 *     else (--no-persist)                -> a fresh random key, printed.
 * There is always at least one key: the server never runs open.
 *
 * The key file: one key per line, `KEY SCOPE [NAME]` separated by spaces or
 * tabs; blank lines and lines whose first non-blank character is `#` are
 * ignored.  It is refused (nothing of it is used) when it can be read or
 * written by group or others, when a line is malformed (the message names
 * the line), when a key appears twice, or when it holds no key and no flag
 * gives one.  apikey_reload (SIGHUP) builds a new set the same way and
 * leaves the old one in place when that fails.
 *
 * Generations.  Every set built gets a new gen; a connection that
 * authenticated remembers the hash and the gen and finds its key again by
 * hash when the gen moved on (keyset_refind), so a key removed by a reload
 * fails from its next request on.  Loop thread only.
 */
#ifndef UD_NET_APIKEY_H
#define UD_NET_APIKEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"

#define APIKEY_GEN_LEN 43 /* base64url of 32 random bytes */
#define KEYSET_MAX     256
#define KEY_NAME_MAX   64
#define KEY_LEN_MAX    1024

enum key_scope { SCOPE_ADMIN = 0, SCOPE_READ = 1, SCOPE_VERIFY = 2 };

struct key_entry {
	uint8_t hash[32];
	enum key_scope scope;
	uint8_t name_len;
	char name[KEY_NAME_MAX + 1];
	unsigned metric; /* its name's counter in struct metrics */
};

struct keyset {
	unsigned n;
	uint64_t gen;
	struct key_entry e[KEYSET_MAX];
};

/* Fill ks as described above; messages go to out (key file path or the
 * generated key) and err.  Returns 0 or -1. */
int apikey_setup(struct keyset *ks, const struct server_config *cfg, FILE *out,
		 FILE *err);
/* Build the set again from cfg (flags and the key file) into ks; on
 * failure ks is untouched and the reason went to err.  0 or -1. */
int apikey_reload(struct keyset *ks, const struct server_config *cfg,
		  FILE *err);
/* Parse a key file into ks (appending; names key-N from ks->n + 1 on).
 * 0, or -1 after a message to err naming the file and line. */
int apikey_file_load(struct keyset *ks, const char *path, FILE *err);
/* The same for the file's bytes buf[0..len) (borrowed, not modified):
 * the parser alone, without the permission and size checks. */
int apikey_file_parse(struct keyset *ks, char *buf, size_t len,
		      const char *path, FILE *err);
/* Add one key with its scope and name (NULL: key-N).  0 or -1 when full. */
int keyset_add_scoped(struct keyset *ks, const char *key, size_t len,
		      enum key_scope scope, const char *name);
/* Add one admin key named key-N.  0 or -1 when full. */
int keyset_add(struct keyset *ks, const char *key, size_t len);
/* The index of key in the set, or -1 (constant time in the set size).
 * hash (may be NULL) receives the key's hash for keyset_refind. */
int keyset_find(const struct keyset *ks, const char *key, size_t len,
		uint8_t hash[32]);
/* The index of the key with this hash, or -1. */
int keyset_refind(const struct keyset *ks, const uint8_t hash[32]);
/* True when key is one of the set. */
bool keyset_check(const struct keyset *ks, const char *key, size_t len);
/* Write a fresh random key (NUL-terminated) into out[APIKEY_GEN_LEN + 1]. */
void apikey_generate(char *out);

/* Scopes: "admin", "read", "verify". */
const char *scope_name(enum key_scope s);
/* The scope spelled s[0..n), or -1. */
int scope_parse(const char *s, size_t n);
/* True when a key of scope have may do what needs scope need. */
bool scope_allows(enum key_scope have, enum key_scope need);
/* "this operation needs a key with scope verify or admin" into buf. */
void scope_denied_message(enum key_scope need, char *buf, size_t n);
/* Split "KEY:SCOPE" (a known scope after the last ':'): the key's length
 * and its scope (admin when there is no known scope suffix). */
size_t apikey_split_flag(const char *arg, enum key_scope *scope);

#endif
