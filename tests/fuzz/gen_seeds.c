/*
 * gen_seeds.c -- write the persistence harnesses' seed inputs from files
 * the code itself produces: a store goes through every kind of mutation,
 * then its log segment, a snapshot and their change records are written
 * as the recover and apply corpora in the harnesses' input formats.
 *
 *     ./build/tests/fuzz/fuzz_gen_seeds tests/fuzz/corpus
 */
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "datadir.h"
#include "frame.h"
#include "fuzz_util.h"
#include "snapshot.h"

static void must(int rc, const struct ud_error *err)
{
	FUZZ_CHECK(rc == 0, "%s", err->message);
}

static ud_db *open_dir(const char *dir)
{
	struct ud_options opt = ud_options_default;
	struct ud_error err;
	ud_db *db;
	opt.data_dir = dir;
	opt.fsync = UD_FSYNC_NO;
	opt.snapshot_interval = 0;
	opt.pw_opslimit = 1;
	opt.pw_memlimit = 8192;
	must(ud_open(&opt, &db, &err), &err);
	return db;
}

/* Every kind of change record: creates (own id, custom_data, password),
 * update, password set, verify (both outcomes), suspend, identities,
 * delete. */
static void mutate(ud_db *db, int round)
{
	struct ud_error err;
	char id[32], email[64];
	bool valid;
	const unsigned char custom[] = {0x81, 0xa1, 'k', 0x92, 0x01, 0xcb, 0x3f,
					0xf8, 0,    0,	 0,    0,    0,	   0};
	snprintf(id, sizeof id, "usr_seed%d", round);
	snprintf(email, sizeof email, "Seed%d@Example.com", round);
	struct ud_fields f = {.set = UD_F_ID | UD_F_NAME | UD_F_EMAIL |
				     UD_F_CUSTOM_DATA | UD_F_AVATAR | UD_F_ROLE,
			      .id = id,
			      .id_len = strlen(id),
			      .name = "\xe6\x9d\x8e\xe5\x9b\x9b",
			      .name_len = 6,
			      .email = email,
			      .email_len = strlen(email),
			      .role = "admin",
			      .role_len = 5,
			      .avatar = "https://x.io/a.png",
			      .avatar_len = 18,
			      .custom_data = custom,
			      .custom_data_len = sizeof custom};
	must(ud_user_create(db, &f, NULL, &err), &err);
	struct ud_fields g = {.set = UD_F_NAME | UD_F_EMAIL | UD_F_PASSWORD,
			      .name = "Tmp",
			      .name_len = 3,
			      .email = "tmp@x.io",
			      .email_len = 8,
			      .password = "password1",
			      .password_len = 9};
	const ud_user *u;
	must(ud_user_create(db, &g, &u, &err), &err);
	struct ud_user_view v;
	ud_user_view(u, &v);
	char tid[64];
	memcpy(tid, v.id, v.id_len);
	size_t tn = v.id_len;
	struct ud_fields up = {.set = UD_F_STATUS | UD_F_NAME,
			       .status = "inactive",
			       .status_len = 8,
			       .name = "Renamed",
			       .name_len = 7};
	must(ud_user_update(db, id, strlen(id), &up, 0, NULL, &err), &err);
	must(ud_user_set_password(db, id, strlen(id), "secret-pw", 9, NULL,
				  &err),
	     &err);
	must(ud_user_verify_password(db, id, strlen(id), "secret-pw", 9, &valid,
				     &err),
	     &err);
	must(ud_user_verify_password(db, id, strlen(id), "wrong-pw!", 9, &valid,
				     &err),
	     &err);
	must(ud_user_set_suspended(db, id, strlen(id), true, NULL, &err), &err);
	const unsigned char det[] = {0x81, 0xa5, 'l',  'o', 'g',
				     'i',  'n',	 0xa2, 'g', 'h'};
	must(ud_user_link_identity(db, id, strlen(id), "github", 6, "42", 2,
				   det, sizeof det, NULL, &err),
	     &err);
	must(ud_user_link_identity(db, id, strlen(id), "gitlab", 6, "7", 1,
				   NULL, 0, NULL, &err),
	     &err);
	must(ud_user_unlink_identity(db, id, strlen(id), "gitlab", 6, NULL,
				     &err),
	     &err);
	must(ud_user_delete(db, tid, tn, 0, &err), &err);
	must(ud_flush(db), &err);
}

