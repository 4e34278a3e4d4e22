// SPDX-License-Identifier: GPL-2.0
/*
 * hmm-bench: the userspace half of the HMM benchmark, run inside the QEMU
 * guest of every kernel measured.
 *
 * "api" records carry the time the core HMM calls took, measured in the
 * kernel by /dev/hmm_bench (bench/hmm_bench.c); "e2e" records carry wall
 * times taken here around an ioctl or a CPU access; "base" records time
 * memcpy() as a yardstick; "mem" records are memory metrics.  Each record
 * is one line "BENCH {json}" on stdout.  Progress and diagnostics go to
 * stderr.
 *
 * Build, from the top of the repository:
 *   gcc -static -O2 -Wall -Wextra -pthread -I bench -I lib \
 *       -isystem build/out/default/hdr/include bench/hmm-bench.c -o hmm-bench
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "hmm_bench_uapi.h"
#include "test_hmm_uapi.h"

#define PAGE_SZ		4096UL
#define THP_ALIGN	(2UL << 20)
#define MAX_REPS	16
#define MAX_SIZES	32
#define MAX_SIZE	(1024ULL << 30)	/* 1 TiB */
#define MAX_THREADS	1024
#define WARM_LIMIT	(64UL << 20)	/* no warm-up rep from this size on */
#define ITEM_LEN	32
#define DMIRROR_DEVICE	"/dev/hmm_dmirror0"
#define THP_SIZE_FILE	"/sys/kernel/mm/transparent_hugepage/hpage_pmd_size"

#define BIT(n)		(1U << (n))
#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))

/* The workloads, as named in the records and on the command line. */
enum wl {
	WL_SNAPSHOT,
	WL_FAULT_READ,
	WL_FAULT_WRITE,
	WL_TO_DEV,
	WL_TO_SYS,
	WL_EVICT,
	WL_CPU_FAULT,
	WL_CPU_FAULT_1T,
	WL_CPU_FAULT_SAME,
	WL_CPU_FAULT_DIFF,
	WL_EXCLUSIVE,
	WL_REVOKE,
	WL_FORK,
	WL_DM_READ,
	WL_DM_TO_DEV,
	WL_DM_TO_SYS,
	WL_DM_CPU_FAULT,
	WL_DM_EXCLUSIVE,
	WL_MEMCPY,
	NR_WL
};

static const char * const wl_names[NR_WL] = {
	[WL_SNAPSHOT]		= "snapshot",
	[WL_FAULT_READ]		= "fault-read",
	[WL_FAULT_WRITE]	= "fault-write",
	[WL_TO_DEV]		= "to-dev",
	[WL_TO_SYS]		= "to-sys",
	[WL_EVICT]		= "evict",
	[WL_CPU_FAULT]		= "cpu-fault",
	[WL_CPU_FAULT_1T]	= "cpu-fault-1t",
	[WL_CPU_FAULT_SAME]	= "cpu-fault-same",
	[WL_CPU_FAULT_DIFF]	= "cpu-fault-diff",
	[WL_EXCLUSIVE]		= "exclusive",
	[WL_REVOKE]		= "revoke",
	[WL_FORK]		= "fork",
	[WL_DM_READ]		= "dmirror-read",
	[WL_DM_TO_DEV]		= "dmirror-to-dev",
	[WL_DM_TO_SYS]		= "dmirror-to-sys",
	[WL_DM_CPU_FAULT]	= "dmirror-cpu-fault",
	[WL_DM_EXCLUSIVE]	= "dmirror-exclusive",
	[WL_MEMCPY]		= "memcpy",
};

#define DMIRROR_WLS	(BIT(WL_DM_READ) | BIT(WL_DM_TO_DEV) | \
			 BIT(WL_DM_TO_SYS) | BIT(WL_DM_CPU_FAULT) | \
			 BIT(WL_DM_EXCLUSIVE))

enum mem_kind {
	MEM_4K,
	MEM_THP,
	NR_MEM
};

static const char * const mem_names[NR_MEM] = {
	[MEM_4K]	= "4k",
	[MEM_THP]	= "thp",
};

/* steps of eight up to 32M, then 512M: the big sizes dominate under TCG */
static const size_t default_sizes[] = {
	64UL << 10, 512UL << 10, 4UL << 20, 32UL << 20, 512UL << 20,
};

static const size_t smoke_sizes[] = { 64UL << 10, 2UL << 20 };

/* The command line, once parsed. */
struct opts {
	size_t sizes[MAX_SIZES];
	unsigned int nr_sizes;
	unsigned int mem;		/* BIT(enum mem_kind) of the kinds */
	unsigned int only;		/* BIT(enum wl) of the workloads */
	unsigned int threads;
	unsigned long long reps_bytes;
	unsigned long long dm_max;	/* largest size of the dmirror workloads */
	bool smoke;
};

/* What every workload works with. */
struct bench {
	const struct opts *opt;
	int fd;				/* /dev/hmm_bench */
	int dm_fd;			/* /dev/hmm_dmirror0, or -1 */
	int dm_err;			/* why it could not be opened */
	unsigned int failures;		/* records not ok, pool leaks */
};

/* One measurement point: a mem kind and a size. */
struct point {
	enum mem_kind kind;
	const char *mem;		/* "4k", "thp", or "-" for no kind */
	size_t size;
	unsigned int reps;		/* counted reps */
	int warm;			/* 1 if a warm-up rep comes first */
};

/* The reps of one record of one point. */
struct meas {
	const char *layer;		/* "api", "e2e" or "base" */
	char name[ITEM_LEN];
	enum wl wl;
	bool on;			/* selected by --only */
	const char *mem;
	size_t size;
	unsigned int reps;
	unsigned int nr;		/* counted reps that succeeded */
	__u64 ns[MAX_REPS];		/* their times */
	__u64 pages;			/* the least pages of these reps */
	int err;			/* errno of the first failed rep */
	long long thp_bytes;		/* AnonHugePages of the range, or -1 */
};

/* One thread of the multi-thread CPU fault workloads. */
struct reader {
	pthread_t tid;
	pthread_barrier_t *start;
	char *p;
	size_t len;
};

static inline __u64 now_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts))
		err(1, "clock_gettime");
	return (__u64)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/*
 * Access one byte of every page of [p, p + len): a store, or a load the
 * compiler has to keep although its value is not used.
 */
static void touch_pages(char *p, size_t len, bool write)
{
	size_t off;

	for (off = 0; off < len; off += PAGE_SZ) {
		if (write)
			p[off] = 1;
		else
			asm volatile("" : : "r" (p[off]));
	}
	asm volatile("" : : : "memory");
}

