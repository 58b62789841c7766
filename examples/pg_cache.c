/* pg_cache.c -- userdb as a cache inside your process, in front of the
 * PostgreSQL database that holds your users (schema userdb, SPEC §7).
 *
 *   ./pg_cache CONNINFO
 *
 * Looks a user up by email (loaded from PostgreSQL on the first lookup,
 * from memory after that), updates it through to PostgreSQL, then waits up
 * to 60 s for someone else (psql, a userdb node, another process) to change
 * the user's name, driving the connector's feed from its own poll loop,
 * and prints the change when it arrives. */
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <userdb_pg.h>

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void show(const char *what, const ud_user *u)
{
	struct ud_user_view v;
	ud_user_view(u, &v);
	printf("%s: %.*s <%.*s> %s, name \"%.*s\", ETag %llu\n", what,
	       (int)v.id_len, v.id, (int)v.email_len, v.email,
	       ud_role_name(v.role), (int)v.name_len, v.name,
	       (unsigned long long)v.etag);
}

int main(int argc, char **argv)
{
	struct ud_pg_options opt = ud_pg_options_default;
	struct ud_error err = {0};
	struct ud_user_view v;
	const ud_user *u;
	char id[UD_ID_MAX + 1];
	ud_pg *c;

	if (argc != 2) {
		fprintf(stderr, "usage: pg_cache CONNINFO\n");
		return 2;
	}
	opt.conninfo = argv[1];
	opt.max_users = 10000; /* least recently used users go first */
	if (ud_pg_open(&opt, &c, &err)) {
		fprintf(stderr, "pg_cache: %s\n", err.message);
		return 1;
	}

	/* 1. Look up (any case); create the user the first time. */
	u = ud_pg_get_by_email(c, "ADA@example.com", 15, &err);
	if (!u && err.code == UD_ENOTFOUND) {
		struct ud_fields f = {.set = UD_F_NAME | UD_F_EMAIL,
				      .name = "Ada",
				      .name_len = 3,
				      .email = "ada@example.com",
				      .email_len = 15};
		ud_pg_create(c, &f, &u, &err);
	}
	if (!u) {
		fprintf(stderr, "pg_cache: %s\n", err.message);
		return 1;
	}
	show("found", u);
	ud_user_view(u, &v);
	snprintf(id, sizeof id, "%.*s", (int)v.id_len, v.id);

	/* 2. Update through: PostgreSQL commits first, then the cache. */
	struct ud_fields up = {.set = UD_F_NAME | UD_F_ROLE,
			       .name = "Ada Lovelace",
			       .name_len = 12,
			       .role = "admin",
			       .role_len = 5};
	if (ud_pg_update(c, id, strlen(id), &up, v.etag, &u, &err)) {
		fprintf(stderr, "pg_cache: update: %s (%s)\n", err.message,
			ud_code_name(err.code));
		return 1;
	}
	show("updated", u);

	/* 3. Wait for a change made elsewhere, polling the feed's socket. */
	printf("waiting for a change of %s's name\n", id);
	fflush(stdout);
	for (double end = now_ms() + 60000; now_ms() < end;) {
		struct pollfd p = {.fd = ud_pg_fd(c), .events = POLLIN};
		poll(&p, p.fd >= 0 ? 1 : 0, UD_PG_TICK_MS);
		ud_pg_process(c);
		u = ud_pg_get(c, id, strlen(id), &err); /* a hit */
		if (!u)
			continue; /* deleted, or PostgreSQL down: keep waiting
				   */
		ud_user_view(u, &v);
		if (v.name_len != 12 || memcmp(v.name, "Ada Lovelace", 12)) {
			show("changed elsewhere", u);
			struct ud_pg_stats st;
			ud_pg_stats(c, &st);
			printf("lookups: %llu from memory, %llu loaded\n",
			       (unsigned long long)st.hits,
			       (unsigned long long)st.loads);
			ud_pg_close(c);
			return 0;
		}
	}
	fprintf(stderr, "pg_cache: no change within 60 s\n");
	ud_pg_close(c);
	return 1;
}
