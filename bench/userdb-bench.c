/*
 * userdb-bench.c -- a closed-loop load generator for userdb, Redis and
 * Tarantool, speaking each one's own wire protocol.
 *
 * One run = one workload against one server.  C connections (split over T
 * threads, each with its own epoll loop) each keep P operations in flight
 * ("slots"); when an operation completes its slot starts the next one at once,
 * so the server always sees P outstanding requests per connection.  All three
 * protocols get the same connection count, pipeline depth, key distribution
 * (uniform over the loaded users, seeded) and data (user_fill() below), so
 * the figures are comparable.  Latency is measured per operation from the
 * moment its first request is queued to the moment its last reply is parsed,
 * and kept in a log-linear histogram (1/64 relative resolution).
 *
 * Wire formats, all hand-written here, no client libraries:
 *   userdb     MessagePack-RPC [0, msgid, method, params] -> [1, msgid, err,
 *              result]; msgid = (seq << 16) | slot, so replies may come back
 *              in any order.
 *   Redis      RESP arrays of bulk strings; replies are in request order, so a
 *              ring of slot numbers maps each reply to its operation.
 *   Tarantool  IPROTO: a 128-byte greeting (guest, no auth), then
 *              0xce + be32 length, header map {0: type, 1: sync}, body map;
 *              replies carry the sync, which is (seq << 16) | slot.
 *
 * Some operations are several requests: get_many on Redis and Tarantool is 10
 * lookups written back to back (one round trip), a load on Redis is five
 * commands, and Redis get_by_email in --email-mode 2rt is GET then HGETALL
 * (two round trips).  A slot completes when its last expected reply arrives.
 *
 * Output: one JSON object on stdout (see report_print()).  Diagnostics and the
 * first error reply go to stderr.
 *
 * The Redis data model is the one a Redis user would write: a hash per user
 * (user:{id}), email:{email} -> id, sets role:{role} and status:{status}, and
 * a sorted set rs:{role}:{status} scored by creation order for paging.  The
 * Tarantool schema is in bench/tarantool_init.lua (space 512).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <openssl/ssl.h>

/* ---- options ------------------------------------------------------------ */

enum proto { PROTO_USERDB, PROTO_REDIS, PROTO_TARANTOOL };

enum op {
	OP_LOAD,
	OP_GET_BY_ID,
	OP_GET_BY_EMAIL,
	OP_GET_MANY,
	OP_LIST_FIRST,
	OP_LIST_DEEP,
	OP_SEARCH,
	OP_CREATE,
	OP_UPDATE,
	OP_MIX,
	OP_PING,
	OP_SNAPSHOT,
	OP_WAIT,
	OP_IDS,
	OP_CPU,
};

static const char *const op_names[] = {
    "load",	 "get_by_id", "get_by_email", "get_many", "list_first",
    "list_deep", "search",    "create",	      "update",	  "mix",
    "ping",	 "snapshot",  "wait",	      "ids",	  "cpu",
};
static const char *const proto_names[] = {"userdb", "redis", "tarantool"};

struct opts {
	enum proto proto;
	enum op op;
	const char *host;
	int port;
	const char *api_key;
	int tls;	   /* --tls: userdb over TLS (no certificate check) */
	long users;	   /* users loaded: keys are drawn from [0, users) */
	long create_base;  /* first index used by create */
	int conns;	   /* connections in total */
	int pipeline;	   /* operations in flight per connection */
	int threads;	   /* event loops */
	double duration;   /* seconds measured */
	double warmup;	   /* seconds run before measuring */
	double timeout;	   /* wait: give up after this many seconds */
	uint64_t seed;	   /* key distribution */
	int email_two_rtt; /* Redis get_by_email: GET + HGETALL, not EVALSHA */
	int list_two_rtt;  /* Redis lists: ZREVRANGE, then HGETALLs */
	int many;	   /* ids per get_many */
	int limit;	   /* page size for list and search */
	int write_pct;	   /* mix: percentage of updates */
	int show;	   /* one request of --op, print its reply */
	int hashes;	   /* users carry an Argon2id password_hash */
	int server_pid;	   /* measure this process's CPU (0: none) */
	int tree_pid;	   /* also this process and its children (postgres) */
	double rate;	   /* operations started per second in all (0: closed
			      loop) */
	int probe_port;	   /* lag probe: create on --port, poll this one */
};

#define GET_MANY_MAX 64
#define TNT_SPACE    512
#define TNT_IDX_ID   0
#define TNT_IDX_MAIL 1
#define TNT_IDX_RS   4

/* ---- clocks and random numbers ------------------------------------------ */

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rng_below(uint64_t *state, uint64_t n)
{
	return n ? splitmix64(state) % n : 0;
}

/* ---- latency histogram -------------------------------------------------- */

/* Log-linear buckets: values below 128 ns are exact; above, each power of two
 * is cut into 64 buckets, so a bucket is at most 1/64 of its value wide. */
#define HIST_SUB_BITS 7
#define HIST_HALF     (1u << (HIST_SUB_BITS - 1))
#define HIST_BUCKETS  (64 * HIST_HALF + 2 * HIST_HALF)

struct hist {
	uint64_t count[HIST_BUCKETS];
	uint64_t total;
	uint64_t max;
};

static unsigned hist_index(uint64_t v)
{
	if (v < 2 * HIST_HALF)
		return (unsigned)v;
	unsigned msb = 63u - (unsigned)__builtin_clzll(v);
	unsigned e = msb - HIST_SUB_BITS + 1;
	return e * HIST_HALF + (unsigned)(v >> e);
}

/* Middle of bucket i: the value reported for samples in it. */
static uint64_t hist_value(unsigned i)
{
	if (i < 2 * HIST_HALF)
		return i;
	unsigned e = i / HIST_HALF - 1;
	uint64_t m = i % HIST_HALF + HIST_HALF;
	return (m << e) + ((1ull << e) >> 1);
}

static void hist_add(struct hist *h, uint64_t v)
{
	h->count[hist_index(v)]++;
	h->total++;
	if (v > h->max)
		h->max = v;
}

static void hist_merge(struct hist *into, const struct hist *from)
{
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		into->count[i] += from->count[i];
	into->total += from->total;
	if (from->max > into->max)
		into->max = from->max;
}

/* Value at quantile q (0..1), in ns; 0 when empty. */
static uint64_t hist_quantile(const struct hist *h, double q)
{
	if (!h->total)
		return 0;
	uint64_t rank = (uint64_t)(q * (double)h->total);
	if (rank >= h->total)
		rank = h->total - 1;
	uint64_t seen = 0;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->count[i];
		if (seen > rank)
			return hist_value(i) < h->max ? hist_value(i) : h->max;
	}
	return h->max;
}

/* ---- growable byte buffer ----------------------------------------------- */

struct buf {
	uint8_t *p;
	size_t len, cap;
};

static void buf_reserve(struct buf *b, size_t n)
{
	if (b->len + n <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->len + n)
		cap *= 2;
	b->p = realloc(b->p, cap);
	if (!b->p) {
		perror("realloc");
		exit(2);
	}
	b->cap = cap;
}

static void buf_put(struct buf *b, const void *s, size_t n)
{
	buf_reserve(b, n);
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

static void buf_byte(struct buf *b, uint8_t c)
{
	buf_reserve(b, 1);
	b->p[b->len++] = c;
}

static void buf_be(struct buf *b, uint64_t v, int bytes)
{
	buf_reserve(b, (size_t)bytes);
	for (int i = bytes - 1; i >= 0; i--)
		b->p[b->len++] = (uint8_t)(v >> (8 * i));
}

/* Drop the first n bytes. */
static void buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
		return;
	}
	memmove(b->p, b->p + n, b->len - n);
	b->len -= n;
}

/* ---- MessagePack: the few encoders and a skipper ------------------------ */

static void mp_uint(struct buf *b, uint64_t v)
{
	if (v < 128) {
		buf_byte(b, (uint8_t)v);
	} else if (v < 256) {
		buf_byte(b, 0xcc);
		buf_be(b, v, 1);
	} else if (v < 65536) {
		buf_byte(b, 0xcd);
		buf_be(b, v, 2);
	} else if (v <= 0xffffffffull) {
		buf_byte(b, 0xce);
		buf_be(b, v, 4);
	} else {
		buf_byte(b, 0xcf);
		buf_be(b, v, 8);
	}
}

static void mp_str(struct buf *b, const char *s, size_t n)
{
	if (n < 32) {
		buf_byte(b, (uint8_t)(0xa0 | n));
	} else if (n < 256) {
		buf_byte(b, 0xd9);
		buf_be(b, n, 1);
	} else if (n < 65536) {
		buf_byte(b, 0xda);
		buf_be(b, n, 2);
	} else {
		buf_byte(b, 0xdb);
		buf_be(b, n, 4);
	}
	buf_put(b, s, n);
}

static void mp_cstr(struct buf *b, const char *s)
{
	mp_str(b, s, strlen(s));
}

static void mp_container(struct buf *b, uint32_t n, uint8_t fix, uint8_t c16)
{
	if (n < 16) {
		buf_byte(b, (uint8_t)(fix | n));
	} else if (n < 65536) {
		buf_byte(b, c16);
		buf_be(b, n, 2);
	} else {
		buf_byte(b, (uint8_t)(c16 + 1));
		buf_be(b, n, 4);
	}
}

static void mp_array(struct buf *b, uint32_t n)
{
	mp_container(b, n, 0x90, 0xdc);
}

static void mp_map(struct buf *b, uint32_t n)
{
	mp_container(b, n, 0x80, 0xde);
}

/* Big-endian integer of `bytes` bytes at p. */
static uint64_t be_read(const uint8_t *p, int bytes)
{
	uint64_t v = 0;
	for (int i = 0; i < bytes; i++)
		v = (v << 8) | p[i];
	return v;
}

/* Read an unsigned integer: bytes used, 0 if p[0..n) is too short, -1 if the
 * object is not an unsigned integer. */
static long mp_read_uint(const uint8_t *p, size_t n, uint64_t *v)
{
	if (n < 1)
		return 0;
	if (p[0] < 0x80) {
		*v = p[0];
		return 1;
	}
	int w = p[0] == 0xcc ? 1 : p[0] == 0xcd ? 2 : p[0] == 0xce ? 4 : 8;
	if (p[0] < 0xcc || p[0] > 0xcf)
		return -1;
	if (n < (size_t)w + 1)
		return 0;
	*v = be_read(p + 1, w);
	return w + 1;
}

/* Width of the payload / length field after a MessagePack type byte:
 * returns the number of bytes that follow as raw data in *fixed, and the
 * width of a length field in *lenw (0 if none).  -1 for the unused 0xc1. */
static int mp_shape(uint8_t c, size_t *fixed, int *lenw)
{
	*fixed = 0;
	*lenw = 0;
	if (c >= 0xc4 && c <= 0xc6) {
		*lenw = 1 << (c - 0xc4);
	} else if (c >= 0xc7 && c <= 0xc9) {
		*lenw = 1 << (c - 0xc7);
		*fixed = 1; /* ext type byte */
	} else if (c == 0xca || c == 0xcb) {
		*fixed = c == 0xca ? 4 : 8;
	} else if (c >= 0xcc && c <= 0xd3) {
		*fixed = (size_t)1 << ((c - 0xcc) & 3);
	} else if (c >= 0xd4 && c <= 0xd8) {
		*fixed = 1 + ((size_t)1 << (c - 0xd4));
	} else if (c >= 0xd9 && c <= 0xdb) {
		*lenw = 1 << (c - 0xd9);
	} else if (c == 0xc1) {
		return -1;
	}
	return 0;
}

/* Size of the next complete object in p[0..n): > 0, 0 if incomplete, -1 if
 * invalid.  Iterative: `need` counts objects still to skip, so nesting depth
 * costs nothing. */
