/*
 * apikey.c -- API keys: scopes, names, the key file and the generated key
 * file; see apikey.h.
 */
#include "apikey.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_FILE_MAX (4u << 20) /* a key file larger than this is refused */

static const char *const scope_names[] = {
    [SCOPE_ADMIN] = "admin", [SCOPE_READ] = "read", [SCOPE_VERIFY] = "verify"};

const char *scope_name(enum key_scope s)
{
	return (unsigned)s < 3 ? scope_names[s] : "?";
}

int scope_parse(const char *s, size_t n)
{
	for (int i = 0; i < 3; i++)
		if (strlen(scope_names[i]) == n &&
		    !memcmp(s, scope_names[i], n))
			return i;
	return -1;
}

bool scope_allows(enum key_scope have, enum key_scope need)
{
	if (have == SCOPE_ADMIN || have == need)
		return true;
	return need == SCOPE_READ; /* read and verify keys both read */
}

void scope_denied_message(enum key_scope need, char *buf, size_t n)
{
	if (need == SCOPE_VERIFY)
		snprintf(buf, n,
			 "this operation needs a key with scope verify "
			 "or admin");
	else
		snprintf(buf, n, "this operation needs a key with scope %s",
			 scope_name(need));
}

size_t apikey_split_flag(const char *arg, enum key_scope *scope)
{
	const char *colon = strrchr(arg, ':');
	size_t n = strlen(arg);
	int s;

	*scope = SCOPE_ADMIN;
	if (!colon || colon == arg)
		return n;
	s = scope_parse(colon + 1, n - (size_t)(colon + 1 - arg));
	if (s < 0)
		return n;
	*scope = (enum key_scope)s;
	return (size_t)(colon - arg);
}

static void key_hash(const char *key, size_t len, uint8_t out[32])
{
	crypto_generichash(out, 32, (const unsigned char *)key, len, NULL, 0);
}

int keyset_add_scoped(struct keyset *ks, const char *key, size_t len,
		      enum key_scope scope, const char *name)
{
	struct key_entry *e;

	if (ks->n == KEYSET_MAX)
		return -1;
	e = &ks->e[ks->n];
	memset(e, 0, sizeof(*e));
	key_hash(key, len, e->hash);
	e->scope = scope;
	if (name)
		snprintf(e->name, sizeof e->name, "%s", name);
	else
		snprintf(e->name, sizeof e->name, "key-%u", ks->n + 1);
	e->name_len = (uint8_t)strlen(e->name);
	ks->n++;
	return 0;
}

int keyset_add(struct keyset *ks, const char *key, size_t len)
{
	return keyset_add_scoped(ks, key, len, SCOPE_ADMIN, NULL);
}

/* The index of the entry with hash h, or -1; looks at every entry. */
static int find_hash(const struct keyset *ks, const uint8_t h[32])
{
	int found = -1;

	for (unsigned i = 0; i < ks->n; i++) {
		int eq = sodium_memcmp(h, ks->e[i].hash, 32) == 0;
		found = eq && found < 0 ? (int)i : found;
	}
	return found;
}

int keyset_find(const struct keyset *ks, const char *key, size_t len,
		uint8_t hash[32])
{
	uint8_t h[32];

	key_hash(key, len, h);
	if (hash)
		memcpy(hash, h, 32);
	return find_hash(ks, h);
}

int keyset_refind(const struct keyset *ks, const uint8_t hash[32])
{
	return find_hash(ks, hash);
}

bool keyset_check(const struct keyset *ks, const char *key, size_t len)
{
	return keyset_find(ks, key, len, NULL) >= 0;
}

