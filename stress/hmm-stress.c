// SPDX-License-Identifier: GPL-2.0
/*
 * hmm-stress: several processes, each with several threads, move their
 * memory between system RAM and two or more test_hmm devices for a fixed
 * time, and check every byte after every step.
 *
 *	hmm-stress [-d SECONDS] [-p PROCESSES] [-t THREADS] [-s SEED]
 *
 * Each thread owns a region and knows what each of its pages must hold.
 * It writes pages from the CPU and through a device, migrates them to a
 * device and back, takes exclusive access for a device and revokes it,
 * discards pages, and forks children that check the whole region.  One
 * thread per process also evicts whole devices (RELEASE) at random, which
 * moves other threads' and processes' pages under them.  Every read, by
 * the CPU or a device, is compared with what the page must hold.
 *
 * At the end, with every process gone, no device may hold a page.  Output
 * is TAP with one test, after a line of counts.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <lib/test_hmm_uapi.h>
#include "dmirror.h"

#define PAGE		4096UL
#define NPAGES		512		/* pages per thread: one PMD */
#define MAX_THREADS	64

struct counts {
	atomic_ulong ops, bytes, migrations, evictions, forks, busy, failures;
};

static struct counts *counts;	/* shared by all processes */
static int devs[DMIRROR_MAX], ndevs;
static time_t deadline;

struct worker {
	unsigned int seed;
	unsigned int id;
	pid_t owner;		/* the process that wrote the region */
	char *mem;
	uint32_t gen[NPAGES];	/* 0: the page must read as zeroes */
	char *buf;
};

static unsigned int rnd(unsigned int *s, unsigned int n)
{
	return n ? rand_r(s) % n : 0;
}

static void fail(struct worker *w, const char *what, unsigned long page)
{
	fprintf(stderr, "# pid %d worker %u: %s (page %lu)\n", getpid(), w->id,
		what, page);
	atomic_fetch_add(&counts->failures, 1);
}

/* What page @page of worker @w holds in generation @gen. */
static void pattern(const struct worker *w, unsigned long page, uint32_t gen,
		    char *out)
{
	uint64_t *q = (uint64_t *)out;
	unsigned long i;

	if (!gen) {
		memset(out, 0, PAGE);
		return;
	}
	for (i = 0; i < PAGE / 8; i++)
		q[i] = ((uint64_t)w->owner << 44) ^ ((uint64_t)w->id << 36) ^
		       ((uint64_t)page << 24) ^ ((uint64_t)gen << 9) ^ i;
}

/* Compare @n pages at @data with what pages @first.. must hold. */
static void check(struct worker *w, const char *data, unsigned long first,
		  unsigned long n, const char *who)
{
	char want[PAGE];
	unsigned long i;

	for (i = 0; i < n; i++) {
		pattern(w, first + i, w->gen[first + i], want);
		if (memcmp(data + i * PAGE, want, PAGE))
			fail(w, who, first + i);
	}
	atomic_fetch_add(&counts->bytes, n * PAGE);
}

static int dmirror(struct worker *w, int dev, unsigned long request,
		   unsigned long first, unsigned long n)
{
	struct hmm_dmirror_cmd cmd = {
		.addr = (uintptr_t)(w->mem + first * PAGE),
		.ptr = (uintptr_t)w->buf,
		.npages = n,
	};
	int ret;

	do {
		ret = ioctl(devs[dev], request, &cmd);
	} while (ret && (errno == EINTR || errno == EAGAIN));
	return ret ? -errno : 0;
}

static void cpu_write(struct worker *w, unsigned long first, unsigned long n)
{
	unsigned long i;

	for (i = first; i < first + n; i++) {
		w->gen[i]++;
		if (!w->gen[i])
			w->gen[i] = 1;
		pattern(w, i, w->gen[i], w->mem + i * PAGE);
	}
}