static long mp_skip(const uint8_t *p, size_t n)
{
	size_t off = 0;
	uint64_t need = 1;
	while (need) {
		if (off >= n)
			return 0;
		uint8_t c = p[off++];
		need--;
		if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 ||
		    c == 0xc3)
			continue;
		if ((c & 0xf0) == 0x80 || (c & 0xf0) == 0x90) {
			need += (uint64_t)(c & 0x0f) << ((c & 0xf0) == 0x80);
			continue;
		}
		if (c >= 0xdc) { /* array16/32, map16/32 */
			int w = (c & 1) ? 4 : 2;
			if (n - off < (size_t)w)
				return 0;
			need += be_read(p + off, w) << (c >= 0xde);
			off += (size_t)w;
			continue;
		}
		size_t len = 0, fixed;
		int lenw;
		if ((c & 0xe0) == 0xa0) {
			fixed = c & 0x1f;
			lenw = 0;
		} else if (mp_shape(c, &fixed, &lenw) < 0) {
			return -1;
		}
		if (lenw) {
			if (n - off < (size_t)lenw)
				return 0;
			len = be_read(p + off, lenw);
			off += (size_t)lenw;
		}
		if (n - off < len + fixed)
			return 0;
		off += len + fixed;
	}
	return (long)off;
}

/* ---- RESP -----------------------------------------------------------------
 */

static void resp_array(struct buf *b, int n)
{
	char tmp[24];
	int k = snprintf(tmp, sizeof tmp, "*%d\r\n", n);
	buf_put(b, tmp, (size_t)k);
}

static void resp_bulk(struct buf *b, const char *s, size_t n)
{
	char tmp[24];
	int k = snprintf(tmp, sizeof tmp, "$%zu\r\n", n);
	buf_put(b, tmp, (size_t)k);
	buf_put(b, s, n);
	buf_put(b, "\r\n", 2);
}

static void resp_cstr(struct buf *b, const char *s)
{
	resp_bulk(b, s, strlen(s));
}

/* Bulk string built with printf. */
static void resp_fmt(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void resp_fmt(struct buf *b, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;
	va_start(ap, fmt);
	int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	resp_bulk(b, tmp, (size_t)k < sizeof tmp ? (size_t)k : sizeof tmp - 1);
}

static long resp_int(const uint8_t *p)
{
	long v = 0, sign = 1;
	if (*p == '-') {
		sign = -1;
		p++;
	}
	while (*p >= '0' && *p <= '9')
		v = v * 10 + (*p++ - '0');
	return v * sign;
}

struct resp_reply {
	const uint8_t *raw; /* the whole reply */
	size_t raw_len;
	int error;	     /* top level is an error */
	const uint8_t *bulk; /* top-level bulk string, or NULL */
	long bulk_len;
};

/* Size of the next complete reply in p[0..n): > 0, 0 if incomplete, -1 if
 * invalid.  Iterative like mp_skip(). */
static long resp_parse(const uint8_t *p, size_t n, struct resp_reply *r)
{
	size_t off = 0;
	uint64_t need = 1;
	int top = 1;
	memset(r, 0, sizeof *r);
	while (need) {
		if (off >= n)
			return 0;
		const uint8_t *nl = memchr(p + off, '\n', n - off);
		if (!nl)
			return 0;
		size_t line_end = (size_t)(nl - p) + 1;
		uint8_t t = p[off];
		long v = resp_int(p + off + 1);
		need--;
		if (t == '-' && top)
			r->error = 1;
		if (t == '*' && v > 0)
			need += (uint64_t)v;
		else if (t == '%' && v > 0)
			need += 2 * (uint64_t)v;
		off = line_end;
		if (t == '$' && v >= 0) {
			if (n - off < (size_t)v + 2)
				return 0;
			if (top) {
				r->bulk = p + off;
				r->bulk_len = v;
			}
			off += (size_t)v + 2;
		} else if (!t || !strchr("+-:*$%_,#", t)) {
			return -1;
		}
		top = 0;
	}
	r->raw = p;
	r->raw_len = off;
	return (long)off;
}

/* ---- the data set ---------------------------------------------------------
 */

static const char *const roles[3] = {"admin", "user", "viewer"};
static const char *const statuses[3] = {"active", "inactive", "suspended"};
static const char custom_json[] = "{\"plan\":\"pro\",\"seats\":5,"
				  "\"tags\":[\"a\",\"b\"]}";

/* User number i.  The id is "usr_" + 8 base-36 digits of a hash of i + 8
 * base-36 digits of i itself: looks random, never collides (i < 36^8). */
struct user {
	char id[24];
	char email[48];
	char name[48];
	char avatar[80];
	const char *role, *status;
	int role_i, status_i;
	size_t id_len, email_len;
};

static void base36(char *out, uint64_t v, int digits)
{
	static const char alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyz";
	for (int i = digits - 1; i >= 0; i--) {
		out[i] = alphabet[v % 36];
		v /= 36;
	}
}

/* --plain-ids: user i's id is "usr_" + i in 16 decimal digits instead, so
 * that SQL and pgbench scripts can compute it ('usr_' || lpad(i, 16, '0')).
 * Set once by main() before any thread starts. */
static int plain_ids;

static void user_fill(struct user *u, uint64_t i)
{
	uint64_t h = i ^ 0x5eed5eed5eedull;
	memcpy(u->id, "usr_", 4);
	if (plain_ids) {
		snprintf(u->id + 4, 17, "%016llu",
			 (unsigned long long)(i % 10000000000000000ull));
	} else {
		base36(u->id + 4, splitmix64(&h), 8);
		base36(u->id + 12, i, 8);
	}
	u->id[20] = 0;
	u->id_len = 20;
	int k = snprintf(u->email, sizeof u->email, "user%llu@example.com",
			 (unsigned long long)i);
	u->email_len = (size_t)k;
	snprintf(u->name, sizeof u->name, "User Name %llu",
		 (unsigned long long)i);
	snprintf(u->avatar, sizeof u->avatar,
		 "https://cdn.example.com/avatars/%llu.png",
		 (unsigned long long)i);
	u->role_i = (int)(i % 3);
	u->status_i = (int)(i / 3 % 3);
	u->role = roles[u->role_i];
	u->status = statuses[u->status_i];
}

/* User i's password hash: an encoded Argon2id string of libsodium's
 * interactive cost with a salt and a hash drawn from i (97 bytes, as
 * libsodium writes them; never verified, so any bytes do).  Written into
 * out[100]. */
static void user_hash(char *out, uint64_t i)
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				  "abcdefghijklmnopqrstuvwxyz0123456789+/";
	unsigned char raw[48];
	uint64_t h = i ^ 0xa5a5a5a5a5a5ull;
	for (int k = 0; k < 48; k += 8) {
		uint64_t v = splitmix64(&h);
		memcpy(raw + k, &v, 8);
	}
	int n = sprintf(out, "$argon2id$v=19$m=65536,t=2,p=1$");
	/* base64 without padding: 16 salt bytes -> 22, 32 hash bytes -> 43 */
	for (int part = 0; part < 2; part++) {
		const unsigned char *p = raw + (part ? 16 : 0);
		int len = part ? 32 : 16, bits = 0;
		uint32_t acc = 0;
		if (part)
			out[n++] = '$';
		for (int k = 0; k < len; k++) {
			acc = acc << 8 | p[k];
			bits += 8;
			while (bits >= 6) {
				bits -= 6;
				out[n++] = b64[(acc >> bits) & 63];
			}
		}
		if (bits)
			out[n++] = b64[(acc << (6 - bits)) & 63];
	}
	out[n] = 0;
}

/* How many of users [0, n) have this role and status (i%3, i/3%3). */
static long combo_count(long n, int role, int status)
{
	/* q = i / 3 runs over [0, nq) for the users i = 3q + role < n; those
	 * with q % 3 == status count.  (A loop here cost the generator 111k
	 * steps per deep-page request at 1M users: it, not the server, was
	 * the bottleneck of list_deep.) */
	long nq = n > role ? (n - role + 2) / 3 : 0;
	return nq > status ? (nq - status + 2) / 3 : 0;
}

/* Offset of the "deep page": 90% into the smallest role/status list,
 * rounded down to a page boundary, so it exists for every combination. */
static long deep_offset(const struct opts *o)
{
	long c = combo_count(o->users, 2, 2);
	long off = (long)((double)c * 0.9) / o->limit * o->limit;
	return off < 0 ? 0 : off;
}

/* ---- connections and slots -------------------------------------------- */

struct slot {
	uint64_t t0;	  /* when the operation started */
	uint64_t user;	  /* user number it works on */
	uint32_t pending; /* replies still expected for this step */
	uint8_t kind;	  /* enum op actually run (mix picks one) */
	uint8_t step;
	uint8_t failed;
	uint8_t busy;
};

struct conn {
	int fd;
	SSL *ssl; /* --tls: the connection's TLS session, else NULL */
	struct buf in, out;
	struct slot *slots;
	uint32_t seq;
	uint32_t *fifo; /* Redis: slot of each outstanding request */
	uint32_t fifo_head, fifo_tail, fifo_mask;
	int want_write; /* c->out has bytes to send */
	int pollout;	/* EPOLLOUT is registered */
};

struct bench;

struct worker {
	struct bench *b;
	int index;
	int ep;
	struct conn *conns;
	int nconns;
	uint64_t rng;
	struct hist hist;
	uint64_t ops, errors, started;
	uint64_t t_measure, t_stop;
	int stopping;
	int busy_slots;
	pthread_t thread;
	/* --rate: slots wait on the idle stack (conn << 16 | slot) until the
	 * next start is due, one every interval_ns */
	uint32_t *idle;
	int nidle, releasing;
	uint64_t next_due, interval_ns, late;
};

/* The lag probe (--probe-port): write on one node, time until another
 * node serves it. */
struct probe {
	struct bench *b;
	pthread_t thread;
	uint64_t t_measure, t_stop;
	struct hist lag;
	uint64_t missing, errors;
};

struct bench {
	struct opts o;
	char sha_email[48], sha_list[48], sha_create[48], sha_search[48];
	char
	    stamp[32]; /* created_at / updated_at written by Redis, Tarantool */
	atomic_long next_load;
	atomic_long next_create;
	atomic_int error_printed;
	atomic_uint_fast64_t update_seq;
	struct probe *probe; /* when --probe-port ran */
};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "userdb-bench: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(2);
}

static int tcp_connect(const char *host, int port)
{
	char ports[16];
	struct addrinfo hints = {0}, *res;
	snprintf(ports, sizeof ports, "%d", port);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, ports, &hints, &res) != 0)
		return -1;
	int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) < 0) {
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd >= 0) {
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	}
	return fd;
}

/* read(2) / write(2), or through TLS when c->ssl: -1 with errno EAGAIN
 * when TLS wants the socket first (either way), as a socket would. */
static SSL_CTX *tls_ctx;

static ssize_t io_rw(struct conn *c, void *p, size_t n, int wr)
{
	if (!c->ssl)
		return wr ? write(c->fd, p, n) : read(c->fd, p, n);
	int k = wr ? SSL_write(c->ssl, p, (int)(n > INT_MAX ? INT_MAX : n))
		   : SSL_read(c->ssl, p, (int)(n > INT_MAX ? INT_MAX : n));
	if (k > 0)
		return k;
	int e = SSL_get_error(c->ssl, k);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		errno = EAGAIN;
		return -1;
	}
	errno = EIO;
	return e == SSL_ERROR_ZERO_RETURN ? 0 : -1;
}

static int tls_start(struct conn *c)
{
	if (!tls_ctx) {
		tls_ctx = SSL_CTX_new(TLS_client_method());
		if (!tls_ctx)
			return -1;
		SSL_CTX_set_min_proto_version(tls_ctx, TLS1_2_VERSION);
	}
	c->ssl = SSL_new(tls_ctx);
	if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1)
		return -1;
	SSL_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE |
				 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	return SSL_connect(c->ssl) == 1 ? 0 : -1; /* the socket blocks yet */
}