void apikey_generate(char *out)
{
	unsigned char raw[32];
	randombytes_buf(raw, sizeof raw);
	sodium_bin2base64(out, APIKEY_GEN_LEN + 1, raw, sizeof raw,
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_memzero(raw, sizeof raw);
}

/* ---- the key file (--api-key-file) -------------------------------------- */

static bool name_ok(const char *s, size_t n)
{
	if (n == 0 || n > KEY_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!strchr(
			"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			"0123456789._-",
			s[i]) ||
		    !s[i])
			return false;
	return true;
}

/* Split line[0..n) at blanks into at most 4 fields.  Returns the count. */
static unsigned split_fields(char *line, size_t n, char *f[4], size_t fl[4])
{
	unsigned k = 0;
	size_t i = 0;

	while (i < n) {
		while (i < n && (line[i] == ' ' || line[i] == '\t'))
			i++;
		if (i == n)
			break;
		if (k == 4)
			return 5;
		f[k] = line + i;
		while (i < n && line[i] != ' ' && line[i] != '\t')
			i++;
		fl[k] = (size_t)(line + i - f[k]);
		k++;
	}
	return k;
}

#define FILE_ERR(...)                                                          \
	(fprintf(err, "userdb-server: key file %s line %u: ", path, lineno),   \
	 fprintf(err, __VA_ARGS__), fputc('\n', err), -1)

/* One line (no newline).  0 (a key added or nothing to add) or -1. */
static int file_line(struct keyset *ks, char *line, size_t n, const char *path,
		     unsigned lineno, FILE *err)
{
	char *f[4], name[KEY_NAME_MAX + 1];
	size_t fl[4];
	unsigned k;
	int scope;
	uint8_t h[32];

	if (n && line[n - 1] == '\r')
		n--;
	if (memchr(line, '\0', n))
		return FILE_ERR("contains a NUL byte");
	k = split_fields(line, n, f, fl);
	if (k == 0 || f[0][0] == '#')
		return 0;
	if (k < 2 || k > 3)
		return FILE_ERR("expected KEY SCOPE [NAME], found %u fields",
				k > 4 ? 5 : k);
	if (fl[0] > KEY_LEN_MAX)
		return FILE_ERR("the key is longer than %u bytes", KEY_LEN_MAX);
	if ((scope = scope_parse(f[1], fl[1])) < 0)
		return FILE_ERR("unknown scope (admin, read or verify)");
	if (k == 3 && !name_ok(f[2], fl[2]))
		return FILE_ERR("a name is 1 to %d of A-Z a-z 0-9 . _ -",
				KEY_NAME_MAX);
	if (keyset_find(ks, f[0], fl[0], h) >= 0)
		return FILE_ERR("the same key is given twice");
	if (k == 3)
		memcpy(name, f[2], fl[2]), name[fl[2]] = 0;
	if (keyset_add_scoped(ks, f[0], fl[0], (enum key_scope)scope,
			      k == 3 ? name : NULL))
		return FILE_ERR("more than %d keys", KEYSET_MAX);
	return 0;
}

/* The whole file at path into a NUL-terminated malloc'd buffer, after the
 * permission check.  NULL after a message. */
static char *file_slurp(const char *path, size_t *len, FILE *err)
{
	struct stat st;
	char *buf = NULL;
	ssize_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0) {
		fprintf(err, "userdb-server: cannot read key file %s: %s\n",
			path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		fprintf(err, "userdb-server: key file %s is not a file\n",
			path);
	} else if (st.st_mode & 077) {
		fprintf(err,
			"userdb-server: key file %s has mode %04o: group and "
			"others must have no access (chmod 600 %s)\n",
			path, (unsigned)(st.st_mode & 07777), path);
	} else if (st.st_size > KEY_FILE_MAX) {
		fprintf(err, "userdb-server: key file %s is over %u bytes\n",
			path, KEY_FILE_MAX);
	} else if ((buf = malloc((size_t)st.st_size + 1)) != NULL) {
		got = read(fd, buf, (size_t)st.st_size);
		if (got != st.st_size) {
			fprintf(err, "userdb-server: cannot read key file %s\n",
				path);
			free(buf);
			buf = NULL;
		} else {
			buf[got] = 0;
			*len = (size_t)got;
		}
	}
	close(fd);
	return buf;
}

int apikey_file_parse(struct keyset *ks, char *buf, size_t len,
		      const char *path, FILE *err)
{
	size_t off = 0;
	unsigned lineno = 0;
	int rc = 0;

	while (off < len && rc == 0) {
		char *nl = memchr(buf + off, '\n', len - off);
		size_t n = nl ? (size_t)(nl - (buf + off)) : len - off;
		lineno++;
		rc = file_line(ks, buf + off, n, path, lineno, err);
		off += n + 1;
	}
	return rc;
}

int apikey_file_load(struct keyset *ks, const char *path, FILE *err)
{
	size_t len = 0;
	char *buf = file_slurp(path, &len, err);
	int rc;

	if (!buf)
		return -1;
	rc = apikey_file_parse(ks, buf, len, path, err);
	sodium_memzero(buf, len);
	free(buf);
	return rc;
}

/* ---- the generated key file (DATA_DIR/api-key) --------------------------- */

/* Read an existing key file into key (trailing whitespace cut).  Returns 1
 * read, 0 absent, -1 error. */
static int key_file_read(const char *path, char *key, size_t cap, FILE *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		fprintf(err, "userdb-server: cannot read %s: %s\n", path,
			strerror(errno));
		return -1;
	}
	ssize_t n = read(fd, key, cap - 1);
	close(fd);
	while (n > 0 && strchr(" \t\r\n", key[n - 1]))
		n--;
	if (n <= 0) {
		fprintf(err, "userdb-server: %s is empty\n", path);
		return -1;
	}
	key[n] = 0;
	return 1;
}