static void read_file(const char *dir, const char *prefix, bool inflate,
		      struct ud_buf *b)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	struct datadir_map m;
	struct ud_error err;
	char path[512];
	b->len = 0;
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, prefix, strlen(prefix)))
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		if (inflate) { /* a snapshot's body, as version 1 */
			struct snap_file f;
			must(snap_open(path, NULL, &f, &err), &err);
			ud_buf_append(b, f.m.data, f.m.size);
			snap_close(&f);
			continue;
		}
		must(datadir_map(path, &m, &err), &err);
		ud_buf_append(b, m.data, m.size);
		datadir_unmap(&m);
	}
	closedir(d);
}

/* The payloads of a data file's records joined by FUZZ_SEP. */
static void payloads(const struct ud_buf *file, struct ud_buf *out)
{
	size_t off = FRAME_FILE_HDR, n;
	struct frame_rec r;
	out->len = 0;
	while ((n = frame_rec_decode(file->data + off, file->len - off, &r)) ||
	       (n = frame_rec_decode_unchecked(file->data + off,
					       file->len - off, &r))) {
		if (r.magic != FRAME_REC_MAGIC)
			break;
		if (out->len)
			ud_buf_append(out, FUZZ_SEP, FUZZ_SEP_LEN);
		ud_buf_append(out, r.payload, r.len);
		off += n;
	}
}

static void emit(const char *dir, const char *name, const char *mode,
		 const struct ud_buf *a, const struct ud_buf *b)
{
	struct ud_buf all = {0};
	if (mode)
		ud_buf_append(&all, mode, 1);
	ud_buf_append(&all, a->data, a->len);
	if (b) {
		ud_buf_append(&all, FUZZ_SEP, FUZZ_SEP_LEN);
		ud_buf_append(&all, b->data, b->len);
	}
	mkdir(dir, 0755);
	fuzz_write_file(dir, name, all.data, all.len);
	ud_buf_free(&all);
}

int main(int argc, char **argv)
{
	char a[256], b[256], rec[512], app[512];
	struct ud_buf log = {0}, snap = {0}, plog = {0}, psnap = {0},
		      body = {0};
	struct ud_error err;
	if (argc != 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
		return 2;
	}
	snprintf(rec, sizeof rec, "%s/recover", argv[1]);
	snprintf(app, sizeof app, "%s/apply", argv[1]);

	fuzz_mkdtemp(a); /* the log alone */
	ud_db *db = open_dir(a);
	mutate(db, 1);
	ud_close(db);
	read_file(a, "log-", false, &log);
	payloads(&log, &plog);

	fuzz_mkdtemp(b); /* a snapshot, then a log after it */
	db = open_dir(b);
	mutate(db, 1);
	must(ud_snapshot_sync(db, &err), &err);
	mutate(db, 2);
	ud_close(db);
	read_file(b, "snap-", false, &snap);
	read_file(b, "snap-", true, &body);
	payloads(&body, &psnap);
	read_file(b, "log-", false, &log);

	emit(rec, "log_raw", "\x00", &log, NULL);
	emit(rec, "snap_raw", "\x01", &snap, &log);
	emit(rec, "log_framed", "\x02", &plog, NULL);
	emit(rec, "snap_framed", "\x03", &psnap, NULL);
	emit(app, "log_records", NULL, &plog, NULL);
	emit(app, "snap_records", NULL, &psnap, NULL);
	payloads(&log, &plog);
	emit(app, "snap_then_log", NULL, &psnap, &plog);
	fuzz_rmdir(a);
	fuzz_rmdir(b);
	ud_buf_free(&log);
	ud_buf_free(&snap);
	ud_buf_free(&plog);
	ud_buf_free(&psnap);
	ud_buf_free(&body);
	return 0;
}