static int write_all(struct conn *c, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t k = io_rw(c, (void *)p, n, 1);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* ---- request encoders -----------------------------------------------------
 */

static void udb_begin(struct buf *b, uint32_t msgid, const char *method,
		      uint32_t nparams)
{
	mp_array(b, 4);
	mp_uint(b, 0);
	mp_uint(b, msgid);
	mp_cstr(b, method);
	mp_array(b, nparams);
}

static void mp_custom_data(struct buf *b)
{
	mp_map(b, 3);
	mp_cstr(b, "plan");
	mp_cstr(b, "pro");
	mp_cstr(b, "seats");
	mp_uint(b, 5);
	mp_cstr(b, "tags");
	mp_array(b, 2);
	mp_cstr(b, "a");
	mp_cstr(b, "b");
}

static void udb_user_fields(struct buf *b, const struct user *u,
			    const char *hash)
{
	mp_map(b, hash ? 8 : 7);
	if (hash) {
		mp_cstr(b, "password_hash");
		mp_cstr(b, hash);
	}
	mp_cstr(b, "id");
	mp_str(b, u->id, u->id_len);
	mp_cstr(b, "name");
	mp_cstr(b, u->name);
	mp_cstr(b, "email");
	mp_str(b, u->email, u->email_len);
	mp_cstr(b, "role");
	mp_cstr(b, u->role);
	mp_cstr(b, "status");
	mp_cstr(b, u->status);
	mp_cstr(b, "avatar");
	mp_cstr(b, u->avatar);
	mp_cstr(b, "custom_data");
	mp_custom_data(b);
}

static void udb_list(struct buf *b, uint32_t msgid, int role, int status,
		     long page, int limit)
{
	udb_begin(b, msgid, "user.list", 1);
	mp_map(b, 4);
	mp_cstr(b, "role");
	mp_cstr(b, roles[role]);
	mp_cstr(b, "status");
	mp_cstr(b, statuses[status]);
	mp_cstr(b, "page");
	mp_uint(b, (uint64_t)page);
	mp_cstr(b, "limit");
	mp_uint(b, (uint64_t)limit);
}

/* Tarantool request header; tnt_end() patches the length in. */
static size_t tnt_begin(struct buf *b, uint32_t type, uint32_t sync)
{
	size_t mark = b->len;
	buf_byte(b, 0xce);
	buf_be(b, 0, 4);
	mp_map(b, 2);
	mp_uint(b, 0x00); /* IPROTO_REQUEST_TYPE */
	mp_uint(b, type);
	mp_uint(b, 0x01); /* IPROTO_SYNC */
	mp_uint(b, sync);
	return mark;
}

static void tnt_end(struct buf *b, size_t mark)
{
	uint32_t len = (uint32_t)(b->len - mark - 5);
	for (int i = 0; i < 4; i++)
		b->p[mark + 1 + i] = (uint8_t)(len >> (8 * (3 - i)));
}

enum {
	TNT_SELECT = 1,
	TNT_INSERT = 2,
	TNT_UPDATE = 4,
	TNT_CALL = 10,
	TNT_PING = 64
};

/* SELECT with a key of one or two strings. */
static void tnt_select(struct buf *b, uint32_t sync, int index, const char *k1,
		       size_t k1len, const char *k2, long limit, long offset)
{
	size_t mark = tnt_begin(b, TNT_SELECT, sync);
	mp_map(b, 6);
	mp_uint(b, 0x10); /* SPACE_ID */
	mp_uint(b, TNT_SPACE);
	mp_uint(b, 0x11); /* INDEX_ID */
	mp_uint(b, (uint64_t)index);
	mp_uint(b, 0x12); /* LIMIT */
	mp_uint(b, (uint64_t)limit);
	mp_uint(b, 0x13); /* OFFSET */
	mp_uint(b, (uint64_t)offset);
	mp_uint(b, 0x14); /* ITERATOR: EQ */
	mp_uint(b, 0);
	mp_uint(b, 0x20); /* KEY */
	mp_array(b, k2 ? 2 : 1);
	mp_str(b, k1, k1len);
	if (k2)
		mp_cstr(b, k2);
	tnt_end(b, mark);
}

static void tnt_insert(struct buf *b, uint32_t sync, const struct user *u,
		       const char *stamp, const char *hash)
{
	size_t mark = tnt_begin(b, TNT_INSERT, sync);
	mp_map(b, 2);
	mp_uint(b, 0x10);
	mp_uint(b, TNT_SPACE);
	mp_uint(b, 0x21); /* TUPLE */
	mp_array(b, hash ? 11 : 10);
	mp_str(b, u->id, u->id_len);
	mp_str(b, u->email, u->email_len); /* folded: already lower case */
	mp_cstr(b, u->name);
	mp_str(b, u->email, u->email_len);
	mp_cstr(b, u->role);
	mp_cstr(b, u->status);
	mp_cstr(b, u->avatar);
	mp_custom_data(b);
	mp_cstr(b, stamp);
	mp_cstr(b, stamp);
	if (hash)
		mp_cstr(b, hash); /* field 11 */
	tnt_end(b, mark);
}

static void tnt_call(struct buf *b, uint32_t sync, const char *fn,
		     const char *arg, long n1, long n2, int nargs)
{
	size_t mark = tnt_begin(b, TNT_CALL, sync);
	mp_map(b, 2);
	mp_uint(b, 0x22); /* FUNCTION_NAME */
	mp_cstr(b, fn);
	mp_uint(b, 0x21); /* TUPLE: arguments */
	mp_array(b, (uint32_t)nargs);
	if (nargs > 0)
		mp_cstr(b, arg);
	if (nargs > 1)
		mp_uint(b, (uint64_t)n1);
	if (nargs > 2)
		mp_uint(b, (uint64_t)n2);
	tnt_end(b, mark);
}

/* 18 arguments, 20 with a hash. */
static void redis_user_fields(struct buf *b, const struct user *u,
			      const char *stamp, const char *hash)
{
	if (hash) {
		resp_cstr(b, "password_hash");
		resp_cstr(b, hash);
	}
	resp_cstr(b, "id");
	resp_bulk(b, u->id, u->id_len);
	resp_cstr(b, "name");
	resp_cstr(b, u->name);
	resp_cstr(b, "email");
	resp_bulk(b, u->email, u->email_len);
	resp_cstr(b, "role");
	resp_cstr(b, u->role);
	resp_cstr(b, "status");
	resp_cstr(b, u->status);
	resp_cstr(b, "avatar");
	resp_cstr(b, u->avatar);
	resp_cstr(b, "custom_data");
	resp_cstr(b, custom_json);
	resp_cstr(b, "created_at");
	resp_cstr(b, stamp);
	resp_cstr(b, "updated_at");
	resp_cstr(b, stamp);
}

/* Load: the five plain commands a Redis loader pipelines. */
static int redis_load(struct buf *b, const struct user *u, uint64_t i,
		      const char *stamp, const char *hash)
{
	resp_array(b, 2 + 18 + (hash ? 2 : 0));
	resp_cstr(b, "HSET");
	resp_fmt(b, "user:%s", u->id);
	redis_user_fields(b, u, stamp, hash);
	resp_array(b, 3);
	resp_cstr(b, "SET");
	resp_fmt(b, "email:%s", u->email);
	resp_bulk(b, u->id, u->id_len);
	resp_array(b, 3);
	resp_cstr(b, "SADD");
	resp_fmt(b, "role:%s", u->role);
	resp_bulk(b, u->id, u->id_len);
	resp_array(b, 3);
	resp_cstr(b, "SADD");
	resp_fmt(b, "status:%s", u->status);
	resp_bulk(b, u->id, u->id_len);
	resp_array(b, 4);
	resp_cstr(b, "ZADD");
	resp_fmt(b, "rs:%s:%s", u->role, u->status);
	resp_fmt(b, "%llu", (unsigned long long)i);
	resp_bulk(b, u->id, u->id_len);
	return 5;
}

/* Create: one EVALSHA that checks id and email and writes all five keys. */
static void redis_create(struct buf *b, const char *sha, const struct user *u,
			 uint64_t i, const char *stamp, const char *hash)
{
	resp_array(b, 3 + 5 + 2 + 18 + (hash ? 2 : 0));
	resp_cstr(b, "EVALSHA");
	resp_cstr(b, sha);
	resp_cstr(b, "5");
	resp_fmt(b, "user:%s", u->id);
	resp_fmt(b, "email:%s", u->email);
	resp_fmt(b, "role:%s", u->role);
	resp_fmt(b, "status:%s", u->status);
	resp_fmt(b, "rs:%s:%s", u->role, u->status);
	resp_bulk(b, u->id, u->id_len);
	resp_fmt(b, "%llu", (unsigned long long)i);
	redis_user_fields(b, u, stamp, hash);
}

/* ---- per-protocol operation encoding ------------------------------------ */

static uint32_t conn_msgid(struct conn *c, uint32_t slot)
{
	c->seq++;
	return ((c->seq & 0x7fffu) << 16) | slot;
}

static void fifo_push(struct conn *c, uint32_t slot, uint32_t n)
{
	for (uint32_t k = 0; k < n; k++)
		c->fifo[c->fifo_tail++ & c->fifo_mask] = slot;
}

/* Search term: "name <k>" matches "User Name <k>", "...<k>0" and so on. */
static void search_term(char *out, size_t n, uint64_t k)
{
	snprintf(out, n, "name %llu", (unsigned long long)k);
}

static void make_update_url(struct bench *b, char *out, size_t n, uint64_t i)
{
	uint64_t k = atomic_fetch_add(&b->update_seq, 1);
	snprintf(out, n, "https://cdn.example.com/avatars/%llu-%llu.png",
		 (unsigned long long)i, (unsigned long long)k);
}

/* The hash of the user a create or load slot writes, in tmp[128], or
 * NULL with --no-hashes. */
static const char *slot_hash(const struct bench *b, const struct slot *s,
			     char *tmp)
{
	if (!b->o.hashes)
		return NULL;
	user_hash(tmp, s->user);
	return tmp;
}

static uint32_t enc_userdb(struct worker *w, struct conn *c, uint32_t si,
			   struct slot *s)
{
	struct bench *b = w->b;
	struct buf *o = &c->out;
	struct user u;
	char tmp[128];
	user_fill(&u, s->user);
	uint32_t id = conn_msgid(c, si);
	switch (s->kind) {
	case OP_LOAD:
	case OP_CREATE:
		udb_begin(o, id, "user.create", 1);
		udb_user_fields(o, &u, slot_hash(b, s, tmp));
		break;
	case OP_GET_BY_ID:
		udb_begin(o, id, "user.get", 1);
		mp_str(o, u.id, u.id_len);
		break;
	case OP_GET_BY_EMAIL:
		udb_begin(o, id, "user.get_by_email", 1);
		mp_str(o, u.email, u.email_len);
		break;
	case OP_GET_MANY:
		udb_begin(o, id, "user.get_many", 1);
		mp_array(o, (uint32_t)b->o.many);
		for (int k = 0; k < b->o.many; k++) {
			user_fill(&u, rng_below(&w->rng, (uint64_t)b->o.users));
			mp_str(o, u.id, u.id_len);
		}
		break;
	case OP_LIST_FIRST:
	case OP_LIST_DEEP: {
		long off = s->kind == OP_LIST_DEEP ? deep_offset(&b->o) : 0;
		udb_list(o, id, u.role_i, u.status_i, off / b->o.limit + 1,
			 b->o.limit);
		break;
	}
	case OP_SEARCH:
		search_term(tmp, sizeof tmp, s->user);
		udb_begin(o, id, "user.list", 1);
		mp_map(o, 2);
		mp_cstr(o, "search");
		mp_cstr(o, tmp);
		mp_cstr(o, "limit");
		mp_uint(o, (uint64_t)b->o.limit);
		break;
	case OP_UPDATE:
		make_update_url(b, tmp, sizeof tmp, s->user);
		udb_begin(o, id, "user.update", 2);
		mp_str(o, u.id, u.id_len);
		mp_map(o, 1);
		mp_cstr(o, "avatar");
		mp_cstr(o, tmp);
		break;
	case OP_SNAPSHOT:
		udb_begin(o, id, "server.snapshot", 0);
		break;
	default:
		udb_begin(o, id, "ping", 0);
		break;
	}
	return 1;
}

static uint32_t enc_redis_get_many(struct worker *w, struct buf *o)
{
	struct user u;
	for (int k = 0; k < w->b->o.many; k++) {
		user_fill(&u, rng_below(&w->rng, (uint64_t)w->b->o.users));
		resp_array(o, 2);
		resp_cstr(o, "HGETALL");
		resp_fmt(o, "user:%s", u.id);
	}
	return (uint32_t)w->b->o.many;
}

static uint32_t enc_redis(struct worker *w, struct conn *c, struct slot *s)
{
	struct bench *b = w->b;
	struct buf *o = &c->out;
	struct user u;
	char tmp[128];
	user_fill(&u, s->user);
	switch (s->kind) {
	case OP_LOAD:
		return (uint32_t)redis_load(o, &u, s->user, b->stamp,
					    slot_hash(b, s, tmp));
	case OP_CREATE:
		redis_create(o, b->sha_create, &u, s->user, b->stamp,
			     slot_hash(b, s, tmp));
		return 1;
	case OP_GET_BY_ID:
		resp_array(o, 2);
		resp_cstr(o, "HGETALL");
		resp_fmt(o, "user:%s", u.id);
		return 1;
	case OP_GET_BY_EMAIL:
		if (b->o.email_two_rtt) {
			resp_array(o, 2);
			resp_cstr(o, "GET");
			resp_fmt(o, "email:%s", u.email);
		} else {
			resp_array(o, 4);
			resp_cstr(o, "EVALSHA");
			resp_cstr(o, b->sha_email);
			resp_cstr(o, "1");
			resp_fmt(o, "email:%s", u.email);
		}
		return 1;
	case OP_GET_MANY:
		return enc_redis_get_many(w, o);
	case OP_LIST_FIRST:
	case OP_LIST_DEEP: {
		long off = s->kind == OP_LIST_DEEP ? deep_offset(&b->o) : 0;
		if (b->o.list_two_rtt) {
			resp_array(o, 2);
			resp_cstr(o, "ZCARD");
			resp_fmt(o, "rs:%s:%s", u.role, u.status);
			resp_array(o, 4);
			resp_cstr(o, "ZREVRANGE");
			resp_fmt(o, "rs:%s:%s", u.role, u.status);
			resp_fmt(o, "%ld", off);
			resp_fmt(o, "%ld", off + b->o.limit - 1);
			return 2;
		}
		resp_array(o, 6);
		resp_cstr(o, "EVALSHA");
		resp_cstr(o, b->sha_list);
		resp_cstr(o, "1");
		resp_fmt(o, "rs:%s:%s", u.role, u.status);
		resp_fmt(o, "%ld", off);
		resp_fmt(o, "%ld", off + b->o.limit - 1);
		return 1;
	}
	case OP_UPDATE:
		make_update_url(b, tmp, sizeof tmp, s->user);
		resp_array(o, 6);
		resp_cstr(o, "HSET");
		resp_fmt(o, "user:%s", u.id);
		resp_cstr(o, "avatar");
		resp_cstr(o, tmp);
		resp_cstr(o, "updated_at");
		resp_cstr(o, b->stamp);
		return 1;
	case OP_SEARCH:
		search_term(tmp, sizeof tmp, s->user);
		resp_array(o, 5);
		resp_cstr(o, "EVALSHA");
		resp_cstr(o, b->sha_search);
		resp_cstr(o, "0");
		resp_cstr(o, tmp);
		resp_fmt(o, "%d", b->o.limit);
		return 1;
	case OP_SNAPSHOT:
		resp_array(o, 1);
		resp_cstr(o, "SAVE");
		return 1;
	default:
		resp_array(o, 1);
		resp_cstr(o, "PING");
		return 1;
	}
}

static uint32_t enc_tarantool(struct worker *w, struct conn *c, uint32_t si,
			      struct slot *s)
{
	struct bench *b = w->b;
	struct buf *o = &c->out;
	struct user u;
	char tmp[128];
	size_t mark;
	user_fill(&u, s->user);
	switch (s->kind) {
	case OP_LOAD:
	case OP_CREATE:
		tnt_insert(o, conn_msgid(c, si), &u, b->stamp,
			   slot_hash(b, s, tmp));
		return 1;
	case OP_GET_BY_ID:
		tnt_select(o, conn_msgid(c, si), TNT_IDX_ID, u.id, u.id_len,
			   NULL, 1, 0);
		return 1;
	case OP_GET_BY_EMAIL:
		tnt_select(o, conn_msgid(c, si), TNT_IDX_MAIL, u.email,
			   u.email_len, NULL, 1, 0);
		return 1;
	case OP_GET_MANY:
		for (int k = 0; k < b->o.many; k++) {
			user_fill(&u, rng_below(&w->rng, (uint64_t)b->o.users));
			tnt_select(o, conn_msgid(c, si), TNT_IDX_ID, u.id,
				   u.id_len, NULL, 1, 0);
		}
		return (uint32_t)b->o.many;
	case OP_LIST_FIRST:
	case OP_LIST_DEEP:
		tnt_select(o, conn_msgid(c, si), TNT_IDX_RS, u.role,
			   strlen(u.role), u.status, b->o.limit,
			   s->kind == OP_LIST_DEEP ? deep_offset(&b->o) : 0);
		return 1;
	case OP_SEARCH:
		search_term(tmp, sizeof tmp, s->user);
		tnt_call(o, conn_msgid(c, si), "bench_search", tmp, b->o.limit,
			 0, 2);
		return 1;
	case OP_UPDATE:
		make_update_url(b, tmp, sizeof tmp, s->user);
		mark = tnt_begin(o, TNT_UPDATE, conn_msgid(c, si));
		mp_map(o, 4);
		mp_uint(o, 0x10);
		mp_uint(o, TNT_SPACE);
		mp_uint(o, 0x11);
		mp_uint(o, TNT_IDX_ID);
		mp_uint(o, 0x20);
		mp_array(o, 1);
		mp_str(o, u.id, u.id_len);
		mp_uint(o, 0x21); /* operations, 0-based field numbers */
		mp_array(o, 2);
		mp_array(o, 3);
		mp_cstr(o, "=");
		mp_uint(o, 6);
		mp_cstr(o, tmp);
		mp_array(o, 3);
		mp_cstr(o, "=");
		mp_uint(o, 9);
		mp_cstr(o, b->stamp);
		tnt_end(o, mark);
		return 1;
	case OP_SNAPSHOT:
		tnt_call(o, conn_msgid(c, si), "box.snapshot", NULL, 0, 0, 0);
		return 1;
	case OP_WAIT: /* bench_ready exists once recovery has ended */
		tnt_call(o, conn_msgid(c, si), "bench_ready", NULL, 0, 0, 0);
		return 1;
	default:
		mark = tnt_begin(o, TNT_PING, conn_msgid(c, si));
		mp_map(o, 0);
		tnt_end(o, mark);
		return 1;
	}
}

/* Second step of Redis get_by_email in two-round-trip mode. */
static void enc_redis_hgetall(struct conn *c, const uint8_t *id, long n)
{
	resp_array(&c->out, 2);
	resp_cstr(&c->out, "HGETALL");
	char tmp[128];
	int k =
	    snprintf(tmp, sizeof tmp, "user:%.*s", (int)n, (const char *)id);
	resp_bulk(&c->out, tmp, (size_t)k);
}

/* Second step of a Redis list in two-round-trip mode: one HGETALL per id
 * of the ZREVRANGE reply r ("*N" then N bulk strings); returns N. */
static uint32_t enc_redis_hgetall_each(struct conn *c,
				       const struct resp_reply *r)
{
	const uint8_t *p = r->raw, *end = r->raw + r->raw_len;
	uint32_t n = 0;
	if (r->raw_len < 4 || p[0] != '*')
		return 0;
	p = memchr(p, '\n', (size_t)(end - p)) + 1;
	while (p < end && *p == '$') {
		long len = resp_int(p + 1);
		p = memchr(p, '\n', (size_t)(end - p)) + 1;
		if (len < 0 || end - p < len + 2)
			break;
		enc_redis_hgetall(c, p, len);
		p += len + 2;
		n++;
	}
	return n;
}

/* ---- the operation life cycle ----------------------------------------- */

/* Pick the user an operation works on; -1 when a load has nothing left. */
static int slot_pick(struct worker *w, struct slot *s)
{
	struct opts *o = &w->b->o;
	s->kind = (uint8_t)o->op;
	if (o->op == OP_MIX)
		s->kind = rng_below(&w->rng, 100) < (uint64_t)o->write_pct
			      ? OP_UPDATE
			      : OP_GET_BY_ID;
	if (o->op == OP_LOAD) {
		long i = atomic_fetch_add(&w->b->next_load, 1);
		if (i >= o->users)
			return -1;
		s->user = (uint64_t)i;
	} else if (o->op == OP_CREATE) {
		s->user = (uint64_t)atomic_fetch_add(&w->b->next_create, 1);
	} else {
		s->user = rng_below(&w->rng, (uint64_t)o->users);
	}
	return 0;
}

static void slot_start(struct worker *w, struct conn *c, uint32_t si)
{
	struct slot *s = &c->slots[si];
	if (w->interval_ns && !w->releasing && !w->stopping) {
		s->busy = 0;
		w->idle[w->nidle++] = (uint32_t)(c - w->conns) << 16 | si;
		return;
	}
	if (w->stopping || slot_pick(w, s) < 0) {
		s->busy = 0;
		return;
	}
	s->busy = 1;
	w->busy_slots++;
	s->step = 0;
	s->failed = 0;
	s->t0 = now_ns();
	w->started++;
	switch (w->b->o.proto) {
	case PROTO_USERDB:
		s->pending = enc_userdb(w, c, si, s);
		break;
	case PROTO_TARANTOOL:
		s->pending = enc_tarantool(w, c, si, s);
		break;
	case PROTO_REDIS:
		s->pending = enc_redis(w, c, s);
		fifo_push(c, si, s->pending);
		break;
	}
	c->want_write = 1;
}

static void slot_done(struct worker *w, struct conn *c, uint32_t si)
{
	struct slot *s = &c->slots[si];
	uint64_t t = now_ns();
	if (t >= w->t_measure && t <= w->t_stop) {
		hist_add(&w->hist, t - s->t0);
		w->ops++;
		if (s->failed)
			w->errors++;
	}
	s->busy = 0;
	w->busy_slots--;
	slot_start(w, c, si);
}

static void report_error(struct bench *b, const uint8_t *p, size_t n)
{
	if (atomic_exchange(&b->error_printed, 1))
		return;
	fprintf(stderr, "userdb-bench: first error reply (%s %s): ",
		proto_names[b->o.proto], op_names[b->o.op]);
	for (size_t i = 0; i < n && i < 300; i++)
		fputc(p[i] >= 32 && p[i] < 127 ? p[i] : '.', stderr);
	fputc('\n', stderr);
}

/* One reply arrived for slot si. */
static void slot_reply(struct worker *w, struct conn *c, uint32_t si, int err,
		       const struct resp_reply *rr)
{
	struct slot *s = &c->slots[si];
	if (!s->busy || !s->pending)
		return;
	if (err)
		s->failed = 1;
	if (--s->pending)
		return;
	if (w->b->o.proto == PROTO_REDIS && s->kind == OP_GET_BY_EMAIL &&
	    w->b->o.email_two_rtt && s->step == 0 && rr && rr->bulk) {
		s->step = 1;
		s->pending = 1;
		enc_redis_hgetall(c, rr->bulk, rr->bulk_len);
		fifo_push(c, si, 1);
		c->want_write = 1;
		return;
	}
	if (w->b->o.proto == PROTO_REDIS && w->b->o.list_two_rtt &&
	    (s->kind == OP_LIST_FIRST || s->kind == OP_LIST_DEEP) &&
	    s->step == 0 && rr) {
		s->step = 1;
		s->pending = enc_redis_hgetall_each(c, rr);
		fifo_push(c, si, s->pending);
		c->want_write = 1;
		if (s->pending)
			return;
	}
	slot_done(w, c, si);
}

/* Size of the next complete IPROTO reply in p[0..n) (> 0, 0 if incomplete,
 * -1 if invalid), with the header's code (0 = success) and sync. */
static long tnt_reply(const uint8_t *p, size_t n, uint64_t *code,
		      uint64_t *sync)
{
	uint64_t len;
	long k = mp_read_uint(p, n, &len);
	if (k <= 0 || n - (size_t)k < len)
		return k < 0 ? -1 : 0;
	const uint8_t *h = p + k;
	if (len < 1 || (h[0] & 0xf0) != 0x80)
		return -1;
	size_t ho = 1;
	*code = 0;
	for (uint32_t q = 0; q < (h[0] & 0x0fu); q++) {
		uint64_t key, v = 0;
		long a = mp_read_uint(h + ho, len - ho, &key);
		if (a <= 0)
			return -1;
		ho += (size_t)a;
		long b = mp_read_uint(h + ho, len - ho, &v);
		if (b <= 0)
			b = mp_skip(h + ho, len - ho);
		if (b <= 0)
			return -1;
		ho += (size_t)b;
		if (key == 0)
			*code = v;
		else if (key == 1)
			*sync = v;
	}
	return k + (long)len;
}

/* userdb reply [1, msgid, error, result]: size, or 0 / -1 like mp_skip. */
static long udb_reply(const uint8_t *p, size_t n, uint64_t *msgid, int *err)
{
	long k = mp_skip(p, n);
	if (k <= 0)
		return k;
	if (k < 4 || p[0] != 0x94 || p[1] != 0x01)
		return -1;
	long h = mp_read_uint(p + 2, (size_t)k - 2, msgid);
	if (h <= 0 || 2 + h >= k)
		return -1;
	*err = p[2 + h] != 0xc0;
	return k;
}

/* The next complete reply in p[0..n) for connection c: its size (0 if
 * incomplete, -1 if the stream is broken), the slot it answers and whether
 * it is an error. */
static long reply_next(struct worker *w, struct conn *c, const uint8_t *p,
		       size_t n, uint64_t *slot, int *err,
		       struct resp_reply *rr)
{
	uint64_t code = 0;
	long k;
	switch (w->b->o.proto) {
	case PROTO_REDIS:
		k = resp_parse(p, n, rr);
		*err = rr->error;
		if (k > 0 && c->fifo_head == c->fifo_tail)
			return -1; /* a reply nobody asked for */
		if (k > 0)
			*slot = c->fifo[c->fifo_head++ & c->fifo_mask];
		return k;
	case PROTO_USERDB:
		k = udb_reply(p, n, slot, err);
		break;
	default:
		k = tnt_reply(p, n, &code, slot);
		*err = code != 0;
		break;
	}
	*slot &= 0xffff; /* msgid / sync = (seq << 16) | slot */
	return k;
}

/* Parse every complete reply in c->in: bytes consumed, or -1 on a broken
 * stream. */
static long conn_parse(struct worker *w, struct conn *c)
{
	size_t off = 0;
	for (;;) {
		const uint8_t *p = c->in.p + off;
		uint64_t slot = UINT64_MAX;
		int err = 0;
		struct resp_reply rr;
		long k = reply_next(w, c, p, c->in.len - off, &slot, &err, &rr);
		if (k <= 0)
			return k < 0 ? -1 : (long)off;
		if (err)
			report_error(w->b, p, (size_t)k);
		if (slot < (uint64_t)w->b->o.pipeline)
			slot_reply(w, c, (uint32_t)slot, err,
				   w->b->o.proto == PROTO_REDIS ? &rr : NULL);
		off += (size_t)k;
	}
}

/* ---- event loop --------------------------------------------------------- */

static int conn_flush(struct worker *w, struct conn *c)
{
	size_t off = 0;
	while (off < c->out.len) {
		ssize_t k = io_rw(c, c->out.p + off, c->out.len - off, 1);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EAGAIN)
			break;
		if (k <= 0)
			return -1;
		off += (size_t)k;
	}
	buf_consume(&c->out, off);
	int want = c->out.len > 0;
	if (want != c->pollout) {
		struct epoll_event ev = {
		    .events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c};
		epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev);
		c->pollout = want;
	}
	c->want_write = want;
	return 0;
}

