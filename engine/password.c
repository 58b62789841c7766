/*
 * password.c -- Argon2id hashing and verification through libsodium.
 *
 * ud_password_hash() always writes Argon2id (crypto_pwhash_ALG_ARGON2ID13)
 * with the store's cost (0 = libsodium's INTERACTIVE limits);
 * ud_password_verify() accepts any encoded string libsodium knows, so
 * imported Argon2i hashes verify too, with the cost they carry.
 *
 * The decoy: a user without a password must take as long to reject as one
 * with a wrong password, or response times would tell an attacker which
 * accounts have one.  A decoy hash of a random password is computed once per
 * process (pthread_once; immutable afterwards, so it is not mutable global
 * state) at the default cost, and verified against instead.  A store with
 * another cost makes its own with ud_password_decoy() (the server does, at
 * start), since the decoy must cost what the real hashes cost.
 *
 * All functions are thread-safe; they run on the server's worker threads.
 */
#include <pthread.h>
#include <string.h>

#include <sodium.h>

#include "password.h"
#include "valid.h"

static pthread_once_t sodium_once = PTHREAD_ONCE_INIT;
static int sodium_status;

static void sodium_once_cb(void)
{
	sodium_status = sodium_init() < 0 ? UD_EINTERNAL : 0;
}

int password_init(void)
{
	pthread_once(&sodium_once, sodium_once_cb);
	return sodium_status;
}

static pthread_once_t decoy_once = PTHREAD_ONCE_INIT;
static char decoy_hash[crypto_pwhash_STRBYTES];

static void decoy_once_cb(void)
{
	unsigned char pw[32];

	randombytes_buf(pw, sizeof(pw));
	if (crypto_pwhash_str_alg(decoy_hash, (const char *)pw, sizeof(pw),
				  crypto_pwhash_OPSLIMIT_INTERACTIVE,
				  crypto_pwhash_MEMLIMIT_INTERACTIVE,
				  crypto_pwhash_ALG_ARGON2ID13) != 0)
		decoy_hash[0] = '\0';
}

int ud_password_hash(const struct ud_options *opt, const char *pw,
		     size_t pw_len, char out[UD_PWHASH_MAX],
		     struct ud_error *err)
{
	unsigned long long ops = crypto_pwhash_OPSLIMIT_INTERACTIVE;
	size_t mem = crypto_pwhash_MEMLIMIT_INTERACTIVE;
	char tmp[crypto_pwhash_STRBYTES];
	int rc;

	rc = valid_password(pw_len, err);
	if (rc)
		return rc;
	if (password_init())
		return ud_error_set(err, UD_EINTERNAL, NULL,
				    "libsodium failed to initialise");
	if (opt && opt->pw_opslimit)
		ops = opt->pw_opslimit;
	if (opt && opt->pw_memlimit)
		mem = opt->pw_memlimit;
	if (crypto_pwhash_str_alg(tmp, pw, pw_len, ops, mem,
				  crypto_pwhash_ALG_ARGON2ID13) != 0)
		return ud_error_set(err, UD_ENOMEM, NULL,
				    "password hashing failed (out of memory "
				    "or bad cost settings)");
	if (strlen(tmp) >= UD_PWHASH_MAX)
		return ud_error_set(err, UD_EINTERNAL, NULL,
				    "encoded password hash too long");
	memcpy(out, tmp, strlen(tmp) + 1);
	sodium_memzero(tmp, sizeof(tmp));
	return 0;
}

int ud_password_verify(const char *hash, const char *pw, size_t pw_len)
{
	if (password_init())
		return 0;
	if (!hash || !hash[0]) {
		pthread_once(&decoy_once, decoy_once_cb);
		/* The result is meaningless; only the time spent counts. */
		if (decoy_hash[0] &&
		    crypto_pwhash_str_verify(decoy_hash, pw, pw_len) == 0)
			return 0;
		return 0;
	}
	return crypto_pwhash_str_verify(hash, pw, pw_len) == 0 ? 1 : 0;
}

int ud_password_decoy(const struct ud_options *opt, char out[UD_PWHASH_MAX],
		      struct ud_error *err)
{
	unsigned char rnd[24];
	char pw[2 * sizeof(rnd) + 1];
	int rc;

	if (password_init())
		return ud_error_set(err, UD_EINTERNAL, NULL,
				    "libsodium failed to initialise");
	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(pw, sizeof(pw), rnd, sizeof(rnd));
	rc = ud_password_hash(opt, pw, strlen(pw), out, err);
	sodium_memzero(pw, sizeof(pw));
	return rc;
}
