/*
 * userdb.h -- the public interface of the userdb engine.
 *
 * userdb keeps user records in memory: a primary hash table on the id, a
 * unique case-insensitive index on the email address, and role and status
 * indexes that count any filter combination in O(1) and reach a deep page in
 * O(log n).  The same engine runs inside userdb-server and links into a C
 * program as a library (libuserdb): open a store in memory or on a data
 * directory, call the operations that the RPC methods expose, iterate.
 *
 * Threads.  A ud_db is owned by one thread at a time; no function here locks.
 * The only functions that may be called from any thread concurrently are the
 * pure ones marked "thread-safe" (password hashing, parsing helpers).  The
 * server runs the slow Argon2id work on worker threads with those and applies
 * the result on the owning thread.
 *
 * Lifetimes.  A `const ud_user *` and every pointer read out of it with
 * ud_user_view() are borrowed from the store: they stay valid until the next
 * call that mutates the store (create, update, delete, password, suspension,
 * identity, a get that loads on a cache miss, eviction) or ud_close().
 *
 * Errors.  Fallible functions return 0 or a negative enum ud_code and, when
 * given a struct ud_error, fill it with the code, the offending field name
 * (a static string, or NULL) and a human-readable message.
 */
#ifndef USERDB_H
#define USERDB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Exports.  libuserdb.so is built with hidden visibility: what this header
 * declares, and nothing else, is its interface.  The push/pop pair below
 * (GCC and Clang) is the export marker for every declaration in between,
 * so a function added here is exported without a per-line macro, and one
 * declared only in an internal header stays out of the shared library. */
#if defined(__GNUC__) && !defined(UD_NO_VISIBILITY)
#pragma GCC visibility push(default)
#endif

/* ---- errors ------------------------------------------------------------ */

/* One code space for the whole project.  ud_code_name() gives the wire name
 * used by both protocols, ud_code_http_status() the HTTP status. */
enum ud_code {
	UD_OK = 0,
	UD_EINVAL = -1,	       /* invalid_request      400 */
	UD_EUNAUTHORIZED = -2, /* unauthorized         401 */
	UD_ENOTFOUND = -3,     /* not_found            404 */
	UD_EMETHOD = -4,       /* method_not_allowed   405 */
	UD_EDUPEMAIL = -5,     /* duplicate_email      409 */
	UD_EDUPID = -6,	       /* duplicate_id         409 */
	UD_EPRECONDITION = -7, /* precondition_failed  412 */
	UD_ETOOLARGE = -8,     /* payload_too_large    413 */
	UD_EUNAVAILABLE = -9,  /* unavailable          503 */
	UD_ENOMEM = -10,       /* internal_error       500 */
	UD_EIO = -11, /* internal_error       500: a file operation failed */
	UD_ECORRUPT =
	    -12,	  /* internal_error       500: a data file is damaged */
	UD_ELOCKED = -13, /* internal_error       500: data dir used by another
			     process */
	UD_EINTERNAL = -14,  /* internal_error       500 */
	UD_EGONE = -15,	     /* gone                 410: a change stream
				    resumed from before what is retained */
	UD_EFORBIDDEN = -16, /* forbidden            403: the key's scope */
};

struct ud_error {
	int code;	   /* enum ud_code */
	const char *field; /* static field name at fault, or NULL */
	char message[192];
};

