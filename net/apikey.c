/*
 * apikey.c -- API key storage and the DATA_DIR/api-key file; see apikey.h.
 */
#include "apikey.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void key_hash(const char *key, size_t len, uint8_t out[32])
{
	crypto_generichash(out, 32, (const unsigned char *)key, len, NULL, 0);
}

int keyset_add(struct keyset *ks, const char *key, size_t len)
{
	if (ks->n == CONFIG_MAX_KEYS)
		return -1;
	key_hash(key, len, ks->hash[ks->n++]);
	return 0;
}

bool keyset_check(const struct keyset *ks, const char *key, size_t len)
{
	uint8_t h[32];
	int ok = 0;
	key_hash(key, len, h);
	for (unsigned i = 0; i < ks->n; i++)
		ok |= sodium_memcmp(h, ks->hash[i], 32) == 0;
	return ok;
}

void apikey_generate(char *out)
{
	unsigned char raw[32];
	randombytes_buf(raw, sizeof raw);
	sodium_bin2base64(out, APIKEY_GEN_LEN + 1, raw, sizeof raw,
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

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

int apikey_setup(struct keyset *ks, const struct server_config *cfg, FILE *out,
		 FILE *err)
{
	char key[512], path[4096];

	ks->n = 0;
	for (unsigned i = 0; i < cfg->n_api_keys; i++)
		keyset_add(ks, cfg->api_keys[i], strlen(cfg->api_keys[i]));
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