/* Wall time of touch_pages(). */
static __u64 timed_touch(char *p, size_t len, bool write)
{
	__u64 t0 = now_ns();

	touch_pages(p, len, write);
	return now_ns() - t0;
}

/* Wall time of one ioctl; 0 or an errno. */
static int timed_ioctl(int fd, unsigned long req, void *arg, __u64 *ns)
{
	__u64 t0 = now_ns();
	int ret = ioctl(fd, req, arg);
	int err = ret < 0 ? errno : 0;

	*ns = now_ns() - t0;
	return err;
}

/*
 * mmap() an anonymous private range of @size bytes for @kind: 4k asks for
 * no huge pages, thp is aligned to 2 MiB (over-allocated, then trimmed)
 * and asks for huge pages.  0 with *out set, or an errno.
 */
static int map_range(enum mem_kind kind, size_t size, char **out)
{
	size_t len = kind == MEM_THP ? size + THP_ALIGN : size;
	char *lo, *hi, *start;
	int ret;

	*out = NULL;
	lo = mmap(NULL, len, PROT_READ | PROT_WRITE,
		  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (lo == MAP_FAILED)
		return errno;
	hi = lo + len;
	start = lo;
	if (kind == MEM_THP) {
		start = (char *)(((uintptr_t)lo + THP_ALIGN - 1) &
				 ~(uintptr_t)(THP_ALIGN - 1));
		if (start > lo && munmap(lo, start - lo))
			goto fail;
		lo = start;
		if (hi > start + size && munmap(start + size, hi - start - size))
			goto fail;
		hi = start + size;
	}
	if (madvise(start, size,
		    kind == MEM_THP ? MADV_HUGEPAGE : MADV_NOHUGEPAGE))
		goto fail;
	*out = start;
	return 0;

fail:
	ret = errno;
	if (munmap(lo, hi - lo))
		warn("munmap");
	return ret;
}

static void unmap_range(char *p, size_t size)
{
	if (munmap(p, size))
		warn("munmap %p %zu", p, size);
}

/* A fresh range, every page of it write-faulted in.  0 or an errno. */
static int map_populated(enum mem_kind kind, size_t size, char **out)
{
	int ret = map_range(kind, size, out);

	if (!ret)
		touch_pages(*out, size, true);
	return ret;
}

/*
 * Bytes of AnonHugePages of the mapping that holds @addr, from
 * /proc/self/smaps; -1 if they cannot be read.
 */
static long long smaps_thp_bytes(const void *addr)
{
	unsigned long start, end, a = (uintptr_t)addr;
	unsigned long long kb;
	long long ret = -1;
	bool in = false;
	size_t cap = 0;
	char *line = NULL;
	FILE *f;

	f = fopen("/proc/self/smaps", "r");
	if (!f)
		return -1;
	while (getline(&line, &cap, f) > 0) {
		if (sscanf(line, "%lx-%lx ", &start, &end) == 2) {
			if (in)
				break;
			in = start <= a && a < end;
			continue;
		}
		if (in && sscanf(line, "AnonHugePages: %llu kB", &kb) == 1) {
			ret = kb * 1024;
			break;
		}
	}
	free(line);
	if (fclose(f))
		warn("fclose smaps");
	return ret;
}

/* The first time for a thp point, note how much of the range is huge. */
static void sample_thp(const struct point *pt, const void *p, long long *thp)
{
	long long bytes;

	if (pt->kind != MEM_THP || *thp >= 0)
		return;
	bytes = smaps_thp_bytes(p);
	if (bytes < 0) {
		warnx("cannot read AnonHugePages of %p from smaps", p);
		bytes = 0;
	}
	*thp = bytes;
}

/* One range ioctl of /dev/hmm_bench; 0 or an errno. */
static int bench_range(const struct bench *b, unsigned long req, void *addr,
		       size_t size, __u64 flags, struct hmm_bench_cmd *cmd)
{
	memset(cmd, 0, sizeof(*cmd));
	cmd->addr = (uintptr_t)addr;
	cmd->size = size;
	cmd->flags = flags;
	if (ioctl(b->fd, req, cmd) < 0)
		return errno;
	return 0;
}

/* HMM_BENCH_INFO, which also resets the fault counters; 0 or an errno. */
static int bench_info(const struct bench *b, struct hmm_bench_info *info)
{
	memset(info, 0, sizeof(*info));
	if (ioctl(b->fd, HMM_BENCH_INFO, info) < 0)
		return errno;
	return 0;
}

/* One HMM_DMIRROR_* ioctl on @size bytes at @addr, timed; 0 or an errno. */
static int dmirror_op(const struct bench *b, unsigned long req, char *addr,
		      char *buf, size_t size, __u64 *ns, __u64 *cpages)
{
	struct hmm_dmirror_cmd cmd = {
		.addr	= (uintptr_t)addr,
		.ptr	= (uintptr_t)buf,
		.npages	= size / PAGE_SZ,
	};
	int ret = timed_ioctl(b->dm_fd, req, &cmd, ns);

	*cpages = cmd.cpages;
	return ret;
}

/*
 * A fresh populated range of the point, migrated to the module's device
 * memory (HMM_BENCH_TO_DEV).  0 with *p set, or an errno with nothing left
 * mapped.  @thp, if not NULL, gets the range's huge bytes before the
 * migration.
 */
static int map_on_device(const struct bench *b, const struct point *pt,
			 char **p, long long *thp)
{
	struct hmm_bench_cmd cmd;
	int ret;

	ret = map_populated(pt->kind, pt->size, p);
	if (ret)
		return ret;
	if (thp)
		sample_thp(pt, *p, thp);
	ret = bench_range(b, HMM_BENCH_TO_DEV, *p, pt->size, 0, &cmd);
	if (ret) {
		unmap_range(*p, pt->size);
		*p = NULL;
		return ret;
	}
	if (cmd.pages != pt->size / PAGE_SZ)
		warnx("%s %zu: TO_DEV moved %llu of %lu pages", pt->mem,
		      pt->size, cmd.pages, pt->size / PAGE_SZ);
	return 0;
}

static void meas_init(struct meas *m, const struct bench *b,
		      const struct point *pt, const char *layer, enum wl wl)
{
	memset(m, 0, sizeof(*m));
	m->layer = layer;
	m->wl = wl;
	m->on = b->opt->only & BIT(wl);
	snprintf(m->name, sizeof(m->name), "%s", wl_names[wl]);
	m->mem = pt->mem;
	m->size = pt->size;
	m->reps = pt->reps;
	m->thp_bytes = -1;
}

/*
 * Note the outcome of rep @rep (negative for the warm-up rep, which is not
 * counted): @err, or the time and pages of a rep that succeeded.
 */
static void meas_result(struct meas *m, int rep, int err, __u64 ns,
			__u64 pages)
{
	if (err) {
		if (m->on && (rep < 0 || !m->err))
			warnx("%s %s %zu rep %d: %s", m->name, m->mem, m->size,
			      rep, strerror(err));
		if (rep >= 0 && !m->err)
			m->err = err;
		return;
	}
	if (rep < 0 || m->nr >= MAX_REPS)
		return;
	m->ns[m->nr++] = ns;
	if (m->nr == 1 || pages < m->pages)
		m->pages = pages;
}

static inline void meas_fail(struct meas *m, int rep, int err)
{
	meas_result(m, rep, err, 0, 0);
}

/* Nothing of the measurement could run. */
static void meas_fail_all(struct meas *m, int err)
{
	if (m->on)
		warnx("%s %s %zu: %s", m->name, m->mem, m->size, strerror(err));
	m->err = err;
}

static void sort_u64(__u64 *v, unsigned int n)
{
	unsigned int i, j;
	__u64 x;

	for (i = 1; i < n; i++) {
		x = v[i];
		for (j = i; j > 0 && v[j - 1] > x; j--)
			v[j] = v[j - 1];
		v[j] = x;
	}
}

static void print_json_str(const char *s)
{
	unsigned char c;

	putchar('"');
	for (; *s; s++) {
		c = *s;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

/* End a record: its error if any, then the closing brace. */
static void print_tail(int error)
{
	if (error) {
		fputs(",\"error\":", stdout);
		print_json_str(strerror(error));
	}
	fputs("}\n", stdout);
	if (fflush(stdout))
		err(1, "stdout");
}

/* Print the record of a measurement if it was asked for, and judge it. */
static void meas_emit(struct bench *b, struct meas *m)
{
	__u64 expected = m->size / PAGE_SZ, med = 0, min = 0, max = 0;
	__u64 pages = m->nr ? m->pages : 0;
	bool ok;

	if (!m->on)
		return;
	if (m->nr) {
		sort_u64(m->ns, m->nr);
		min = m->ns[0];
		max = m->ns[m->nr - 1];
		med = m->ns[(m->nr - 1) / 2];
	}
	ok = !m->err && m->nr == m->reps && pages == expected;

	printf("BENCH {\"layer\":\"%s\",\"workload\":\"%s\",\"mem\":\"%s\",",
	       m->layer, m->name, m->mem);
	printf("\"size\":%zu,\"reps\":%u,\"median_ns\":%llu,", m->size,
	       m->reps, med);
	printf("\"min_ns\":%llu,\"max_ns\":%llu,\"pages\":%llu,", min, max,
	       pages);
	printf("\"expected\":%llu,\"ok\":%s", expected, ok ? "true" : "false");
	if (m->thp_bytes >= 0 && !strcmp(m->layer, "api"))
		printf(",\"thp_bytes\":%lld", m->thp_bytes);
	print_tail(m->err);

	if (ok)
		return;
	b->failures++;
	if (m->err)
		warnx("%s %s %zu: not ok: %s", m->name, m->mem, m->size,
		      strerror(m->err));
	else
		warnx("%s %s %zu: not ok: %llu pages, %llu expected", m->name,
		      m->mem, m->size, pages, expected);
}

/* api snapshot: hmm_range_fault() without faulting, of a populated range */
static void wl_snapshot(struct bench *b, const struct point *pt)
{
	struct hmm_bench_cmd cmd;
	struct meas m;
	char *p;
	int rep, ret;

	meas_init(&m, b, pt, "api", WL_SNAPSHOT);
	ret = map_populated(pt->kind, pt->size, &p);
	if (ret) {
		meas_fail_all(&m, ret);
		meas_emit(b, &m);
		return;
	}
	sample_thp(pt, p, &m.thp_bytes);
	for (rep = -pt->warm; rep < (int)pt->reps; rep++) {
		ret = bench_range(b, HMM_BENCH_SNAPSHOT, p, pt->size, 0, &cmd);
		meas_result(&m, rep, ret, cmd.ns, cmd.pages);
	}
	unmap_range(p, pt->size);
	meas_emit(b, &m);
}

/*
 * api fault-read, fault-write: hmm_range_fault() faulting in a fresh
 * range; for thp, the huge bytes are those the device fault made.
 */
static void wl_fault(struct bench *b, const struct point *pt, enum wl which,
		     __u64 flags)
{
	struct hmm_bench_cmd cmd;
	struct meas m;
	char *p;
	int rep, ret;

	meas_init(&m, b, pt, "api", which);
	for (rep = -pt->warm; rep < (int)pt->reps; rep++) {
		ret = map_range(pt->kind, pt->size, &p);
		if (ret) {
			meas_fail(&m, rep, ret);
			continue;
		}
		ret = bench_range(b, HMM_BENCH_FAULT, p, pt->size, flags, &cmd);
		meas_result(&m, rep, ret, cmd.ns, cmd.pages);
		if (!ret)
			sample_thp(pt, p, &m.thp_bytes);
		unmap_range(p, pt->size);
	}
	meas_emit(b, &m);
}

static void wl_fault_read(struct bench *b, const struct point *pt)
{
	wl_fault(b, pt, WL_FAULT_READ, 0);
}

static void wl_fault_write(struct bench *b, const struct point *pt)
{
	wl_fault(b, pt, WL_FAULT_WRITE, HMM_BENCH_F_WRITE);
}

/*
 * A fresh populated range for repetition @rep of @m and @m2 (which may be
 * NULL); if it cannot be had, the repetition fails in both and NULL is
 * returned.  @thp, if not NULL, gets the range's huge bytes.
 */
static char *fresh_range(const struct point *pt, int rep, struct meas *m,
			 struct meas *m2, long long *thp)
{
	char *p;
	int ret = map_populated(pt->kind, pt->size, &p);

	if (ret) {
		meas_fail(m, rep, ret);
		if (m2)
			meas_fail(m2, rep, ret);
		return NULL;
	}
	if (thp)
		sample_thp(pt, p, thp);
	return p;
}

/* api to-dev, to-sys: migrate_vma of a fresh range there and back */
static void wl_migrate(struct bench *b, const struct point *pt)
{
	struct hmm_bench_cmd cmd;
	struct meas dev, sys;
	char *p;
	int rep, ret;

	meas_init(&dev, b, pt, "api", WL_TO_DEV);
	meas_init(&sys, b, pt, "api", WL_TO_SYS);
	for (rep = -pt->warm; rep < (int)pt->reps; rep++) {
		p = fresh_range(pt, rep, &dev, &sys, &dev.thp_bytes);
		if (!p)
			continue;
		ret = bench_range(b, HMM_BENCH_TO_DEV, p, pt->size, 0, &cmd);
		meas_result(&dev, rep, ret, cmd.ns, cmd.pages);
		ret = bench_range(b, HMM_BENCH_TO_SYS, p, pt->size, 0, &cmd);
		meas_result(&sys, rep, ret, cmd.ns, cmd.pages);
		unmap_range(p, pt->size);
	}
	sys.thp_bytes = dev.thp_bytes;
	meas_emit(b, &dev);
	meas_emit(b, &sys);
}

/* api evict: migrate_device_range() of the pages a TO_DEV just took */
static void wl_evict(struct bench *b, const struct point *pt)
{
	struct hmm_bench_cmd cmd;
	struct meas m;
	char *p;
	int rep, ret;

	meas_init(&m, b, pt, "api", WL_EVICT);
	for (rep = -pt->warm; rep < (int)pt->reps; rep++) {
		ret = map_on_device(b, pt, &p, &m.thp_bytes);
		if (ret) {
			meas_fail(&m, rep, ret);
			continue;
		}
		ret = bench_range(b, HMM_BENCH_EVICT, NULL, pt->size, 0, &cmd);
		meas_result(&m, rep, ret, cmd.ns, cmd.pages);
		unmap_range(p, pt->size);
	}
	meas_emit(b, &m);
}

/*
 * api cpu-fault and e2e cpu-fault-1t: one thread reads every page of a
 * range in device memory; the module reports its migrate_to_ram() time.
 */
static void wl_cpu_fault(struct bench *b, const struct point *pt)
{
	struct hmm_bench_info info;
	struct meas api, e2e;
	__u64 ns;
	char *p;
	int rep, ret;

	meas_init(&api, b, pt, "api", WL_CPU_FAULT);
	meas_init(&e2e, b, pt, "e2e", WL_CPU_FAULT_1T);
	for (rep = -pt->warm; rep < (int)pt->reps; rep++) {
		ret = map_on_device(b, pt, &p, &api.thp_bytes);
		if (ret) {
			meas_fail(&api, rep, ret);
			meas_fail(&e2e, rep, ret);
			continue;
		}
		/* this one resets the fault counters */
		ret = bench_info(b, &info);
		if (ret) {
			meas_fail(&api, rep, ret);
			meas_fail(&e2e, rep, ret);
			unmap_range(p, pt->size);
			continue;
		}
		ns = timed_touch(p, pt->size, false);
		meas_result(&e2e, rep, 0, ns, pt->size / PAGE_SZ);
		ret = bench_info(b, &info);
		meas_result(&api, rep, ret, info.fault_ns, info.fault_pages);
		unmap_range(p, pt->size);
	}
	meas_emit(b, &api);
	meas_emit(b, &e2e);
}

static void wait_barrier(pthread_barrier_t *barrier)
{
	int ret = pthread_barrier_wait(barrier);

	if (ret && ret != PTHREAD_BARRIER_SERIAL_THREAD)
		errx(1, "pthread_barrier_wait: %s", strerror(ret));
}

static void *reader_main(void *arg)
{
	struct reader *r = arg;

	wait_barrier(r->start);
	touch_pages(r->p, r->len, false);
	return NULL;
}

/*
 * e2e cpu-fault-same-<T>t, cpu-fault-diff-<T>t: T threads read every page
 * of a range in device memory, or each its own slice of it; the time runs
 * from the barrier's release until all threads are joined.
 */
static void wl_cpu_fault_mt(struct bench *b, const struct point *pt,
			    bool diff)
{
	unsigned int i, nr = b->opt->threads;
	size_t first, last, npages = pt->size / PAGE_SZ;
	pthread_barrier_t start;
	struct reader *rd;
	struct meas m;
	__u64 t0;
	char *p;
	int rep, ret;

	meas_init(&m, b, pt, "e2e", diff ? WL_CPU_FAULT_DIFF : WL_CPU_FAULT_SAME);
	snprintf(m.name, sizeof(m.name), "%s-%ut", wl_names[m.wl], nr);
	rd = calloc(nr, sizeof(*rd));
	if (!rd)
		err(1, "calloc");
	for (rep = -pt->warm; rep < (int)pt->reps; rep++) {
		ret = map_on_device(b, pt, &p, NULL);
		if (ret) {
			meas_fail(&m, rep, ret);
			continue;
		}
		ret = pthread_barrier_init(&start, NULL, nr + 1);
		if (ret) {
			meas_fail(&m, rep, ret);
			unmap_range(p, pt->size);
			continue;
		}
		for (i = 0; i < nr; i++) {
			first = diff ? npages * i / nr : 0;
			last = diff ? npages * (i + 1) / nr : npages;
			rd[i].start = &start;
			rd[i].p = p + first * PAGE_SZ;
			rd[i].len = (last - first) * PAGE_SZ;
			ret = pthread_create(&rd[i].tid, NULL, reader_main,
					     &rd[i]);
			if (ret)
				errx(1, "pthread_create: %s", strerror(ret));
		}
		t0 = now_ns();
		wait_barrier(&start);
		for (i = 0; i < nr; i++) {
			ret = pthread_join(rd[i].tid, NULL);
			if (ret)
				errx(1, "pthread_join: %s", strerror(ret));
		}
		meas_result(&m, rep, 0, now_ns() - t0, npages);
		ret = pthread_barrier_destroy(&start);
		if (ret)
			warnx("pthread_barrier_destroy: %s", strerror(ret));
		unmap_range(p, pt->size);
	}
	free(rd);
	meas_emit(b, &m);
}

static void wl_cpu_fault_same(struct bench *b, const struct point *pt)
{
	wl_cpu_fault_mt(b, pt, false);
}

static void wl_cpu_fault_diff(struct bench *b, const struct point *pt)
{
	wl_cpu_fault_mt(b, pt, true);
}

/*
 * api exclusive and e2e revoke: make_device_exclusive_range() of a fresh
 * range, then the CPU writes every page of it, taking each page back.
 */
static void wl_exclusive(struct bench *b, const struct point *pt)
{
	struct hmm_bench_cmd cmd;
	struct meas excl, revoke;
	__u64 ns;
	char *p;
	int rep, ret;

	meas_init(&excl, b, pt, "api", WL_EXCLUSIVE);
	meas_init(&revoke, b, pt, "e2e", WL_REVOKE);
	for (rep = -pt->warm; rep < (int)pt->reps; rep++) {
		p = fresh_range(pt, rep, &excl, &revoke, &excl.thp_bytes);
		if (!p)
			continue;
		ret = bench_range(b, HMM_BENCH_EXCLUSIVE, p, pt->size, 0, &cmd);
		meas_result(&excl, rep, ret, cmd.ns, cmd.pages);
		if (ret) {
			meas_fail(&revoke, rep, ret);
		} else {
			ns = timed_touch(p, pt->size, true);
			meas_result(&revoke, rep, 0, ns, pt->size / PAGE_SZ);
		}
		unmap_range(p, pt->size);
	}
	meas_emit(b, &excl);
	meas_emit(b, &revoke);
}

/* Time fork() in the parent; the child exits at once.  0 or an errno. */
static int timed_fork(__u64 *ns)
{
	__u64 t0;
	pid_t pid;
	int status, ret = 0;

	t0 = now_ns();
	pid = fork();
	if (!pid)
		_exit(0);
	*ns = now_ns() - t0;
	if (pid < 0)
		return errno;
	if (waitpid(pid, &status, 0) < 0)
		return errno;
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		warnx("fork child ended with status %#x", status);
		ret = ECHILD;
	}
	return ret;
}

/* e2e fork: fork() of a process with a range in device memory */
static void wl_fork(struct bench *b, const struct point *pt)
{
	struct meas m;
	__u64 ns;
	char *p;
	int rep, ret;

	meas_init(&m, b, pt, "e2e", WL_FORK);
	for (rep = -pt->warm; rep < (int)pt->reps; rep++) {
		ret = map_on_device(b, pt, &p, NULL);
		if (ret) {
			meas_fail(&m, rep, ret);
			continue;
		}
		ret = timed_fork(&ns);
		meas_result(&m, rep, ret, ns, pt->size / PAGE_SZ);
		unmap_range(p, pt->size);
	}
	meas_emit(b, &m);
}

/*
 * The user buffer (cmd.ptr) of the dmirror ioctls, populated: READ copies
 * the range into it, and Linux's own test_hmm copies the range into it for
 * MIGRATE_TO_DEV and EXCLUSIVE too.  0, or an errno (also if the device
 * could not be opened).
 */
static int dmirror_buffer(const struct bench *b, const struct point *pt,
			  char **buf)
{
	*buf = NULL;
	if (b->dm_fd < 0)
		return b->dm_err;
	return map_populated(MEM_4K, pt->size, buf);
}

/* e2e dmirror-read: the device reads a populated range */
static void wl_dm_read(struct bench *b, const struct point *pt)
{
	__u64 ns, cpages;
	char *p = NULL, *buf;
	struct meas m;
	int rep, ret;

	meas_init(&m, b, pt, "e2e", WL_DM_READ);
	ret = dmirror_buffer(b, pt, &buf);
	if (!ret)
		ret = map_populated(pt->kind, pt->size, &p);
	if (ret) {
		meas_fail_all(&m, ret);
	} else {
		for (rep = -pt->warm; rep < (int)pt->reps; rep++) {
			ret = dmirror_op(b, HMM_DMIRROR_READ, p, buf, pt->size,
					 &ns, &cpages);
			meas_result(&m, rep, ret, ns, cpages);
		}
	}
	if (p)
		unmap_range(p, pt->size);
	if (buf)
		unmap_range(buf, pt->size);
	meas_emit(b, &m);
}

/*
 * test_hmm migrates a fresh range to its device (recorded in @dev, if not
 * NULL), and then it comes back, recorded in @back: by MIGRATE_TO_SYS, or,
 * if @by_cpu, by one thread reading every page.
 */
static void dm_round_trip(struct bench *b, const struct point *pt,
			  struct meas *dev, struct meas *back, bool by_cpu)
{
	size_t npages = pt->size / PAGE_SZ;
	__u64 ns, cpages;
	char *p, *buf;
	int rep, ret;

	ret = dmirror_buffer(b, pt, &buf);
	if (ret) {
		if (dev)
			meas_fail_all(dev, ret);
		meas_fail_all(back, ret);
		return;
	}
	for (rep = -pt->warm; rep < (int)pt->reps; rep++) {
		p = fresh_range(pt, rep, back, dev, NULL);
		if (!p)
			continue;
		ret = dmirror_op(b, HMM_DMIRROR_MIGRATE_TO_DEV, p, buf,
				 pt->size, &ns, &cpages);
		if (dev)
			meas_result(dev, rep, ret, ns, cpages);
		if (!by_cpu) {
			ret = dmirror_op(b, HMM_DMIRROR_MIGRATE_TO_SYS, p, buf,
					 pt->size, &ns, &cpages);
		} else if (!ret && cpages == npages) {
			ns = timed_touch(p, pt->size, false);
		} else {
			ret = ret ? ret : EAGAIN; /* not all on the device */
		}
		meas_result(back, rep, ret, ns, by_cpu ? npages : cpages);
		unmap_range(p, pt->size);
	}
	unmap_range(buf, pt->size);
}

/* e2e dmirror-to-dev, dmirror-to-sys: test_hmm migrates there and back */
static void wl_dm_migrate(struct bench *b, const struct point *pt)
{
	struct meas dev, sys;

	meas_init(&dev, b, pt, "e2e", WL_DM_TO_DEV);
	meas_init(&sys, b, pt, "e2e", WL_DM_TO_SYS);
	dm_round_trip(b, pt, &dev, &sys, false);
	meas_emit(b, &dev);
	meas_emit(b, &sys);
}

/*
 * e2e dmirror-cpu-fault: one thread reads every page of a range test_hmm
 * migrated to its device (THPs whole, where it can), and so faults it back
 * to system memory.  Only the reads are timed.
 */
static void wl_dm_cpu_fault(struct bench *b, const struct point *pt)
{
	struct meas m;

	meas_init(&m, b, pt, "e2e", WL_DM_CPU_FAULT);
	dm_round_trip(b, pt, NULL, &m, true);
	meas_emit(b, &m);
}

/* e2e dmirror-exclusive: test_hmm takes exclusive access to a range */
static void wl_dm_exclusive(struct bench *b, const struct point *pt)
{
	__u64 ns, cpages;
	char *p, *buf;
	struct meas m;
	int rep, ret;

	meas_init(&m, b, pt, "e2e", WL_DM_EXCLUSIVE);
	ret = dmirror_buffer(b, pt, &buf);
	if (ret) {
		meas_fail_all(&m, ret);
		goto out;
	}
	for (rep = -pt->warm; rep < (int)pt->reps; rep++) {
		p = fresh_range(pt, rep, &m, NULL, NULL);
		if (!p)
			continue;
		ret = dmirror_op(b, HMM_DMIRROR_EXCLUSIVE, p, buf, pt->size,
				 &ns, &cpages);
		meas_result(&m, rep, ret, ns, cpages);
		unmap_range(p, pt->size);
	}
	unmap_range(buf, pt->size);
out:
	meas_emit(b, &m);
}

/* base memcpy: the copy the migrations do, done by the CPU alone */
static void wl_memcpy(struct bench *b, const struct point *pt)
{
	char *src, *dst;
	struct meas m;
	__u64 t0;
	int rep, ret;

	meas_init(&m, b, pt, "base", WL_MEMCPY);
	ret = map_populated(MEM_4K, pt->size, &src);
	if (!ret) {
		ret = map_populated(MEM_4K, pt->size, &dst);
		if (ret)
			unmap_range(src, pt->size);
	}
	if (ret) {
		meas_fail_all(&m, ret);
		meas_emit(b, &m);
		return;
	}
	for (rep = -pt->warm; rep < (int)pt->reps; rep++) {
		t0 = now_ns();
		memcpy(dst, src, pt->size);
		asm volatile("" : : : "memory");
		meas_result(&m, rep, 0, now_ns() - t0, pt->size / PAGE_SZ);
	}
	unmap_range(src, pt->size);
	unmap_range(dst, pt->size);
	meas_emit(b, &m);
}

/* A workload function and the records it makes. */
struct group {
	void (*run)(struct bench *b, const struct point *pt);
	unsigned int wls;		/* BIT(enum wl) of its records */
	bool per_mem;			/* run for each mem kind, or once */
};

static const struct group groups[] = {
	{ wl_snapshot,		BIT(WL_SNAPSHOT),			true },
	{ wl_fault_read,	BIT(WL_FAULT_READ),			true },
	{ wl_fault_write,	BIT(WL_FAULT_WRITE),			true },
	{ wl_migrate,		BIT(WL_TO_DEV) | BIT(WL_TO_SYS),	true },
	{ wl_evict,		BIT(WL_EVICT),				true },
	{ wl_cpu_fault,		BIT(WL_CPU_FAULT) | BIT(WL_CPU_FAULT_1T), true },
	{ wl_cpu_fault_same,	BIT(WL_CPU_FAULT_SAME),			true },
	{ wl_cpu_fault_diff,	BIT(WL_CPU_FAULT_DIFF),			true },
	{ wl_exclusive,		BIT(WL_EXCLUSIVE) | BIT(WL_REVOKE),	true },
	{ wl_fork,		BIT(WL_FORK),				true },
	{ wl_dm_read,		BIT(WL_DM_READ),			true },
	{ wl_dm_migrate,	BIT(WL_DM_TO_DEV) | BIT(WL_DM_TO_SYS),	true },
	{ wl_dm_cpu_fault,	BIT(WL_DM_CPU_FAULT),			true },
	{ wl_dm_exclusive,	BIT(WL_DM_EXCLUSIVE),			true },
	{ wl_memcpy,		BIT(WL_MEMCPY),				false },
};

/* Every device page must be back in the pool once the ranges are gone. */
static void check_pool(struct bench *b, const char *what, const char *mem,
		       size_t size)
{
	struct hmm_bench_info info;
	int ret = bench_info(b, &info);

	if (ret) {
		warnx("%s %s %zu: HMM_BENCH_INFO: %s", what, mem, size,
		      strerror(ret));
		b->failures++;
	} else if (info.pool_used) {
		warnx("%s %s %zu: %llu device pages still in use", what, mem,
		      size, info.pool_used);
		b->failures++;
	}
}

static void init_point(const struct opts *o, enum mem_kind kind,
		       const char *mem, size_t size, struct point *pt)
{
	unsigned long long reps = o->reps_bytes / size;

	if (reps < 1)
		reps = 1;
	if (reps > MAX_REPS)
		reps = MAX_REPS;
	pt->kind = kind;
	pt->mem = mem;
	pt->size = size;
	pt->reps = o->smoke ? 1 : reps;
	pt->warm = !o->smoke && size < WARM_LIMIT;
}

static void run_group(struct bench *b, const struct group *g)
{
	const struct opts *o = b->opt;
	unsigned int kinds = g->per_mem ? o->mem : BIT(MEM_4K);
	const char *name = wl_names[ffs(g->wls) - 1];
	struct point pt;
	unsigned int i;
	int k;

	if (!(o->only & g->wls))
		return;
	for (k = 0; k < NR_MEM; k++) {
		if (!(kinds & BIT(k)))
			continue;
		for (i = 0; i < o->nr_sizes; i++) {
			if ((g->wls & DMIRROR_WLS) && o->sizes[i] > o->dm_max)
				continue;
			init_point(o, k, g->per_mem ? mem_names[k] : "-",
				   o->sizes[i], &pt);
			warnx("%s %s %zu x%u", name, pt.mem, pt.size, pt.reps);
			g->run(b, &pt);
			check_pool(b, name, pt.mem, pt.size);
		}
	}
}

static unsigned long long read_pmd_bytes(void)
{
	unsigned long long v = 0;
	FILE *f = fopen(THP_SIZE_FILE, "r");

	if (!f)
		return 0;
	if (fscanf(f, "%llu", &v) != 1)
		v = 0;
	if (fclose(f))
		warn("fclose %s", THP_SIZE_FILE);
	return v;
}

static void print_info(const struct opts *o)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	long page = sysconf(_SC_PAGESIZE);

	printf("BENCH {\"layer\":\"info\",\"cpus\":%ld,\"threads\":%u,",
	       cpus, o->threads);
	printf("\"page_size\":%ld,\"thp_pmd_bytes\":%llu", page,
	       read_pmd_bytes());
	print_tail(0);
	if (page != PAGE_SZ)
		warnx("page size %ld, but sizes are counted in 4 KiB pages",
		      page);
}

/* Metadata (struct pages, page tables) of the module's pool per GiB. */
static void emit_meta(struct bench *b)
{
	struct hmm_bench_info info;
	unsigned long long value = 0;
	int ret = bench_info(b, &info);

	if (!ret && info.pool_pages)
		value = info.meta_bytes * ((1ULL << 30) / PAGE_SZ) /
			info.pool_pages;
	printf("BENCH {\"layer\":\"mem\",\"metric\":\"meta_bytes_per_gib\",");
	printf("\"value\":%llu", value);
	print_tail(ret);
	if (ret) {
		warnx("HMM_BENCH_INFO: %s", strerror(ret));
		b->failures++;
		return;
	}
	if (!info.pool_pages)
		warnx("the module reports an empty pool");
	if (info.pool_used) {
		warnx("%llu device pages in use before the first workload",
		      info.pool_used);
		b->failures++;
	}
}

/* Largest drop of free memory during TO_DEV of the largest size. */
static void emit_peak(struct bench *b)
{
	const struct opts *o = b->opt;
	struct hmm_bench_cmd cmd;
	size_t size = 0;
	unsigned int i;
	char *p;
	int k, ret;

	for (i = 0; i < o->nr_sizes; i++)
		if (o->sizes[i] > size)
			size = o->sizes[i];
	for (k = 0; k < NR_MEM; k++) {
		if (!(o->mem & BIT(k)))
			continue;
		warnx("peak_to_dev %s %zu", mem_names[k], size);
		memset(&cmd, 0, sizeof(cmd));
		ret = map_populated(k, size, &p);
		if (!ret) {
			ret = bench_range(b, HMM_BENCH_TO_DEV, p, size,
					  HMM_BENCH_F_SAMPLE, &cmd);
			unmap_range(p, size);
		}
		printf("BENCH {\"layer\":\"mem\",\"metric\":\"peak_to_dev\",");
		printf("\"mem\":\"%s\",\"size\":%zu,\"value\":%llu",
		       mem_names[k], size, ret ? 0 : cmd.peak_bytes);
		print_tail(ret);
		if (ret) {
			warnx("peak_to_dev %s %zu: %s", mem_names[k], size,
			      strerror(ret));
			b->failures++;
		}
		check_pool(b, "peak_to_dev", mem_names[k], size);
	}
}

/* One bad-input case of the module's ioctls: the errno it must give. */
struct bad_case {
	const char *what;
	unsigned long req;
	__u64 addr;		/* below 8192: an offset from a mapped page */
	__u64 size;
	__u64 flags;
	int err;
};

/*
 * Every argument check of /dev/hmm_bench answers with its errno and
 * nothing else (the harness fails the run on any kernel warning).
 * Returns the number of checks that did not give the errno asked.
 */
static unsigned int check_bad_input(const struct bench *b)
{
	const __u64 far = 1ULL << 47;	/* above every x86-64 user address */
	const struct bad_case cases[] = {
		{ "size 0", HMM_BENCH_SNAPSHOT, 0, 0, 0, EINVAL },
		{ "unaligned address", HMM_BENCH_SNAPSHOT, 1, PAGE_SZ, 0, EINVAL },
		{ "unaligned size", HMM_BENCH_FAULT, 0, PAGE_SZ + 1, 0, EINVAL },
		{ "unknown flag", HMM_BENCH_FAULT, 0, PAGE_SZ, 1ULL << 63, EINVAL },
		{ "range over 4 GiB", HMM_BENCH_TO_DEV, 0, (4ULL << 30) + PAGE_SZ,
		  0, E2BIG },
		{ "range wraps around", HMM_BENCH_SNAPSHOT, ~(PAGE_SZ - 1),
		  2 * PAGE_SZ, 0, EINVAL },
		{ "kernel address", HMM_BENCH_TO_SYS, far, PAGE_SZ, 0, EINVAL },
		{ "evict with an address", HMM_BENCH_EVICT, PAGE_SZ, PAGE_SZ, 0,
		  EINVAL },
		{ "evict beyond the pool", HMM_BENCH_EVICT, far, 0, 0, EINVAL },
		/* the page after the mapped one is a hole */
		{ "migrate a hole", HMM_BENCH_TO_DEV, PAGE_SZ, PAGE_SZ, 0, EINVAL },
		{ "fault-in of a hole", HMM_BENCH_FAULT, PAGE_SZ, PAGE_SZ, 0,
		  EFAULT },
		{ "migrate past the mapping", HMM_BENCH_TO_DEV, 0, 2 * PAGE_SZ, 0,
		  EINVAL },
	};
	struct hmm_bench_info info;
	struct hmm_bench_cmd cmd;
	unsigned int i, bad = 0;
	char *page;
	int err;

	if (bench_info(b, &info))
		return 1;
	page = mmap(NULL, 2 * PAGE_SZ, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (page == MAP_FAILED || munmap(page + PAGE_SZ, PAGE_SZ)) {
		warn("mmap");
		return 1;
	}
	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		const struct bad_case *c = &cases[i];
		__u64 addr = c->addr < 2 * PAGE_SZ ? (uintptr_t)page + c->addr :
						     c->addr;
		__u64 size = c->size;

		if (c->req == HMM_BENCH_EVICT && c->addr == far) {
			addr = 0;
			size = (info.pool_pages + 1) * PAGE_SZ;
		}
		err = bench_range(b, c->req, (void *)(uintptr_t)addr, size,
				  c->flags, &cmd);
		if (err == c->err)
			continue;
		warnx("bad input: %s: got \"%s\", want \"%s\"", c->what,
		      err ? strerror(err) : "success", strerror(c->err));
		bad++;
	}
	munmap(page, PAGE_SZ);

	if (ioctl(b->fd, _IOWR('B', 0x7f, struct hmm_bench_cmd), &cmd) == 0 ||
	    errno != ENOTTY) {
		warnx("bad input: an unknown ioctl did not give ENOTTY");
		bad++;
	}
	if (ioctl(b->fd, HMM_BENCH_SNAPSHOT, NULL) == 0 || errno != EFAULT) {
		warnx("bad input: a NULL command did not give EFAULT");
		bad++;
	}
	if (ioctl(b->fd, HMM_BENCH_INFO, NULL) == 0 || errno != EFAULT) {
		warnx("bad input: a NULL info did not give EFAULT");
		bad++;
	}
	fprintf(stderr, "hmm-bench: bad input: %zu checks, %u wrong\n",
		ARRAY_SIZE(cases) + 3, bad);
	return bad;
}

static void print_usage(FILE *f)
{
	int i;

	fprintf(f,
		"usage: hmm-bench [--smoke] [--sizes LIST] [--mem LIST] [--only LIST]\n"
		"                 [--threads N] [--reps-bytes BYTES] [--dmirror-max SIZE]\n"
		"  --smoke            sizes 64K,2M, one rep, no warm-up; any error or\n"
		"                     page count mismatch makes the exit status 1\n"
		"  --sizes LIST       sizes with K/M/G suffixes, multiples of 4096\n"
		"                     (default 64K,512K,4M,32M,512M)\n"
		"  --mem LIST         4k, thp (default both)\n"
		"  --threads N        threads of cpu-fault-same/diff (default: CPUs, at least 2)\n"
		"  --reps-bytes BYTES reps = BYTES / size, 1 to 16 (default 32M)\n"
		"  --dmirror-max SIZE largest size of the dmirror workloads (default 32M:\n"
		"                     test_hmm copies every page, minutes at 512M)\n"
		"  --only LIST        workloads (default all):");
	for (i = 0; i < NR_WL; i++)
		fprintf(f, "%s%s", i % 6 ? " " : "\n    ", wl_names[i]);
	fputc('\n', f);
}

static void usage_error(const char *what, const char *arg)
{
	warnx("%s: '%s'", what, arg);
	print_usage(stderr);
	exit(2);
}

/* A byte count with an optional K, M or G suffix; 0 or -1. */
static int parse_bytes(const char *s, unsigned long long *out)
{
	unsigned long long v, mul = 1;
	char *end;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	switch (*end) {
	case 'K':
	case 'k':
		mul = 1ULL << 10;
		break;
	case 'M':
	case 'm':
		mul = 1ULL << 20;
		break;
	case 'G':
	case 'g':
		mul = 1ULL << 30;
		break;
	case '\0':
		break;
	default:
		return -1;
	}
	if (*end && end[1])
		return -1;
	if (v > MAX_SIZE / mul)
		return -1;
	*out = v * mul;
	return 0;
}

/*
 * Split the comma list @list into at most @max items shorter than
 * ITEM_LEN; the number of items, or -1 for an empty item, an item too
 * long or too many items.
 */
static int split_list(const char *list, char items[][ITEM_LEN], int max)
{
	size_t len;
	int n = 0;

	for (;;) {
		len = strcspn(list, ",");
		if (!len || len >= ITEM_LEN || n == max)
			return -1;
		memcpy(items[n], list, len);
		items[n++][len] = '\0';
		if (!list[len])
			return n;
		list += len + 1;
	}
}

static void parse_sizes(const char *list, struct opts *o)
{
	char items[MAX_SIZES][ITEM_LEN];
	unsigned long long v;
	int i, n;

	n = split_list(list, items, MAX_SIZES);
	if (n < 0)
		usage_error("bad size list", list);
	for (i = 0; i < n; i++) {
		if (parse_bytes(items[i], &v) || !v || v % PAGE_SZ)
			usage_error("bad size (need a non-zero multiple of 4096)",
				    items[i]);
		o->sizes[i] = v;
	}
	o->nr_sizes = n;
}

/* The bit mask of the names of @list in @names[0..nr). */
static unsigned int parse_names(const char *list, const char * const *names,
				int nr, const char *what)
{
	char items[NR_WL][ITEM_LEN];
	unsigned int mask = 0;
	int i, j, n;

	n = split_list(list, items, NR_WL);
	if (n < 0)
		usage_error(what, list);
	for (i = 0; i < n; i++) {
		for (j = 0; j < nr; j++)
			if (!strcmp(items[i], names[j]))
				break;
		if (j == nr)
			usage_error(what, items[i]);
		mask |= BIT(j);
	}
	return mask;
}

static unsigned int parse_threads(const char *s)
{
	unsigned long v;
	char *end;

	if (!isdigit((unsigned char)*s))
		usage_error("bad thread count", s);
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v < 1 || v > MAX_THREADS)
		usage_error("bad thread count (1 to 1024)", s);
	return v;
}