static void device_write(struct worker *w, int dev, unsigned long first,
			 unsigned long n)
{
	uint32_t next[64];
	unsigned long i;
	int ret;

	for (i = 0; i < n; i++) {
		next[i] = w->gen[first + i] + 1 ? w->gen[first + i] + 1 : 1;
		pattern(w, first + i, next[i], w->buf + i * PAGE);
	}
	ret = dmirror(w, dev, HMM_DMIRROR_WRITE, first, n);
	if (ret == -EBUSY) {
		/*
		 * The range kept changing for longer than the driver's
		 * timeout (as in 6.12): each page holds the old data or the
		 * new, and which one is for the CPU to tell.
		 */
		atomic_fetch_add(&counts->busy, 1);
		for (i = 0; i < n; i++) {
			char want[PAGE];

			pattern(w, first + i, next[i], want);
			if (!memcmp(w->mem + (first + i) * PAGE, want, PAGE))
				w->gen[first + i] = next[i];
		}
		check(w, w->mem + first * PAGE, first, n, "cpu read after busy write");
		return;
	}
	if (ret) {
		fprintf(stderr, "# device %d write of %lu pages: %s\n", dev, n,
			strerror(-ret));
		fail(w, "device write failed", first);
		return;
	}
	for (i = 0; i < n; i++)
		w->gen[first + i] = next[i];
}

static void device_check(struct worker *w, int dev, unsigned long first,
			 unsigned long n)
{
	int ret = dmirror(w, dev, HMM_DMIRROR_READ, first, n);

	if (ret == -EBUSY) {	/* the driver's timeout, as above */
		atomic_fetch_add(&counts->busy, 1);
		return;
	}
	if (ret) {
		fprintf(stderr, "# device %d read of %lu pages: %s\n", dev, n,
			strerror(-ret));
		fail(w, "device read failed", first);
		return;
	}
	check(w, w->buf, first, n, "device read");
}

/*
 * A child checks the whole region as it was at fork(), then overwrites it,
 * which breaks copy-on-write of every page, device-private ones included
 * (they went read-only in both processes at fork()); meanwhile the parent
 * rewrites half of it.  Neither may see the other's writes.
 */
static void fork_and_check(struct worker *w)
{
	int go[2], status;
	unsigned long i;
	pid_t pid;

	if (pipe(go))
		return;
	pid = fork();
	if (pid < 0) {
		close(go[0]);
		close(go[1]);
		return;
	}
	if (pid == 0) {
		unsigned long before = atomic_load(&counts->failures);
		char c;

		close(go[1]);
		check(w, w->mem, 0, NPAGES, "child read");
		for (i = 0; i < NPAGES; i++)
			memset(w->mem + i * PAGE, 0xc5, PAGE);
		if (read(go[0], &c, 1) != 1)	/* the parent has written */
			_exit(1);
		for (i = 0; i < NPAGES * PAGE; i++)
			if (w->mem[i] != (char)0xc5) {
				fail(w, "child sees a write of its parent", i / PAGE);
				break;
			}
		_exit(atomic_load(&counts->failures) != before);
	}
	close(go[0]);
	cpu_write(w, 0, NPAGES / 2);
	if (write(go[1], "", 1) != 1)
		fail(w, "pipe", 0);
	close(go[1]);
	waitpid(pid, &status, 0);
	if (!WIFEXITED(status))
		fail(w, "child died", 0);
	check(w, w->mem, 0, NPAGES, "parent read after the child wrote");
	atomic_fetch_add(&counts->forks, 1);
}

static void *work(void *arg)
{
	struct worker *w = arg;

	while (time(NULL) < deadline) {
		unsigned long n = 1 + rnd(&w->seed, 64);
		unsigned long first = rnd(&w->seed, NPAGES - n + 1);
		int dev = rnd(&w->seed, ndevs);

		switch (rnd(&w->seed, 12)) {
		case 0:
		case 1:
			cpu_write(w, first, n);
			break;
		case 2:
			check(w, w->mem + first * PAGE, first, n, "cpu read");
			break;
		case 3:
		case 4:
			if (!dmirror(w, dev, HMM_DMIRROR_MIGRATE_TO_DEV, first, n))
				atomic_fetch_add(&counts->migrations, 1);
			break;
		case 5:
			device_check(w, dev, first, n);
			break;
		case 6:
			device_write(w, dev, first, n);
			break;
		case 7:
			if (!dmirror(w, dev, HMM_DMIRROR_MIGRATE_TO_SYS, first, n))
				atomic_fetch_add(&counts->migrations, 1);
			break;
		case 8:
			/*
			 * Exclusive for the device, which reads the pages as it
			 * takes them; the next CPU write revokes it.
			 */
			if (!dmirror(w, dev, HMM_DMIRROR_EXCLUSIVE, first, n))
				check(w, w->buf, first, n, "exclusive read");
			break;
		case 9:
			madvise(w->mem + first * PAGE, n * PAGE, MADV_DONTNEED);
			memset(&w->gen[first], 0, n * sizeof(w->gen[0]));
			break;
		case 10:
			if (w->id == 0 && !dmirror(w, dev, HMM_DMIRROR_RELEASE, 0, 1))
				atomic_fetch_add(&counts->evictions, 1);
			else
				check(w, w->mem + first * PAGE, first, n, "cpu read");
			break;
		default:
			if (!rnd(&w->seed, 4))
				fork_and_check(w);
			break;
		}
		atomic_fetch_add(&counts->ops, 1);
	}
	/* the last word: every byte, from the CPU */
	check(w, w->mem, 0, NPAGES, "final cpu read");
	munmap(w->mem, NPAGES * PAGE);
	return NULL;
}