static int conn_read(struct worker *w, struct conn *c)
{
	for (;;) {
		buf_reserve(&c->in, 65536);
		ssize_t k =
		    io_rw(c, c->in.p + c->in.len, c->in.cap - c->in.len, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EAGAIN)
			break;
		if (k <= 0)
			return -1;
		c->in.len += (size_t)k;
		long used = conn_parse(w, c);
		if (used < 0)
			return -1;
		buf_consume(&c->in, (size_t)used);
		if ((size_t)k < 65536 && !c->ssl) /* TLS may hold more */
			break;
	}
	return 0;
}

static void worker_fail(struct worker *w, struct conn *c)
{
	fprintf(stderr,
		"userdb-bench: connection %d lost (%s); stopping this "
		"worker\n",
		(int)(c - w->conns), errno ? strerror(errno) : "closed");
	w->stopping = 2;
}

/* --rate: start the idle slots whose time has come.  Behind by more than
 * 50 ms (every slot busy: the server is slower than the rate), the missed
 * starts are dropped and counted, not made up in a burst. */
static void worker_release(struct worker *w, uint64_t t)
{
	if (t > w->next_due + 50000000ull) {
		w->late += (t - w->next_due) / w->interval_ns;
		w->next_due = t;
	}
	w->releasing = 1;
	while (w->nidle && w->next_due <= t && !w->stopping) {
		uint32_t v = w->idle[--w->nidle];
		struct conn *c = &w->conns[v >> 16];
		slot_start(w, c, v & 0xffff);
		if (c->want_write && conn_flush(w, c) < 0)
			w->stopping = 2;
		w->next_due += w->interval_ns;
	}
	w->releasing = 0;
}