static void parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option long_opts[] = {
		{ "smoke",	no_argument,		NULL, 'S' },
		{ "sizes",	required_argument,	NULL, 's' },
		{ "mem",	required_argument,	NULL, 'm' },
		{ "only",	required_argument,	NULL, 'o' },
		{ "threads",	required_argument,	NULL, 't' },
		{ "reps-bytes",	required_argument,	NULL, 'r' },
		{ "dmirror-max", required_argument,	NULL, 'd' },
		{ "help",	no_argument,		NULL, 'h' },
		{ NULL,		0,			NULL, 0 }
	};
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned int i;
	int c;

	memset(o, 0, sizeof(*o));
	o->mem = BIT(NR_MEM) - 1;
	o->only = BIT(NR_WL) - 1;
	o->threads = cpus > 2 ? (cpus < MAX_THREADS ? cpus : MAX_THREADS) : 2;
	o->reps_bytes = 32ULL << 20;
	o->dm_max = 32ULL << 20;

	while ((c = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
		switch (c) {
		case 'S':
			o->smoke = true;
			break;
		case 's':
			parse_sizes(optarg, o);
			break;
		case 'm':
			o->mem = parse_names(optarg, mem_names, NR_MEM,
					     "bad mem kind (4k or thp)");
			break;
		case 'o':
			o->only = parse_names(optarg, wl_names, NR_WL,
					      "unknown workload");
			break;
		case 't':
			o->threads = parse_threads(optarg);
			break;
		case 'd':
			if (parse_bytes(optarg, &o->dm_max) || !o->dm_max)
				usage_error("bad size", optarg);
			break;
		case 'r':
			if (parse_bytes(optarg, &o->reps_bytes))
				usage_error("bad byte count", optarg);
			break;
		case 'h':
			print_usage(stderr);
			exit(0);
		default:
			print_usage(stderr);
			exit(2);
		}
	}
	if (optind < argc)
		usage_error("unexpected argument", argv[optind]);

	if (!o->nr_sizes) {
		const size_t *sizes = o->smoke ? smoke_sizes : default_sizes;

		o->nr_sizes = o->smoke ? ARRAY_SIZE(smoke_sizes) :
					 ARRAY_SIZE(default_sizes);
		for (i = 0; i < o->nr_sizes; i++)
			o->sizes[i] = sizes[i];
	}
}