static int key_file_create(const char *path, const char *key, FILE *err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(err, "userdb-server: cannot create %s: %s\n", path,
			strerror(errno));
		return -1;
	}
	size_t len = strlen(key);
	int rc = write(fd, key, len) == (ssize_t)len &&
			 write(fd, "\n", 1) == 1 && fsync(fd) == 0
		     ? 0
		     : -1;
	close(fd);
	if (rc)
		fprintf(err, "userdb-server: cannot write %s\n", path);
	return rc;
}

/* Flags, then the key file, into ks (emptied first, generation gen).  0 or
 * -1. */
static int keys_build(struct keyset *ks, const struct server_config *cfg,
		      uint64_t gen, FILE *err)
{
	enum key_scope scope;

	ks->n = 0;
	ks->gen = gen;
	for (unsigned i = 0; i < cfg->n_api_keys; i++) {
		size_t n = apikey_split_flag(cfg->api_keys[i], &scope);
		if (n == 0) {
			fprintf(err, "userdb-server: --api-key %u is empty\n",
				i + 1);
			return -1;
		}
		keyset_add_scoped(ks, cfg->api_keys[i], n, scope, NULL);
	}
	if (cfg->api_key_file) {
		if (apikey_file_load(ks, cfg->api_key_file, err))
			return -1;
		if (ks->n == 0) {
			fprintf(err,
				"userdb-server: key file %s holds no key\n",
				cfg->api_key_file);
			return -1;
		}
	}
	return 0;
}

int apikey_reload(struct keyset *ks, const struct server_config *cfg, FILE *err)
{
	struct keyset *fresh = malloc(sizeof(*fresh));

	if (!fresh) {
		fprintf(err, "userdb-server: out of memory\n");
		return -1;
	}
	if (keys_build(fresh, cfg, ks->gen + 1, err) || fresh->n == 0) {
		sodium_memzero(fresh, sizeof(*fresh));
		free(fresh);
		return -1;
	}
	*ks = *fresh;
	free(fresh);
	return 0;
}

int apikey_setup(struct keyset *ks, const struct server_config *cfg, FILE *out,
		 FILE *err)
{
	char key[512], path[4096];

	if (keys_build(ks, cfg, 1, err))
		return -1;
	if (cfg->api_key_file)
		fprintf(out, "api keys read from %s (%u keys)\n",
			cfg->api_key_file, ks->n);
	if (ks->n > 0)
		return 0;
	if (cfg->no_persist) {
		apikey_generate(key);
		fprintf(out, "api key (generated, not stored): %s\n", key);
		return keyset_add(ks, key, strlen(key));
	}
	snprintf(path, sizeof path, "%s/api-key", cfg->data_dir);
	int rc = key_file_read(path, key, sizeof key, err);
	if (rc < 0)
		return -1;
	if (rc == 0) {
		apikey_generate(key);
		if (key_file_create(path, key, err))
			return -1;
		fprintf(out, "api key generated in %s\n", path);
	} else {
		fprintf(out, "api key read from %s\n", path);
	}
	keyset_add(ks, key, strlen(key));
	sodium_memzero(key, sizeof key);
	return 0;
}