/* epoll timeout: until the next start is due under --rate, else 10 ms. */
static int worker_timeout(const struct worker *w, uint64_t t)
{
	if (!w->interval_ns || !w->nidle)
		return 10;
	if (w->next_due <= t)
		return 0;
	uint64_t ms = (w->next_due - t + 999999) / 1000000;
	return ms < 10 ? (int)ms : 10;
}

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	const struct opts *o = &w->b->o;
	struct epoll_event evs[64];
	for (int i = 0; i < w->nconns; i++) {
		for (int s = 0; s < o->pipeline; s++)
			slot_start(w, &w->conns[i], (uint32_t)s);
		conn_flush(w, &w->conns[i]);
	}
	uint64_t drain_until = 0;
	for (;;) {
		uint64_t t = now_ns();
		if (o->op != OP_LOAD && t >= w->t_stop && !w->stopping) {
			/* Let queued requests finish (unmeasured) so that no
			 * work of this run spills into the next one. */
			w->stopping = 1;
			drain_until = t + 30000000000ull;
		}
		if (w->stopping == 2 || (w->stopping && t >= drain_until))
			break;
		if (w->stopping || o->op == OP_LOAD)
			if (!w->busy_slots)
				break;
		if (w->interval_ns && !w->stopping)
			worker_release(w, t);
		int n = epoll_wait(w->ep, evs, 64, worker_timeout(w, t));
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
				if (conn_read(w, c) < 0) {
					worker_fail(w, c);
					break;
				}
			if (c->want_write && conn_flush(w, c) < 0) {
				worker_fail(w, c);
				break;
			}
		}
	}
	return NULL;
}

/* ---- synchronous helpers: handshakes, scripts, snapshot, wait ----------- */

/* Send c->out and read one complete reply into c->in; returns its size (the
 * reply is at c->in.p) or -1.  Blocking socket. */
static long sync_call(enum proto proto, struct conn *c, struct resp_reply *rr)
{
	if (write_all(c, c->out.p, c->out.len) < 0)
		return -1;
	c->out.len = 0;
	c->in.len = 0;
	for (;;) {
		long k;
		if (proto == PROTO_REDIS) {
			k = resp_parse(c->in.p, c->in.len, rr);
		} else if (proto == PROTO_USERDB) {
			k = c->in.len ? mp_skip(c->in.p, c->in.len) : 0;
		} else {
			uint64_t code, sync;
			k = tnt_reply(c->in.p, c->in.len, &code, &sync);
		}
		if (k != 0)
			return k;
		buf_reserve(&c->in, 65536);
		ssize_t r =
		    io_rw(c, c->in.p + c->in.len, c->in.cap - c->in.len, 0);
		if (r <= 0)
			return -1;
		c->in.len += (size_t)r;
	}
}

/* True if the userdb / Tarantool reply in c->in is an error. */
static int sync_reply_failed(enum proto proto, const struct conn *c, long n)
{
	if (proto == PROTO_USERDB) {
		uint64_t id;
		int err = 1;
		return udb_reply(c->in.p, (size_t)n, &id, &err) <= 0 || err;
	}
	uint64_t code = 1, sync;
	return tnt_reply(c->in.p, (size_t)n, &code, &sync) <= 0 || code != 0;
}

/* Open a connection and do the protocol's handshake; -1 on failure. */
static int conn_open_at(struct bench *b, struct conn *c, int port)
{
	memset(c, 0, sizeof *c);
	c->fd = tcp_connect(b->o.host, port);
	if (c->fd < 0)
		return -1;
	if (b->o.tls && tls_start(c)) {
		fprintf(stderr, "userdb-bench: TLS handshake failed\n");
		return -1;
	}
	if (b->o.proto == PROTO_TARANTOOL) {
		uint8_t greeting[128];
		size_t got = 0;
		while (got < sizeof greeting) {
			ssize_t r =
			    read(c->fd, greeting + got, sizeof greeting - got);
			if (r <= 0)
				return -1;
			got += (size_t)r;
		}
	}
	if (b->o.proto == PROTO_USERDB && b->o.api_key) {
		udb_begin(&c->out, 0, "auth", 1);
		mp_cstr(&c->out, b->o.api_key);
		long n = sync_call(PROTO_USERDB, c, NULL);
		if (n <= 0 || sync_reply_failed(PROTO_USERDB, c, n)) {
			fprintf(stderr, "userdb-bench: auth failed\n");
			return -1;
		}
	}
	c->in.len = 0;
	return 0;
}

static int conn_open(struct bench *b, struct conn *c)
{
	return conn_open_at(b, c, b->o.port);
}

static void conn_close(struct conn *c)
{
	if (c->ssl)
		SSL_free(c->ssl);
	c->ssl = NULL;
	if (c->fd >= 0)
		close(c->fd);
	free(c->in.p);
	free(c->out.p);
	free(c->slots);
	free(c->fifo);
	c->fd = -1;
}

static const char lua_email[] = "local id = redis.call('GET', KEYS[1]) "
				"if not id then return false end "
				"return redis.call('HGETALL', 'user:' .. id)";
static const char lua_list[] =
    "local ids = redis.call('ZREVRANGE', KEYS[1], ARGV[1], ARGV[2]) "
    "local out = {} "
    "for i, id in ipairs(ids) do "
    "out[i] = redis.call('HGETALL', 'user:' .. id) end "
    "return {redis.call('ZCARD', KEYS[1]), out}";
