/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What hmm-stress and hmm-fuzz both need of the test_hmm devices: open
 * every /dev/hmm_dmirrorN there is, and check at the end that none holds
 * a page (its pages_used counter in sysfs).
 */
#ifndef STRESS_DMIRROR_H
#define STRESS_DMIRROR_H

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#define DMIRROR_MAX	4	/* hmm_dmirror0..3: two private, two coherent */

/* Open every device into @fds; the number opened. */
static inline int dmirror_open_all(int fds[DMIRROR_MAX])
{
	char node[32];
	int i, n = 0;

	for (i = 0; i < DMIRROR_MAX; i++) {
		snprintf(node, sizeof(node), "/dev/hmm_dmirror%d", i);
		fds[n] = open(node, O_RDWR);
		if (fds[n] >= 0)
			n++;
	}
	return n;
}

/* Pages device @i holds; -2 if it does not exist, -1 if unreadable. */
static inline long dmirror_pages_used(int i)
{
	char node[32], path[128];
	struct stat st;
	long used = -1;
	FILE *f;

	snprintf(node, sizeof(node), "/dev/hmm_dmirror%d", i);
	if (stat(node, &st))
		return -2;
	snprintf(path, sizeof(path), "/sys/dev/char/%u:%u/pages_used",
		 major(st.st_rdev), minor(st.st_rdev));
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fscanf(f, "%ld", &used) != 1)
		used = -1;
	fclose(f);
	return used;
}

/*
 * With every mapping gone, no device may hold a page: print each that does
 * (or whose counter cannot be read) and return 1 if there is one.
 */
static inline int dmirror_any_used(void)
{
	int i, bad = 0;

	for (i = 0; i < DMIRROR_MAX; i++) {
		long used = dmirror_pages_used(i);

		if (used > 0 || used == -1) {
			printf("# /dev/hmm_dmirror%d: %ld pages still used (-1: unreadable)\n",
			       i, used);
			bad = 1;
		}
	}
	return bad;
}

#endif
