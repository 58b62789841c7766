/*
 * embed.c -- userdb as an embedded cache in front of a slower store.
 *
 * The "slower store" here is a table in this file; in a real program it is
 * a database or another service.  The cache holds at most 2 users, evicts
 * the least recently used, and asks the loader on a miss.  Build against
 * libuserdb (engine + persistence) and run: it prints what happens and
 * exits 0.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "userdb.h"

struct backing_row {
	const char *id, *name, *email, *role;
};

static const struct backing_row backing[] = {
    {"usr_alice", "Alice Martin", "alice@example.com", "admin"},
    {"usr_bob", "Bob Stone", "bob@example.com", "user"},
    {"usr_chen", "陈静", "chen@example.com", "viewer"},
};

static int loads;

/* Called on a miss: fill *out from the slower store, or say not found. */
static int load_user(void *ctx, enum ud_key_kind kind, const char *key,
		     size_t len, struct ud_fields *out)
{
	size_t i;

	(void)ctx;
	for (i = 0; i < sizeof(backing) / sizeof(backing[0]); i++) {
		const struct backing_row *r = &backing[i];
		const char *k = kind == UD_KEY_ID ? r->id : r->email;

		if (strlen(k) != len || strncasecmp(k, key, len) != 0)
			continue;
		memset(out, 0, sizeof(*out));
		out->set = UD_F_ID | UD_F_NAME | UD_F_EMAIL | UD_F_ROLE;
		out->id = r->id, out->id_len = strlen(r->id);
		out->name = r->name, out->name_len = strlen(r->name);
		out->email = r->email, out->email_len = strlen(r->email);
		out->role = r->role, out->role_len = strlen(r->role);
		loads++;
		return 0;
	}
	return UD_ENOTFOUND;
}

static void show(const char *what, const ud_user *u)
{
	struct ud_buf b = {0};

	if (!u) {
		printf("%-28s (none)\n", what);
		return;
	}
	ud_user_write_json(u, &b);
	printf("%-28s %.*s\n", what, (int)b.len, b.data);
	ud_buf_free(&b);
}

int main(void)
{
	struct ud_options opt = ud_options_default; /* data_dir NULL: memory */
	struct ud_error err = {0};
	struct ud_stats st;
	struct ud_fields f = {0};
	struct ud_query q;
	struct ud_page page;
	const ud_user *u;
	ud_db *db;

	opt.max_users = 2;
	opt.loader = load_user;
	if (ud_open(&opt, &db, &err) != 0) {
		fprintf(stderr, "open: %s\n", err.message);
		return 1;
	}
	show("get usr_alice (miss, load):", ud_user_get(db, "usr_alice", 9));
	show("get usr_alice (hit):", ud_user_get(db, "usr_alice", 9));
	show("by email BOB@EXAMPLE.COM:",
	     ud_user_get_by_email(db, "BOB@EXAMPLE.COM", 15));
	/* a third user: the least recently used (alice) is evicted */
	show("get usr_chen (load, evict):", ud_user_get(db, "usr_chen", 8));
	show("get usr_nobody:", ud_user_get(db, "usr_nobody", 10));

	/* writes work on cached users like on any store */
	f.set = UD_F_NAME;
	f.name = "Robert Stone";
	f.name_len = strlen(f.name);
	if (ud_user_update(db, "usr_bob", 7, &f, 0, &u, &err) != 0) {
		fprintf(stderr, "update: %s\n", err.message);
		return 1;
	}
	show("after update:", u);

	ud_query_init(&q);
	if (ud_user_list(db, &q, &page, &err) != 0)
		return 1;
	printf("cached users: %llu\n", (unsigned long long)page.total);

	ud_stats(db, &st);
	printf("loads %llu, hits %llu, misses %llu, evictions %llu\n",
	       (unsigned long long)st.loads, (unsigned long long)st.cache_hits,
	       (unsigned long long)st.cache_misses,
	       (unsigned long long)st.evictions);
	ud_close(db);
	/* what the run must show, so that CI notices a regression */
	return st.users == 2 && st.loads == 3 && st.evictions == 1 &&
		       loads == 3 && page.total == 2
		   ? 0
		   : 1;
}
