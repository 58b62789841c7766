/*
 * actor.h -- who caused a change: the actor recorded in activity events.
 *
 * ud_set_actor() names the actor of every later mutation until changed.
 * The engine records it as one more key of the event's details map,
 * {"actor": NAME}, added in db_commit() before the change is encoded, so
 * the log and every replay carry it like any other detail and nothing
 * downstream needs to know where it came from.
 *
 * The implicit user.created event (actlog.h: a user with no other event
 * has no log entry) must not cost a log per user just to hold its actor.
 * So the store keeps runs: "users created from seq S on, until the next
 * run, were created by the actor whose details are D".  Actors change
 * rarely (one per API key), so a million creates by one service are one
 * run.  Invariants:
 *   1. runs are in increasing first_seq order; consecutive runs differ in
 *      their details (a create under the same actor extends the last run);
 *   2. names[] holds each distinct details map once; a run's name is an
 *      index into it, NONE for events without an actor.
 * A dump writes the runs as one CH_ACTORS record after the counters
 * (db.h); applying it replaces the runs.  Runs are only ever appended
 * while live, so a replayed log rebuilds them as they were.
 *
 * Threads: the store's owner thread; actor_created_details() only reads.
 */
#ifndef UD_ACTOR_H
#define UD_ACTOR_H

#include <stddef.h>
#include <stdint.h>

#include "userdb.h"

#define ACTOR_NAME_MAX 255
#define ACTOR_NONE     UINT32_MAX

struct actor_run {
	uint64_t first_seq;
	uint32_t name; /* index in names, or ACTOR_NONE */
};

struct actors {
	struct ud_buf cur;    /* {"actor": name} of ud_set_actor, len 0: none */
	struct ud_buf merged; /* scratch: event details with the actor added */
	struct ud_buf *names; /* distinct details maps of created events */
	uint32_t n_names, cap_names;
	struct actor_run *runs;
	size_t n_runs, cap_runs;
};

void actors_destroy(struct actors *a);
/* The details of an event made now: d with the current actor added (into
 * a->merged; valid until the next call), or d itself when no actor is set
 * or d is not a map that can take a key.  0 or UD_ENOMEM. */
int actors_merge(struct actors *a, const void **d, size_t *len);
/* A created event of seq with these details became implicit: note its
 * actor.  0 or UD_ENOMEM. */
int actors_note_created(struct actors *a, uint64_t seq, const void *d,
			size_t len);
/* The details of the implicit created event of the user with this seq
 * ("\x80", {}, without an actor).  Borrowed until the next change. */
const void *actors_created_details(const struct actors *a, uint64_t seq,
				   size_t *len);
/* Forget every run (a CH_ACTORS record then notes its runs again). */
void actors_reset(struct actors *a);

#endif