static char *map_region(void)
{
	size_t len = NPAGES * PAGE;
	char *p = mmap(NULL, 2 * len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *aligned;

	if (p == MAP_FAILED)
		return NULL;
	aligned = (char *)(((uintptr_t)p + len - 1) & ~(len - 1));
	if (aligned > p)
		munmap(p, aligned - p);
	munmap(aligned + len, p + len - aligned);
	madvise(aligned, len, MADV_HUGEPAGE);
	return aligned;
}

static void run_process(unsigned int seed, unsigned int nthreads)
{
	static struct worker workers[MAX_THREADS];
	pthread_t threads[MAX_THREADS];
	unsigned int i;

	ndevs = dmirror_open_all(devs);
	if (ndevs < 2) {
		fprintf(stderr, "# pid %d: fewer than two devices\n", getpid());
		atomic_fetch_add(&counts->failures, 1);
		return;
	}
	for (i = 0; i < nthreads; i++) {
		struct worker *w = &workers[i];

		w->seed = seed * 131 + i;
		w->id = i;
		w->owner = getpid();
		w->mem = map_region();
		w->buf = malloc(64 * PAGE);
		if (!w->mem || !w->buf) {
			atomic_fetch_add(&counts->failures, 1);
			return;
		}
		memset(w->gen, 0, sizeof(w->gen));
		cpu_write(w, 0, NPAGES);
		pthread_create(&threads[i], NULL, work, w);
	}
	for (i = 0; i < nthreads; i++)
		pthread_join(threads[i], NULL);
}

int main(int argc, char **argv)
{
	unsigned int seconds = 20, nprocs = 2, nthreads = 4, seed = 1, i;
	int opt, failed = 0, status;

	while ((opt = getopt(argc, argv, "d:p:t:s:")) != -1) {
		switch (opt) {
		case 'd':
			seconds = strtoul(optarg, NULL, 0);
			break;
		case 'p':
			nprocs = strtoul(optarg, NULL, 0);
			break;
		case 't':
			nthreads = strtoul(optarg, NULL, 0);
			break;
		case 's':
			seed = strtoul(optarg, NULL, 0);
			break;
		default:
			fprintf(stderr, "usage: %s [-d SECONDS] [-p PROCESSES] "
				"[-t THREADS] [-s SEED]\n", argv[0]);
			return 2;
		}
	}
	if (!nprocs || !nthreads || nthreads > MAX_THREADS) {
		fprintf(stderr, "%s: 1 or more processes, 1 to %d threads\n", argv[0],
			MAX_THREADS);
		return 2;
	}
	printf("TAP version 13\n1..1\n");
	fflush(stdout);
	counts = mmap(NULL, sizeof(*counts), PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (counts == MAP_FAILED)
		return 1;
	deadline = time(NULL) + seconds;
	for (i = 0; i < nprocs; i++) {
		pid_t pid = fork();

		if (pid == 0) {
			run_process(seed + i, nthreads);
			_exit(0);
		}
		if (pid < 0)
			failed = 1;
	}
	while (wait(&status) > 0)
		if (!WIFEXITED(status) || WEXITSTATUS(status))
			failed = 1;

	failed |= dmirror_any_used();
	printf("# %u s, %u processes x %u threads: %lu operations, %lu migrations, "
	       "%lu evictions, %lu forks, %lu busy, %lu MiB checked, %lu failures\n",
	       seconds, nprocs, nthreads, atomic_load(&counts->ops),
	       atomic_load(&counts->migrations), atomic_load(&counts->evictions),
	       atomic_load(&counts->forks), atomic_load(&counts->busy),
	       atomic_load(&counts->bytes) >> 20, atomic_load(&counts->failures));
	failed |= atomic_load(&counts->failures) != 0;
	printf("%s 1 hmm-stress\n", failed ? "not ok" : "ok");
	return failed;
}
