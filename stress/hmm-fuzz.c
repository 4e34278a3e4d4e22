// SPDX-License-Identifier: GPL-2.0
/*
 * hmm-fuzz: random HMM_DMIRROR_* commands on every test_hmm device, from
 * several threads, while another thread keeps replacing, protecting and
 * discarding the mappings they point into, and children fork off.
 *
 *	hmm-fuzz [-s SEED] [-n CALLS] [-t THREADS]
 *
 * The calls are reproducible for a seed (the interleaving is not).  A call
 * may fail, but only with an errno the driver documents for bad or racing
 * input; anything else, a thread dying, or a device still holding pages
 * once every mapping is gone, fails the run.  The kernel log is the other
 * half of the verdict (the harness fails the run on any splat).
 *
 * Output is TAP with one test, after a line of counts.
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
#include <unistd.h>

#include <lib/test_hmm_uapi.h>
#include "dmirror.h"

#define PAGE		4096UL
#define SLOTS		16
#define SLOT_MAX	(4UL << 20)	/* the largest mapping a slot holds */
#define BUF_PAGES	64		/* pages of each thread's data buffer */
#define BAD_SIZE	(1UL << 30)	/* PROT_NONE: a ptr that always faults */
#define MAX_THREADS	32
#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))

enum slot_kind { ANON, ANON_THP, SHARED, MEMFD, READONLY, NOACCESS, KINDS };

/*
 * Each slot owns a fixed window of WINDOW bytes of a PROT_NONE reservation
 * and maps into its start with MAP_FIXED, so that the commands' addresses,
 * read without a lock, never land in memory of the program itself: a stale
 * address finds the slot's next mapping or the reservation.
 */
#define WINDOW		(2 * SLOT_MAX)

struct slot {
	pthread_rwlock_t lock;	/* write-held while the mapping changes */
	char *addr;		/* fixed: the start of the slot's window */
	unsigned long len;
	enum slot_kind kind;
};

static const unsigned long commands[] = {
	HMM_DMIRROR_READ, HMM_DMIRROR_WRITE, HMM_DMIRROR_MIGRATE_TO_DEV,
	HMM_DMIRROR_MIGRATE_TO_SYS, HMM_DMIRROR_SNAPSHOT,
	HMM_DMIRROR_EXCLUSIVE, HMM_DMIRROR_CHECK_EXCLUSIVE,
	HMM_DMIRROR_RELEASE,
};
#define NCMDS ARRAY_SIZE(commands)

/* Failures a caller may see for a bad, racing or oversized request. */
static const int allowed_errno[] = {
	EINVAL, EFAULT, ENOMEM, ENOENT, EPERM, EBUSY, EAGAIN, EINTR, ENOTTY,
};

static struct slot slots[SLOTS];
static int devs[DMIRROR_MAX], ndevs;
static char *bad_ptr;
static atomic_int stop;
static atomic_ulong ncalls, nok, nunexpected, nforks;
static atomic_ulong errno_count[256];

static unsigned int rnd(unsigned int *s, unsigned int n)
{
	return n ? rand_r(s) % n : 0;
}