int main(int argc, char **argv)
{
	struct opts opt;
	struct bench b = { .opt = &opt, .fd = -1, .dm_fd = -1 };
	unsigned int i;

	parse_opts(argc, argv, &opt);

	b.fd = open(HMM_BENCH_DEVICE, O_RDWR | O_CLOEXEC);
	if (b.fd < 0)
		err(1, "cannot open %s (is the hmm_bench module loaded?)",
		    HMM_BENCH_DEVICE);
	if (opt.only & DMIRROR_WLS) {
		b.dm_fd = open(DMIRROR_DEVICE, O_RDWR | O_CLOEXEC);
		if (b.dm_fd < 0) {
			b.dm_err = errno;
			warn("cannot open %s; the dmirror workloads record the error",
			     DMIRROR_DEVICE);
		}
	}

	print_info(&opt);
	if (opt.smoke)
		b.failures += check_bad_input(&b);
	emit_meta(&b);
	for (i = 0; i < ARRAY_SIZE(groups); i++)
		run_group(&b, &groups[i]);
	if (opt.only & BIT(WL_TO_DEV))
		emit_peak(&b);

	if (b.dm_fd >= 0 && close(b.dm_fd))
		warn("close %s", DMIRROR_DEVICE);
	if (close(b.fd))
		warn("close %s", HMM_BENCH_DEVICE);
	if (fflush(stdout) || ferror(stdout))
		errx(1, "cannot write the records");
	if (b.failures)
		warnx("%u records not ok or pool checks failed", b.failures);
	if (opt.smoke && b.failures) {
		warnx("smoke: failed");
		return 1;
	}
	return 0;
}