static const char lua_create[] =
    "if redis.call('EXISTS', KEYS[1]) == 1 then "
    "return redis.error_reply('duplicate_id') end "
    "if not redis.call('SET', KEYS[2], ARGV[1], 'NX') then "
    "return redis.error_reply('duplicate_email') end "
    "redis.call('HSET', KEYS[1], unpack(ARGV, 3)) "
    "redis.call('SADD', KEYS[3], ARGV[1]) "
    "redis.call('SADD', KEYS[4], ARGV[1]) "
    "redis.call('ZADD', KEYS[5], ARGV[2], ARGV[1]) "
    "return redis.call('HGETALL', KEYS[1])";
/* A full scan, as a Redis user without a search module would have to. */
static const char lua_search[] =
    "local term, limit = ARGV[1], tonumber(ARGV[2]) "
    "local out, total, cursor = {}, 0, '0' "
    "repeat "
    "local r = redis.call('SCAN', cursor, 'MATCH', 'user:*', 'COUNT', 1000) "
    "cursor = r[1] "
    "for _, k in ipairs(r[2]) do "
    "local f = redis.call('HMGET', k, 'name', 'email') "
    "if string.find(string.lower(f[1]), term, 1, true) or "
    "string.find(string.lower(f[2]), term, 1, true) then "
    "total = total + 1 "
    "if #out < limit then out[#out + 1] = redis.call('HGETALL', k) end "
    "end end until cursor == '0' "
    "return {total, out}";

static void redis_script_load(struct conn *c, const char *src, char *sha)
{
	struct resp_reply rr;
	resp_array(&c->out, 3);
	resp_cstr(&c->out, "SCRIPT");
	resp_cstr(&c->out, "LOAD");
	resp_cstr(&c->out, src);
	long n = sync_call(PROTO_REDIS, c, &rr);
	if (n <= 0 || rr.error || !rr.bulk || rr.bulk_len >= 48)
		die("SCRIPT LOAD failed");
	memcpy(sha, rr.bulk, (size_t)rr.bulk_len);
	sha[rr.bulk_len] = 0;
}

static void redis_scripts(struct bench *b)
{
	struct conn c;
	if (conn_open(b, &c) < 0)
		die("cannot connect to %s:%d", b->o.host, b->o.port);
	redis_script_load(&c, lua_email, b->sha_email);
	redis_script_load(&c, lua_list, b->sha_list);
	redis_script_load(&c, lua_create, b->sha_create);
	redis_script_load(&c, lua_search, b->sha_search);
	conn_close(&c);
}

/* One request on a fresh connection (ping, snapshot); 0 on success. */
static int one_call(struct bench *b, enum op op)
{
	struct conn c;
	struct slot s = {.kind = (uint8_t)op, .user = 7};
	struct worker w = {.b = b, .rng = 1};
	struct resp_reply rr = {0};
	if (conn_open(b, &c) < 0) {
		conn_close(&c);
		return -1;
	}
	if (b->o.proto == PROTO_USERDB)
		enc_userdb(&w, &c, 0, &s);
	else if (b->o.proto == PROTO_REDIS)
		enc_redis(&w, &c, &s);
	else
		enc_tarantool(&w, &c, 0, &s);
	long n = sync_call(b->o.proto, &c, &rr);
	int failed = n <= 0 || (b->o.proto == PROTO_REDIS
				    ? rr.error
				    : sync_reply_failed(b->o.proto, &c, n));
	if (n > 0 && failed)
		report_error(b, c.in.p, (size_t)n);
	if (n > 0 && b->o.show) {
		for (long i = 0; i < n; i++)
			putchar(isprint(c.in.p[i]) ? c.in.p[i] : '.');
		putchar('\n');
	}
	conn_close(&c);
	return failed ? -1 : 0;
}

/* ---- running a workload ------------------------------------------------- */

/* CPU seconds this process has used (all threads). */
static double cpu_seconds(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
	       ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) /
		   1e6;
}

/* Nanoseconds on a CPU that process pid has used, all its threads (the
 * first field of each /proc/PID/task/TID/schedstat: the scheduler's own
 * accounting, finer than the clock ticks of /proc/PID/stat).  -1 when it
 * cannot be read.  A thread that ended meanwhile drops out of the sum; the
 * servers measured keep theirs for their lifetime. */
static double proc_cpu_ns(int pid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/task", pid);
	DIR *d = opendir(path);
	if (!d)
		return -1;
	double sum = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char p[320];
		unsigned long long ns = 0;
		snprintf(p, sizeof p, "/proc/%d/task/%s/schedstat", pid,
			 e->d_name);
		FILE *f = fopen(p, "r");
		if (f) {
			if (fscanf(f, "%llu", &ns) == 1)
				sum += (double)ns;
			fclose(f);
		}
	}
	closedir(d);
	return sum;
}

/* Nanoseconds on a CPU that process pid and its children have used: each
 * live one's schedstat as above, plus the user and system time of the
 * children pid already reaped (/proc/PID/stat fields 16 and 17, in clock
 * ticks).  For a PostgreSQL postmaster this is every backend, the ones
 * that ended during a run (pgbench's, at its exit) included: the whole
 * server's cost.  -1 when pid cannot be read. */
static double tree_cpu_ns(int pid)
{
	double self = proc_cpu_ns(pid), sum = 0, tick = 1e9 / 100;
	long hz = sysconf(_SC_CLK_TCK);
	DIR *d = opendir("/proc");
	struct dirent *e;
	if (self < 0 || !d) {
		if (d)
			closedir(d);
		return -1;
	}
	if (hz > 0)
		tick = 1e9 / (double)hz;
	while ((e = readdir(d))) {
		char p[300], st[1024];
		int child = atoi(e->d_name);
		if (child <= 0)
			continue;
		snprintf(p, sizeof p, "/proc/%d/stat", child);
		FILE *f = fopen(p, "r");
		size_t n = f ? fread(st, 1, sizeof st - 1, f) : 0;
		if (f)
			fclose(f);
		st[n] = 0;
		/* after the ")" that ends the command name: state ppid ... */
		char *r = strrchr(st, ')');
		unsigned long long ut, stime, cut, cst;
		double ns;
		int ppid;
		if (!r || sscanf(r + 2,
				 "%*c %d %*d %*d %*d %*d %*u %*u %*u "
				 "%*u %*u %llu %llu %llu %llu",
				 &ppid, &ut, &stime, &cut, &cst) != 5)
			continue;
		if (child == pid)
			sum += (double)(cut + cst) * tick;
		else if (ppid == pid && (ns = proc_cpu_ns(child)) >= 0)
			sum += ns + (double)(cut + cst) * tick;
	}
	closedir(d);
	return self + sum;
}

static void sleep_until(uint64_t t)
{
	uint64_t n;
	while ((n = now_ns()) < t)
		usleep((useconds_t)((t - n) / 1000 + 1));
}

/* The lag probe (--probe-port). */

/* A request of kind op for user i on c, sent and answered; 0 when the
 * reply is a success, 1 an error reply, -1 a broken connection. */
static int probe_call(struct worker *w, struct conn *c, enum op op, uint64_t i)
{
	struct slot s = {.kind = (uint8_t)op, .user = i};
	enc_userdb(w, c, 0, &s);
	long n = sync_call(PROTO_USERDB, c, NULL);
	if (n <= 0)
		return -1;
	return sync_reply_failed(PROTO_USERDB, c, n);
}

/* Until t_stop, every 5 ms: create a user on --port (the writer, A) and,
 * from the moment A acknowledged it, ask --probe-port (B) for it by id
 * every 100 us until B has it: that time is the coherence lag.  Users
 * from create_base + 5*10^8 on, so they never meet the load's creates. */
static void *probe_run(void *arg)
{
	struct probe *p = arg;
	struct bench *b = p->b;
	struct worker w = {.b = b, .rng = 7};
	struct conn a, bn;
	if (conn_open(b, &a) < 0 || conn_open_at(b, &bn, b->o.probe_port) < 0)
		die("lag probe: cannot connect");
	for (uint64_t k = 0, t = now_ns(); t < p->t_stop; k++) {
		uint64_t i = (uint64_t)b->o.create_base + 500000000ull + k;
		uint64_t next = t + 5000000ull;
		if (probe_call(&w, &a, OP_CREATE, i)) {
			p->errors++;
		} else {
			uint64_t acked = now_ns(), seen;
			int r;
			while ((r = probe_call(&w, &bn, OP_GET_BY_ID, i)) ==
				   1 &&
			       now_ns() - acked < 5000000000ull)
				usleep(100);
			seen = now_ns();
			if (r)
				p->missing++;
			else if (acked >= p->t_measure)
				hist_add(&p->lag, seen - acked);
		}
		sleep_until(next);
		t = now_ns();
	}
	conn_close(&a);
	conn_close(&bn);
	return NULL;
}

/* client_cpu: the generator's own CPU use over the run, in cores; near 1.0
 * per thread means the client, not the server, was the limit.  server_ns:
 * the server's CPU over the measured interval, or < 0 when not measured. */
static void report_print(const struct bench *b, const struct hist *h,
			 uint64_t ops, uint64_t errors, double secs,
			 double client_cpu, double server_ns, double tree_ns,
			 uint64_t late)
{
	const struct opts *o = &b->o;
	printf("{\"proto\":\"%s\",\"op\":\"%s\",\"users\":%ld,\"conns\":%d,"
	       "\"pipeline\":%d,\"threads\":%d,\"seconds\":%.3f,"
	       "\"ops\":%llu,\"errors\":%llu,\"ops_per_sec\":%.1f,"
	       "\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,"
	       "\"max_us\":%.1f,\"client_cpu\":%.2f",
	       proto_names[o->proto], op_names[o->op], o->users, o->conns,
	       o->pipeline, o->threads, secs, (unsigned long long)ops,
	       (unsigned long long)errors, secs > 0 ? (double)ops / secs : 0,
	       (double)hist_quantile(h, 0.50) / 1e3,
	       (double)hist_quantile(h, 0.99) / 1e3,
	       (double)hist_quantile(h, 0.999) / 1e3, (double)h->max / 1e3,
	       client_cpu);
	if (server_ns >= 0)
		printf(",\"server_cpu_s\":%.4f,\"server_cpu_cores\":%.3f,"
		       "\"server_us_per_op\":%.3f",
		       server_ns / 1e9, secs > 0 ? server_ns / 1e9 / secs : 0,
		       ops ? server_ns / 1e3 / (double)ops : 0);
	if (tree_ns >= 0)
		printf(",\"tree_cpu_s\":%.4f,\"tree_cpu_cores\":%.3f,"
		       "\"tree_us_per_op\":%.3f",
		       tree_ns / 1e9, secs > 0 ? tree_ns / 1e9 / secs : 0,
		       ops ? tree_ns / 1e3 / (double)ops : 0);
	if (o->rate > 0)
		printf(",\"rate\":%.0f,\"late_starts\":%llu", o->rate,
		       (unsigned long long)late);
	if (b->probe) {
		const struct hist *l = &b->probe->lag;
		printf(",\"lag_samples\":%llu,\"lag_missing\":%llu,"
		       "\"lag_probe_errors\":%llu,\"lag_p50_us\":%.1f,"
		       "\"lag_p99_us\":%.1f,\"lag_max_us\":%.1f",
		       (unsigned long long)l->total,
		       (unsigned long long)b->probe->missing,
		       (unsigned long long)b->probe->errors,
		       (double)hist_quantile(l, 0.50) / 1e3,
		       (double)hist_quantile(l, 0.99) / 1e3,
		       (double)l->max / 1e3);
	}
	printf("}\n");
}

