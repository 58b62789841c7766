/*
 * datadir.h -- the data directory: creation, the lock file, listing the
 * data files, fsync of the directory, read-only mappings of files.
 *
 * Names in a data directory (seq as 16 lower-case hex digits):
 *
 *     LOCK                       flock()ed by the process that owns the dir
 *     log-<seq>.ulog             log segment, seq = its first record
 *     snap-<seq>.usnap           snapshot covering log records <= seq
 *     *.inprogress               a file being written; never read, removed
 *                                at start
 *     *.dropped, *.damaged       set aside by userdb-check --repair; ignored
 *
 * Anything else is left alone.  No state: every function works on a path.
 */
#ifndef UD_DATADIR_H
#define UD_DATADIR_H

#include <stddef.h>
#include <stdint.h>

#include "userdb.h"

/* Create dir with mode 0700 if it does not exist.  0 or UD_EIO. */
int datadir_create(const char *dir, struct ud_error *err);
/* Take the exclusive lock of dir: 0 and *fd (close it to unlock), or
 * UD_ELOCKED when another process holds it, UD_EIO. */
int datadir_lock(const char *dir, int *fd, struct ud_error *err);
/* Remove every *.inprogress file; returns how many were removed. */
int datadir_remove_inprogress(const char *dir);

/* The data files of a directory, seqs sorted ascending.  Free with
 * datadir_list_free. */
struct datadir_list {
	uint64_t *snaps;
	size_t nsnap;
	uint64_t *logs;
	size_t nlog;
};
int datadir_list(const char *dir, struct datadir_list *out,
		 struct ud_error *err);
void datadir_list_free(struct datadir_list *l);

/* dir + "/" + name into out (size n); returns 0 or UD_EINVAL if too long. */
int datadir_path(char *out, size_t n, const char *dir, const char *name);
/* fsync the directory itself (after a create, rename or unlink). */
int datadir_fsync(const char *dir);

/* A whole file mapped read-only (data == NULL when size is 0). */
struct datadir_map {
	const unsigned char *data;
	size_t size;
};
/* 0, or UD_EIO with err naming the file. */
int datadir_map(const char *path, struct datadir_map *m, struct ud_error *err);
void datadir_unmap(struct datadir_map *m);

#endif
