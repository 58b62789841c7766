/*
 * pgcache_int.h -- the connector's handle, shared by its files (internal;
 * the public contract and the coherence rules are in userdb_pg.h).
 *
 * Files: pgcache.c opens, reads through and follows the feed;
 * pgcache_write.c sends writes through; negcache.c keeps negative entries.
 *
 * Feed states (pgcache.c performs every transition in ud_pg_process()):
 *
 *   FEED_STREAMING --(socket closed, stream error)--> feed_lost():
 *       PostgreSQL answers a probe: cache emptied  -> FEED_DOWN
 *       it does not: pg_down, cache kept           -> FEED_DOWN
 *   FEED_DOWN --(back-off elapsed; temporary slot created, streaming
 *       started: cache emptied, epoch moves)--> FEED_STREAMING
 *   FEED_DOWN --(that failed: back-off doubles, 100 ms .. 2 s)--> FEED_DOWN
 *
 * Invariants.
 *  1. Every user in db was loaded, written or updated while the feed was
 *     streaming within the current epoch, so every later commit touching
 *     it reaches feed_change() (rule 2 of userdb_pg.h).
 *  2. No negative entry names a user in db.
 *  3. scratch holds at most the one user that the last call returned
 *     without keeping it.
 */
#ifndef UD_PGCACHE_INT_H
#define UD_PGCACHE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "negcache.h"
#include "pg_repl.h"
#include "userdb_pg.h"

enum feed_state { FEED_DOWN, FEED_STREAMING };

/* Keys a miss in flight must not keep its row after (placeholders): each
 * change the feed brings while the miss waits is noted with its key hash
 * and version (UINT64_MAX for a delete); a loaded row older than a change
 * of its id or email, or an absence that a change contradicts, is not
 * kept. */
#define PH_KEYS 16
struct placeholder {
	bool active, raced;
	uint64_t epoch; /* c->epoch when the miss began */
	unsigned n;	/* touched keys seen since (raced past PH_KEYS) */
	uint64_t touched[PH_KEYS], version[PH_KEYS];
};

struct ud_pg {
	struct ud_pg_options opt;
	char *conninfo;
	struct ud_options dbopt;
	ud_db *db;	/* the cache */
	ud_db *scratch; /* a user returned but not kept (invariant 3) */
	ud_db *writing; /* the store the running write goes to */
	struct neg neg;
	/* the query connection: misses and writes, blocking */
	PGconn *q;
	int64_t q_next_try_ms, q_backoff_ms;
	/* the feed */
	struct pg_repl *repl;
	enum feed_state feed;
	uint64_t epoch; /* moves on every feed (re)start and emptying */
	int64_t feed_next_try_ms, feed_backoff_ms;
	bool ever_streamed;
	unsigned slot_serial; /* feed connections tried (slot names) */
	struct placeholder ph;
	/* the verdict on the last write statement (pgcache_write.c) */
	int jcode;
	char jmsg[160];
	struct ud_pg_stats st;
	uint64_t evictions_before; /* of stores emptied */
	char error[256];
	/* activity pages */
	struct ud_buf log_buf;
	char log_uid[UD_ID_MAX];
	/* the helper thread */
	pthread_mutex_t mu;
	pthread_t thread;
	bool thread_on;
	atomic_bool stop;
};

int64_t pgc_now_ms(void);
void pgc_set_error(ud_pg *c, const char *what, const char *msg);
/* A usable query connection (reconnecting with back-off).  0 or
 * UD_EUNAVAILABLE with err. */
int pgc_query_conn(ud_pg *c, struct ud_error *err);
/* The query connection failed: drop it so the next use reconnects. */
void pgc_query_broken(ud_pg *c);
/* Is the feed streaming (so what is loaded or written now may be kept)? */
bool pgc_keeping(const ud_pg *c);
/* Empty scratch and make it the target of a one-off.  0 or UD_ENOMEM. */
int pgc_scratch_reset(ud_pg *c);
/* Take user id out of the cache (no event; not a delete). */
void pgc_evict(ud_pg *c, const char *id, size_t len);
/* Read-through lookup into c->db (or scratch); NULL with err. */
const ud_user *pgc_lookup(ud_pg *c, enum ud_key_kind kind, const char *key,
			  size_t len, struct ud_error *err);

#endif