static void worker_setup(struct bench *b, struct worker *w, int index,
			 int nconns)
{
	memset(w, 0, sizeof *w);
	w->b = b;
	w->index = index;
	w->nconns = nconns;
	w->rng = b->o.seed * 1000003u + (uint64_t)index;
	w->ep = epoll_create1(EPOLL_CLOEXEC);
	w->conns = calloc((size_t)nconns, sizeof *w->conns);
	if (w->ep < 0 || !w->conns)
		die("out of resources");
	uint32_t fifo = 1;
	uint32_t per_op =
	    (uint32_t)(b->o.limit > GET_MANY_MAX ? b->o.limit : GET_MANY_MAX);
	while (fifo < (uint32_t)b->o.pipeline * (per_op + 8))
		fifo <<= 1;
	for (int i = 0; i < nconns; i++) {
		struct conn *c = &w->conns[i];
		if (conn_open(b, c) < 0)
			die("cannot connect to %s:%d", b->o.host, b->o.port);
		c->slots = calloc((size_t)b->o.pipeline, sizeof *c->slots);
		c->fifo = calloc(fifo, sizeof *c->fifo);
		c->fifo_mask = fifo - 1;
		if (!c->slots || !c->fifo)
			die("out of memory");
		fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
		epoll_ctl(w->ep, EPOLL_CTL_ADD, c->fd, &ev);
	}
	if (b->o.rate > 0) {
		w->interval_ns = (uint64_t)(1e9 / b->o.rate * b->o.threads);
		w->interval_ns += !w->interval_ns;
		w->idle = calloc((size_t)nconns * (size_t)b->o.pipeline,
				 sizeof *w->idle);
		if (!w->idle)
			die("out of memory");
	}
}

static int run_workload(struct bench *b)
{
	const struct opts *o = &b->o;
	int nt = o->threads < o->conns ? o->threads : o->conns;
	struct worker *ws = calloc((size_t)nt, sizeof *ws);
	if (!ws)
		die("out of memory");
	for (int t = 0; t < nt; t++)
		worker_setup(b, &ws[t], t,
			     o->conns / nt + (t < o->conns % nt ? 1 : 0));
	uint64_t t0 = now_ns();
	double cpu0 = cpu_seconds();
	uint64_t t_measure = t0 + (uint64_t)(o->warmup * 1e9);
	uint64_t t_stop = o->op == OP_LOAD
			      ? UINT64_MAX
			      : t_measure + (uint64_t)(o->duration * 1e9);
	if (o->op == OP_LOAD)
		t_measure = t0;
	for (int t = 0; t < nt; t++) {
		ws[t].t_measure = t_measure;
		ws[t].t_stop = t_stop;
		ws[t].next_due = t0;
		pthread_create(&ws[t].thread, NULL, worker_run, &ws[t]);
	}
	struct probe *probe = NULL;
	if (o->probe_port) {
		probe = calloc(1, sizeof *probe);
		if (!probe)
			die("out of memory");
		*probe = (struct probe){
		    .b = b, .t_measure = t_measure, .t_stop = t_stop};
		pthread_create(&probe->thread, NULL, probe_run, probe);
	}
	/* The servers' CPU over exactly the window the workers count ops in
	 * (load: the whole run). */
	double srv0 = -1, srv1 = -1, tree0 = -1, tree1 = -1;
	if (o->server_pid || o->tree_pid) {
		sleep_until(t_measure);
		srv0 = o->server_pid ? proc_cpu_ns(o->server_pid) : -1;
		tree0 = o->tree_pid ? tree_cpu_ns(o->tree_pid) : -1;
		if (t_stop != UINT64_MAX) {
			sleep_until(t_stop);
			srv1 = o->server_pid ? proc_cpu_ns(o->server_pid) : -1;
			tree1 = o->tree_pid ? tree_cpu_ns(o->tree_pid) : -1;
		}
	}
	struct hist *h = calloc(1, sizeof *h);
	uint64_t ops = 0, errors = 0, late = 0;
	int lost = 0;
	for (int t = 0; t < nt; t++) {
		pthread_join(ws[t].thread, NULL);
		hist_merge(h, &ws[t].hist);
		ops += ws[t].ops;
		errors += ws[t].errors;
		late += ws[t].late;
		lost |= ws[t].stopping == 2;
	}
	if (probe) {
		pthread_join(probe->thread, NULL);
		b->probe = probe;
	}
	uint64_t t_end = now_ns();
	double secs = o->op == OP_LOAD ? (double)(t_end - t0) / 1e9
				       : (double)(t_stop - t_measure) / 1e9;
	double wall = (double)(t_end - t0) / 1e9;
	if (o->server_pid && t_stop == UINT64_MAX)
		srv1 = proc_cpu_ns(o->server_pid);
	if (o->tree_pid && t_stop == UINT64_MAX)
		tree1 = tree_cpu_ns(o->tree_pid);
	report_print(b, h, ops, errors, secs,
		     wall > 0 ? (cpu_seconds() - cpu0) / wall : 0,
		     srv0 >= 0 && srv1 >= 0 ? srv1 - srv0 : -1,
		     tree0 >= 0 && tree1 >= 0 ? tree1 - tree0 : -1, late);
	for (int t = 0; t < nt; t++) {
		for (int i = 0; i < ws[t].nconns; i++)
			conn_close(&ws[t].conns[i]);
		free(ws[t].conns);
		free(ws[t].idle);
		close(ws[t].ep);
	}
	free(ws);
	free(h);
	free(probe);
	b->probe = NULL;
	return lost ? 1 : 0;
}

/* Poll with ping until the server answers; prints the time it took. */
static int run_wait(struct bench *b)
{
	uint64_t t0 = now_ns();
	uint64_t limit = t0 + (uint64_t)(b->o.timeout * 1e9);
	/* Tarantool listens, and answers pings and selects, before its
	 * recovery ends (a select then may find nothing or only part of the
	 * data): call a function its init script defines after box.cfg.
	 * Redis answers -LOADING meanwhile, which counts as not ready. */
	enum op probe = b->o.proto == PROTO_TARANTOOL ? OP_WAIT : OP_PING;
	atomic_store(&b->error_printed, 1); /* LOADING replies are expected */
	while (one_call(b, probe) < 0) {
		if (now_ns() > limit) {
			fprintf(stderr, "userdb-bench: no answer in %.0f s\n",
				b->o.timeout);
			return 1;
		}
		usleep(2000);
	}
	printf("{\"proto\":\"%s\",\"op\":\"wait\",\"seconds\":%.3f}\n",
	       proto_names[b->o.proto], (double)(now_ns() - t0) / 1e9);
	return 0;
}

/* One timed request (snapshot, ping). */
static int run_single(struct bench *b)
{
	uint64_t t0 = now_ns();
	int rc = one_call(b, b->o.op);
	printf("{\"proto\":\"%s\",\"op\":\"%s\",\"ok\":%s,\"seconds\":%.3f}\n",
	       proto_names[b->o.proto], op_names[b->o.op],
	       rc ? "false" : "true", (double)(now_ns() - t0) / 1e9);
	return rc ? 1 : 0;
}

/* The ids of up to 10000 users spread evenly over [0, users), one a line:
 * the key list for HTTP load tools. */
static int print_ids(const struct opts *o)
{
	long n = o->users < 10000 ? o->users : 10000;
	struct user u;
	for (long k = 0; k < n; k++) {
		user_fill(&u, (uint64_t)(k * (o->users / n)));
		printf("%s\n", u.id);
	}
	return 0;
}

/* ---- self-test (ctest: bench_selftest) -------------------------------- */

static int st_failures;

#define ST_CHECK(cond)                                                         \
	do {                                                                   \
		if (!(cond) && st_failures++ < 20)                             \
			fprintf(stderr, "self-test: %s:%d: %s\n", __FILE__,    \
				__LINE__, #cond);                              \
	} while (0)

/* parse(p, n) must say "incomplete" (0) for every proper prefix of a valid
 * stream element and return its full size for the whole. */
static void st_every_cut(long (*parse)(const uint8_t *, size_t),
			 const struct buf *b)
{
	for (size_t cut = 0; cut < b->len; cut++)
		ST_CHECK(parse(b->p, cut) == 0);
	ST_CHECK(parse(b->p, b->len) == (long)b->len);
}

static long st_resp(const uint8_t *p, size_t n)
{
	struct resp_reply r;
	return resp_parse(p, n, &r);
}

static long st_tnt(const uint8_t *p, size_t n)
{
	uint64_t code, sync;
	return tnt_reply(p, n, &code, &sync);
}

static void st_hist(void)
{
	static struct hist h;
	for (uint64_t v = 1; v <= 100000; v++)
		hist_add(&h, v * 1000);
	double p50 = (double)hist_quantile(&h, 0.5);
	double p99 = (double)hist_quantile(&h, 0.99);
	ST_CHECK(p50 > 50e6 * 0.98 && p50 < 50e6 * 1.02);
	ST_CHECK(p99 > 99e6 * 0.98 && p99 < 99e6 * 1.02);
	ST_CHECK(hist_quantile(&h, 1.0) == 100000 * 1000);
	/* every bucket up to values of 2^50 ns maps back to itself */
	for (unsigned i = 1; i < (50 - HIST_SUB_BITS + 2) * HIST_HALF; i++)
		ST_CHECK(hist_index(hist_value(i)) == i);
}

static void st_msgpack(void)
{
	static const size_t lens[] = {0, 31, 32, 255, 256, 65535, 65536};
	static const uint64_t ints[] = {
	    0, 127, 128, 255, 256, 65535, 65536, 0xffffffffull, 1ull << 40};
	static const uint8_t raw[] = {0xc0, 0xc2, 0xc3, 0xff, 0xd0, 0x80,
				      0xca, 0,	  0,	0,    0,    0xd4,
				      1,    2,	  0xc4, 2,    9,    9};
	struct buf b = {0};
	char *big = calloc(1, 65536);
	mp_map(&b, 3);
	mp_cstr(&b, "strings");
	mp_array(&b, 7);
	for (int i = 0; i < 7; i++)
		mp_str(&b, big, lens[i]);
	mp_cstr(&b, "ints");
	mp_array(&b, 9);
	for (int i = 0; i < 9; i++)
		mp_uint(&b, ints[i]);
	mp_cstr(&b, "raw");
	mp_array(&b, 9); /* nil false true -1 int8 {} float32 fixext1 bin8 [] */
	buf_put(&b, raw, sizeof raw);
	mp_array(&b, 0);
	st_every_cut(mp_skip, &b);
	uint8_t bad = 0xc1;
	ST_CHECK(mp_skip(&bad, 1) == -1);
	uint64_t v;
	for (int i = 0; i < 9; i++) {
		struct buf one = {0};
		mp_uint(&one, ints[i]);
		ST_CHECK(mp_read_uint(one.p, one.len, &v) == (long)one.len);
		ST_CHECK(v == ints[i]);
		ST_CHECK(mp_read_uint(one.p, one.len - 1, &v) == 0 ||
			 one.len == 1);
		free(one.p);
	}
	free(big);
	free(b.p);
}

static void st_resp_cases(void)
{
	static const char *const ok[] = {
	    "+OK\r\n", ":42\r\n",
	    "$-1\r\n", "$3\r\nabc\r\n",
	    "*-1\r\n", "*3\r\n:1\r\n*2\r\n$1\r\na\r\n$0\r\n\r\n$-1\r\n",
	};
	struct resp_reply r;
	for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
		struct buf b = {0};
		buf_put(&b, ok[i], strlen(ok[i]));
		st_every_cut(st_resp, &b);
		free(b.p);
	}
	const uint8_t *e = (const uint8_t *)"-ERR x\r\n";
	ST_CHECK(resp_parse(e, 8, &r) == 8 && r.error);
	const uint8_t *s = (const uint8_t *)"$3\r\nabc\r\n";
	ST_CHECK(resp_parse(s, 9, &r) == 9 && !r.error && r.bulk_len == 3 &&
		 !memcmp(r.bulk, "abc", 3));
	ST_CHECK(resp_parse((const uint8_t *)"?x\r\n", 4, &r) == -1);
}

