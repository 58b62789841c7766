/*
 * serverkeys.c -- the server's side of API keys (server.h, apikey.h): which
 * key a connection holds, the store's actor, per-key request counters, and
 * the SIGHUP reload of the key file.
 *
 * The actor is set with ud_set_actor only when the key of the request
 * differs from the last one set (by gen and index), so a run of requests
 * of one key costs one compare each.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "server.h"

const struct key_entry *conn_key(struct conn *c)
{
	struct keyset *ks = &c->srv->keys;
	int i;

	if (!c->authed)
		return NULL;
	if (c->key_gen == ks->gen)
		return &ks->e[c->key_idx];
	i = keyset_refind(ks, c->key_hash);
	if (i < 0) {
		c->authed = false; /* removed by a reload */
		return NULL;
	}
	c->key_idx = (unsigned)i;
	c->key_gen = ks->gen;
	return &ks->e[i];
}

void conn_key_set(struct conn *c, unsigned i, const uint8_t hash[32])
{
	c->authed = true;
	c->key_idx = i;
	c->key_gen = c->srv->keys.gen;
	memcpy(c->key_hash, hash, 32);
}

void server_key_use(struct server *srv, const struct key_entry *k)
{
	unsigned i = (unsigned)(k - srv->keys.e);

	srv->metrics.keys[k->metric].requests++;
	if (srv->actor_gen == srv->keys.gen && srv->actor_idx == i)
		return;
	/* a name is at most KEY_NAME_MAX bytes: ud_set_actor cannot refuse
	 * it; out of memory leaves no actor, and the next request retries */
	if (ud_set_actor(srv->db, k->name, k->name_len) == 0) {
		srv->actor_gen = srv->keys.gen;
		srv->actor_idx = i;
	} else {
		srv->actor_gen = 0;
	}
}

void server_actor_forget(struct server *srv)
{
	srv->actor_gen = 0;
}

void server_keys_index(struct server *srv)
{
	for (unsigned i = 0; i < srv->keys.n; i++)
		srv->keys.e[i].metric =
		    metrics_key_slot(&srv->metrics, srv->keys.e[i].name);
	srv->actor_gen = 0;
}

void server_reload_keys(struct server *srv)
{
	if (!srv->cfg.api_key_file)
		return;
	if (apikey_reload(&srv->keys, &srv->cfg, stderr)) {
		fprintf(stderr,
			"userdb-server: SIGHUP: key file %s not "
			"reloaded; the old keys stay in use\n",
			srv->cfg.api_key_file);
		return;
	}
	server_keys_index(srv);
	printf("api keys reloaded from %s (%u keys)\n", srv->cfg.api_key_file,
	       srv->keys.n);
	fflush(stdout);
}

/* True for 127.0.0.0/8, ::1, ::ffff:127.x and "localhost". */
static bool bind_is_loopback(const char *addr)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (!strcmp(addr, "localhost"))
		return true;
	if (inet_pton(AF_INET, addr, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, addr, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6) ||
		       (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
	return false;
}

int server_check_bind(const struct server_config *cfg, FILE *err)
{
	bool tls = cfg->tls_cert || cfg->tls_key;

	if (!cfg->tls_cert != !cfg->tls_key) {
		fprintf(err, "userdb-server: --tls-cert and --tls-key go "
			     "together\n");
		return -1;
	}
	if (!tls && !cfg->allow_plaintext && !bind_is_loopback(cfg->bind)) {
		fprintf(err,
			"userdb-server: refusing to serve %s without TLS: keys "
			"and user data would cross the network in clear text; "
			"give --tls-cert and --tls-key, or --allow-plaintext "
			"if the network is trusted\n",
			cfg->bind);
		return -1;
	}
	return 0;
}
