/*
 * backoff.h -- the opt-in per-user back-off of password verification
 * (--verify-backoff-ms; issue 6, "brute force is visible, optionally
 * slowed").
 *
 * The table counts each user's consecutive failed verifications.  Once a
 * user has BACKOFF_FREE of them in a row, every further verification of
 * that user waits before its Argon2id work starts: base ms for the first,
 * doubling with each further failure, never more than max ms.  The wait is
 * a timer on the loop (pwjob.c), never a sleep; the reply simply comes
 * later, and the right password waits like a wrong one, so the timing
 * tells nothing.  Waiting attempts of one user queue behind each other
 * (each starts one delay after the previous one started), so guesses sent
 * in parallel do not share a delay.  No error code is involved: SPEC has
 * none for "slow down", the delay is the back-off.
 *
 * Memory: an entry exists only for a user whose last verification failed
 * (and who existed then).  A success, a password change or the user's
 * deletion removes it, so the table never holds more entries than there
 * are live users with failures, and nothing for deleted users.
 *
 * Thread assumptions: loop thread only.
 */
#ifndef UD_NET_BACKOFF_H
#define UD_NET_BACKOFF_H

#include <stddef.h>
#include <stdint.h>

#define BACKOFF_FREE 5 /* failures in a row before any delay */

struct backoff;

/* A table for delays of base_ms doubling up to max_ms (max_ms < base_ms
 * is taken as base_ms).  NULL when out of memory. */
struct backoff *backoff_new(unsigned base_ms, unsigned max_ms);
/* NULL is a no-op. */
void backoff_free(struct backoff *b);

/* A verification of user id (n bytes) arrives at now_ms (monotonic):
 * the milliseconds it must wait before it starts, 0 for none.  A non-zero
 * answer reserves its start, so the next attempt of the same user queues
 * behind it.  b may be NULL (0). */
uint64_t backoff_delay(struct backoff *b, const char *id, size_t n,
		       uint64_t now_ms);
/* A verification of an existing user failed: one more in a row.  0 or
 * UD_ENOMEM (then nothing is counted).  b may be NULL. */
int backoff_failed(struct backoff *b, const char *id, size_t n);
/* Success, password change or deletion: forget the user.  b may be NULL. */
void backoff_forget(struct backoff *b, const char *id, size_t n);
/* Users with failures counted (0 for NULL). */
size_t backoff_users(const struct backoff *b);
/* Consecutive failures counted for id (0 when none). */
unsigned backoff_failures(const struct backoff *b, const char *id, size_t n);

#endif
