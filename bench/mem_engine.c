/*
 * mem_engine.c -- memory and list cost of the engine at N users.
 *
 * Usage: mem_engine [N [utf8]]   (default 1,000,000)
 *
 * Creates N users of the benchmark's shape in a memory-only store (generated
 * id, "User Name 123456" (with "utf8": "Иван Петров 123456"),
 * "user123456@example.com", varied role/status, a
 * CDN avatar URL, a small custom_data map, no password, no identities) and
 * prints the resident memory they cost (from /proc/self/statm, before and
 * after) per user, then the time of a few list shapes: first page, a page
 * at offset N/2 of a filtered list, and searches of every selectivity
 * (one user, ~1%, everybody, none, short and non-ASCII needles).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "userdb.h"

static long rss_bytes(void)
{
	long size = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (!f)
		return -1;
	if (fscanf(f, "%ld %ld", &size, &resident) != 2)
		resident = -1;
	fclose(f);
	return resident * sysconf(_SC_PAGESIZE);
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* {"plan":"pro","seats":5,"tags":["a","b"]} */
static const char custom[] = "\x83\xa4plan\xa3pro\xa5seats\x05\xa4tags"
			     "\x92\xa1"
			     "a\xa1"
			     "b";

static const char *const roles[] = {"admin", "user", "viewer"};
static const char *const statuses[] = {"active", "inactive", "suspended"};

/* The name's words: "User Name" or, for a non-ASCII data set, Cyrillic
 * (folded through the two-byte table, sigs.h). */
static const char *name_words = "User Name";
static const char *needle_word = "NAME"; /* upper case: folding is tested */

static int fill(ud_db *db, long n)
{
	char name[64], email[48], avatar[64];
	struct ud_fields f;
	struct ud_error err;
	long i;

	for (i = 0; i < n; i++) {
		memset(&f, 0, sizeof(f));
		f.set = UD_F_NAME | UD_F_EMAIL | UD_F_ROLE | UD_F_STATUS |
			UD_F_AVATAR | UD_F_CUSTOM_DATA;
		f.name = name;
		f.name_len =
		    snprintf(name, sizeof(name), "%s %06ld", name_words, i);
		f.email = email;
		f.email_len =
		    snprintf(email, sizeof(email), "user%06ld@example.com", i);
		f.avatar = avatar;
		f.avatar_len =
		    snprintf(avatar, sizeof(avatar),
			     "https://cdn.example.com/avatars/%06ld.png", i);
		f.role = roles[i % 7 == 0 ? 0 : i % 5 == 0 ? 2 : 1];
		f.role_len = strlen(f.role);
		f.status = statuses[i % 11 == 0 ? 2 : i % 3 == 0 ? 1 : 0];
		f.status_len = strlen(f.status);
		f.custom_data = custom;
		f.custom_data_len = sizeof(custom) - 1;
		if (ud_user_create(db, &f, NULL, &err)) {
			fprintf(stderr, "create %ld: %s\n", i, err.message);
			return 1;
		}
	}
	return 0;
}

/* Average ms of `reps` runs of one list query. */
static double time_list(ud_db *db, const struct ud_query *q, int reps,
			uint64_t *total)
{
	static struct ud_page p;
	double t0 = now_ms();
	int i;

	for (i = 0; i < reps; i++)
		if (ud_user_list(db, q, &p, NULL))
			return -1;
	*total = p.total;
	return (now_ms() - t0) / reps;
}

static double cpu_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Fastest of `reps` runs of one list query, in ms of this thread's CPU
 * time: on a shared machine, the figure least disturbed by other work
 * (a single-threaded in-memory loop waits for nothing else).  With
 * touch_id, a user is suspended or reactivated before each run, so that no
 * remembered search total applies (a search right after a write). */
static double time_list_min(ud_db *db, const struct ud_query *q, int reps,
			    const char *touch_id, uint64_t *total)
{
	static struct ud_page p;
	double best = -1, t0, t;
	int i;

	for (i = 0; i < reps; i++) {
		if (touch_id &&
		    ud_user_set_suspended(db, touch_id, strlen(touch_id), i % 2,
					  NULL, NULL))
			return -1;
		t0 = cpu_ms();
		if (ud_user_list(db, q, &p, NULL))
			return -1;
		t = cpu_ms() - t0;
		if (best < 0 || t < best)
			best = t;
	}
	*total = p.total;
	return best;
}

/* Time one search needle, newest first: page 1 right after a write (every
 * match verified for the total), then page 2 of the same search with
 * nothing changed (the total is remembered; the scan stops once the page
 * is full). */
static void search_one(ud_db *db, const char *touch_id, const char *label,
		       const char *needle)
{
	struct ud_query q;
	uint64_t total = 0;
	double cold, warm;

	ud_query_init(&q);
	q.search = needle;
	q.search_len = strlen(needle);
	cold = time_list_min(db, &q, 15, touch_id, &total);
	ud_user_list(db, &q, &(struct ud_page){0}, NULL);
	q.page = 2;
	warm = time_list_min(db, &q, 15, NULL, &total);
	printf("search %-11s %-14s %8.3f ms, next page %7.3f ms  total "
	       "%llu\n",
	       label, needle, cold, warm, (unsigned long long)total);
}

