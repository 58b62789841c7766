/*
 * test_actlog.c -- per-user logs, the keep bound and the deleted FIFO
 * (actlog.c).
 */
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "actlog.h"
#include "userdb.h"

Test(actlog, ring_keeps_the_newest)
{
	struct actlog al;
	struct ulog *l;
	uint64_t i;

	actlog_init(&al, 100, 10, 99);
	l = actlog_open(&al, "usr_a", 5);
	cr_assert_not_null(l);
	cr_assert_eq(actlog_open(&al, "usr_a", 5), l);
	for (i = 1; i <= 250; i++)
		cr_assert_eq(actlog_append(&al, l, i, UD_EV_UPDATED, (int64_t)i,
					   "\x81\xa1k\x01", 4),
			     0);
	cr_assert_eq(l->count, 100);
	cr_assert_eq(al.events, 100);
	for (i = 0; i < 100; i++)
		cr_assert_eq(actlog_event(l, (uint32_t)i)->id, 250 - i);
	cr_assert_eq(actlog_event(l, 0)->details_len, 4);
	cr_assert_eq(actlog_check(&al), 0);
	actlog_destroy(&al);
}

Test(actlog, empty_details_are_an_empty_map)
{
	struct actlog al;
	struct ulog *l;

	actlog_init(&al, 100, 10, 99);
	l = actlog_open(&al, "usr_a", 5);
	actlog_append(&al, l, 1, UD_EV_CREATED, 5, NULL, 0);
	cr_assert_eq(actlog_event(l, 0)->details_len, 1);
	cr_assert_eq((unsigned char)actlog_event(l, 0)->details[0], 0x80);
	actlog_destroy(&al);
}

Test(actlog, deleted_fifo_drops_the_oldest)
{
	struct actlog al;
	struct ulog *l[4];
	char id[8];
	int i;

	actlog_init(&al, 100, 2, 99);
	for (i = 0; i < 4; i++) {
		snprintf(id, sizeof(id), "usr_%d", i);
		l[i] = actlog_open(&al, id, strlen(id));
		actlog_append(&al, l[i], (uint64_t)i + 1, UD_EV_DELETED, 0,
			      NULL, 0);
	}
	actlog_mark_deleted(&al, l[0]);
	actlog_mark_deleted(&al, l[1]);
	actlog_revive(&al, l[0]); /* usr_0 lives again */
	cr_assert_not(l[0]->deleted);
	actlog_mark_deleted(&al, l[2]);
	actlog_mark_deleted(&al, l[3]); /* over 2: usr_1 goes */
	cr_assert_eq(al.deleted_count, 2);
	cr_assert_null(actlog_find(&al, "usr_1", 5));
	cr_assert_not_null(actlog_find(&al, "usr_0", 5));
	cr_assert_eq(al.fifo_head, l[2]);
	cr_assert_eq(al.fifo_tail, l[3]);
	cr_assert_eq(al.events, 3);
	cr_assert_eq(actlog_check(&al), 0);
	actlog_drop(&al, l[2]);
	cr_assert_eq(al.fifo_head, l[3]);
	cr_assert_eq(actlog_check(&al), 0);
	actlog_destroy(&al);
}
