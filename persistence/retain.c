/*
 * retain.c -- log segments kept for the change stream; see retain.h.
 */
#include "retain.h"

#include "datadir.h"
#include "persist.h"
#include "recover.h"

uint64_t retain_upto(const struct oplog *o, uint64_t covered, uint64_t keep)
{
	uint64_t last = oplog_last_seq(o), upto;

	if (!keep)
		return covered;
	upto = last > keep ? last - keep : 0;
	return upto < covered ? upto : covered;
}

struct scan {
	retain_fn fn;
	void *ctx;
};

static int scan_rec_cb(void *ctx, uint64_t seq, const void *payload, size_t len,
		       size_t offset)
{
	struct scan *s = ctx;

	(void)offset;
	return s->fn(s->ctx, seq, payload, len);
}

int retain_scan(ud_db *db, retain_fn fn, void *ctx, struct ud_error *err)
{
	const char *dir = persist_dir(db);
	struct scan s = {fn, ctx};
	struct datadir_list l;
	struct seg_scan out;
	char name[32], path[4096];
	int rc;

	if (!dir)
		return ud_error_set(err, UD_EINVAL, NULL, "no data dir");
	if ((rc = datadir_list(dir, &l, err)) != 0)
		return rc;
	for (size_t i = 0; i < l.nlog && rc == 0; i++) {
		oplog_seg_name(l.logs[i], name);
		rc = datadir_path(path, sizeof(path), dir, name);
		if (rc == 0)
			rc = recover_scan_segment(path, l.logs[i], scan_rec_cb,
						  &s, &out, err);
	}
	datadir_list_free(&l);
	return rc;
}