/* Wire name of a code ("invalid_request", ...); never NULL. */
const char *ud_code_name(int code);
/* HTTP status for a code (400, 401, ...; 200 for UD_OK). */
int ud_code_http_status(int code);
/* Fill err (if non-NULL) and return code.  printf-style message. */
int ud_error_set(struct ud_error *err, int code, const char *field,
		 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* ---- limits from SPEC §1 ----------------------------------------------- */

#define UD_ID_GEN_LEN	  20  /* "usr_" + 16 of [0-9a-z] */
#define UD_ID_MAX	  64  /* "usr_" + at most 60 */
#define UD_NAME_MAX_CP	  128 /* code points */
#define UD_NAME_MAX_BYTES 512 /* 128 code points of at most 4 bytes */
#define UD_EMAIL_MAX	  254
#define UD_AVATAR_MAX	  2048
#define UD_CUSTOM_MAX	  8192 /* encoded bytes (msgpack and JSON both) */
#define UD_PASSWORD_MIN	  8
#define UD_PASSWORD_MAX	  256
#define UD_PWHASH_MAX	  128 /* encoded Argon2 string incl. NUL */
#define UD_LIMIT_MAX	  100 /* page size */
#define UD_LOG_KEEP	  100 /* events kept per user, at least */
#define UD_GET_MANY_MAX	  1000
#define UD_TARGET_MAX	  64	    /* identity target name */
#define UD_IDENTITIES_MAX (1 << 20) /* a user's identities, msgpack bytes */

enum ud_role { UD_ROLE_ADMIN = 0, UD_ROLE_USER = 1, UD_ROLE_VIEWER = 2 };
enum ud_status {
	UD_STATUS_ACTIVE = 0,
	UD_STATUS_INACTIVE = 1,
	UD_STATUS_SUSPENDED = 2
};
#define UD_ROLES    3
#define UD_STATUSES 3

const char *ud_role_name(int role); /* "admin", ...; NULL if out of range */
const char *
ud_status_name(int status); /* "active", ...; NULL if out of range */
/* Parse a role/status name (exact, lower case).  Returns the enum value or
 * -1 if the string names none. */
int ud_role_parse(const char *s, size_t len);
int ud_status_parse(const char *s, size_t len);

/* ---- growable byte buffer used by the writers --------------------------- */

struct ud_buf {
	char *data;
	size_t len;
	size_t cap;
};
/* Make room for `more` bytes; returns 0 or UD_ENOMEM. */
int ud_buf_reserve(struct ud_buf *b, size_t more);
int ud_buf_append(struct ud_buf *b, const void *p, size_t n);
void ud_buf_free(struct ud_buf *b);

/* ---- the store ---------------------------------------------------------- */

typedef struct ud_db ud_db;
typedef struct ud_user ud_user;

enum ud_fsync { UD_FSYNC_EVERYSEC = 0, UD_FSYNC_ALWAYS = 1, UD_FSYNC_NO = 2 };

/* Identifies the key a cache loader is asked for. */
enum ud_key_kind { UD_KEY_ID = 0, UD_KEY_EMAIL = 1 };

struct ud_fields;

/* Cache loader: asked on a miss in ud_user_get()/ud_user_get_by_email().
 * Fill *out (strings may point into the loader's own memory; they are copied
 * before the loader is called again) and return 0, or return UD_ENOTFOUND.
 * out->id must be set (the loaded user keeps that id).  Any other negative
 * code is passed to the caller of the get as a miss. */
typedef int (*ud_loader_fn)(void *ctx, enum ud_key_kind kind, const char *key,
			    size_t key_len, struct ud_fields *out);

struct ud_options {
	const char *data_dir; /* NULL: memory only, nothing written */
	enum ud_fsync fsync;  /* default UD_FSYNC_EVERYSEC */
	unsigned
	    snapshot_interval; /* seconds, 0 = only on demand; default 300 */
	size_t max_users;      /* cache bound, 0 = none; memory only */
	size_t max_bytes;      /* cache bound on record bytes, 0 = none */
	ud_loader_fn loader;   /* optional, asked on a miss */
	void *loader_ctx;
	unsigned log_keep; /* events kept per user, >= 100; 0 = 100 */
	size_t
	    log_deleted_max; /* deleted users whose logs are kept; 0 = 100000 */
	/* Argon2id cost; 0 = libsodium's INTERACTIVE limits. */
	unsigned long long pw_opslimit;
	size_t pw_memlimit;
	/* Log records kept on disk past the snapshot that covers them, so the
	 * change stream can resume across a restart (persistence/retain.h);
	 * 0 = none (covered segments are removed). */
	uint64_t changes_keep;
};
/* Defaults as above (memory only). */
extern const struct ud_options ud_options_default;

/* Open a store.  With a data_dir, takes its lock, loads the newest snapshot,
 * replays the log and journals every mutation from then on; see
 * persistence/.  Returns 0 and *out, or a negative code (UD_ELOCKED when
 * another process holds the data dir, UD_ECORRUPT with the file and offset
 * in err->message, UD_EINVAL for a data_dir with a cache bound: evictions
 * are not journaled, so a bounded store is memory only). */
int ud_open(const struct ud_options *opt, ud_db **out, struct ud_error *err);
/* Flush and fsync the log, release the lock, free everything. */
void ud_close(ud_db *db);
/* What ud_open() repaired or worked around on a data dir (a torn log tail
 * cut off, a damaged snapshot skipped, unfinished files removed): lines
 * separated by '\n', "" when none.  For the caller to log; valid until
 * ud_close(). */
const char *ud_open_warnings(ud_db *db);

/* ---- input: the fields of a create or update ---------------------------- */

enum ud_field_bit {
	UD_F_ID = 1u << 0,
	UD_F_NAME = 1u << 1,
	UD_F_EMAIL = 1u << 2,
	UD_F_ROLE = 1u << 3,
	UD_F_STATUS = 1u << 4,
	UD_F_AVATAR = 1u << 5,	      /* avatar == NULL means null (clear it) */
	UD_F_CUSTOM_DATA = 1u << 6,   /* msgpack map bytes */
	UD_F_PASSWORD = 1u << 7,      /* plain text; hashed before storing */
	UD_F_PASSWORD_HASH = 1u << 8, /* encoded $argon2id$ / $argon2i$ */
};

/* Borrowed views of the input; nothing is kept after the call returns. */
struct ud_fields {
	unsigned set; /* UD_F_* bits present */
	const char *id;
	size_t id_len;
	const char *name;
	size_t name_len;
	const char *email;
	size_t email_len;
	const char *role;
	size_t role_len;
	const char *status;
	size_t status_len;
	const char *avatar;
	size_t avatar_len;
	const void *custom_data; /* msgpack-encoded map */
	size_t custom_data_len;
	const char *password;
	size_t password_len;
	const char *password_hash;
	size_t password_hash_len;
};

/* Scratch memory that owns what the parsers below produce (converted
 * custom_data, unescaped strings).  Zero-initialise; free with ud_arena_free.
 */
struct ud_arena {
	struct ud_arena_block *head;
};
void *ud_arena_alloc(struct ud_arena *a, size_t n);
void ud_arena_free(struct ud_arena *a);

/* Parse a JSON request body (a create when for_create, else an update) into
 * fields.  Strict: valid UTF-8, no duplicate keys, bounded nesting, known
 * keys only, right types.  custom_data is converted to msgpack in arena.
 * Returns 0 or UD_EINVAL with err->field.  Thread-safe. */
int ud_fields_from_json(const char *body, size_t len, bool for_create,
			struct ud_fields *out, struct ud_arena *arena,
			struct ud_error *err);
/* The same from a msgpack map (RPC params); strings may point into `mp`. */
int ud_fields_from_msgpack(const void *mp, size_t len, bool for_create,
			   struct ud_fields *out, struct ud_arena *arena,
			   struct ud_error *err);

/* Check every rule of SPEC §1 on fields without touching the store
 * (uniqueness is not checked).  Thread-safe. */
int ud_fields_validate(const struct ud_fields *f, bool for_create,
		       struct ud_error *err);

/* ---- reading a user ----------------------------------------------------- */

/* Every field of a user, borrowed (see Lifetimes above).  Strings are not
 * NUL-terminated; use the lengths. */
struct ud_user_view {
	const char *id;
	size_t id_len;
	const char *name;
	size_t name_len;
	const char *email;
	size_t email_len;
	int role;	    /* enum ud_role */
	int status;	    /* enum ud_status */
	const char *avatar; /* NULL when none */
	size_t avatar_len;
	const void *custom_data; /* msgpack map, never NULL (at least {}) */
	size_t custom_data_len;
	const void *identities; /* msgpack map target -> {user_id, details} */
	size_t identities_len;
	bool has_password;
	int64_t created_ms; /* Unix ms */
	int64_t updated_ms;
	int64_t last_sign_in_ms; /* -1 when never */
	uint64_t etag;		 /* changes on every change of this user */
};
void ud_user_view(const ud_user *u, struct ud_user_view *out);

/* Encoders of the full public user object (SPEC §1 keys, times as RFC 3339
 * strings, password never).  Append to b; return 0 or UD_ENOMEM. */
int ud_user_write_json(const ud_user *u, struct ud_buf *b);
int ud_user_write_msgpack(const ud_user *u, struct ud_buf *b);

/* Format Unix ms as RFC 3339 UTC ("2025-01-20T15:00:00.123Z"); out must hold
 * 32 bytes; returns the length.  Thread-safe. */
size_t ud_time_format(int64_t ms, char *out);

/* ---- operations (the RPC methods) --------------------------------------- */

/* Lookups return NULL when absent.  In cache mode a miss asks the loader. */
const ud_user *ud_user_get(ud_db *db, const char *id, size_t len);
const ud_user *ud_user_get_by_email(ud_db *db, const char *email, size_t len);
/* A lookup a server is about to make: ud_user_get (UD_KEY_ID) or
 * ud_user_get_by_email (UD_KEY_EMAIL) of key. */
struct ud_lookup {
	enum ud_key_kind kind;
	const char *key;
	size_t len;
};
/* A hint that these n lookups follow soon, for a server holding several
 * requests at once: starts loading every key's index slot, then every
 * user's record, so that their cache misses overlap instead of adding up.
 * Changes nothing; never asks the loader. */
void ud_user_prefetch(ud_db *db, const struct ud_lookup *keys, size_t n);

/* The actor of every later mutation, until changed: each activity event it
 * makes carries {"actor": name} in its details (name copied, at most 255
 * bytes, else UD_EINVAL), journaled and replayed with the event; the
 * implicit user.created event keeps it too.  NULL clears it (events then
 * have no actor).  A server sets it to the requesting key's name before
 * each request.  0, UD_EINVAL or UD_ENOMEM (then no actor is set). */
int ud_set_actor(ud_db *db, const char *name, size_t len);
/* The current actor (borrowed until the next ud_set_actor), or NULL with
 * *len 0 when none is set. */
const char *ud_actor(const ud_db *db, size_t *len);

/* Create a user.  With UD_F_PASSWORD the password is hashed here, on the
 * calling thread (slow); the server instead hashes on a worker with
 * ud_password_hash() and passes UD_F_PASSWORD_HASH.  *out may be NULL. */
int ud_user_create(ud_db *db, const struct ud_fields *f, const ud_user **out,
		   struct ud_error *err);
/* Update some fields (UD_F_ID and passwords are refused: UD_EINVAL).
 * if_match: 0 = unconditional, else the etag the caller read; a mismatch is
 * UD_EPRECONDITION. */
int ud_user_update(ud_db *db, const char *id, size_t len,
		   const struct ud_fields *f, uint64_t if_match,
		   const ud_user **out, struct ud_error *err);
int ud_user_delete(ud_db *db, const char *id, size_t len, uint64_t if_match,
		   struct ud_error *err);

/* Passwords.  Synchronous forms hash/verify on the calling thread. */
int ud_user_set_password(ud_db *db, const char *id, size_t len, const char *pw,
			 size_t pw_len, const ud_user **out,
			 struct ud_error *err);
int ud_user_verify_password(ud_db *db, const char *id, size_t len,
			    const char *pw, size_t pw_len, bool *valid,
			    struct ud_error *err);
/* Split forms for off-thread work.  set_password_hash stores an encoded hash
 * (validated) and logs user.password_changed. */
int ud_user_set_password_hash(ud_db *db, const char *id, size_t len,
			      const char *hash, size_t hash_len,
			      const ud_user **out, struct ud_error *err);
/* Copy the user's encoded hash into out (NUL-terminated, "" when the user
 * has no password).  UD_ENOTFOUND when no such user. */
int ud_user_password_hash_copy(ud_db *db, const char *id, size_t len,
			       char out[UD_PWHASH_MAX]);
/* Record the outcome of a verification done elsewhere: logs
 * user.password_verified {"valid": valid}; a success sets last_sign_in_at. */
int ud_user_record_verify(ud_db *db, const char *id, size_t len, bool valid,
			  struct ud_error *err);

/* Thread-safe Argon2id helpers.  ud_password_hash validates the length
 * (8..256 bytes) and writes an encoded string.  ud_password_verify returns
 * 1 valid, 0 invalid; with hash == NULL or "" it verifies against a decoy so
 * that the time taken does not reveal whether a password is set, and
 * returns 0.  Costs from opt (NULL = INTERACTIVE). */
int ud_password_hash(const struct ud_options *opt, const char *pw,
		     size_t pw_len, char out[UD_PWHASH_MAX],
		     struct ud_error *err);
int ud_password_verify(const char *hash, const char *pw, size_t pw_len);
/* A decoy for a store whose hashes are made with opt's cost (NULL =
 * INTERACTIVE): the Argon2id hash of a random password.  Verify against it,
 * and answer "invalid", when a user has no password, so that rejecting such
 * a user costs what rejecting a wrong password costs.  0 or a negative code.
 * Thread-safe. */
int ud_password_decoy(const struct ud_options *opt, char out[UD_PWHASH_MAX],
		      struct ud_error *err);

int ud_user_set_suspended(ud_db *db, const char *id, size_t len, bool suspended,
			  const ud_user **out, struct ud_error *err);
/* details: msgpack map (NULL/0 = {}). */
int ud_user_link_identity(ud_db *db, const char *id, size_t len,
			  const char *target, size_t target_len,
			  const char *ext_user_id, size_t ext_user_id_len,
			  const void *details, size_t details_len,
			  const ud_user **out, struct ud_error *err);
int ud_user_unlink_identity(ud_db *db, const char *id, size_t len,
			    const char *target, size_t target_len,
			    const ud_user **out, struct ud_error *err);

/* ---- lists -------------------------------------------------------------- */

struct ud_query {
	unsigned page;	   /* >= 1; default 1 */
	unsigned limit;	   /* 1..100; default 20 */
	int role;	   /* enum ud_role, or -1 for any */
	int status;	   /* enum ud_status, or -1 for any */
	const char *email; /* exact, case-insensitive; NULL = any */
	size_t email_len;
	const char *search; /* substring of name or email, case-insensitive */
	size_t search_len;
	bool asc; /* false: newest first (default) */
};
/* Default query: page 1, limit 20, no filter, newest first. */
void ud_query_init(struct ud_query *q);
/* Set one query parameter from its string form (HTTP query, RPC map).
 * Unknown keys and out-of-range values are UD_EINVAL with err->field = key.
 * String values are borrowed. */
int ud_query_set(struct ud_query *q, const char *key, size_t key_len,
		 const char *val, size_t val_len, struct ud_error *err);

struct ud_page {
	const ud_user *items[UD_LIMIT_MAX];
	unsigned count;
	uint64_t total; /* all matches, not just this page */
	unsigned page, limit;
	uint64_t pages; /* ceil(total / limit) */
};
int ud_user_list(ud_db *db, const struct ud_query *q, struct ud_page *out,
		 struct ud_error *err);
/* A number that changes whenever any user is created, changed, deleted,
 * evicted or loaded: an answer computed from the users stays right while
 * it holds still. */
uint64_t ud_generation(const ud_db *db);

/* Call fn for every user in creation order; a non-zero return stops the
 * walk and is returned.  The store must not be mutated during the walk. */
int ud_user_foreach(ud_db *db, int (*fn)(const ud_user *u, void *ctx),
		    void *ctx);

/* ---- activity log ------------------------------------------------------- */

enum ud_event {
	UD_EV_CREATED = 0,
	UD_EV_UPDATED,
	UD_EV_DELETED,
	UD_EV_PASSWORD_CHANGED,
	UD_EV_PASSWORD_VERIFIED,
	UD_EV_SUSPENDED,
	UD_EV_UNSUSPENDED,
	UD_EV_IDENTITY_LINKED,
	UD_EV_IDENTITY_REMOVED,
	UD_EV__COUNT
};
const char *ud_event_name(int ev); /* "user.created", ... */

struct ud_log_view {
	uint64_t id; /* global event sequence; written as "log_" + 16 hex */
	const char *user_id;
	size_t user_id_len;
	int event; /* enum ud_event */
	int64_t created_ms;
	const void *details; /* msgpack map, never NULL */
	size_t details_len;
};
struct ud_log_page {
	struct ud_log_view items[UD_LIMIT_MAX];
	unsigned count;
	uint64_t total;
	unsigned page, limit;
	uint64_t pages;
};
/* A user's events, newest first.  Works for deleted users while their log
 * is kept.  A well-formed id nobody has gives an empty page (total 0); one
 * that can be no user's id is UD_EINVAL (field "user_id"). */
int ud_log_list(ud_db *db, const char *user_id, size_t len, unsigned page,
		unsigned limit, struct ud_log_page *out, struct ud_error *err);
int ud_log_write_json(const struct ud_log_view *e, struct ud_buf *b);
int ud_log_write_msgpack(const struct ud_log_view *e, struct ud_buf *b);

/* ---- persistence control (no-ops without a data dir) -------------------- */

/* Write the mutations journaled since the last flush to the log with one
 * write(2) (and fdatasync in UD_FSYNC_ALWAYS).  The server calls it once per
 * event-loop iteration before any reply leaves.  UD_EUNAVAILABLE while the
 * log cannot be written: writes are then refused until it can. */
int ud_flush(ud_db *db);
/* ud_flush() for an event loop: in UD_FSYNC_ALWAYS the write(2) is made
 * but the fdatasync is left to the log's syncer thread, so the caller can
 * go on answering reads; a reply that reports a write waits until
 * ud_durable_seq() reaches the ud_log_seq() taken after the write.  In the
 * other modes the same as ud_flush(). */
int ud_flush_async(ud_db *db);
/* The seq of the last log record journaled (written yet or not); 0
 * without a data dir. */
uint64_t ud_log_seq(ud_db *db);
/* The last log record as durable as the fsync mode promises (always:
 * fdatasynced; everysec, no: written); UINT64_MAX without a data dir. */
uint64_t ud_durable_seq(ud_db *db);
/* An fd that becomes readable when ud_durable_seq() may have grown (read
 * 8 bytes to clear it; owned by the store); -1 when it never grows on its
 * own (every mode but UD_FSYNC_ALWAYS). */
int ud_durable_fd(ud_db *db);
/* Start a snapshot in the background (fork).  Returns 0 when started or
 * already running.  ud_tick() reaps it and runs timed work (everysec fsync
 * bookkeeping, periodic snapshots); call it about every 100 ms. */
int ud_snapshot_start(ud_db *db, struct ud_error *err);
/* Write a snapshot and wait for it: ud_snapshot_start(), then block until
 * the writer is done (the server does not call it: it starts one and polls
 * ud_snapshot_done() from its tick).  0, or the writer's failure. */
int ud_snapshot_sync(ud_db *db, struct ud_error *err);
/* Completed-snapshot counter: grows by one each time a snapshot is on disk. */
uint64_t ud_snapshot_done(ud_db *db);
void ud_tick(ud_db *db);
/* True while writes are refused because the disk failed. */
bool ud_unavailable(ud_db *db);

/* ---- statistics --------------------------------------------------------- */

struct ud_stats {
	uint64_t users;
	uint64_t by_role_status[UD_ROLES][UD_STATUSES];
	uint64_t record_bytes; /* bytes of user records */
	uint64_t log_events;   /* activity log entries held */
	uint64_t evictions;    /* cache mode */
	uint64_t cache_hits, cache_misses, loads;
	/* loader answers refused: an error other than UD_ENOTFOUND, data that
	 * fails validation or does not answer the key, a taken id or email */
	uint64_t load_failures;
	uint64_t failed_verifies;
	/* persistence */
	uint64_t log_bytes;	    /* bytes in the live log segments */
	uint64_t log_records;	    /* records written since start */
	uint64_t log_seq;	    /* last sequence number */
	uint64_t snapshots;	    /* completed since start */
	uint64_t snapshot_failures; /* failed to start or finish, since start */
	int64_t last_snapshot_ms;   /* -1 never */
	uint64_t last_snapshot_bytes;
	bool snapshot_running;
	bool unavailable;
};
void ud_stats(ud_db *db, struct ud_stats *out);

#if defined(__GNUC__) && !defined(UD_NO_VISIBILITY)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif
#endif /* USERDB_H */