static void map_slot(struct slot *sl, unsigned int *seed)
{
	int prot = PROT_READ | PROT_WRITE, flags = MAP_PRIVATE | MAP_ANONYMOUS;
	int fd = -1;
	char *p;

	sl->kind = rnd(seed, KINDS);
	sl->len = (1 + rnd(seed, SLOT_MAX / PAGE)) * PAGE;
	switch (sl->kind) {
	case ANON_THP:
		sl->len = SLOT_MAX;
		break;
	case SHARED:
		flags = MAP_SHARED | MAP_ANONYMOUS;
		break;
	case MEMFD:
		fd = memfd_create("hmm-fuzz", 0);
		if (fd < 0 || ftruncate(fd, sl->len)) {
			perror("memfd");
			exit(1);
		}
		flags = MAP_SHARED;
		break;
	case READONLY:
		prot = PROT_READ;
		break;
	case NOACCESS:
		prot = PROT_NONE;
		break;
	default:
		break;
	}
	p = mmap(sl->addr, sl->len, prot, flags | MAP_FIXED, fd, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	if (fd >= 0)
		close(fd);
	if (sl->kind == ANON_THP)
		madvise(p, sl->len, MADV_HUGEPAGE);
}

/* Give a slot's window back to the reservation. */
static void unmap_slot(struct slot *sl)
{
	if (mmap(sl->addr, WINDOW, PROT_NONE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED,
		 -1, 0) == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
}

/* An address for a command: mostly inside a slot, sometimes nonsense. */
static uint64_t pick_addr(unsigned int *seed)
{
	static const uint64_t junk[] = {
		0, 1, PAGE - 1, 0x7ffffffff000ULL, 0x800000000000ULL,
		0xffff800000000000ULL, ~0ULL & ~(PAGE - 1),
	};
	struct slot *sl = &slots[rnd(seed, SLOTS)];
	uint64_t addr;

	if (rnd(seed, 20) == 0)
		return junk[rnd(seed, ARRAY_SIZE(junk))];
	/* no lock: racing the mapper is the point */
	addr = (uint64_t)(uintptr_t)sl->addr + rnd(seed, WINDOW / PAGE) * PAGE;
	if (rnd(seed, 50) == 0)
		addr += 1 + rnd(seed, PAGE - 1);	/* unaligned */
	return addr;
}

static uint64_t pick_npages(unsigned int *seed)
{
	switch (rnd(seed, 50)) {
	case 0:
		return 0;
	case 1:
		return 1ULL << (20 + rnd(seed, 40));	/* absurdly many */
	case 2:
		return SLOT_MAX / PAGE;
	case 3 ... 9:
		return 1 + rnd(seed, BUF_PAGES);
	default:
		return 1 + rnd(seed, 8);
	}
}

static int errno_allowed(int e)
{
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(allowed_errno); i++)
		if (allowed_errno[i] == e)
			return 1;
	return 0;
}

static void one_call(unsigned int *seed, char *buf)
{
	struct hmm_dmirror_cmd cmd = { 0 };
	unsigned long request;
	int ret;

	request = commands[rnd(seed, NCMDS)];
	if (rnd(seed, 40) == 0)	/* a command the driver does not have */
		request = _IOWR('H', 0x08 + rnd(seed, 8), struct hmm_dmirror_cmd);
	cmd.addr = pick_addr(seed);
	cmd.npages = pick_npages(seed);
	/* a buffer as large as the request, or one that faults */
	if (cmd.npages <= BUF_PAGES && rnd(seed, 10))
		cmd.ptr = (uint64_t)(uintptr_t)buf;
	else
		cmd.ptr = (uint64_t)(uintptr_t)bad_ptr;
	ret = ioctl(devs[rnd(seed, ndevs)], request,
		    rnd(seed, 100) ? (void *)&cmd : (void *)bad_ptr);
	atomic_fetch_add(&ncalls, 1);
	if (!ret) {
		atomic_fetch_add(&nok, 1);
		return;
	}
	atomic_fetch_add(&errno_count[errno & 255], 1);
	if (!errno_allowed(errno)) {
		atomic_fetch_add(&nunexpected, 1);
		fprintf(stderr, "# unexpected: cmd %#lx addr %#llx npages %llu: %s\n",
			request, (unsigned long long)cmd.addr,
			(unsigned long long)cmd.npages, strerror(errno));
	}
}

/* Touch a slot from the CPU, as far as its protection allows. */
static void cpu_touch(unsigned int *seed)
{
	struct slot *sl = &slots[rnd(seed, SLOTS)];
	unsigned long off;
	volatile char sink;

	pthread_rwlock_rdlock(&sl->lock);
	off = rnd(seed, sl->len / PAGE) * PAGE;
	if (sl->kind == READONLY)
		sink = sl->addr[off];
	else if (sl->kind != NOACCESS)
		memset(sl->addr + off, rnd(seed, 256), 1 + rnd(seed, PAGE - 1));
	(void)sink;
	pthread_rwlock_unlock(&sl->lock);
}

/* A child that reads what it inherited, maybe writes, and exits. */
static void fork_child(unsigned int *seed)
{
	pid_t pid;
	int i;

	for (i = 0; i < SLOTS; i++)
		pthread_rwlock_rdlock(&slots[i].lock);
	pid = fork();
	if (pid == 0) {
		for (i = 0; i < SLOTS; i++) {
			volatile char sink;

			if (slots[i].kind == NOACCESS)
				continue;
			sink = slots[i].addr[rnd(seed, slots[i].len)];
			(void)sink;
			if (slots[i].kind != READONLY)
				slots[i].addr[0] = 1;
		}
		_exit(0);
	}
	for (i = 0; i < SLOTS; i++)
		pthread_rwlock_unlock(&slots[i].lock);
	if (pid > 0) {
		int status;

		waitpid(pid, &status, 0);
		if (!WIFEXITED(status) || WEXITSTATUS(status))
			atomic_fetch_add(&nunexpected, 1);
		atomic_fetch_add(&nforks, 1);
	}
}

struct fuzzer_arg {
	unsigned int seed;
	unsigned long calls;	/* this thread's share of -n */
};

static void *fuzzer(void *arg)
{
	struct fuzzer_arg *fa = arg;
	unsigned int seed = fa->seed;
	char *buf = malloc(BUF_PAGES * PAGE);
	unsigned long done = 0;

	if (!buf)
		exit(1);
	while (done < fa->calls) {
		unsigned int what = rnd(&seed, 100);

		if (what < 85) {
			one_call(&seed, buf);
			done++;
		} else if (what < 99) {
			cpu_touch(&seed);
		} else {
			fork_child(&seed);
		}
	}
	free(buf);
	return NULL;
}

/* Replace, reprotect and discard mappings under the fuzzers' feet. */
static void *mapper(void *arg)
{
	unsigned int seed = (unsigned int)(uintptr_t)arg;

	while (!atomic_load(&stop)) {
		struct slot *sl = &slots[rnd(&seed, SLOTS)];

		pthread_rwlock_wrlock(&sl->lock);
		switch (rnd(&seed, 4)) {
		case 0:
			unmap_slot(sl);
			map_slot(sl, &seed);
			break;
		case 1:
			madvise(sl->addr, sl->len, MADV_DONTNEED);
			break;
		case 2:
			madvise(sl->addr, sl->len, MADV_FREE);
			break;
		default:
			/* a window of no access, then back */
			if (sl->kind != NOACCESS && sl->kind != READONLY) {
				mprotect(sl->addr, sl->len, PROT_NONE);
				usleep(100);
				mprotect(sl->addr, sl->len, PROT_READ | PROT_WRITE);
			}
			break;
		}
		pthread_rwlock_unlock(&sl->lock);
		usleep(200);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	unsigned long calls = 20000, i;
	unsigned int seed = 1, nthreads = 4, s;
	pthread_t threads[MAX_THREADS], map_thread;
	static struct fuzzer_arg fargs[MAX_THREADS];
	char *reserve;
	int opt, fail = 0;

	while ((opt = getopt(argc, argv, "s:n:t:")) != -1) {
		switch (opt) {
		case 's':
			seed = strtoul(optarg, NULL, 0);
			break;
		case 'n':
			calls = strtoul(optarg, NULL, 0);
			break;
		case 't':
			nthreads = strtoul(optarg, NULL, 0);
			break;
		default:
			fprintf(stderr, "usage: %s [-s SEED] [-n CALLS] [-t THREADS]\n", argv[0]);
			return 2;
		}
	}
	if (!nthreads || nthreads > MAX_THREADS) {
		fprintf(stderr, "%s: 1 to %d threads\n", argv[0], MAX_THREADS);
		return 2;
	}
	printf("TAP version 13\n1..1\n");
	ndevs = dmirror_open_all(devs);
	if (ndevs < 2) {
		printf("not ok 1 hmm-fuzz # no test_hmm devices (is test_hmm loaded?)\n");
		return 1;
	}
	bad_ptr = mmap(NULL, BAD_SIZE, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (bad_ptr == MAP_FAILED)
		return 1;
	reserve = mmap(NULL, (SLOTS + 1) * WINDOW, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (reserve == MAP_FAILED)
		return 1;
	reserve = (char *)(((uintptr_t)reserve + SLOT_MAX - 1) & ~(SLOT_MAX - 1));
	s = seed;
	for (i = 0; i < SLOTS; i++) {
		pthread_rwlock_init(&slots[i].lock, NULL);
		slots[i].addr = reserve + i * WINDOW;
		map_slot(&slots[i], &s);
	}

	pthread_create(&map_thread, NULL, mapper, (void *)(uintptr_t)(seed * 7919));
	for (i = 0; i < nthreads; i++) {
		fargs[i].seed = seed * 1000003 + i;
		fargs[i].calls = calls / nthreads + (i < calls % nthreads);
		pthread_create(&threads[i], NULL, fuzzer, &fargs[i]);
	}
	for (i = 0; i < nthreads; i++)
		pthread_join(threads[i], NULL);
	atomic_store(&stop, 1);
	pthread_join(map_thread, NULL);

	/* With every mapping gone, no device may hold a page. */
	for (i = 0; i < SLOTS; i++)
		unmap_slot(&slots[i]);
	fail = dmirror_any_used();
	for (i = 0; i < (unsigned long)ndevs; i++)
		close(devs[i]);

	printf("# seed %u, %u threads, %d devices: %lu calls, %lu succeeded, %lu forks;",
	       seed, nthreads, ndevs, atomic_load(&ncalls), atomic_load(&nok),
	       atomic_load(&nforks));
	for (i = 1; i < 256; i++)
		if (atomic_load(&errno_count[i]))
			printf(" %s %lu", strerrorname_np(i) ?: "?",
			       atomic_load(&errno_count[i]));
	printf("; unexpected %lu\n", atomic_load(&nunexpected));
	fail |= atomic_load(&nunexpected) != 0;
	printf("%s 1 hmm-fuzz\n", fail ? "not ok" : "ok");
	return fail;
}
