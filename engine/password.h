/*
 * password.h -- Argon2id hashing (libsodium) and the decoy verification.
 * The functions are declared in userdb.h (ud_password_hash,
 * ud_password_verify); this module owns sodium_init().
 */
#ifndef UD_PASSWORD_H
#define UD_PASSWORD_H

#include "userdb.h"

/* sodium_init() once; safe to call from many threads.  0 or UD_EINTERNAL. */
int password_init(void);

#endif