static void st_tarantool(void)
{
	struct buf b = {0};
	uint64_t code = 7, sync = 0;
	/* header {0: code as uint32, 1: sync as uint64, 5: schema}, body */
	buf_byte(&b, 0xce);
	buf_be(&b, 0, 4);
	buf_byte(&b, 0x83);
	buf_byte(&b, 0x00);
	buf_byte(&b, 0xce);
	buf_be(&b, 0x8003, 4);
	buf_byte(&b, 0x01);
	buf_byte(&b, 0xcf);
	buf_be(&b, 0x12345, 8);
	buf_byte(&b, 0x05);
	buf_byte(&b, 0x09);
	mp_map(&b, 1);
	mp_uint(&b, 0x31);
	mp_cstr(&b, "error text");
	tnt_end(&b, 0);
	st_every_cut(st_tnt, &b);
	ST_CHECK(tnt_reply(b.p, b.len, &code, &sync) == (long)b.len);
	ST_CHECK(code == 0x8003 && sync == 0x12345);
	free(b.p);
}

static long st_udb(const uint8_t *p, size_t n)
{
	uint64_t id;
	int err;
	return udb_reply(p, n, &id, &err);
}

static void st_userdb(void)
{
	for (int failed = 0; failed < 2; failed++) {
		struct buf b = {0};
		uint64_t id = 0;
		int err = -1;
		mp_array(&b, 4);
		mp_uint(&b, 1);
		mp_uint(&b, (7u << 16) | 3);
		if (failed) {
			mp_map(&b, 1);
			mp_cstr(&b, "code");
			mp_cstr(&b, "not_found");
			buf_byte(&b, 0xc0);
		} else {
			buf_byte(&b, 0xc0);
			mp_map(&b, 1);
			mp_cstr(&b, "id");
			mp_cstr(&b, "usr_x");
		}
		st_every_cut(st_udb, &b);
		ST_CHECK(udb_reply(b.p, b.len, &id, &err) == (long)b.len);
		ST_CHECK(id == ((7u << 16) | 3) && err == failed);
		b.p[1] = 0x00; /* a request, not a response */
		ST_CHECK(udb_reply(b.p, b.len, &id, &err) == -1);
		free(b.p);
	}
}

static int st_cmp(const void *a, const void *b)
{
	return memcmp(a, b, 21);
}

static void st_data(void)
{
	enum { N = 50000 };
	char(*ids)[21] = malloc(sizeof *ids * N);
	struct user u;
	for (uint64_t i = 0; i < N; i++) {
		user_fill(&u, i);
		ST_CHECK(u.id_len == 20 && !memcmp(u.id, "usr_", 4));
		ST_CHECK(strspn(u.id + 4,
				"0123456789abcdefghijklmnopqrstuvwxyz") == 16);
		memcpy(ids[i], u.id, 21);
	}
	qsort(ids, N, sizeof *ids, st_cmp);
	for (int i = 1; i < N; i++)
		ST_CHECK(memcmp(ids[i - 1], ids[i], 21) != 0);
	free(ids);
	long total = 0;
	for (int r = 0; r < 3; r++)
		for (int s = 0; s < 3; s++)
			total += combo_count(12345, r, s);
	ST_CHECK(total == 12345);
	/* the closed form against counting, for every small n */
	for (long n = 0; n < 40; n++)
		for (int r = 0; r < 3; r++)
			for (int s = 0; s < 3; s++) {
				long c = 0;
				for (long i = 0; i < n; i++)
					c += i % 3 == r && i / 3 % 3 == s;
				ST_CHECK(combo_count(n, r, s) == c);
			}
	struct opts o = {.users = 12345, .limit = 20};
	long off = deep_offset(&o);
	ST_CHECK(off % 20 == 0 && off > 0);
	for (int r = 0; r < 3; r++)
		for (int s = 0; s < 3; s++)
			ST_CHECK(off < combo_count(12345, r, s));
}

/* The parsers, the histogram and the data set, without any server. */
static int self_test(void)
{
	st_hist();
	st_msgpack();
	st_resp_cases();
	st_tarantool();
	st_userdb();
	st_data();
	if (st_failures)
		fprintf(stderr, "self-test: %d failed checks\n", st_failures);
	else
		printf("self-test: ok\n");
	return st_failures ? 1 : 0;
}

/* ---- command line ---------------------------------------------------------
 */

static void usage(void)
{
	fprintf(
	    stderr,
	    "usage: userdb-bench --proto userdb|redis|tarantool --port N "
	    "--op OP [options]\n"
	    "  OP: load get_by_id get_by_email get_many list_first list_deep\n"
	    "      search create update mix ping snapshot wait ids cpu\n"
	    "  --host H          server address (127.0.0.1)\n"
	    "  --api-key K       userdb: send auth first on every "
	    "connection\n"
	    "  --users N         users loaded, keys drawn from [0, N) "
	    "(100000)\n"
	    "  --create-base N   first user number for create (10^9)\n"
	    "  --conns C         connections (50)\n"
	    "  --pipeline P      operations in flight per connection (1)\n"
	    "  --tls             userdb over TLS (no certificate check)\n"
	    "  --threads T       event-loop threads (1)\n"
	    "  --duration S      seconds measured (3)\n"
	    "  --warmup S        seconds before measuring (0.5)\n"
	    "  --timeout S       wait: give up after S seconds (120)\n"
	    "  --seed X          key distribution seed (1)\n"
	    "  --email-2rtt      Redis get_by_email as GET + HGETALL\n"
	    "  --list-2rtt       Redis lists as ZCARD + ZREVRANGE, then "
	    "HGETALLs\n"
	    "  --many N          ids per get_many (10)\n"
	    "  --limit N         page size for lists and search (20)\n"
	    "  --write-pct N     mix: percentage of updates (10)\n"
	    "  --show            send one --op request (user 7), print the "
	    "reply\n"
	    "  --no-hashes       load and create users without a "
	    "password_hash\n"
	    "  --plain-ids       user i's id is usr_ + i in 16 decimal digits "
	    "(SQL can\n"
	    "                    compute it: bench/pg.sh)\n"
	    "  --server-pid PID  also report the CPU time PID (all threads) "
	    "used in\n"
	    "                    the measured interval, and per request\n"
	    "  --tree-pid PID    the same for PID and all its children "
	    "(a postmaster);\n"
	    "                    with --op cpu: print that CPU time now\n"
	    "  --rate R          start R operations per second in all (open "
	    "loop; at\n"
	    "                    most conns x pipeline in flight)\n"
	    "  --probe-port N    with --op create: every 5 ms create a user "
	    "on --port\n"
	    "                    and time until N serves it (coherence lag)\n"
	    "Prints one JSON object on stdout.  userdb-bench --self-test "
	    "checks the parsers.\n");
	exit(2);
}

static int lookup(const char *s, const char *const *names, int n)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(s, names[i]))
			return i;
	return -1;
}

static void opts_parse(struct opts *o, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"proto", 1, 0, 'P'},	{"op", 1, 0, 'o'},
	    {"host", 1, 0, 'h'},	{"port", 1, 0, 'p'},
	    {"api-key", 1, 0, 'k'},	{"users", 1, 0, 'n'},
	    {"create-base", 1, 0, 'b'}, {"conns", 1, 0, 'c'},
	    {"pipeline", 1, 0, 'd'},	{"threads", 1, 0, 't'},
	    {"duration", 1, 0, 's'},	{"warmup", 1, 0, 'w'},
	    {"timeout", 1, 0, 'T'},	{"seed", 1, 0, 'S'},
	    {"email-2rtt", 0, 0, 'e'},	{"many", 1, 0, 'm'},
	    {"limit", 1, 0, 'l'},	{"write-pct", 1, 0, 'W'},
	    {"show", 0, 0, 'x'},	{"list-2rtt", 0, 0, 'L'},
	    {"no-hashes", 0, 0, 'H'},	{"server-pid", 1, 0, 'C'},
	    {"tls", 0, 0, 'Z'},		{"plain-ids", 0, 0, 'I'},
	    {"tree-pid", 1, 0, 'R'},	{"rate", 1, 0, 'r'},
	    {"probe-port", 1, 0, 'Q'},	{0, 0, 0, 0},
	};
	int ch, v;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'P':
			if ((v = lookup(optarg, proto_names, 3)) < 0)
				usage();
			o->proto = (enum proto)v;
			break;
		case 'o':
			if ((v = lookup(optarg, op_names, OP_CPU + 1)) < 0)
				usage();
			o->op = (enum op)v;
			break;
		case 'h':
			o->host = optarg;
			break;
		case 'p':
			o->port = atoi(optarg);
			break;
		case 'k':
			o->api_key = optarg;
			break;
		case 'Z':
			o->tls = 1;
			break;
		case 'I':
			plain_ids = 1;
			break;
		case 'R':
			o->tree_pid = atoi(optarg);
			break;
		case 'r':
			o->rate = atof(optarg);
			break;
		case 'Q':
			o->probe_port = atoi(optarg);
			break;
		case 'n':
			o->users = atol(optarg);
			break;
		case 'b':
			o->create_base = atol(optarg);
			break;
		case 'c':
			o->conns = atoi(optarg);
			break;
		case 'd':
			o->pipeline = atoi(optarg);
			break;
		case 't':
			o->threads = atoi(optarg);
			break;
		case 's':
			o->duration = atof(optarg);
			break;
		case 'w':
			o->warmup = atof(optarg);
			break;
		case 'T':
			o->timeout = atof(optarg);
			break;
		case 'S':
			o->seed = strtoull(optarg, NULL, 10);
			break;
		case 'e':
			o->email_two_rtt = 1;
			break;
		case 'm':
			o->many = atoi(optarg);
			break;
		case 'l':
			o->limit = atoi(optarg);
			break;
		case 'W':
			o->write_pct = atoi(optarg);
			break;
		case 'x':
			o->show = 1;
			break;
		case 'L':
			o->list_two_rtt = 1;
			break;
		case 'H':
			o->hashes = 0;
			break;
		case 'C':
			o->server_pid = atoi(optarg);
			break;
		default:
			usage();
		}
	}
	if ((!o->port && o->op != OP_CPU) || o->users < 1 || o->conns < 1 ||
	    o->pipeline < 1 || o->pipeline > 65535 || o->threads < 1 ||
	    o->many < 1 || o->many > GET_MANY_MAX || o->limit < 1 ||
	    o->limit > 100 || o->duration <= 0 || o->rate < 0 ||
	    (o->probe_port && (o->proto != PROTO_USERDB || o->op != OP_CREATE)))
		usage();
}

int main(int argc, char **argv)
{
	static struct bench b; /* large; not a global anyone else sees */
	b.o = (struct opts){
	    .host = "127.0.0.1",
	    .users = 100000,
	    .create_base = 1000000000,
	    .conns = 50,
	    .pipeline = 1,
	    .threads = 1,
	    .duration = 3,
	    .warmup = 0.5,
	    .timeout = 120,
	    .seed = 1,
	    .many = 10,
	    .limit = 20,
	    .write_pct = 10,
	    .hashes = 1,
	};
	if (argc == 2 && !strcmp(argv[1], "--self-test"))
		return self_test();
	opts_parse(&b.o, argc, argv);
	atomic_store(&b.next_create, b.o.create_base);
	time_t t = time(NULL);
	strftime(b.stamp, sizeof b.stamp, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
	signal(SIGPIPE, SIG_IGN);
	if (b.o.op == OP_WAIT)
		return run_wait(&b);
	if (b.o.op == OP_IDS)
		return print_ids(&b.o);
	if (b.o.op == OP_CPU) {
		/* for load tools that cannot measure it (pgbench) */
		double ns = b.o.tree_pid ? tree_cpu_ns(b.o.tree_pid) : -1;
		printf("{\"op\":\"cpu\",\"tree_cpu_ns\":%.0f}\n", ns);
		return ns < 0;
	}
	if (b.o.proto == PROTO_REDIS && b.o.op != OP_PING &&
	    b.o.op != OP_SNAPSHOT)
		redis_scripts(&b);
	if (b.o.op == OP_PING || b.o.op == OP_SNAPSHOT || b.o.show)
		return run_single(&b);
	if (b.o.op == OP_LOAD)
		b.o.warmup = 0;
	return run_workload(&b);
}