/* Needles of every selectivity: one user, ~1% of users, every user, none,
 * shorter than a gram, and one that misses through its non-ASCII bytes. */
static int first_id_cb(const ud_user *u, void *ctx)
{
	struct ud_user_view v;

	ud_user_view(u, &v);
	snprintf(ctx, UD_ID_MAX + 1, "%.*s", (int)v.id_len, v.id);
	return 1;
}

static void searches(ud_db *db, long n)
{
	char one[48], pct[48], digits[24], id[UD_ID_MAX + 1];
	long scale = 1, p = 6;

	snprintf(digits, sizeof(digits), "%06ld", n / 2);
	snprintf(one, sizeof(one), "%s %s", needle_word, digits);
	while (scale * 100 * 10 <= n && p > 1) /* 10^(6-p) ~ n/100 */
		scale *= 10, p--;
	snprintf(pct, sizeof(pct), "%s %.*s", needle_word, (int)p, digits);
	ud_user_foreach(db, first_id_cb, id);
	search_one(db, id, "one user:", one);
	search_one(db, id, "~1%:", pct);
	search_one(db, id, "everybody:", "EXAMPLE.COM");
	search_one(db, id, "all names:", needle_word);
	search_one(db, id, "no match:", "zzz-no-match");
	search_one(db, id, "one byte:", "7");
	search_one(db, id, "two bytes:", "r9");
	search_one(db, id, "non-ASCII:", "n\xc3\xa4me");
}

static void lists(ud_db *db, long n)
{
	struct ud_query q;
	uint64_t total;
	double ms;

	ud_query_init(&q);
	ms = time_list(db, &q, 1000, &total);
	printf("list first page (20):            %8.4f ms  total %llu\n", ms,
	       (unsigned long long)total);
	q.role = UD_ROLE_USER;
	q.status = UD_STATUS_ACTIVE;
	ms = time_list(db, &q, 1000, &total);
	q.limit = 100;
	q.page = (unsigned)(total / 2 / 100) + 1;
	ms = time_list(db, &q, 1000, &total);
	printf("role=user&status=active page %u (limit 100): %8.4f ms  total "
	       "%llu\n",
	       q.page, ms, (unsigned long long)total);
	ud_query_init(&q);
	q.limit = 100;
	q.page = (unsigned)(n / 2 / 100) + 1;
	ms = time_list(db, &q, 1000, &total);
	printf("unfiltered page %u (limit 100):   %8.4f ms\n", q.page, ms);
	searches(db, n);
}

struct ids {
	char (*id)[UD_ID_MAX];
	unsigned char *len;
	long n;
};

static int collect_cb(const ud_user *u, void *ctx)
{
	struct ids *ids = ctx;
	struct ud_user_view v;

	ud_user_view(u, &v);
	memcpy(ids->id[ids->n], v.id, v.id_len);
	ids->len[ids->n++] = (unsigned char)v.id_len;
	return 0;
}

/* ns per ud_user_get / ud_user_get_by_email of random existing users. */
static void lookups(ud_db *db, long n)
{
	struct ids ids = {malloc(n * sizeof(*ids.id)), malloc(n), 0};
	char email[48];
	unsigned seed = 1;
	long i, k, miss = 0, reps = 1000000;
	double t0;

	if (!ids.id || !ids.len)
		return;
	ud_user_foreach(db, collect_cb, &ids);
	t0 = now_ms();
	for (i = 0; i < reps; i++) {
		k = rand_r(&seed) % n;
		miss += !ud_user_get(db, ids.id[k], ids.len[k]);
	}
	printf("get by id (random):              %8.0f ns\n",
	       (now_ms() - t0) * 1e6 / reps);
	t0 = now_ms();
	for (i = 0; i < reps; i++) {
		k = rand_r(&seed) % n;
		miss += !ud_user_get_by_email(
		    db, email,
		    snprintf(email, sizeof(email), "USER%06ld@example.com", k));
	}
	printf("get by email (random, upper):    %8.0f ns (misses %ld)\n",
	       (now_ms() - t0) * 1e6 / reps, miss);
	free(ids.id);
	free(ids.len);
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1000000;

	if (argc > 2 && strcmp(argv[2], "utf8") == 0) {
		name_words = "Иван Петров";
		needle_word = "ПЕТРОВ";
	}
	struct ud_stats st;
	struct ud_error err;
	long before, after;
	double t0;
	ud_db *db;

	before = rss_bytes();
	if (ud_open(&ud_options_default, &db, &err)) {
		fprintf(stderr, "open: %s\n", err.message);
		return 1;
	}
	t0 = now_ms();
	if (fill(db, n))
		return 1;
	printf("created %ld users in %.0f ms (%.2f us/create)\n", n,
	       now_ms() - t0, (now_ms() - t0) * 1e3 / n);
	after = rss_bytes();
	ud_stats(db, &st);
	printf("RSS before %ld KiB, after %ld KiB\n", before / 1024,
	       after / 1024);
	printf("record bytes/user: %.1f\n", (double)st.record_bytes / n);
	printf("RSS bytes/user: %.1f\n", (double)(after - before) / n);
	lists(db, n);
	lookups(db, n);
	ud_close(db);
	return 0;
}
