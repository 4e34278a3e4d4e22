// SPDX-License-Identifier: GPL-2.0
/*
 * Selftests for HMM: device-private memory migration and device mirroring
 * of process memory with hmm_range_fault(), driven through the test_hmm
 * pseudo driver (lib/test_hmm.c, CONFIG_TEST_HMM).
 *
 * The driver simulates devices /dev/hmm_dmirror0 and /dev/hmm_dmirror1 that
 * own memory the CPU cannot access.  The tests move parts of their own
 * address space to such a device and check that the data survives every way
 * of coming back: CPU faults (reads, writes, from several threads, after
 * fork(), after mprotect()), explicit migration, device memory release, and
 * that nothing is left allocated on the device when the memory goes away.
 *
 * The devices also read and write process memory in place through a
 * mirror of the CPU page table (HMM_DMIRROR_READ/WRITE) and report what
 * that page table holds (HMM_DMIRROR_SNAPSHOT).  Those tests check the data,
 * the exact errors, the snapshot bytes, and the number of device faults,
 * which tells whether the mirror was kept (0) or had to be refilled (1).
 *
 * HMM_DMIRROR_EXCLUSIVE gives a device exclusive (atomic) access to pages:
 * the CPU page table then holds device-exclusive entries, the device
 * writes without faulting, and the next CPU access takes the page back,
 * which HMM_DMIRROR_CHECK_EXCLUSIVE reports (0 once none is left).
 *
 * Device pages also meet the rest of mm: mremap(), MADV_FREE, mlock(),
 * PROT_NONE, userfaultfd, memory cgroup charges, KSM, hugetlbfs,
 * process_vm_readv(), and migrations racing fork(), exit, UFFDIO_MOVE and
 * a second device.
 *
 * Device memory in use is read from the driver's sysfs counter
 * /sys/dev/char/<major>:<minor>/pages_used of the device node.
 *
 * The device-coherent fixture variants use /dev/hmm_dmirror2 and 3, which the
 * driver only creates where device-coherent memory is available; without
 * them those variants are skipped.
 */

#include "../kselftest_harness.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <linux/userfaultfd.h>

/* Private interfaces of test drivers; found through -I <kernel tree>. */
#include <lib/test_hmm_uapi.h>
#include <mm/gup_test.h>

/* Device numbers: the first two are device-private, the others coherent. */
#define UNIT_PRIVATE_A		0
#define UNIT_PRIVATE_B		1
#define UNIT_COHERENT_A		2
#define UNIT_COHERENT_B		3

#define DEFAULT_NPAGES		1024UL

/* Linux 6.1's, which this libc's headers may not have yet. */
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE		25
#endif

/*
 * Seconds a test that races threads or processes, or waits for KSM, may
 * take before the harness kills it: several times what the slowest takes
 * on a debug kernel (KASAN, lockdep) under TCG, where the default of 30
 * was too tight on a loaded host.  A hang still fails.
 */
#define RACE_TIMEOUT		120
#define SZ_2M			(2UL << 20)

/* /proc/self/pagemap bits, see Documentation/admin-guide/mm/pagemap.rst */
#define PM_PRESENT		0x8000000000000000ULL	/* bit 63 */
#define PM_SWAP			0x4000000000000000ULL	/* bit 62 */
#define PM_FILE			0x2000000000000000ULL	/* bit 61 */
#define PM_UFFD_WP		0x0200000000000000ULL	/* bit 57 */

/* ---------------------------------------------------------------------------
 * Helpers
 */

static unsigned long psize(void)
{
	return (unsigned long)sysconf(_SC_PAGESIZE);
}

static int open_unit(int unit)
{
	char path[64];

	snprintf(path, sizeof(path), "/dev/hmm_dmirror%d", unit);
	return open(path, O_RDWR | O_CLOEXEC);
}

/*
 * Issue one HMM_DMIRROR_* command.  Returns 0 or -errno; on success the
 * command as the driver returned it is stored in *out when out is not NULL.
 */
static int dmirror(int fd, unsigned long request, void *addr, void *buf,
		   uint64_t npages, struct hmm_dmirror_cmd *out)
{
	struct hmm_dmirror_cmd cmd;
	int ret;

	memset(&cmd, 0, sizeof(cmd));
	cmd.addr = (uintptr_t)addr;
	cmd.ptr = (uintptr_t)buf;
	cmd.npages = npages;
	do {
		ret = ioctl(fd, request, &cmd);
	} while (ret < 0 && errno == EINTR);
	if (ret < 0)
		return -errno;
	if (out)
		*out = cmd;
	return 0;
}

/* Migrate to the device; returns 0 or -errno, *cpages as reported. */
static int to_device(int fd, void *addr, void *buf, uint64_t npages,
		     uint64_t *cpages)
{
	struct hmm_dmirror_cmd cmd;
	int ret;

	ret = dmirror(fd, HMM_DMIRROR_MIGRATE_TO_DEV, addr, buf, npages, &cmd);
	if (!ret && cpages)
		*cpages = cmd.cpages;
	return ret;
}

static int to_system(int fd, void *addr, uint64_t npages, uint64_t *cpages)
{
	struct hmm_dmirror_cmd cmd;
	int ret;

	ret = dmirror(fd, HMM_DMIRROR_MIGRATE_TO_SYS, addr, NULL, npages, &cmd);
	if (!ret && cpages)
		*cpages = cmd.cpages;
	return ret;
}

/* A counter of a unit's sysfs directory, or -1 if it cannot be read. */
static long unit_counter(int unit, const char *name)
{
	char path[96];
	struct stat st;
	long val = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/dev/hmm_dmirror%d", unit);
	if (stat(path, &st))
		return -1;
	snprintf(path, sizeof(path), "/sys/dev/char/%u:%u/%s",
		 major(st.st_rdev), minor(st.st_rdev), name);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fscanf(f, "%ld", &val) != 1)
		val = -1;
	fclose(f);
	return val;
}

/* Write @val to a setting of a unit's sysfs directory; 0 or -1. */
static int set_unit_setting(int unit, const char *name, long val)
{
	char path[96];
	struct stat st;
	FILE *f;
	int ret;

	snprintf(path, sizeof(path), "/dev/hmm_dmirror%d", unit);
	if (stat(path, &st))
		return -1;
	snprintf(path, sizeof(path), "/sys/dev/char/%u:%u/%s",
		 major(st.st_rdev), minor(st.st_rdev), name);
	f = fopen(path, "w");
	if (!f)
		return -1;
	ret = fprintf(f, "%ld\n", val) > 0 ? 0 : -1;
	if (fclose(f))
		ret = -1;
	return ret;
}

/* Device pages currently in use on a unit. */
static long pages_on_unit(int unit)
{
	return unit_counter(unit, "pages_used");
}

/*
 * pages_on_unit() once it is @want, or after five seconds whatever it is
 * then.  A device THP that loses part of its mappings is split, and the
 * pages no longer mapped are freed, by a kernel work item soon after.
 */
static long settled_pages_on_unit(int unit, long want)
{
	long n = -1;
	int i;

	for (i = 0; i < 500; i++) {
		n = pages_on_unit(unit);
		if (n == want)
			break;
		usleep(10000);
	}
	return n;
}

/* How often the unit's migrate_to_ram() has been called so far. */
static long cpu_faults_on_unit(int unit)
{
	return unit_counter(unit, "cpu_faults");
}

/*
 * Test data: every 64-bit word gets a value derived from its index and a
 * seed, so a page ending up at the wrong address or with another round's
 * data is caught.
 */
static uint64_t word_value(unsigned int seed, size_t idx)
{
	return ((uint64_t)seed << 48) ^ (idx * 0x9e3779b97f4a7c15ULL) ^ idx;
}

static void fill(void *p, size_t bytes, unsigned int seed)
{
	uint64_t *w = p;
	size_t i;

	for (i = 0; i < bytes / sizeof(*w); i++)
		w[i] = word_value(seed, i);
}

/* Returns the index of the first wrong word, or -1 if all are right. */
static long verify(const void *p, size_t bytes, unsigned int seed)
{
	const uint64_t *w = p;
	size_t i;

	for (i = 0; i < bytes / sizeof(*w); i++)
		if (w[i] != word_value(seed, i))
			return (long)i;
	return -1;
}

static bool all_zero(const void *p, size_t bytes)
{
	const unsigned char *c = p;
	size_t i;

	for (i = 0; i < bytes; i++)
		if (c[i])
			return false;
	return true;
}

/* Keep the compiler from caching or dropping accesses to memory. */
static inline void compiler_barrier(void)
{
	asm volatile("" ::: "memory");
}

/* Load a byte for real: forces a read fault. */
static char touch_read(const char *p)
{
	char c = *p;

	asm volatile("" : : "r" (c));
	return c;
}

/* Store to a byte without changing it: forces a write fault (or COW). */
static void touch_write(char *p)
{
	char c = *p;

	/* Hide the value from the compiler so the store is not dropped. */
	asm volatile("" : "+r" (c));
	*p = c;
	compiler_barrier();
}

static void *map_anon(size_t bytes, int prot, int flags)
{
	return mmap(NULL, bytes, prot, flags | MAP_ANONYMOUS, -1, 0);
}

/* A private anonymous mapping aligned to @align. */
static void *map_aligned(size_t bytes, size_t align)
{
	char *raw, *p;

	raw = map_anon(bytes + align, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	if (raw == MAP_FAILED)
		return MAP_FAILED;
	p = (char *)(((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1));
	if (p > raw)
		munmap(raw, p - raw);
	munmap(p + bytes, raw + align - p);
	return p;
}

static uint64_t pagemap_of(void *addr)
{
	uint64_t ent = 0;
	int fd;

	fd = open("/proc/self/pagemap", O_RDONLY);
	if (fd < 0)
		return 0;
	if (pread(fd, &ent, sizeof(ent),
		  (uintptr_t)addr / psize() * sizeof(ent)) != sizeof(ent))
		ent = 0;
	close(fd);
	return ent;
}

#define PM_PFN_MASK		((1ULL << 55) - 1)	/* bits 0-54, root only */

/* Number of pages of [addr, addr + npages) whose pagemap entry has @bits. */
static unsigned long count_pagemap(void *addr, unsigned long npages,
				   uint64_t mask, uint64_t bits)
{
	unsigned long i, n = 0;

	for (i = 0; i < npages; i++)
		if ((pagemap_of((char *)addr + i * psize()) & mask) == bits)
			n++;
	return n;
}

#define KPF_THP			22	/* /proc/kpageflags bit, root only */

/* 1 if the page mapped at @addr is part of a THP, 0 if not, -1 unknown. */
static int in_thp(void *addr)
{
	uint64_t pfn = pagemap_of(addr) & PM_PFN_MASK, flags;
	int fd, ret = -1;

	if (!pfn)
		return -1;
	fd = open("/proc/kpageflags", O_RDONLY);
	if (fd < 0)
		return -1;
	if (pread(fd, &flags, sizeof(flags), pfn * sizeof(flags)) ==
	    sizeof(flags))
		ret = !!(flags & (1ULL << KPF_THP));
	close(fd);
	return ret;
}

/* Physical ranges test_hmm claims as "hmm_dmirror" in /proc/iomem. */
struct device_ranges {
	unsigned int		n;
	unsigned long long	lo[16], hi[16];
};

static void device_ranges(struct device_ranges *r)
{
	char line[256];
	FILE *f;

	r->n = 0;
	f = fopen("/proc/iomem", "r");
	if (!f)
		return;
	while (r->n < 16 && fgets(line, sizeof(line), f))
		if (strstr(line, ": hmm_dmirror") &&
		    sscanf(line, " %llx-%llx", &r->lo[r->n], &r->hi[r->n]) == 2)
			r->n++;
	fclose(f);
}

/*
 * Number of pages of [addr, addr + npages) that the CPU page table maps to
 * device memory (@on_device) or present in system memory (!@on_device).
 * A device-private page is a swap entry to pagemap; a device-coherent page
 * is present, with a pfn (shown to root) in the memory of test_hmm.
 */
static unsigned long count_where(void *addr, unsigned long npages,
				 bool on_device)
{
	struct device_ranges r;
	unsigned long i, n = 0;

	device_ranges(&r);
	for (i = 0; i < npages; i++) {
		uint64_t ent = pagemap_of((char *)addr + i * psize());
		unsigned long long phys = (ent & PM_PFN_MASK) * psize();
		bool device = false;
		unsigned int k;

		if (!(ent & PM_PRESENT)) {
			n += on_device && (ent & PM_SWAP);
			continue;
		}
		for (k = 0; k < r.n; k++)
			device |= phys >= r.lo[k] && phys <= r.hi[k];
		/* Without a pfn, a present page cannot be placed. */
		if (ent & PM_PFN_MASK)
			n += device == on_device;
	}
	return n;
}

static unsigned long count_on_device(void *addr, unsigned long npages)
{
	return count_where(addr, npages, true);
}

static unsigned long count_in_system(void *addr, unsigned long npages)
{
	return count_where(addr, npages, false);
}

/* Value in kB of field @name (e.g. "Rss:") of the smaps entry of @addr. */
static long smaps_kb(void *addr, const char *name)
{
	unsigned long lo, hi, target = (uintptr_t)addr;
	bool inside = false;
	char line[256];
	long val = -1;
	FILE *f;

	f = fopen("/proc/self/smaps", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 &&
		    strchr(line, '-') < strchr(line, ' ')) {
			if (inside)
				break;
			inside = target >= lo && target < hi;
			continue;
		}
		if (inside && !strncmp(line, name, strlen(name))) {
			val = strtol(line + strlen(name), NULL, 10);
			break;
		}
	}
	fclose(f);
	return val;
}

static bool thp_possible(void)
{
	char buf[128] = "";
	FILE *f;

	f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
	if (!f)
		return false;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = 0;
	fclose(f);
	return !strstr(buf, "[never]");
}

/* Wait for @pid; returns its exit status, or 128 + signal. */
static int reap(pid_t pid)
{
	int status;

	if (waitpid(pid, &status, 0) != pid)
		return -1;
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

/*
 * The device reads [addr, addr + npages) into buf (HMM_DMIRROR_READ) or
 * writes buf there (HMM_DMIRROR_WRITE) through its mirror of our page
 * table.  Returns 0 or -errno; on success the command as returned, with
 * cpages and faults, is stored in *out when out is not NULL.
 */
static int dev_read(int fd, void *addr, void *buf, uint64_t npages,
		    struct hmm_dmirror_cmd *out)
{
	return dmirror(fd, HMM_DMIRROR_READ, addr, buf, npages, out);
}

static int dev_write(int fd, void *addr, const void *buf, uint64_t npages,
		     struct hmm_dmirror_cmd *out)
{
	return dmirror(fd, HMM_DMIRROR_WRITE, addr, (void *)buf, npages, out);
}

/*
 * One HMM_DMIRROR_PROT_* byte per page into prot; returns 0 or -errno.
 * A successful snapshot must report every page: checked here.
 */
static int dev_snapshot(int fd, void *addr, unsigned char *prot,
			uint64_t npages)
{
	struct hmm_dmirror_cmd cmd;
	int ret;

	ret = dmirror(fd, HMM_DMIRROR_SNAPSHOT, addr, prot, npages, &cmd);
	if (!ret && (cmd.cpages != npages || cmd.faults))
		return -EPROTO;
	return ret;
}

/* Number of bytes of prot[0..n) that are not @expect. */
static unsigned long count_other(const unsigned char *prot, unsigned long n,
				 unsigned char expect)
{
	unsigned long i, other = 0;

	for (i = 0; i < n; i++)
		if (prot[i] != expect)
			other++;
	return other;
}

/* The snapshot type of a page in the memory of the device itself. */
static unsigned char prot_local(bool coherent)
{
	return coherent ? HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL :
			  HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL;
}

/* The snapshot type of a page in the memory of another device. */
static unsigned char prot_remote(bool coherent)
{
	return coherent ? HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE :
			  HMM_DMIRROR_PROT_DEV_PRIVATE_REMOTE;
}

/* Value of field @name (e.g. "HugePages_Free:") in /proc/meminfo, or -1. */
static long meminfo_value(const char *name)
{
	char line[256];
	long val = -1;
	FILE *f;

	f = fopen("/proc/meminfo", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, name, strlen(name))) {
			val = strtol(line + strlen(name), NULL, 10);
			break;
		}
	}
	fclose(f);
	return val;
}

/* The seed a page was filled with by fill(): word 0 is seed << 48. */
static unsigned int page_seed(const void *page)
{
	return (unsigned int)(*(const uint64_t *)page >> 48);
}

/* Start and end of the first mapping named @name in /proc/self/maps. */
static bool find_mapping(const char *name, uintptr_t *start, uintptr_t *end)
{
	unsigned long lo, hi;
	char line[512];
	bool found = false;
	FILE *f;

	f = fopen("/proc/self/maps", "r");
	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		if (!strstr(line, name))
			continue;
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {
			*start = lo;
			*end = hi;
			found = true;
		}
	}
	fclose(f);
	return found;
}

/* ---------------------------------------------------------------------------
 * Fixtures: one device, and two devices of the same kind.
 */

FIXTURE(hmm)
{
	int		fd;
	int		unit;
	bool		coherent;	/* the CPU maps the device's memory */
	unsigned long	ps;
};

FIXTURE_VARIANT(hmm)
{
	int		unit;
};

FIXTURE_VARIANT_ADD(hmm, hmm_device_private)
{
	.unit = UNIT_PRIVATE_A,
};

FIXTURE_VARIANT_ADD(hmm, hmm_device_coherent)
{
	.unit = UNIT_COHERENT_A,
};

FIXTURE_SETUP(hmm)
{
	self->ps = psize();
	self->unit = variant->unit;
	self->coherent = variant->unit >= UNIT_COHERENT_A;
	self->fd = open_unit(variant->unit);
	if (self->fd < 0 && variant->unit >= UNIT_COHERENT_A)
		SKIP(return, "no device-coherent hmm_dmirror%d", variant->unit);
	ASSERT_GE(self->fd, 0)
		TH_LOG("cannot open hmm_dmirror%d: is test_hmm loaded?",
		       variant->unit);
}

FIXTURE_TEARDOWN(hmm)
{
	if (self->fd >= 0)
		close(self->fd);
}

FIXTURE(hmm2)
{
	int		fd0;
	int		fd1;
	int		unit0;
	int		unit1;
	bool		coherent;	/* the CPU maps the devices' memory */
	unsigned long	ps;
};

FIXTURE_VARIANT(hmm2)
{
	int		unit0;
	int		unit1;
};

FIXTURE_VARIANT_ADD(hmm2, hmm2_device_private)
{
	.unit0 = UNIT_PRIVATE_A,
	.unit1 = UNIT_PRIVATE_B,
};

FIXTURE_VARIANT_ADD(hmm2, hmm2_device_coherent)
{
	.unit0 = UNIT_COHERENT_A,
	.unit1 = UNIT_COHERENT_B,
};

FIXTURE_SETUP(hmm2)
{
	self->ps = psize();
	self->unit0 = variant->unit0;
	self->unit1 = variant->unit1;
	self->coherent = variant->unit0 >= UNIT_COHERENT_A;
	self->fd1 = -1;
	self->fd0 = open_unit(variant->unit0);
	if (self->fd0 < 0 && variant->unit0 >= UNIT_COHERENT_A)
		SKIP(return, "no device-coherent hmm_dmirror%d", variant->unit0);
	ASSERT_GE(self->fd0, 0);
	self->fd1 = open_unit(variant->unit1);
	ASSERT_GE(self->fd1, 0);
}

FIXTURE_TEARDOWN(hmm2)
{
	if (self->fd0 >= 0)
		close(self->fd0);
	if (self->fd1 >= 0)
		close(self->fd1);
}

/* ---------------------------------------------------------------------------
 * Basic migration
 */

/*
 * Migrate a filled buffer: the driver hands back what the device holds and
 * the CPU page table maps the pages to device memory.  CPU reads fault
 * every device-private page back with its data, and read device-coherent
 * pages in place.
 */
TEST_F(hmm, migrate_readback)
{
	unsigned long n = DEFAULT_NPAGES, bytes = n * self->ps;
	struct hmm_dmirror_cmd cmd;
	char *buf, *out;

	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	fill(buf, bytes, 1);

	ASSERT_EQ(dmirror(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf, out, n,
			  &cmd), 0);
	ASSERT_EQ(cmd.cpages, n);
	ASSERT_EQ(cmd.faults, 0);
	ASSERT_EQ(verify(out, bytes, 1), -1);
	ASSERT_EQ(count_on_device(buf, n), n);

	ASSERT_EQ(verify(buf, bytes, 1), -1);
	ASSERT_EQ(count_in_system(buf, n), self->coherent ? 0 : n);
	ASSERT_EQ(count_on_device(buf, n), self->coherent ? n : 0);

	free(out);
	munmap(buf, bytes);
}

/*
 * CPU writes to pages on the device: each write faults a device-private
 * page back, or goes to the device-coherent page in place, and the rest of
 * the page keeps its data.
 */
TEST_F(hmm, cpu_write_after_migrate)
{
	unsigned long n = DEFAULT_NPAGES, bytes = n * self->ps;
	long before = pages_on_unit(self->unit);
	char *buf, *out, *expect;
	uint64_t cpages;
	unsigned long i;

	ASSERT_GE(before, 0);
	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	expect = malloc(bytes);
	ASSERT_NE(expect, NULL);
	fill(buf, bytes, 2);
	memcpy(expect, buf, bytes);

	ASSERT_EQ(to_device(self->fd, buf, out, n, &cpages), 0);
	ASSERT_EQ(cpages, n);
	ASSERT_EQ(pages_on_unit(self->unit), before + (long)n);

	/* The first access to each page is a single byte store. */
	for (i = 0; i < n; i++) {
		unsigned long off = i * self->ps + (i * 8) % self->ps;

		buf[off] = (char)i;
		compiler_barrier();
		expect[off] = (char)i;
	}
	ASSERT_EQ(pages_on_unit(self->unit),
		  before + (self->coherent ? (long)n : 0));
	ASSERT_EQ(memcmp(buf, expect, bytes), 0);

	free(expect);
	free(out);
	munmap(buf, bytes);
}

/*
 * A range mixing populated pages with pages never touched: the holes
 * migrate as new zeroed device pages and are counted in cpages.
 */
TEST_F(hmm, holes_and_data)
{
	unsigned long n = 64, bytes = n * self->ps;
	unsigned long i;
	uint64_t cpages;
	char *buf, *out;

	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	/* Populate every third page only. */
	for (i = 0; i < n; i += 3)
		fill(buf + i * self->ps, self->ps, 10 + i);

	ASSERT_EQ(to_device(self->fd, buf, out, n, &cpages), 0);
	ASSERT_EQ(cpages, n);
	ASSERT_EQ(count_on_device(buf, n), n);

	for (i = 0; i < n; i++) {
		char *p = buf + i * self->ps, *o = out + i * self->ps;

		if (i % 3 == 0) {
			ASSERT_EQ(verify(o, self->ps, 10 + i), -1);
			ASSERT_EQ(verify(p, self->ps, 10 + i), -1);
		} else {
			ASSERT_TRUE(all_zero(o, self->ps));
			ASSERT_TRUE(all_zero(p, self->ps));
		}
	}

	free(out);
	munmap(buf, bytes);
}

/* A range never touched at all migrates entirely as zero pages. */
TEST_F(hmm, untouched_range)
{
	unsigned long n = 128, bytes = n * self->ps;
	uint64_t cpages;
	char *buf, *out;

	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	memset(out, 0xff, bytes);

	ASSERT_EQ(to_device(self->fd, buf, out, n, &cpages), 0);
	ASSERT_EQ(cpages, n);
	ASSERT_TRUE(all_zero(out, bytes));
	/* Device pages of a writable mapping may be written by the CPU. */
	fill(buf, bytes, 3);
	ASSERT_EQ(verify(buf, bytes, 3), -1);

	free(out);
	munmap(buf, bytes);
}

/*
 * Pages mapping the shared zero page (read but never written) migrate
 * too; afterwards the CPU reads zeroes and can still write.
 */
TEST_F(hmm, zero_page_range)
{
	unsigned long n = 64, bytes = n * self->ps;
	char sink = 0;
	uint64_t cpages;
	char *buf, *out;
	unsigned long i;

	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	/* Keep THP away: a read fault would map a huge zero page instead. */
	madvise(buf, bytes, MADV_NOHUGEPAGE);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	for (i = 0; i < n; i++)
		sink |= touch_read(buf + i * self->ps);
	ASSERT_EQ(sink, 0);
	ASSERT_EQ(count_in_system(buf, n), n);

	ASSERT_EQ(to_device(self->fd, buf, out, n, &cpages), 0);
	ASSERT_EQ(cpages, n);
	ASSERT_TRUE(all_zero(out, bytes));
	ASSERT_TRUE(all_zero(buf, bytes));
	fill(buf, bytes, 4);
	ASSERT_EQ(verify(buf, bytes, 4), -1);

	free(out);
	munmap(buf, bytes);
}

/*
 * One range covering two adjacent VMAs (split by mprotect, so their flags
 * differ) migrates as a whole.  A read-only VMA migrates as well.
 */
TEST_F(hmm, across_two_vmas)
{
	unsigned long n = 64, bytes = n * self->ps;
	uint64_t cpages;
	char *buf, *out;

	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	fill(buf, bytes, 5);
	ASSERT_EQ(mprotect(buf + bytes / 2, bytes / 2, PROT_READ), 0);

	ASSERT_EQ(to_device(self->fd, buf, out, n, &cpages), 0);
	ASSERT_EQ(cpages, n);
	ASSERT_EQ(verify(out, bytes, 5), -1);
	ASSERT_EQ(verify(buf, bytes, 5), -1);

	free(out);
	munmap(buf, bytes);
}

/*
 * A range with an unmapped gap, or touching a PROT_NONE mapping, is
 * refused with EINVAL and the data stays intact.
 */
TEST_F(hmm, gap_or_prot_none_refused)
{
	unsigned long n = 16, bytes = n * self->ps;
	char *buf, *out;

	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	fill(buf, bytes, 6);

	ASSERT_EQ(mprotect(buf, self->ps, PROT_NONE), 0);
	ASSERT_EQ(to_device(self->fd, buf, out, n, NULL), -EINVAL);
	ASSERT_EQ(mprotect(buf, self->ps, PROT_READ | PROT_WRITE), 0);

	ASSERT_EQ(munmap(buf + 8 * self->ps, self->ps), 0);
	ASSERT_EQ(to_device(self->fd, buf, out, n, NULL), -EINVAL);
	ASSERT_EQ(to_system(self->fd, buf, n, NULL), -EINVAL);

	ASSERT_EQ(verify(buf, 8 * self->ps, 6), -1);

	free(out);
	munmap(buf, bytes);
}

/* ---------------------------------------------------------------------------
 * Coming back from the device
 */

/* MIGRATE_TO_SYS brings back exactly the pages on this device. */
TEST_F(hmm, migrate_back_explicit)
{
	unsigned long n = 256, bytes = n * self->ps;
	long before = pages_on_unit(self->unit);
	uint64_t cpages;
	char *buf, *out;

	ASSERT_GE(before, 0);
	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	fill(buf, bytes, 7);

	/* Only the first half goes to the device. */
	ASSERT_EQ(to_device(self->fd, buf, out, n / 2, &cpages), 0);
	ASSERT_EQ(cpages, n / 2);
	ASSERT_EQ(pages_on_unit(self->unit), before + (long)(n / 2));

	ASSERT_EQ(to_system(self->fd, buf, n, &cpages), 0);
	ASSERT_EQ(cpages, n / 2);
	ASSERT_EQ(pages_on_unit(self->unit), before);
	ASSERT_EQ(count_in_system(buf, n), n);

	/* Nothing left to bring back. */
	ASSERT_EQ(to_system(self->fd, buf, n, &cpages), 0);
	ASSERT_EQ(cpages, 0);
	ASSERT_EQ(verify(buf, bytes, 7), -1);

	free(out);
	munmap(buf, bytes);
}

/* Back and forth many times, changing the data in between. */
TEST_F(hmm, round_trips)
{
	unsigned long n = 128, bytes = n * self->ps;
	unsigned int round;
	uint64_t cpages;
	char *buf, *out;

	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);

	for (round = 0; round < 8; round++) {
		fill(buf, bytes, 100 + round);
		ASSERT_EQ(to_device(self->fd, buf, out, n, &cpages), 0);
		ASSERT_EQ(cpages, n);
		ASSERT_EQ(verify(out, bytes, 100 + round), -1);
		if (round & 1) {
			/* Odd rounds: bring it back explicitly. */
			ASSERT_EQ(to_system(self->fd, buf, n, &cpages), 0);
			ASSERT_EQ(cpages, n);
		}
		/* Even rounds: the CPU faults it back. */
		ASSERT_EQ(verify(buf, bytes, 100 + round), -1);
	}

	free(out);
	munmap(buf, bytes);
}

/*
 * Read half of the range with the CPU, which faults device-private pages
 * back, then migrate the whole range again: the pages still on the device
 * stay there and the result covers all pages.
 */
TEST_F(hmm, refault_half_then_remigrate)
{
	unsigned long n = 256, bytes = n * self->ps;
	long before = pages_on_unit(self->unit);
	uint64_t cpages;
	char *buf, *out;

	ASSERT_GE(before, 0);
	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	fill(buf, bytes, 8);

	ASSERT_EQ(to_device(self->fd, buf, out, n, &cpages), 0);
	ASSERT_EQ(cpages, n);
	ASSERT_EQ(verify(buf, bytes / 2, 8), -1);
	ASSERT_EQ(pages_on_unit(self->unit),
		  before + (long)(self->coherent ? n : n / 2));

	memset(out, 0, bytes);
	ASSERT_EQ(to_device(self->fd, buf, out, n, &cpages), 0);
	ASSERT_EQ(cpages, n);
	ASSERT_EQ(verify(out, bytes, 8), -1);
	ASSERT_EQ(pages_on_unit(self->unit), before + (long)n);
	ASSERT_EQ(verify(buf, bytes, 8), -1);

	free(out);
	munmap(buf, bytes);
}

/* RELEASE evicts the device memory; the data is all there afterwards. */
/*
 * A child sharing @buf (copy-on-write) that checks it is intact, and back
 * in system memory, after @go is written to, and exits 0 if so.
 */
static pid_t sharing_child(char *buf, size_t bytes, unsigned int seed,
			   int go[2])
{
	pid_t pid = fork();
	char c;

	if (pid)
		return pid;
	close(go[1]);
	if (read(go[0], &c, 1) != 1)
		_exit(2);
	_exit(count_in_system(buf, bytes / psize()) == bytes / psize() &&
	      verify(buf, bytes, seed) == -1 ? 0 : 1);
}

TEST_F(hmm, release_evicts)
{
	unsigned long n = DEFAULT_NPAGES, bytes = n * self->ps;
	uint64_t cpages;
	char *buf, *out;

	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	fill(buf, bytes, 9);

	ASSERT_EQ(to_device(self->fd, buf, out, n, &cpages), 0);
	ASSERT_EQ(cpages, n);
	ASSERT_GE(pages_on_unit(self->unit), (long)n);

	ASSERT_EQ(dmirror(self->fd, HMM_DMIRROR_RELEASE, buf, NULL, n, NULL),
		  0);
	ASSERT_EQ(pages_on_unit(self->unit), 0);
	ASSERT_EQ(count_in_system(buf, n), n);
	ASSERT_EQ(verify(buf, bytes, 9), -1);

	/* The device is usable again after a release. */
	ASSERT_EQ(to_device(self->fd, buf, out, n, &cpages), 0);
	ASSERT_EQ(cpages, n);
	ASSERT_EQ(verify(buf, bytes, 9), -1);

	free(out);
	munmap(buf, bytes);
}

/*
 * RELEASE with the pages mapped by two processes (a fork shares them
 * copy-on-write): each page is evicted once, with both mappings, and
 * both processes find their data intact in system memory.
 */
TEST_F(hmm, release_evicts_pages_shared_by_fork)
{
	unsigned long n = 64, bytes = n * self->ps;
	long before = pages_on_unit(self->unit);
	uint64_t cpages;
	char *buf, *out;
	int go[2], status;
	pid_t child;

	ASSERT_GE(before, 0);
	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	fill(buf, bytes, 19);
	ASSERT_EQ(to_device(self->fd, buf, out, n, &cpages), 0);
	ASSERT_EQ(cpages, n);
	ASSERT_EQ(pages_on_unit(self->unit), before + (long)n);

	ASSERT_EQ(pipe(go), 0);
	child = sharing_child(buf, bytes, 19, go);
	ASSERT_GE(child, 0);
	close(go[0]);
	/* Both map the same device pages now: nothing was copied. */
	ASSERT_EQ(pages_on_unit(self->unit), before + (long)n);
	ASSERT_EQ(count_on_device(buf, n), n);

	ASSERT_EQ(dmirror(self->fd, HMM_DMIRROR_RELEASE, buf, NULL, n, NULL),
		  0);
	ASSERT_EQ(pages_on_unit(self->unit), 0);
	ASSERT_EQ(write(go[1], "x", 1), 1);
	close(go[1]);
	ASSERT_EQ(waitpid(child, &status, 0), child);
	ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ASSERT_EQ(count_in_system(buf, n), n);
	ASSERT_EQ(verify(buf, bytes, 19), -1);

	free(out);
	munmap(buf, bytes);
}

/* ---------------------------------------------------------------------------
 * Lifetime: nothing stays allocated on the device
 */

TEST_F(hmm, munmap_frees_device_pages)
{
	unsigned long n = 512, bytes = n * self->ps;
	long before = pages_on_unit(self->unit);
	uint64_t cpages;
	char *buf, *out;

	ASSERT_GE(before, 0);
	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	fill(buf, bytes, 11);

	ASSERT_EQ(to_device(self->fd, buf, out, n, &cpages), 0);
	ASSERT_EQ(cpages, n);
	ASSERT_EQ(pages_on_unit(self->unit), before + (long)n);

	/* Partial unmap first, then the rest (maybe of one device THP). */
	ASSERT_EQ(munmap(buf, bytes / 4), 0);
	ASSERT_EQ(settled_pages_on_unit(self->unit, before + (long)(n - n / 4)),
		  before + (long)(n - n / 4));
	ASSERT_EQ(munmap(buf + bytes / 4, bytes - bytes / 4), 0);
	ASSERT_EQ(pages_on_unit(self->unit), before);

	free(out);
}

/* A process exiting with pages on the device gives them all back. */
TEST_F(hmm, exit_frees_device_pages)
{
	long before = pages_on_unit(self->unit);
	unsigned long n = 512;
	pid_t pid;

	ASSERT_GE(before, 0);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		size_t bytes = n * psize();
		uint64_t cpages = 0;
		char *buf, *out;
		int fd;

		/* The mirror belongs to the opener: use a file of our own. */
		fd = open_unit(self->unit);
		buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
		out = malloc(bytes);
		if (fd < 0 || buf == MAP_FAILED || !out)
			_exit(2);
		fill(buf, bytes, 12);
		if (to_device(fd, buf, out, n, &cpages) || cpages != n)
			_exit(3);
		if (pages_on_unit(self->unit) < before + (long)n)
			_exit(4);
		_exit(0);
	}
	ASSERT_EQ(reap(pid), 0);
	ASSERT_EQ(pages_on_unit(self->unit), before);
}

/* Closing the file leaves the pages usable: they come back on access. */
TEST_F(hmm, close_with_pages_on_device)
{
	unsigned long n = 64, bytes = n * self->ps;
	long before = pages_on_unit(self->unit);
	uint64_t cpages;
	char *buf, *out;
	int fd;

	ASSERT_GE(before, 0);
	fd = open_unit(self->unit);
	ASSERT_GE(fd, 0);
	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	fill(buf, bytes, 13);

	ASSERT_EQ(to_device(fd, buf, out, n, &cpages), 0);
	ASSERT_EQ(cpages, n);
	ASSERT_EQ(close(fd), 0);
	ASSERT_EQ(count_on_device(buf, n), n);
	ASSERT_EQ(verify(buf, bytes, 13), -1);
	ASSERT_EQ(pages_on_unit(self->unit),
		  before + (self->coherent ? (long)n : 0));

	free(out);
	munmap(buf, bytes);
}

/* ---------------------------------------------------------------------------
 * fork, mprotect, threads
 */

/*
 * Fork with the pages on the device: parent and child each see the data
 * as it was at fork time and then only their own writes.
 */
TEST_F(hmm, fork_cow)
{
	unsigned long n = 128, bytes = n * self->ps;
	int go[2];
	uint64_t cpages;
	char *buf, *out;
	pid_t pid;

	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	fill(buf, bytes, 20);
	ASSERT_EQ(to_device(self->fd, buf, out, n, &cpages), 0);
	ASSERT_EQ(cpages, n);
	ASSERT_EQ(pipe(go), 0);

	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		char c;

		close(go[1]);
		/* Wait until the parent has written its copy. */
		if (read(go[0], &c, 1) != 1)
			_exit(2);
		if (verify(buf, bytes, 20) != -1)
			_exit(3);
		fill(buf, bytes, 21);
		if (verify(buf, bytes, 21) != -1)
			_exit(4);
		_exit(0);
	}

	close(go[0]);
	fill(buf, bytes, 22);
	ASSERT_EQ(verify(buf, bytes, 22), -1);
	ASSERT_EQ(write(go[1], "x", 1), 1);
	close(go[1]);
	ASSERT_EQ(reap(pid), 0);
	ASSERT_EQ(verify(buf, bytes, 22), -1);

	free(out);
	munmap(buf, bytes);
}

/* Same, but the child touches the pages first and the parent only reads. */
TEST_F(hmm, fork_child_writes_first)
{
	unsigned long n = 128, bytes = n * self->ps;
	uint64_t cpages;
	char *buf, *out;
	pid_t pid;

	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	fill(buf, bytes, 23);
	ASSERT_EQ(to_device(self->fd, buf, out, n, &cpages), 0);
	ASSERT_EQ(cpages, n);

	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		if (verify(buf, bytes, 23) != -1)
			_exit(3);
		fill(buf, bytes, 24);
		_exit(verify(buf, bytes, 24) == -1 ? 0 : 4);
	}
	ASSERT_EQ(reap(pid), 0);
	ASSERT_EQ(verify(buf, bytes, 23), -1);

	free(out);
	munmap(buf, bytes);
}

/*
 * Device pages of a mapping made read-only: reads work, a write gets
 * SIGSEGV (tried in a child), and making it writable again works.
 */
TEST_F(hmm, mprotect_readonly)
{
	unsigned long n = 32, bytes = n * self->ps;
	uint64_t cpages;
	char *buf, *out;
	pid_t pid;

	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	fill(buf, bytes, 25);
	ASSERT_EQ(to_device(self->fd, buf, out, n, &cpages), 0);
	ASSERT_EQ(cpages, n);
	ASSERT_EQ(mprotect(buf, bytes, PROT_READ), 0);

	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		if (verify(buf, bytes, 25) != -1)
			_exit(3);
		buf[self->ps] = 1;
		compiler_barrier();
		_exit(4);	/* the store must not succeed */
	}
	ASSERT_EQ(reap(pid), 128 + SIGSEGV);

	ASSERT_EQ(verify(buf, bytes, 25), -1);
	ASSERT_EQ(mprotect(buf, bytes, PROT_READ | PROT_WRITE), 0);
	fill(buf, bytes, 26);
	ASSERT_EQ(verify(buf, bytes, 26), -1);

	free(out);
	munmap(buf, bytes);
}

struct racer {
	pthread_barrier_t	*start;
	uint64_t		*word;
	uint64_t		seen;
	uint64_t		*mine;	/* written by this thread, or NULL */
	uint64_t		value;
};

static void *race_fault(void *arg)
{
	struct racer *r = arg;

	pthread_barrier_wait(r->start);
	if (r->mine)
		*r->mine = r->value;
	r->seen = *r->word;
	return NULL;
}

/*
 * Several threads fault on the same device page at once, some reading,
 * some writing different words: every thread sees the right data and no
 * write is lost.
 */
TEST_F(hmm, threads_fault_same_page)
{
	enum { NTHREADS = 4, ROUNDS = 64 };
	unsigned long bytes = self->ps;
	struct racer racer[NTHREADS];
	pthread_t tid[NTHREADS];
	pthread_barrier_t start;
	uint64_t *words, cpages;
	char *out;
	int round, t;

	words = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(words, MAP_FAILED);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);

	for (round = 0; round < ROUNDS; round++) {
		fill(words, bytes, 30 + round);
		ASSERT_EQ(to_device(self->fd, words, out, 1, &cpages), 0);
		ASSERT_EQ(cpages, 1);
		ASSERT_EQ(pthread_barrier_init(&start, NULL, NTHREADS), 0);
		for (t = 0; t < NTHREADS; t++) {
			racer[t].start = &start;
			racer[t].word = &words[t + 1];
			/* Odd threads also write a word of their own. */
			racer[t].mine = (t & 1) ? &words[64 + t] : NULL;
			racer[t].value = ~0ULL - t;
			ASSERT_EQ(pthread_create(&tid[t], NULL, race_fault,
						 &racer[t]), 0);
		}
		for (t = 0; t < NTHREADS; t++)
			ASSERT_EQ(pthread_join(tid[t], NULL), 0);
		pthread_barrier_destroy(&start);

		for (t = 0; t < NTHREADS; t++) {
			ASSERT_EQ(racer[t].seen, word_value(30 + round, t + 1));
			if (t & 1) {
				ASSERT_EQ(words[64 + t], ~0ULL - t);
				words[64 + t] = word_value(30 + round, 64 + t);
			}
		}
		ASSERT_EQ(verify(words, bytes, 30 + round), -1);
	}

	free(out);
	munmap(words, bytes);
}

/* One of many threads that fault on the same device page at once. */
struct stormer {
	pthread_barrier_t	*start;
	const uint64_t		*word;
	uint64_t		expect;
	bool			wrong;
};

static void *storm_read(void *arg)
{
	struct stormer *s = arg;

	pthread_barrier_wait(s->start);
	s->wrong = __atomic_load_n(s->word, __ATOMIC_RELAXED) != s->expect;
	return NULL;
}

/*
 * Run one storm: STORM_THREADS threads read a word of @page each, all at
 * once, while it sits in device memory.  Returns how many saw wrong data,
 * or -1 if the threads could not be run.
 */
#define STORM_THREADS	32
static int fault_storm(const uint64_t *page, unsigned int seed)
{
	struct stormer st[STORM_THREADS];
	pthread_t tid[STORM_THREADS];
	pthread_barrier_t start;
	int t, started, wrong = 0;

	if (pthread_barrier_init(&start, NULL, STORM_THREADS))
		return -1;
	for (started = 0; started < STORM_THREADS; started++) {
		st[started] = (struct stormer) {
			.start = &start,
			.word = &page[started * 7],
			.expect = word_value(seed, started * 7),
		};
		if (pthread_create(&tid[started], NULL, storm_read,
				   &st[started]))
			break;
	}
	/* Threads that did start wait at the barrier: it cannot be undone. */
	if (started < STORM_THREADS)
		abort();
	for (t = 0; t < STORM_THREADS; t++) {
		pthread_join(tid[t], NULL);
		wrong += st[t].wrong;
	}
	pthread_barrier_destroy(&start);
	return wrong;
}

/*
 * 32 threads fault on one device page at once.  The page comes back in
 * one migrate_to_ram() call per storm: the threads that lose the race for
 * the page wait for it without getting in the way of the one migrating
 * it, instead of making it fail and retrying (a livelock on a busy
 * system).  A device-coherent page is read in place, without any call.
 */
TEST_F_TIMEOUT(hmm, fault_storm_one_call, RACE_TIMEOUT)
{
	enum { ROUNDS = 24 };
	unsigned long bytes = self->ps;
	uint64_t *page, cpages;
	long calls;
	int round;
	char *out;

	page = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(page, MAP_FAILED);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	calls = cpu_faults_on_unit(self->unit);
	ASSERT_GE(calls, 0);

	for (round = 0; round < ROUNDS; round++) {
		fill(page, bytes, 300 + round);
		ASSERT_EQ(to_device(self->fd, page, out, 1, &cpages), 0);
		ASSERT_EQ(cpages, 1);
		ASSERT_EQ(fault_storm(page, 300 + round), 0);
		ASSERT_EQ(verify(page, bytes, 300 + round), -1);
	}
	calls = cpu_faults_on_unit(self->unit) - calls;
	ASSERT_EQ(calls, self->coherent ? 0 : ROUNDS)
		TH_LOG("%ld migrate_to_ram() calls for %d storms", calls,
		       ROUNDS);
	ASSERT_EQ(pages_on_unit(self->unit), self->coherent ? 1 : 0);

	free(out);
	munmap(page, bytes);
}

struct releaser {
	int			fd;
	void			*addr;
	bool			stop;	/* read and set with __atomic */
	int			error;
	unsigned long		calls;
};

static void *release_once(void *arg)
{
	struct releaser *r = arg;

	r->error = dmirror(r->fd, HMM_DMIRROR_RELEASE, r->addr, NULL, 1, NULL);
	r->calls++;
	return NULL;
}

static void *release_loop(void *arg)
{
	struct releaser *r = arg;

	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE) && !r->error) {
		r->error = dmirror(r->fd, HMM_DMIRROR_RELEASE, r->addr, NULL,
				   1, NULL);
		r->calls++;
		usleep(200);
	}
	return NULL;
}

/*
 * Fault storms on a page that is migrated to the device over and over,
 * while another thread keeps evicting the device's memory (RELEASE):
 * every thread reads the right data, every eviction succeeds, and once
 * the storms are over nothing is left in device memory.
 */
TEST_F_TIMEOUT(hmm, fault_storm_during_eviction, RACE_TIMEOUT)
{
	enum { ROUNDS = 24 };
	unsigned long bytes = self->ps;
	struct releaser rel = { .fd = self->fd };
	uint64_t *page, cpages;
	int round, err = 0, wrong = 0;
	pthread_t tid;
	char *out;

	page = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(page, MAP_FAILED);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	rel.addr = page;
	ASSERT_EQ(pthread_create(&tid, NULL, release_loop, &rel), 0);

	for (round = 0; round < ROUNDS; round++) {
		fill(page, bytes, 400 + round);
		/*
		 * The releaser may take the page back before the migration
		 * reports what the device holds: then it finds nothing there
		 * (-ENOENT).  No count either way.
		 */
		err = to_device(self->fd, page, out, 1, &cpages);
		if (err && err != -ENOENT)
			break;
		wrong += fault_storm(page, 400 + round);
		if (verify(page, bytes, 400 + round) != -1)
			break;
	}
	__atomic_store_n(&rel.stop, true, __ATOMIC_RELEASE);
	pthread_join(tid, NULL);

	ASSERT_EQ(round, ROUNDS)
		TH_LOG("round %d: migration %d, data %s", round, err,
		       verify(page, bytes, 400 + round) == -1 ? "intact" :
		       "wrong");
	ASSERT_EQ(wrong, 0);
	ASSERT_EQ(rel.error, 0);
	ASSERT_GT(rel.calls, 0);
	ASSERT_EQ(pages_on_unit(self->unit), 0);

	/* A page left on the device now is evicted by one RELEASE. */
	fill(page, bytes, 450);
	ASSERT_EQ(to_device(self->fd, page, out, 1, &cpages), 0);
	ASSERT_EQ(cpages, 1);
	ASSERT_EQ(dmirror(self->fd, HMM_DMIRROR_RELEASE, page, NULL, 1, NULL),
		  0);
	ASSERT_EQ(pages_on_unit(self->unit), 0);
	ASSERT_EQ(verify(page, bytes, 450), -1);

	free(out);
	munmap(page, bytes);
}

/*
 * A process exits while an eviction holds its pages, collected and
 * replaced by migration entries in its page table: the eviction must not
 * walk the process's anon_vma after the exit freed it (KASAN reports that
 * in the debug variant), and the device memory ends up empty.  The driver
 * pauses the eviction in the middle for the exit to happen there.
 */
TEST_F_TIMEOUT(hmm, eviction_while_owner_exits, RACE_TIMEOUT)
{
	unsigned long n = 16, bytes = n * self->ps;
	struct releaser rel = { .fd = self->fd };
	int ready[2], go[2];
	pthread_t tid;
	char c = 0;
	pid_t pid;

	ASSERT_EQ(pages_on_unit(self->unit), 0);
	ASSERT_EQ(pipe(ready), 0);
	ASSERT_EQ(pipe(go), 0);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		uint64_t cpages = 0;
		char *buf, *out;
		int fd;

		close(ready[0]);
		close(go[1]);
		fd = open_unit(self->unit);
		buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
		out = malloc(bytes);
		if (fd < 0 || buf == MAP_FAILED || !out)
			_exit(2);
		fill(buf, bytes, 460);
		if (to_device(fd, buf, out, n, &cpages) || cpages != n)
			_exit(3);
		if (write(ready[1], "r", 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(4);
		_exit(0);
	}
	close(ready[1]);
	close(go[0]);
	ASSERT_EQ(read(ready[0], &c, 1), 1);
	ASSERT_EQ(pages_on_unit(self->unit), (long)n);

	rel.addr = map_anon(self->ps, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(rel.addr, MAP_FAILED);
	ASSERT_EQ(set_unit_setting(self->unit, "evict_delay_ms", 1500), 0);
	ASSERT_EQ(pthread_create(&tid, NULL, release_once, &rel), 0);
	/* Well inside the pause: the pages are collected by now. */
	usleep(500000);
	ASSERT_EQ(write(go[1], "g", 1), 1);
	ASSERT_EQ(reap(pid), 0);
	pthread_join(tid, NULL);
	ASSERT_EQ(set_unit_setting(self->unit, "evict_delay_ms", 0), 0);

	ASSERT_EQ(rel.error, 0);
	ASSERT_EQ(rel.calls, 1);
	ASSERT_EQ(pages_on_unit(self->unit), 0);
	munmap(rel.addr, self->ps);
	close(ready[0]);
	close(go[1]);
}

/* ---------------------------------------------------------------------------
 * What the CPU side reports
 */

/*
 * pagemap shows device pages as not present, swap-like (non-file) entries;
 * smaps still counts them as resident anonymous memory of the mapping.
 */
TEST_F(hmm, pagemap_and_smaps)
{
	unsigned long n = 64, bytes = n * self->ps;
	long rss, anon;
	uint64_t cpages;
	char *buf, *out;

	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	madvise(buf, bytes, MADV_NOHUGEPAGE);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	fill(buf, bytes, 40);
	ASSERT_EQ(count_in_system(buf, n), n);

	ASSERT_EQ(to_device(self->fd, buf, out, n, &cpages), 0);
	ASSERT_EQ(cpages, n);
	ASSERT_EQ(count_on_device(buf, n), n);
	ASSERT_EQ(count_pagemap(buf, n, PM_FILE, 0), n);
	rss = smaps_kb(buf, "Rss:");
	anon = smaps_kb(buf, "Anonymous:");
	ASSERT_EQ(rss, (long)(bytes >> 10));
	ASSERT_EQ(anon, (long)(bytes >> 10));

	ASSERT_EQ(verify(buf, bytes, 40), -1);
	ASSERT_EQ(count_in_system(buf, n), self->coherent ? 0 : n);

	free(out);
	munmap(buf, bytes);
}

/* ---------------------------------------------------------------------------
 * Memory that does not migrate
 */

static int tmp_file(size_t bytes, unsigned int seed)
{
	char *data;
	int fd;

	fd = open("/tmp", O_TMPFILE | O_RDWR | O_EXCL, 0600);
	if (fd < 0)
		return -1;
	data = malloc(bytes);
	if (!data) {
		close(fd);
		return -1;
	}
	fill(data, bytes, seed);
	if (pwrite(fd, data, bytes, 0) != (ssize_t)bytes) {
		free(data);
		close(fd);
		return -1;
	}
	free(data);
	return fd;
}

/*
 * MAP_PRIVATE file mapping: pages still shared with the page cache are not
 * migrated (the command fails with ENOENT as not all of the range reached
 * the device), while pages already copied on write are anonymous and do.
 */
TEST_F(hmm, file_private_mapping)
{
	unsigned long n = 32, bytes = n * self->ps;
	uint64_t cpages;
	char *buf, *out, *check;
	unsigned long i;
	int fd;

	fd = tmp_file(bytes, 50);
	if (fd < 0)
		SKIP(return, "no O_TMPFILE support in /tmp");
	buf = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	ASSERT_NE(buf, MAP_FAILED);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);

	/* Map everything from the page cache... */
	for (i = 0; i < n; i++)
		touch_read(buf + i * self->ps);
	ASSERT_EQ(to_device(self->fd, buf, out, n, NULL), -ENOENT);
	ASSERT_EQ(count_pagemap(buf, n, PM_PRESENT | PM_FILE,
				PM_PRESENT | PM_FILE), n);

	/* ...then copy every even page on write. */
	for (i = 0; i < n; i += 2)
		touch_write(buf + i * self->ps);
	ASSERT_EQ(to_device(self->fd, buf, out, n, NULL), -ENOENT);
	ASSERT_EQ(count_on_device(buf, n), n / 2);
	for (i = 0; i < n; i += 2)
		ASSERT_EQ(count_on_device(buf + i * self->ps, 1), 1);
	ASSERT_EQ(verify(buf, bytes, 50), -1);

	/* All pages anonymous now: the whole range migrates. */
	for (i = 0; i < n; i++)
		touch_write(buf + i * self->ps);
	ASSERT_EQ(to_device(self->fd, buf, out, n, &cpages), 0);
	ASSERT_EQ(cpages, n);
	ASSERT_EQ(verify(out, bytes, 50), -1);

	/* The file itself never changed. */
	check = malloc(bytes);
	ASSERT_NE(check, NULL);
	ASSERT_EQ(pread(fd, check, bytes, 0), (ssize_t)bytes);
	ASSERT_EQ(verify(check, bytes, 50), -1);
	ASSERT_EQ(verify(buf, bytes, 50), -1);

	free(check);
	free(out);
	munmap(buf, bytes);
	close(fd);
}

/*
 * Shared anonymous memory is not migrated, populated or not: the command
 * fails with ENOENT and every page stays where it was.
 */
TEST_F(hmm, shared_anon_refused)
{
	unsigned long n = 32, bytes = n * self->ps;
	long before = pages_on_unit(self->unit);
	char *buf, *out;

	ASSERT_GE(before, 0);
	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_SHARED);
	ASSERT_NE(buf, MAP_FAILED);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	fill(buf, bytes / 2, 60);

	ASSERT_EQ(to_device(self->fd, buf, out, n, NULL), -ENOENT);
	ASSERT_EQ(pages_on_unit(self->unit), before);
	ASSERT_EQ(count_in_system(buf, n / 2), n / 2);
	ASSERT_EQ(verify(buf, bytes / 2, 60), -1);
	ASSERT_TRUE(all_zero(buf + bytes / 2, bytes / 2));

	free(out);
	munmap(buf, bytes);
}

/*
 * Transparent huge pages: a MADV_HUGEPAGE region is split and migrated,
 * whole or in part, and reads back intact.
 */
TEST_F(hmm, thp_region)
{
	unsigned long bytes = 2 * SZ_2M, n = bytes / self->ps;
	unsigned long part = SZ_2M / 4 / self->ps;
	uint64_t cpages;
	char *buf, *out;
	long huge;

	buf = map_aligned(bytes, SZ_2M);
	ASSERT_NE(buf, MAP_FAILED);
	ASSERT_EQ(madvise(buf, bytes, MADV_HUGEPAGE), 0);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	fill(buf, bytes, 70);
	huge = smaps_kb(buf, "AnonHugePages:");
	if (thp_possible() && huge <= 0)
		TH_LOG("no THP backing the region (AnonHugePages %ld kB)",
		       huge);
	/*
	 * Keep the huge pages but not khugepaged: collapsing a split range
	 * again, it holds pages the migration below would then skip.
	 */
	ASSERT_EQ(madvise(buf, bytes, MADV_NOHUGEPAGE), 0);

	/* A quarter from the middle of the second huge page first... */
	ASSERT_EQ(to_device(self->fd, buf + SZ_2M + SZ_2M / 4, out, part,
			    &cpages), 0);
	ASSERT_EQ(cpages, part);
	ASSERT_EQ(verify(buf, bytes, 70), -1);

	/* ...then all of it. */
	ASSERT_EQ(to_device(self->fd, buf, out, n, &cpages), 0);
	ASSERT_EQ(cpages, n);
	ASSERT_EQ(verify(out, bytes, 70), -1);
	ASSERT_EQ(count_on_device(buf, n), n);
	ASSERT_EQ(verify(buf, bytes, 70), -1);

	free(out);
	munmap(buf, bytes);
}

/* ---------------------------------------------------------------------------
 * THPs that move whole: a PMD-mapped THP goes to a 2 MiB device folio,
 * mapped by one device-private PMD, which the rest of mm handles as such or
 * splits into device-private PTEs.
 */

/* test_hmm's default evict_window: one PMD's worth of pages. */
#define HMMT_EVICT_WINDOW	512

#define PROT_DEV_PMD	(HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | \
			 HMM_DMIRROR_PROT_WRITE | HMM_DMIRROR_PROT_PMD)
#define PROT_DEV_PTE	(HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | \
			 HMM_DMIRROR_PROT_WRITE)

FIXTURE(hmm_thp)
{
	int		fd;
	unsigned long	ps;
	unsigned long	n;		/* pages of one THP */
	long		base;		/* device pages in use before */
	char		*buf;		/* one THP: two halves, seeds 81, 82 */
	unsigned char	*prot;		/* a snapshot of n pages */
	bool		window_set;	/* evict_window changed by the test */
};

/*
 * A 2 MiB aligned region backed by a THP, the two halves filled with
 * seeds 81 and 82, or MAP_FAILED if no THP could be had.
 */
static char *thp_filled(void)
{
	char *buf = map_aligned(SZ_2M, SZ_2M);

	if (buf == MAP_FAILED)
		return buf;
	madvise(buf, SZ_2M, MADV_HUGEPAGE);
	fill(buf, SZ_2M / 2, 81);
	fill(buf + SZ_2M / 2, SZ_2M / 2, 82);
	if (smaps_kb(buf, "AnonHugePages:") < (long)(SZ_2M >> 10)) {
		munmap(buf, SZ_2M);
		return MAP_FAILED;
	}
	return buf;
}

/* Whether [p, p + SZ_2M) holds what thp_filled() wrote. */
static bool thp_intact(const char *p)
{
	return verify(p, SZ_2M / 2, 81) < 0 &&
	       verify(p + SZ_2M / 2, SZ_2M / 2, 82) < 0;
}

FIXTURE_SETUP(hmm_thp)
{
	/* Before anything is checked: this needs THPs the kernel gives. */
	if (!thp_possible())
		SKIP(return, "transparent hugepages are disabled");
	self->buf = thp_filled();
	if (self->buf == MAP_FAILED)
		SKIP(return, "no THP could be allocated");

	self->ps = psize();
	self->n = SZ_2M / self->ps;
	self->prot = malloc(self->n);
	ASSERT_NE(self->prot, NULL);
	/* No khugepaged: it would collapse what a test split on purpose. */
	ASSERT_EQ(madvise(self->buf, SZ_2M, MADV_NOHUGEPAGE), 0);
	self->fd = open_unit(UNIT_PRIVATE_A);
	ASSERT_GE(self->fd, 0)
		TH_LOG("cannot open hmm_dmirror0: is test_hmm loaded?");
	self->base = pages_on_unit(UNIT_PRIVATE_A);
	ASSERT_GE(self->base, 0);
}

FIXTURE_TEARDOWN(hmm_thp)
{
	if (self->window_set)
		EXPECT_EQ(set_unit_setting(UNIT_PRIVATE_A, "evict_window",
					   HMMT_EVICT_WINDOW), 0);
	if (self->buf != MAP_FAILED)
		munmap(self->buf, SZ_2M);
	free(self->prot);
	if (self->fd >= 0)
		close(self->fd);
}

/* Move the THP to the device whole, and check the device sees its data. */
static int thp_to_device(int fd, char *buf)
{
	unsigned long n = SZ_2M / psize();
	uint64_t cpages = 0;
	char *out;
	int ret;

	out = malloc(SZ_2M);
	if (!out)
		return -ENOMEM;
	ret = to_device(fd, buf, out, n, &cpages);
	if (!ret && (cpages != n || !thp_intact(out)))
		ret = -EPROTO;
	free(out);
	return ret;
}

TEST_F(hmm_thp, migrate_whole_and_back)
{
	uint64_t cpages;

	ASSERT_EQ(thp_to_device(self->fd, self->buf), 0);
	/* One device folio, mapped by one device-private PMD. */
	ASSERT_EQ(dev_snapshot(self->fd, self->buf, self->prot, self->n), 0);
	ASSERT_EQ(count_other(self->prot, self->n, PROT_DEV_PMD), 0);
	ASSERT_EQ(pages_on_unit(UNIT_PRIVATE_A), self->base + (long)self->n);
	ASSERT_EQ(count_on_device(self->buf, self->n), self->n);

	/* Back whole, into a THP. */
	ASSERT_EQ(to_system(self->fd, self->buf, self->n, &cpages), 0);
	ASSERT_EQ(cpages, self->n);
	ASSERT_EQ(pages_on_unit(UNIT_PRIVATE_A), self->base);
	ASSERT_EQ(count_in_system(self->buf, self->n), self->n);
	ASSERT_EQ(smaps_kb(self->buf, "AnonHugePages:"), (long)(SZ_2M >> 10));
	ASSERT_TRUE(thp_intact(self->buf));
}

/*
 * A THP that MADV_COLLAPSE made out of 4 KiB pages already holding data
 * moves whole both ways, like one a fault allocated.
 */
TEST_F(hmm_thp, collapsed_moves_whole)
{
	char *buf = map_aligned(SZ_2M, SZ_2M);
	uint64_t cpages;
	int ret = -1;

	/* The pages are written as 4 KiB pages, then collapsed. */
	if (buf != MAP_FAILED && !madvise(buf, SZ_2M, MADV_NOHUGEPAGE)) {
		fill(buf, SZ_2M / 2, 81);
		fill(buf + SZ_2M / 2, SZ_2M / 2, 82);
		if (!madvise(buf, SZ_2M, MADV_HUGEPAGE))
			ret = madvise(buf, SZ_2M, MADV_COLLAPSE) ? errno : 0;
	}
	if (ret == EAGAIN || ret == ENOMEM) {
		munmap(buf, SZ_2M);
		SKIP(return, "MADV_COLLAPSE found no huge page to collapse into");
	}
	ASSERT_NE(buf, MAP_FAILED);
	ASSERT_EQ(ret, 0);
	ASSERT_EQ(smaps_kb(buf, "AnonHugePages:"), (long)(SZ_2M >> 10));

	ASSERT_EQ(thp_to_device(self->fd, buf), 0);
	ASSERT_EQ(dev_snapshot(self->fd, buf, self->prot, self->n), 0);
	ASSERT_EQ(count_other(self->prot, self->n, PROT_DEV_PMD), 0);
	ASSERT_EQ(pages_on_unit(UNIT_PRIVATE_A), self->base + (long)self->n);

	ASSERT_EQ(to_system(self->fd, buf, self->n, &cpages), 0);
	ASSERT_EQ(cpages, self->n);
	ASSERT_EQ(pages_on_unit(UNIT_PRIVATE_A), self->base);
	ASSERT_EQ(smaps_kb(buf, "AnonHugePages:"), (long)(SZ_2M >> 10));
	ASSERT_TRUE(thp_intact(buf));
	munmap(buf, SZ_2M);
}

TEST_F(hmm_thp, pagemap_and_smaps)
{
	ASSERT_EQ(thp_to_device(self->fd, self->buf), 0);
	/* Every 4 KiB page is a swap entry, not present. */
	ASSERT_EQ(count_pagemap(self->buf, self->n, PM_PRESENT | PM_SWAP,
				PM_SWAP), self->n);
	/* The device folio is the process's anonymous memory still. */
	ASSERT_EQ(smaps_kb(self->buf, "Rss:"), (long)(SZ_2M >> 10));
	ASSERT_EQ(smaps_kb(self->buf, "AnonHugePages:"), (long)(SZ_2M >> 10));
}

TEST_F(hmm_thp, cpu_fault_back)
{
	long faults = cpu_faults_on_unit(UNIT_PRIVATE_A);
	const uint64_t *w = (const uint64_t *)(self->buf + SZ_2M / 2);

	ASSERT_GE(faults, 0);
	ASSERT_EQ(thp_to_device(self->fd, self->buf), 0);
	/* One read in the middle brings the whole folio back, as a THP. */
	ASSERT_EQ(w[5], word_value(82, 5));
	ASSERT_EQ(cpu_faults_on_unit(UNIT_PRIVATE_A), faults + 1);
	ASSERT_EQ(count_in_system(self->buf, self->n), self->n);
	ASSERT_EQ(pages_on_unit(UNIT_PRIVATE_A), self->base);
	ASSERT_EQ(smaps_kb(self->buf, "AnonHugePages:"), (long)(SZ_2M >> 10));
	ASSERT_TRUE(thp_intact(self->buf));
	ASSERT_EQ(cpu_faults_on_unit(UNIT_PRIVATE_A), faults + 1);
}

TEST_F(hmm_thp, cpu_fault_back_without_thp)
{
	long faults = cpu_faults_on_unit(UNIT_PRIVATE_A);

	ASSERT_GE(faults, 0);
	ASSERT_EQ(thp_to_device(self->fd, self->buf), 0);
	ASSERT_EQ(dmirror(self->fd, HMM_DMIRROR_FLAGS, self->buf, NULL,
			  HMM_DMIRROR_FLAG_FAIL_ALLOC, NULL), 0);
	/* No THP to go to: the core splits the folio, all of it comes back. */
	ASSERT_TRUE(thp_intact(self->buf));
	ASSERT_EQ(cpu_faults_on_unit(UNIT_PRIVATE_A), faults + 1);
	ASSERT_EQ(count_in_system(self->buf, self->n), self->n);
	ASSERT_EQ(smaps_kb(self->buf, "AnonHugePages:"), 0);
	ASSERT_EQ(pages_on_unit(UNIT_PRIVATE_A), self->base);
}

TEST_F(hmm_thp, fail_alloc_falls_back_to_pages)
{
	uint64_t cpages;
	char *second;

	ASSERT_EQ(dmirror(self->fd, HMM_DMIRROR_FLAGS, self->buf, NULL,
			  HMM_DMIRROR_FLAG_FAIL_ALLOC, NULL), 0);
	ASSERT_EQ(thp_to_device(self->fd, self->buf), 0);
	/* No device folio: the core split the THP, it moved page by page. */
	ASSERT_EQ(dev_snapshot(self->fd, self->buf, self->prot, self->n), 0);
	ASSERT_EQ(count_other(self->prot, self->n, PROT_DEV_PTE), 0);
	ASSERT_EQ(to_system(self->fd, self->buf, self->n, &cpages), 0);
	ASSERT_EQ(cpages, self->n);
	ASSERT_TRUE(thp_intact(self->buf));

	/* The flag was used up: the next THP moves whole. */
	second = thp_filled();
	ASSERT_NE(second, MAP_FAILED);
	ASSERT_EQ(thp_to_device(self->fd, second), 0);
	ASSERT_EQ(dev_snapshot(self->fd, second, self->prot, self->n), 0);
	ASSERT_EQ(count_other(self->prot, self->n, PROT_DEV_PMD), 0);
	/* And back without a THP: split, in base pages. */
	ASSERT_EQ(dmirror(self->fd, HMM_DMIRROR_FLAGS, self->buf, NULL,
			  HMM_DMIRROR_FLAG_FAIL_ALLOC, NULL), 0);
	ASSERT_EQ(to_system(self->fd, second, self->n, &cpages), 0);
	ASSERT_EQ(cpages, self->n);
	ASSERT_EQ(smaps_kb(second, "AnonHugePages:"), 0);
	ASSERT_TRUE(thp_intact(second));
	ASSERT_EQ(munmap(second, SZ_2M), 0);
	ASSERT_EQ(pages_on_unit(UNIT_PRIVATE_A), self->base);

	/* Unknown flags are refused. */
	ASSERT_EQ(dmirror(self->fd, HMM_DMIRROR_FLAGS, self->buf, NULL,
			  HMM_DMIRROR_FLAG_FAIL_ALLOC << 1, NULL), -EINVAL);
}

TEST_F(hmm_thp, partial_munmap)
{
	unsigned long half = self->n / 2;
	long want = self->base + (long)half;

	ASSERT_EQ(thp_to_device(self->fd, self->buf), 0);
	ASSERT_EQ(munmap(self->buf + SZ_2M / 2, SZ_2M / 2), 0);
	/* What is left is mapped by device-private PTEs. */
	ASSERT_EQ(dev_snapshot(self->fd, self->buf, self->prot, half), 0);
	ASSERT_EQ(count_other(self->prot, half, PROT_DEV_PTE), 0);
	/* The folio is split and the unmapped half goes back to the device. */
	ASSERT_EQ(settled_pages_on_unit(UNIT_PRIVATE_A, want), want);

	/* The CPU gets the first half back, page by page. */
	ASSERT_LT(verify(self->buf, SZ_2M / 2, 81), 0);
	ASSERT_EQ(pages_on_unit(UNIT_PRIVATE_A), self->base);
	ASSERT_EQ(munmap(self->buf, SZ_2M / 2), 0);
	self->buf = MAP_FAILED;
}

TEST_F(hmm_thp, dontneed_frees)
{
	ASSERT_EQ(thp_to_device(self->fd, self->buf), 0);
	ASSERT_EQ(madvise(self->buf, SZ_2M, MADV_DONTNEED), 0);
	ASSERT_EQ(pages_on_unit(UNIT_PRIVATE_A), self->base);
	ASSERT_TRUE(all_zero(self->buf, SZ_2M));
}

TEST_F(hmm_thp, mremap_whole_then_part)
{
	char *dst = map_aligned(2 * SZ_2M, SZ_2M), *moved, *part;

	ASSERT_NE(dst, MAP_FAILED);
	ASSERT_EQ(thp_to_device(self->fd, self->buf), 0);

	/* The whole PMD moves as it is. */
	moved = mremap(self->buf, SZ_2M, SZ_2M, MREMAP_MAYMOVE | MREMAP_FIXED,
		       dst);
	ASSERT_EQ(moved, dst);
	self->buf = MAP_FAILED;
	ASSERT_EQ(dev_snapshot(self->fd, moved, self->prot, self->n), 0);
	ASSERT_EQ(count_other(self->prot, self->n, PROT_DEV_PMD), 0);

	/* Half of it moves on: the PMD is split, both halves stay. */
	part = mremap(moved + SZ_2M / 2, SZ_2M / 2, SZ_2M / 2,
		      MREMAP_MAYMOVE | MREMAP_FIXED, dst + SZ_2M);
	ASSERT_EQ(part, dst + SZ_2M);
	ASSERT_EQ(dev_snapshot(self->fd, moved, self->prot, self->n / 2), 0);
	ASSERT_EQ(count_other(self->prot, self->n / 2, PROT_DEV_PTE), 0);
	ASSERT_EQ(dev_snapshot(self->fd, part, self->prot, self->n / 2), 0);
	ASSERT_EQ(count_other(self->prot, self->n / 2, PROT_DEV_PTE), 0);

	ASSERT_LT(verify(moved, SZ_2M / 2, 81), 0);
	ASSERT_LT(verify(part, SZ_2M / 2, 82), 0);
	ASSERT_EQ(pages_on_unit(UNIT_PRIVATE_A), self->base);
	ASSERT_EQ(munmap(dst, 2 * SZ_2M), 0);
}

TEST_F(hmm_thp, mprotect_readonly)
{
	ASSERT_EQ(thp_to_device(self->fd, self->buf), 0);
	ASSERT_EQ(mprotect(self->buf, SZ_2M, PROT_READ), 0);
	/* Still one PMD, no longer writable. */
	ASSERT_EQ(dev_snapshot(self->fd, self->buf, self->prot, self->n), 0);
	ASSERT_EQ(count_other(self->prot, self->n,
			      HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL |
			      HMM_DMIRROR_PROT_READ | HMM_DMIRROR_PROT_PMD), 0);
	ASSERT_TRUE(thp_intact(self->buf));

	ASSERT_EQ(mprotect(self->buf, SZ_2M, PROT_READ | PROT_WRITE), 0);
	touch_write(self->buf + self->ps);
	ASSERT_EQ(pages_on_unit(UNIT_PRIVATE_A), self->base);
}

TEST_F(hmm_thp, fork_both_read)
{
	pid_t pid;

	ASSERT_EQ(thp_to_device(self->fd, self->buf), 0);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid)
		_exit(thp_intact(self->buf) ? 0 : 1);
	ASSERT_EQ(reap(pid), 0);
	ASSERT_TRUE(thp_intact(self->buf));
	/* After fork the parent writes to its own copy. */
	fill(self->buf, SZ_2M / 2, 83);
	ASSERT_LT(verify(self->buf, SZ_2M / 2, 83), 0);
	ASSERT_EQ(pages_on_unit(UNIT_PRIVATE_A), self->base);
}

TEST_F(hmm_thp, fork_child_exits_on_device)
{
	pid_t pid;

	ASSERT_EQ(thp_to_device(self->fd, self->buf), 0);
	/* The child's copy of the PMD goes away with it, untouched. */
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid)
		_exit(0);
	ASSERT_EQ(reap(pid), 0);
	ASSERT_EQ(dev_snapshot(self->fd, self->buf, self->prot, self->n), 0);
	ASSERT_EQ(count_other(self->prot, self->n,
			      HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL |
			      HMM_DMIRROR_PROT_READ | HMM_DMIRROR_PROT_PMD), 0);
	ASSERT_EQ(pages_on_unit(UNIT_PRIVATE_A), self->base + (long)self->n);
	ASSERT_TRUE(thp_intact(self->buf));
}

/* An eviction takes the device folio whole, back into a THP. */
TEST_F(hmm_thp, release_evicts)
{
	ASSERT_EQ(thp_to_device(self->fd, self->buf), 0);
	ASSERT_EQ(dmirror(self->fd, HMM_DMIRROR_RELEASE, self->buf, NULL, 1,
			  NULL), 0);
	ASSERT_EQ(pages_on_unit(UNIT_PRIVATE_A), self->base);
	ASSERT_EQ(count_in_system(self->buf, self->n), self->n);
	ASSERT_EQ(smaps_kb(self->buf, "AnonHugePages:"), (long)(SZ_2M >> 10));
	ASSERT_TRUE(thp_intact(self->buf));
}

/* No THP for an eviction to go to: the core splits the device folio. */
TEST_F(hmm_thp, release_fail_alloc_splits)
{
	char *second;

	ASSERT_EQ(thp_to_device(self->fd, self->buf), 0);
	ASSERT_EQ(dmirror(self->fd, HMM_DMIRROR_FLAGS, self->buf, NULL,
			  HMM_DMIRROR_FLAG_FAIL_ALLOC, NULL), 0);
	ASSERT_EQ(dmirror(self->fd, HMM_DMIRROR_RELEASE, self->buf, NULL, 1,
			  NULL), 0);
	ASSERT_EQ(pages_on_unit(UNIT_PRIVATE_A), self->base);
	ASSERT_EQ(count_in_system(self->buf, self->n), self->n);
	ASSERT_EQ(smaps_kb(self->buf, "AnonHugePages:"), 0);
	ASSERT_TRUE(thp_intact(self->buf));

	/* The flag was used up: the next eviction moves a THP whole. */
	second = thp_filled();
	ASSERT_NE(second, MAP_FAILED);
	ASSERT_EQ(thp_to_device(self->fd, second), 0);
	ASSERT_EQ(dmirror(self->fd, HMM_DMIRROR_RELEASE, second, NULL, 1,
			  NULL), 0);
	ASSERT_EQ(smaps_kb(second, "AnonHugePages:"), (long)(SZ_2M >> 10));
	ASSERT_TRUE(thp_intact(second));
	ASSERT_EQ(munmap(second, SZ_2M), 0);
	ASSERT_EQ(pages_on_unit(UNIT_PRIVATE_A), self->base);
}

/*
 * Evict the device THP at @buf while a child forked after its migration
 * maps it too, with FAIL_ALLOC set if @fail_alloc.  The child looks at its
 * copy once the eviction is over.  Returns the child's status (0 if its
 * copy is intact and has @thp_kb of AnonHugePages) or a negative errno.
 */
static int thp_release_shared(int fd, char *buf, bool fail_alloc,
			      long thp_kb)
{
	int go[2], ret;
	pid_t pid;
	char c;

	if (pipe(go))
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (!pid) {
		close(go[1]);
		if (read(go[0], &c, 1) != 1)
			_exit(2);
		_exit(thp_intact(buf) &&
		      smaps_kb(buf, "AnonHugePages:") == thp_kb ? 0 : 1);
	}
	close(go[0]);
	ret = fail_alloc ? dmirror(fd, HMM_DMIRROR_FLAGS, buf, NULL,
				   HMM_DMIRROR_FLAG_FAIL_ALLOC, NULL) : 0;
	if (!ret)
		ret = dmirror(fd, HMM_DMIRROR_RELEASE, buf, NULL, 1, NULL);
	if (write(go[1], "g", 1) != 1 && !ret)
		ret = -EPIPE;
	close(go[1]);
	if (reap(pid) && !ret)
		ret = -ECHILD;
	return ret;
}

/* Both processes that map the device folio get the THP it goes to. */
TEST_F(hmm_thp, release_shared_whole)
{
	ASSERT_EQ(thp_to_device(self->fd, self->buf), 0);
	ASSERT_EQ(thp_release_shared(self->fd, self->buf, false,
				     SZ_2M >> 10), 0);
	ASSERT_EQ(pages_on_unit(UNIT_PRIVATE_A), self->base);
	ASSERT_EQ(smaps_kb(self->buf, "AnonHugePages:"), (long)(SZ_2M >> 10));
	ASSERT_TRUE(thp_intact(self->buf));
}

/* The split for base pages reaches the PMDs of both processes. */
TEST_F(hmm_thp, release_shared_fail_alloc)
{
	ASSERT_EQ(thp_to_device(self->fd, self->buf), 0);
	ASSERT_EQ(thp_release_shared(self->fd, self->buf, true, 0), 0);
	ASSERT_EQ(pages_on_unit(UNIT_PRIVATE_A), self->base);
	ASSERT_EQ(smaps_kb(self->buf, "AnonHugePages:"), 0);
	ASSERT_TRUE(thp_intact(self->buf));
}

/*
 * A device folio mapped by PTEs (its PMD split by mprotect() of half of
 * it) is evicted whole or, for a second THP under FAIL_ALLOC, page by
 * page; data and both protections survive either way.
 */
TEST_F(hmm_thp, release_pte_mapped)
{
	char *second = thp_filled(), *buf;
	int round;

	ASSERT_NE(second, MAP_FAILED);
	ASSERT_EQ(madvise(second, SZ_2M, MADV_NOHUGEPAGE), 0);
	for (round = 0; round < 2; round++) {
		buf = round ? second : self->buf;
		ASSERT_EQ(thp_to_device(self->fd, buf), 0);
		ASSERT_EQ(mprotect(buf, SZ_2M / 2, PROT_READ), 0);
		ASSERT_EQ(dev_snapshot(self->fd, buf, self->prot, self->n), 0);
		ASSERT_EQ(count_other(self->prot, self->n / 2,
				      HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL |
				      HMM_DMIRROR_PROT_READ), 0);
		ASSERT_EQ(count_other(self->prot + self->n / 2, self->n / 2,
				      PROT_DEV_PTE), 0);
		if (round)
			ASSERT_EQ(dmirror(self->fd, HMM_DMIRROR_FLAGS, buf,
					  NULL, HMM_DMIRROR_FLAG_FAIL_ALLOC,
					  NULL), 0);
		ASSERT_EQ(dmirror(self->fd, HMM_DMIRROR_RELEASE, buf, NULL, 1,
				  NULL), 0);
		ASSERT_EQ(pages_on_unit(UNIT_PRIVATE_A), self->base);
		ASSERT_EQ(count_in_system(buf, self->n), self->n);
		ASSERT_TRUE(thp_intact(buf));
		/* A THP mapped by PTEs, or base pages. */
		ASSERT_EQ(in_thp(buf), !round);
		ASSERT_EQ(in_thp(buf + SZ_2M - self->ps), !round);
		ASSERT_EQ(mprotect(buf, SZ_2M, PROT_READ | PROT_WRITE), 0);
		touch_write(buf);
	}
	ASSERT_EQ(munmap(second, SZ_2M), 0);
}

/*
 * Set test_hmm's evict_window and note it in *@set: the fixture's teardown
 * sets it back.
 */
static int thp_set_window(bool *set, long pages)
{
	*set = true;
	return set_unit_setting(UNIT_PRIVATE_A, "evict_window", pages);
}

/*
 * Evictions that hand migrate_device_range() 100 pages at a time cut
 * through the device folio, which the core must then split while a
 * device-private PMD maps it: the pages come back one by one.
 */
TEST_F(hmm_thp, release_window_splits)
{
	ASSERT_EQ(thp_to_device(self->fd, self->buf), 0);
	ASSERT_EQ(thp_set_window(&self->window_set, 100), 0);
	ASSERT_EQ(dmirror(self->fd, HMM_DMIRROR_RELEASE, self->buf, NULL, 1,
			  NULL), 0);
	ASSERT_EQ(pages_on_unit(UNIT_PRIVATE_A), self->base);
	ASSERT_EQ(count_in_system(self->buf, self->n), self->n);
	ASSERT_EQ(smaps_kb(self->buf, "AnonHugePages:"), 0);
	ASSERT_TRUE(thp_intact(self->buf));
	/* The split left no page read-only: every one takes a write. */
	fill(self->buf, SZ_2M, 84);
	ASSERT_LT(verify(self->buf, SZ_2M, 84), 0);
}

/* The same split reaches the PMD of a child that shares the folio. */
TEST_F(hmm_thp, release_window_splits_shared)
{
	ASSERT_EQ(thp_to_device(self->fd, self->buf), 0);
	ASSERT_EQ(thp_set_window(&self->window_set, 100), 0);
	ASSERT_EQ(thp_release_shared(self->fd, self->buf, false, 0), 0);
	ASSERT_EQ(pages_on_unit(UNIT_PRIVATE_A), self->base);
	ASSERT_EQ(count_in_system(self->buf, self->n), self->n);
	ASSERT_EQ(smaps_kb(self->buf, "AnonHugePages:"), 0);
	ASSERT_TRUE(thp_intact(self->buf));
}

/* Windows of one page: the folio is split at its first page already. */
TEST_F(hmm_thp, release_window_one_page)
{
	ASSERT_EQ(thp_to_device(self->fd, self->buf), 0);
	ASSERT_EQ(thp_set_window(&self->window_set, 1), 0);
	ASSERT_EQ(dmirror(self->fd, HMM_DMIRROR_RELEASE, self->buf, NULL, 1,
			  NULL), 0);
	ASSERT_EQ(pages_on_unit(UNIT_PRIVATE_A), self->base);
	ASSERT_EQ(count_in_system(self->buf, self->n), self->n);
	ASSERT_TRUE(thp_intact(self->buf));
}

/* evict_window takes 1 to 512 pages and nothing else. */
TEST_F(hmm_thp, evict_window_bounds)
{
	self->window_set = true;
	ASSERT_EQ(set_unit_setting(UNIT_PRIVATE_A, "evict_window", 0), -1);
	ASSERT_EQ(set_unit_setting(UNIT_PRIVATE_A, "evict_window",
				   HMMT_EVICT_WINDOW + 1), -1);
	ASSERT_EQ(set_unit_setting(UNIT_PRIVATE_A, "evict_window", -1), -1);
	ASSERT_EQ(unit_counter(UNIT_PRIVATE_A, "evict_window"),
		  HMMT_EVICT_WINDOW);
	ASSERT_EQ(set_unit_setting(UNIT_PRIVATE_A, "evict_window", 1), 0);
	ASSERT_EQ(unit_counter(UNIT_PRIVATE_A, "evict_window"), 1);
}

/* What a process does to the device folio it shares with another. */
enum thp_mixed_action {
	MIXED_PARENT_READS,	/* CPU fault through the PMD */
	MIXED_CHILD_READS,	/* CPU fault through a PTE */
	MIXED_RELEASE,		/* eviction, into a THP */
	MIXED_RELEASE_SPLIT,	/* eviction under FAIL_ALLOC */
};

/*
 * Fork with the THP at @buf on the device; the child mprotect()s the first
 * half of its copy, which splits its device-private PMD into PTEs, while
 * the parent keeps its PMD (checked by a snapshot).  Then @action, and the
 * child checks its copy.  Returns the child's status or a negative errno.
 */
static int thp_mixed_mappings(int fd, char *buf, unsigned char *prot,
			      enum thp_mixed_action action)
{
	unsigned long n = SZ_2M / psize();
	int ready[2], go[2], ret = 0, status;
	pid_t pid;
	char c;

	if (pipe(ready) || pipe(go))
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (!pid) {
		close(ready[0]);
		close(go[1]);
		if (mprotect(buf, SZ_2M / 2, PROT_READ) ||
		    write(ready[1], "r", 1) != 1)
			_exit(2);
		if (action == MIXED_CHILD_READS && !thp_intact(buf))
			_exit(3);
		if (write(ready[1], "r", 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(2);
		_exit(thp_intact(buf) && count_in_system(buf, n) == n ? 0 : 1);
	}
	close(ready[1]);
	close(go[0]);
	if (read(ready[0], &c, 1) != 1)
		ret = -EPIPE;
	/* The parent still maps the folio by its PMD, read-only since fork. */
	if (!ret && action != MIXED_CHILD_READS &&
	    (dev_snapshot(fd, buf, prot, n) ||
	     count_other(prot, n, HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL |
			 HMM_DMIRROR_PROT_READ | HMM_DMIRROR_PROT_PMD)))
		ret = -EPROTO;
	if (!ret && action == MIXED_RELEASE_SPLIT)
		ret = dmirror(fd, HMM_DMIRROR_FLAGS, buf, NULL,
			      HMM_DMIRROR_FLAG_FAIL_ALLOC, NULL);
	if (!ret && (action == MIXED_RELEASE || action == MIXED_RELEASE_SPLIT))
		ret = dmirror(fd, HMM_DMIRROR_RELEASE, buf, NULL, 1, NULL);
	if (!ret && action == MIXED_PARENT_READS && !thp_intact(buf))
		ret = -EIO;
	/* Wait for the child's own reads (MIXED_CHILD_READS), then go. */
	if (read(ready[0], &c, 1) != 1 && !ret)
		ret = -EPIPE;
	if (write(go[1], "g", 1) != 1 && !ret)
		ret = -EPIPE;
	close(ready[0]);
	close(go[1]);
	status = reap(pid);
	return ret ? ret : status;
}

/*
 * A device folio mapped by a PMD in one process and by PTEs in another: a
 * CPU fault through the PMD cannot take the folio whole (another page
 * table maps it), so the PMD and the folio are split and test_hmm brings
 * every page back; the other process's PTEs follow them.
 */
TEST_F(hmm_thp, mixed_mappings_parent_reads)
{
	ASSERT_EQ(thp_to_device(self->fd, self->buf), 0);
	ASSERT_EQ(thp_mixed_mappings(self->fd, self->buf, self->prot,
				     MIXED_PARENT_READS), 0);
	ASSERT_EQ(count_in_system(self->buf, self->n), self->n);
	ASSERT_EQ(in_thp(self->buf), 0);
	ASSERT_EQ(smaps_kb(self->buf, "AnonHugePages:"), 0);
	ASSERT_EQ(pages_on_unit(UNIT_PRIVATE_A), self->base);
}

/* A CPU fault through one of the PTEs: both copies come back intact. */
TEST_F(hmm_thp, mixed_mappings_child_reads)
{
	ASSERT_EQ(thp_to_device(self->fd, self->buf), 0);
	ASSERT_EQ(thp_mixed_mappings(self->fd, self->buf, self->prot,
				     MIXED_CHILD_READS), 0);
	ASSERT_TRUE(thp_intact(self->buf));
	ASSERT_EQ(count_in_system(self->buf, self->n), self->n);
	ASSERT_EQ(settled_pages_on_unit(UNIT_PRIVATE_A, self->base),
		  self->base);
}

/* An eviction takes the folio whole through both kinds of mapping. */
TEST_F(hmm_thp, mixed_mappings_release)
{
	ASSERT_EQ(thp_to_device(self->fd, self->buf), 0);
	ASSERT_EQ(thp_mixed_mappings(self->fd, self->buf, self->prot,
				     MIXED_RELEASE), 0);
	ASSERT_EQ(pages_on_unit(UNIT_PRIVATE_A), self->base);
	ASSERT_EQ(smaps_kb(self->buf, "AnonHugePages:"), (long)(SZ_2M >> 10));
	ASSERT_TRUE(thp_intact(self->buf));
}

/* No THP to go to: the split reaches the PMD and the PTEs alike. */
TEST_F(hmm_thp, mixed_mappings_release_split)
{
	ASSERT_EQ(thp_to_device(self->fd, self->buf), 0);
	ASSERT_EQ(thp_mixed_mappings(self->fd, self->buf, self->prot,
				     MIXED_RELEASE_SPLIT), 0);
	ASSERT_EQ(pages_on_unit(UNIT_PRIVATE_A), self->base);
	ASSERT_EQ(smaps_kb(self->buf, "AnonHugePages:"), 0);
	ASSERT_TRUE(thp_intact(self->buf));
}

/*
 * A process with a THP on the device exits while an eviction holds the
 * folio collected (evict_delay_ms): the eviction completes and the device
 * ends up empty.
 */
TEST_F_TIMEOUT(hmm_thp, release_while_owner_exits, RACE_TIMEOUT)
{
	struct releaser rel = { .fd = self->fd, .addr = self->buf };
	int ready[2], go[2];
	pthread_t tid;
	pid_t pid;
	char c;

	ASSERT_EQ(pipe(ready), 0);
	ASSERT_EQ(pipe(go), 0);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		int fd = open_unit(UNIT_PRIVATE_A);
		char *buf = thp_filled();

		if (fd < 0 || buf == MAP_FAILED || thp_to_device(fd, buf))
			_exit(2);
		if (write(ready[1], "r", 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(3);
		_exit(0);
	}
	ASSERT_EQ(read(ready[0], &c, 1), 1);
	ASSERT_EQ(pages_on_unit(UNIT_PRIVATE_A), self->base + (long)self->n);
	ASSERT_EQ(set_unit_setting(UNIT_PRIVATE_A, "evict_delay_ms", 1500), 0);
	ASSERT_EQ(pthread_create(&tid, NULL, release_once, &rel), 0);
	/* Well inside the pause: the folio is collected by now. */
	usleep(500000);
	ASSERT_EQ(write(go[1], "g", 1), 1);
	ASSERT_EQ(reap(pid), 0);
	ASSERT_EQ(pthread_join(tid, NULL), 0);
	ASSERT_EQ(set_unit_setting(UNIT_PRIVATE_A, "evict_delay_ms", 0), 0);
	ASSERT_EQ(rel.error, 0);
	ASSERT_EQ(pages_on_unit(UNIT_PRIVATE_A), self->base);
	close(ready[0]);
	close(ready[1]);
	close(go[0]);
	close(go[1]);
}

/* One reader of a slice of a device THP, racing the others. */
struct thp_reader {
	pthread_barrier_t	*start;
	const char		*buf;
	size_t			off, len;	/* the slice */
	long			bad;		/* first wrong word, or -1 */
};

static void *thp_read_slice(void *arg)
{
	struct thp_reader *r = arg;
	const uint64_t *w = (const uint64_t *)(r->buf + r->off);
	size_t half = SZ_2M / 2 / sizeof(*w), first = r->off / sizeof(*w);
	size_t i;

	pthread_barrier_wait(r->start);
	r->bad = -1;
	for (i = 0; i < r->len / sizeof(*w); i++) {
		size_t g = first + i;
		uint64_t want = g < half ? word_value(81, g) :
					   word_value(82, g - half);

		if (w[i] != want) {
			r->bad = (long)g;
			break;
		}
	}
	return NULL;
}

static void *thp_release(void *arg)
{
	struct thp_reader *r = arg;
	int fd = open_unit(UNIT_PRIVATE_A);

	pthread_barrier_wait(r->start);
	r->bad = dmirror(fd, HMM_DMIRROR_RELEASE, (void *)r->buf, NULL, 1,
			 NULL);
	if (fd >= 0)
		close(fd);
	return NULL;
}

/*
 * 32 threads fault back their own slices of one device THP at once, each
 * starting at another page of the folio, while an eviction empties the
 * device and a child process reads the whole THP: every page comes back
 * once, with its data, and the device ends up empty.
 */
TEST_F_TIMEOUT(hmm_thp, threads_fault_fork_and_evict, RACE_TIMEOUT)
{
	enum { READERS = 32 };
	struct thp_reader r[READERS + 1];
	pthread_t tid[READERS + 1];
	pthread_barrier_t start;
	unsigned int t;
	pid_t pid;

	ASSERT_EQ(thp_to_device(self->fd, self->buf), 0);
	ASSERT_EQ(pthread_barrier_init(&start, NULL, READERS + 2), 0);
	for (t = 0; t <= READERS; t++) {
		r[t].start = &start;
		r[t].buf = self->buf;
		r[t].len = SZ_2M / READERS;
		r[t].off = t * r[t].len;
		ASSERT_EQ(pthread_create(&tid[t], NULL, t < READERS ?
					 thp_read_slice : thp_release, &r[t]), 0);
	}
	pthread_barrier_wait(&start);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid)
		_exit(thp_intact(self->buf) ? 0 : 1);
	for (t = 0; t <= READERS; t++)
		ASSERT_EQ(pthread_join(tid[t], NULL), 0);
	ASSERT_EQ(reap(pid), 0);
	for (t = 0; t < READERS; t++)
		ASSERT_EQ(r[t].bad, -1) TH_LOG("reader %u: word %ld", t, r[t].bad);
	ASSERT_EQ(r[READERS].bad, 0);
	ASSERT_TRUE(thp_intact(self->buf));
	ASSERT_EQ(pages_on_unit(UNIT_PRIVATE_A), self->base);
}

TEST_F(hmm_thp, exit_frees)
{
	pid_t pid;

	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		int fd = open_unit(UNIT_PRIVATE_A);
		char *buf = thp_filled();

		if (fd < 0 || buf == MAP_FAILED)
			_exit(2);
		_exit(thp_to_device(fd, buf) ? 1 : 0);
	}
	ASSERT_EQ(reap(pid), 0);
	ASSERT_EQ(pages_on_unit(UNIT_PRIVATE_A), self->base);
}

/* Whether a read fault in a THP-enabled region maps the huge zero page. */
static bool huge_zero_page_used(void)
{
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/use_zero_page",
			"r");
	int on = 0;

	if (!f)
		return false;
	if (fscanf(f, "%d", &on) != 1)
		on = 0;
	fclose(f);
	return on == 1;
}

/*
 * An empty 2 MiB aligned region that THPs are allowed in; read-touched
 * first if @zero, which maps the huge zero page.  MAP_FAILED on error.
 */
static char *thp_hole(bool zero)
{
	char *buf = map_aligned(SZ_2M, SZ_2M);

	if (buf == MAP_FAILED)
		return buf;
	if (madvise(buf, SZ_2M, MADV_HUGEPAGE)) {
		munmap(buf, SZ_2M);
		return MAP_FAILED;
	}
	if (zero)
		touch_read(buf);
	return buf;
}

/*
 * A thp_hole() read-touched, which the device's snapshot (in @prot) must
 * show mapped by the huge zero page: one read-only PMD.  MAP_FAILED if
 * not.
 */
static char *huge_zero_hole(int fd, unsigned char *prot)
{
	unsigned long n = SZ_2M / psize();
	char *buf = thp_hole(true);

	if (buf == MAP_FAILED)
		return buf;
	if (dev_snapshot(fd, buf, prot, n) ||
	    count_other(prot, n, HMM_DMIRROR_PROT_READ | HMM_DMIRROR_PROT_PMD)) {
		munmap(buf, SZ_2M);
		return MAP_FAILED;
	}
	return buf;
}

/*
 * Migrate @buf, a thp_hole(), to the device: it must all arrive, reading
 * as zeroes, and the device's snapshot must show @prot for every page.
 */
static int hole_to_device(int fd, char *buf, unsigned char *prot,
			  unsigned char want)
{
	unsigned long n = SZ_2M / psize();
	uint64_t cpages = 0;
	char *out;
	int ret;

	out = malloc(SZ_2M);
	if (!out)
		return -ENOMEM;
	memset(out, 0xa5, SZ_2M);
	ret = to_device(fd, buf, out, n, &cpages);
	if (!ret && (cpages != n || !all_zero(out, SZ_2M)))
		ret = -EPROTO;
	free(out);
	if (!ret)
		ret = dev_snapshot(fd, buf, prot, n);
	if (!ret && count_other(prot, n, want))
		ret = -EPROTO;
	return ret;
}

TEST_F(hmm_thp, empty_pmd_moves_whole)
{
	long faults = cpu_faults_on_unit(UNIT_PRIVATE_A);
	char *buf = thp_hole(false);

	ASSERT_GE(faults, 0);
	ASSERT_NE(buf, MAP_FAILED);
	/* One device folio fills the empty PMD. */
	ASSERT_EQ(hole_to_device(self->fd, buf, self->prot, PROT_DEV_PMD), 0);
	ASSERT_EQ(pages_on_unit(UNIT_PRIVATE_A), self->base + (long)self->n);
	ASSERT_EQ(smaps_kb(buf, "AnonHugePages:"), (long)(SZ_2M >> 10));

	/* One CPU write brings it all back, as a THP. */
	touch_write(buf + SZ_2M / 2);
	ASSERT_EQ(cpu_faults_on_unit(UNIT_PRIVATE_A), faults + 1);
	ASSERT_EQ(count_in_system(buf, self->n), self->n);
	ASSERT_EQ(smaps_kb(buf, "AnonHugePages:"), (long)(SZ_2M >> 10));
	ASSERT_EQ(pages_on_unit(UNIT_PRIVATE_A), self->base);
	ASSERT_TRUE(all_zero(buf, SZ_2M));
	ASSERT_EQ(munmap(buf, SZ_2M), 0);
}

TEST_F(hmm_thp, zero_pmd_moves_whole)
{
	char *buf;
	uint64_t cpages;

	if (!huge_zero_page_used())
		SKIP(return, "THP use_zero_page is off");
	buf = huge_zero_hole(self->fd, self->prot);
	ASSERT_NE(buf, MAP_FAILED);
	ASSERT_EQ(smaps_kb(buf, "AnonHugePages:"), 0);

	ASSERT_EQ(hole_to_device(self->fd, buf, self->prot, PROT_DEV_PMD), 0);
	ASSERT_EQ(pages_on_unit(UNIT_PRIVATE_A), self->base + (long)self->n);

	/* Back whole, into a THP of its own that can be written. */
	ASSERT_EQ(to_system(self->fd, buf, self->n, &cpages), 0);
	ASSERT_EQ(cpages, self->n);
	ASSERT_EQ(smaps_kb(buf, "AnonHugePages:"), (long)(SZ_2M >> 10));
	ASSERT_EQ(pages_on_unit(UNIT_PRIVATE_A), self->base);
	ASSERT_TRUE(all_zero(buf, SZ_2M));
	fill(buf, SZ_2M, 83);
	ASSERT_LT(verify(buf, SZ_2M, 83), 0);
	ASSERT_EQ(munmap(buf, SZ_2M), 0);
}

/* Without a device folio, an empty PMD fills page by page. */
TEST_F(hmm_thp, empty_pmd_fail_alloc)
{
	char *buf = thp_hole(false);
	uint64_t cpages;

	ASSERT_NE(buf, MAP_FAILED);
	ASSERT_EQ(dmirror(self->fd, HMM_DMIRROR_FLAGS, buf, NULL,
			  HMM_DMIRROR_FLAG_FAIL_ALLOC, NULL), 0);
	ASSERT_EQ(hole_to_device(self->fd, buf, self->prot, PROT_DEV_PTE), 0);
	ASSERT_EQ(pages_on_unit(UNIT_PRIVATE_A), self->base + (long)self->n);
	ASSERT_EQ(to_system(self->fd, buf, self->n, &cpages), 0);
	ASSERT_EQ(cpages, self->n);
	ASSERT_EQ(count_in_system(buf, self->n), self->n);
	ASSERT_TRUE(all_zero(buf, SZ_2M));
	ASSERT_EQ(munmap(buf, SZ_2M), 0);
	ASSERT_EQ(pages_on_unit(UNIT_PRIVATE_A), self->base);

	/* The empty PMD used the failure up: the next one gets a folio. */
	buf = thp_hole(false);
	ASSERT_NE(buf, MAP_FAILED);
	ASSERT_EQ(hole_to_device(self->fd, buf, self->prot, PROT_DEV_PMD), 0);
	ASSERT_EQ(munmap(buf, SZ_2M), 0);
	ASSERT_EQ(pages_on_unit(UNIT_PRIVATE_A), self->base);
}

/* Without a device folio, the huge zero page is split and filled. */
TEST_F(hmm_thp, zero_pmd_fail_alloc)
{
	char *buf;
	uint64_t cpages;

	if (!huge_zero_page_used())
		SKIP(return, "THP use_zero_page is off");
	buf = huge_zero_hole(self->fd, self->prot);
	ASSERT_NE(buf, MAP_FAILED);
	ASSERT_EQ(dmirror(self->fd, HMM_DMIRROR_FLAGS, buf, NULL,
			  HMM_DMIRROR_FLAG_FAIL_ALLOC, NULL), 0);
	ASSERT_EQ(hole_to_device(self->fd, buf, self->prot, PROT_DEV_PTE), 0);
	ASSERT_EQ(pages_on_unit(UNIT_PRIVATE_A), self->base + (long)self->n);
	ASSERT_EQ(to_system(self->fd, buf, self->n, &cpages), 0);
	ASSERT_EQ(cpages, self->n);
	ASSERT_EQ(count_in_system(buf, self->n), self->n);
	ASSERT_TRUE(all_zero(buf, SZ_2M));
	fill(buf, SZ_2M, 84);
	ASSERT_LT(verify(buf, SZ_2M, 84), 0);
	ASSERT_EQ(munmap(buf, SZ_2M), 0);
	ASSERT_EQ(pages_on_unit(UNIT_PRIVATE_A), self->base);
}

/* MADV_NOHUGEPAGE keeps an empty PMD from getting a device folio. */
TEST_F(hmm_thp, nohugepage_hole_moves_by_pages)
{
	char *buf = thp_hole(false);

	ASSERT_NE(buf, MAP_FAILED);
	ASSERT_EQ(madvise(buf, SZ_2M, MADV_NOHUGEPAGE), 0);
	ASSERT_EQ(hole_to_device(self->fd, buf, self->prot, PROT_DEV_PTE), 0);
	ASSERT_EQ(pages_on_unit(UNIT_PRIVATE_A), self->base + (long)self->n);
	ASSERT_EQ(munmap(buf, SZ_2M), 0);
	ASSERT_EQ(pages_on_unit(UNIT_PRIVATE_A), self->base);
}

/* One thread of hole_fill_race: a migrator or a writer of its own pages. */
struct hole_racer {
	pthread_barrier_t	*start;
	char			*buf;
	int			fd;	/* the test's mirror, for migrators */
	unsigned int		id;
	unsigned int		rounds;	/* a writer's last round */
	bool			*stop;	/* set once the migrators are done */
	long			bad;	/* 0, an errno, or a page that lost data */
};

#define HOLE_ROUNDS	8
#define HOLE_WRITERS	8
#define HOLE_MIGRATORS	8

/* Writer @id owns pages id, id + 5 * HOLE_WRITERS, ... of the 2 MiB. */
static void *hole_writer(void *arg)
{
	struct hole_racer *r = arg;
	unsigned long n = SZ_2M / psize(), page;
	unsigned int round;

	pthread_barrier_wait(r->start);
	for (round = 1; round <= HOLE_ROUNDS ||
	     !__atomic_load_n(r->stop, __ATOMIC_RELAXED); round++) {
		r->rounds = round;
		for (page = r->id; page < n; page += HOLE_WRITERS * 5) {
			uint64_t *w = (uint64_t *)(r->buf + page * psize());
			uint64_t v = ((uint64_t)r->id << 32) | round;

			*w = v;
			compiler_barrier();
			if (*w != v) {
				r->bad = (long)page;
				return NULL;
			}
		}
	}
	return NULL;
}

/* Migrate the whole 2 MiB there and back; races make pages stay behind. */
static void *hole_migrator(void *arg)
{
	struct hole_racer *r = arg;
	unsigned long n = SZ_2M / psize();
	unsigned int round;
	char *out = malloc(SZ_2M);
	int ret;

	pthread_barrier_wait(r->start);
	if (!out) {
		r->bad = -ENOMEM;
		return NULL;
	}
	for (round = 0; round < HOLE_ROUNDS && !r->bad; round++) {
		ret = to_device(r->fd, r->buf, out, n, NULL);
		if (ret && ret != -ENOENT && ret != -EBUSY)
			r->bad = ret;
		ret = to_system(r->fd, r->buf, n, NULL);
		if (ret)
			r->bad = ret;
	}
	free(out);
	return NULL;
}

/*
 * An empty PMD that migrators keep filling with device folios (or the
 * pages a failed allocation falls back to) and bringing back, while
 * writers fault its pages in, each writing and reading back its own pages:
 * no write is ever lost, every other page reads as zero, and the device
 * ends up empty once the region is gone.
 */
TEST_F_TIMEOUT(hmm_thp, hole_fill_race, RACE_TIMEOUT)
{
	struct hole_racer r[HOLE_WRITERS + HOLE_MIGRATORS];
	pthread_t tid[HOLE_WRITERS + HOLE_MIGRATORS];
	unsigned long page, n = self->n;
	pthread_barrier_t start;
	char *buf = thp_hole(false);
	bool stop = false;
	unsigned int t;

	ASSERT_NE(buf, MAP_FAILED);
	ASSERT_EQ(pthread_barrier_init(&start, NULL, HOLE_WRITERS +
				       HOLE_MIGRATORS + 1), 0);
	for (t = 0; t < HOLE_WRITERS + HOLE_MIGRATORS; t++) {
		r[t] = (struct hole_racer){ .start = &start, .buf = buf,
					    .fd = self->fd, .stop = &stop,
					    .id = t % HOLE_WRITERS };
		ASSERT_EQ(pthread_create(&tid[t], NULL, t < HOLE_WRITERS ?
					 hole_writer : hole_migrator, &r[t]), 0);
	}
	pthread_barrier_wait(&start);
	/* Now and then, the device is made to fall back to base pages. */
	for (t = 0; t < 4; t++) {
		ASSERT_EQ(dmirror(self->fd, HMM_DMIRROR_FLAGS, buf, NULL,
				  HMM_DMIRROR_FLAG_FAIL_ALLOC, NULL), 0);
		usleep(20000);
	}
	/* The writers go on until the migrators are done. */
	for (t = HOLE_WRITERS; t < HOLE_WRITERS + HOLE_MIGRATORS; t++)
		ASSERT_EQ(pthread_join(tid[t], NULL), 0);
	__atomic_store_n(&stop, true, __ATOMIC_RELAXED);
	for (t = 0; t < HOLE_WRITERS; t++)
		ASSERT_EQ(pthread_join(tid[t], NULL), 0);
	for (t = 0; t < HOLE_WRITERS + HOLE_MIGRATORS; t++)
		ASSERT_EQ(r[t].bad, 0) TH_LOG("thread %u: %ld", t, r[t].bad);

	for (page = 0; page < n; page++) {
		const uint64_t *w = (const uint64_t *)(buf + page * self->ps);
		unsigned int id = page % HOLE_WRITERS;
		bool written = page % (HOLE_WRITERS * 5) < HOLE_WRITERS;

		if (written)
			ASSERT_EQ(w[0], ((uint64_t)id << 32) | r[id].rounds)
				TH_LOG("page %lu", page);
		ASSERT_TRUE(all_zero(buf + page * self->ps + (written ? 8 : 0),
				     self->ps - (written ? 8 : 0)))
			TH_LOG("page %lu", page);
	}
	ASSERT_EQ(munmap(buf, SZ_2M), 0);
	ASSERT_EQ(pages_on_unit(UNIT_PRIVATE_A), self->base);
}

/* ---------------------------------------------------------------------------
 * Bad input: each gets its exact error and changes nothing
 */

TEST_F(hmm, bad_unaligned_addr)
{
	unsigned long bytes = 4 * self->ps;
	char *buf, *out;

	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	fill(buf, bytes, 80);

	ASSERT_EQ(to_device(self->fd, buf + 1, out, 2, NULL), -EINVAL);
	ASSERT_EQ(to_device(self->fd, buf + self->ps / 2, out, 2, NULL),
		  -EINVAL);
	ASSERT_EQ(to_system(self->fd, buf + 8, 2, NULL), -EINVAL);
	ASSERT_EQ(count_in_system(buf, 4), 4);

	free(out);
	munmap(buf, bytes);
}

TEST_F(hmm, bad_zero_npages)
{
	char *buf;

	buf = map_anon(self->ps, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	ASSERT_EQ(to_device(self->fd, buf, buf, 0, NULL), -EINVAL);
	ASSERT_EQ(to_system(self->fd, buf, 0, NULL), -EINVAL);
	ASSERT_EQ(dmirror(self->fd, HMM_DMIRROR_RELEASE, buf, NULL, 0, NULL),
		  -EINVAL);
	munmap(buf, self->ps);
}

/* npages whose size in bytes does not fit, or runs past any mapping. */
TEST_F(hmm, bad_huge_npages)
{
	unsigned long bytes = 4 * self->ps;
	char *buf, *out;

	/* Map one page more than used and unmap it: a gap right after. */
	buf = map_anon(bytes + self->ps, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	ASSERT_EQ(munmap(buf + bytes, self->ps), 0);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);

	/* Size overflows 64 bits (to 0, and to exactly one page). */
	ASSERT_EQ(to_device(self->fd, buf, out, 1ULL << 52, NULL), -EINVAL);
	ASSERT_EQ(to_device(self->fd, buf, out, (1ULL << 52) + 1, NULL),
		  -EINVAL);
	ASSERT_EQ(to_device(self->fd, buf, out, ~0ULL, NULL), -EINVAL);
	/* Fits, but covers far more than is mapped. */
	ASSERT_EQ(to_device(self->fd, buf, out, 1ULL << 30, NULL), -EINVAL);
	ASSERT_EQ(to_system(self->fd, buf, 1ULL << 30, NULL), -EINVAL);

	free(out);
	munmap(buf, bytes);
}

TEST_F(hmm, bad_wrapping_range)
{
	uintptr_t top = ~(uintptr_t)0 & ~(uintptr_t)(self->ps - 1);
	char out[64];

	ASSERT_EQ(to_device(self->fd, (void *)top, out, 2, NULL), -EINVAL);
	ASSERT_EQ(to_system(self->fd, (void *)top, 2, NULL), -EINVAL);
	ASSERT_EQ(to_device(self->fd, (void *)(top - self->ps), out, 3, NULL),
		  -EINVAL);
}

TEST_F(hmm, bad_unmapped_range)
{
	unsigned long bytes = 8 * self->ps;
	char *buf, *out;

	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	ASSERT_EQ(munmap(buf, bytes), 0);

	ASSERT_EQ(to_device(self->fd, buf, out, 8, NULL), -EINVAL);
	ASSERT_EQ(to_system(self->fd, buf, 8, NULL), -EINVAL);
	free(out);
}

/* Unknown ioctl numbers, including a known number with a wrong size. */
TEST_F(hmm, bad_ioctl_number)
{
	struct hmm_dmirror_cmd cmd;
	char *buf;

	buf = map_anon(self->ps, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	memset(&cmd, 0, sizeof(cmd));
	cmd.addr = (uintptr_t)buf;
	cmd.npages = 1;

	ASSERT_EQ(ioctl(self->fd, _IOWR('H', 0x3f, struct hmm_dmirror_cmd),
			&cmd), -1);
	ASSERT_EQ(errno, EINVAL);
	ASSERT_EQ(ioctl(self->fd, _IOWR('H', 0x02, uint64_t), &cmd), -1);
	ASSERT_EQ(errno, EINVAL);
	ASSERT_EQ(ioctl(self->fd, _IOWR('Z', 0x02, struct hmm_dmirror_cmd),
			&cmd), -1);
	ASSERT_EQ(errno, EINVAL);
	munmap(buf, self->ps);
}

/* The command itself cannot be read: EFAULT. */
TEST_F(hmm, bad_cmd_pointer)
{
	ASSERT_EQ(ioctl(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, NULL), -1);
	ASSERT_EQ(errno, EFAULT);
	ASSERT_EQ(ioctl(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, (void *)8), -1);
	ASSERT_EQ(errno, EFAULT);
}

/*
 * The data cannot be copied out after a migration: EFAULT.  The migration
 * itself happened, and the pages still come back to the CPU intact.
 */
TEST_F(hmm, bad_output_pointer)
{
	unsigned long n = 16, bytes = n * self->ps;
	char *buf;

	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	fill(buf, bytes, 81);

	ASSERT_EQ(to_device(self->fd, buf, NULL, n, NULL), -EFAULT);
	ASSERT_EQ(count_on_device(buf, n), n);
	ASSERT_EQ(verify(buf, bytes, 81), -1);
	munmap(buf, bytes);
}

/* ---------------------------------------------------------------------------
 * Device access in place: HMM_DMIRROR_READ and HMM_DMIRROR_WRITE mirror our
 * page table with hmm_range_fault() and copy through it.  cpages counts the
 * pages copied, faults the times the device missed in its page table (each
 * miss faults in everything up to the end of the range).
 */

/*
 * The device reads anonymous memory: a page never touched, a page mapping
 * the zero page and pages with data.  The first read takes one fault for
 * the whole range, a second read none; the untouched page got the zero
 * page, read-only, and nothing was written.
 */
TEST_F(hmm, device_read_anon)
{
	unsigned long n = 64, bytes = n * self->ps;
	struct hmm_dmirror_cmd cmd;
	unsigned char prot[64];
	char *buf, *out;

	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	madvise(buf, bytes, MADV_NOHUGEPAGE);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	ASSERT_EQ(touch_read(buf + self->ps), 0);
	fill(buf + 2 * self->ps, bytes - 2 * self->ps, 200);
	ASSERT_EQ(count_pagemap(buf, 1, PM_PRESENT, 0), 1);

	memset(out, 0x5a, bytes);
	ASSERT_EQ(dev_read(self->fd, buf, out, n, &cmd), 0);
	ASSERT_EQ(cmd.cpages, n);
	ASSERT_EQ(cmd.faults, 1);
	ASSERT_TRUE(all_zero(out, 2 * self->ps));
	ASSERT_EQ(verify(out + 2 * self->ps, bytes - 2 * self->ps, 200), -1);

	memset(out, 0x5a, bytes);
	ASSERT_EQ(dev_read(self->fd, buf, out, n, &cmd), 0);
	ASSERT_EQ(cmd.cpages, n);
	ASSERT_EQ(cmd.faults, 0);
	ASSERT_TRUE(all_zero(out, 2 * self->ps));
	ASSERT_EQ(verify(out + 2 * self->ps, bytes - 2 * self->ps, 200), -1);

	ASSERT_EQ(dev_snapshot(self->fd, buf, prot, n), 0);
	ASSERT_EQ(prot[0], HMM_DMIRROR_PROT_ZERO | HMM_DMIRROR_PROT_READ);
	ASSERT_EQ(prot[1], HMM_DMIRROR_PROT_ZERO | HMM_DMIRROR_PROT_READ);
	ASSERT_EQ(count_other(prot + 2, n - 2, HMM_DMIRROR_PROT_WRITE), 0);
	ASSERT_EQ(verify(buf + 2 * self->ps, bytes - 2 * self->ps, 200), -1);

	free(out);
	munmap(buf, bytes);
}

/*
 * The device writes anonymous memory the CPU never touched: one fault for
 * the range and the CPU reads the data.  The entries mirrored by that
 * write serve the next write and a read without any fault.
 */
TEST_F(hmm, device_write_anon)
{
	unsigned long n = 64, bytes = n * self->ps;
	struct hmm_dmirror_cmd cmd;
	char *buf, *in, *out;

	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	in = malloc(bytes);
	ASSERT_NE(in, NULL);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);

	fill(in, bytes, 201);
	ASSERT_EQ(dev_write(self->fd, buf, in, n, &cmd), 0);
	ASSERT_EQ(cmd.cpages, n);
	ASSERT_EQ(cmd.faults, 1);
	ASSERT_EQ(verify(buf, bytes, 201), -1);

	fill(in, bytes, 202);
	ASSERT_EQ(dev_write(self->fd, buf, in, n, &cmd), 0);
	ASSERT_EQ(cmd.cpages, n);
	ASSERT_EQ(cmd.faults, 0);
	ASSERT_EQ(verify(buf, bytes, 202), -1);

	ASSERT_EQ(dev_read(self->fd, buf, out, n, &cmd), 0);
	ASSERT_EQ(cmd.cpages, n);
	ASSERT_EQ(cmd.faults, 0);
	ASSERT_EQ(verify(out, bytes, 202), -1);

	free(out);
	free(in);
	munmap(buf, bytes);
}

/*
 * The zero page is never writable: after a device read of untouched memory
 * (which mirrors the zero page, read-only), a device write faults again,
 * for writing, and gets pages of its own.
 */
TEST_F(hmm, device_write_after_zero_page_read)
{
	unsigned long n = 32, bytes = n * self->ps;
	struct hmm_dmirror_cmd cmd;
	unsigned char prot[32];
	char *buf, *in, *out;

	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	madvise(buf, bytes, MADV_NOHUGEPAGE);
	in = malloc(bytes);
	ASSERT_NE(in, NULL);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);

	memset(out, 0x5a, bytes);
	ASSERT_EQ(dev_read(self->fd, buf, out, n, &cmd), 0);
	ASSERT_EQ(cmd.faults, 1);
	ASSERT_TRUE(all_zero(out, bytes));
	ASSERT_EQ(dev_snapshot(self->fd, buf, prot, n), 0);
	ASSERT_EQ(count_other(prot, n, HMM_DMIRROR_PROT_ZERO |
				       HMM_DMIRROR_PROT_READ), 0);

	fill(in, bytes, 203);
	ASSERT_EQ(dev_write(self->fd, buf, in, n, &cmd), 0);
	ASSERT_EQ(cmd.cpages, n);
	ASSERT_EQ(cmd.faults, 1);
	ASSERT_EQ(verify(buf, bytes, 203), -1);
	ASSERT_EQ(dev_snapshot(self->fd, buf, prot, n), 0);
	ASSERT_EQ(count_other(prot, n, HMM_DMIRROR_PROT_WRITE), 0);

	free(out);
	free(in);
	munmap(buf, bytes);
}

/*
 * PROT_NONE memory: device reads and writes fail with EFAULT and change
 * neither side, the snapshot reports every page as ERROR.  Readable again,
 * the memory is read normally.
 */
TEST_F(hmm, device_access_prot_none)
{
	unsigned long n = 32, bytes = n * self->ps;
	struct hmm_dmirror_cmd cmd;
	unsigned char prot[32];
	char *buf, *in, *out;
	unsigned long i;

	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	in = malloc(bytes);
	ASSERT_NE(in, NULL);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	fill(buf, bytes, 204);
	ASSERT_EQ(mprotect(buf, bytes, PROT_NONE), 0);

	memset(out, 0xa5, bytes);
	ASSERT_EQ(dev_read(self->fd, buf, out, n, NULL), -EFAULT);
	for (i = 0; i < bytes; i++)
		ASSERT_EQ((unsigned char)out[i], 0xa5);
	fill(in, bytes, 205);
	ASSERT_EQ(dev_write(self->fd, buf, in, n, NULL), -EFAULT);
	ASSERT_EQ(dev_snapshot(self->fd, buf, prot, n), 0);
	ASSERT_EQ(count_other(prot, n, HMM_DMIRROR_PROT_ERROR), 0);

	ASSERT_EQ(mprotect(buf, bytes, PROT_READ), 0);
	ASSERT_EQ(verify(buf, bytes, 204), -1);
	ASSERT_EQ(dev_read(self->fd, buf, out, n, &cmd), 0);
	ASSERT_EQ(cmd.cpages, n);
	ASSERT_EQ(cmd.faults, 1);
	ASSERT_EQ(verify(out, bytes, 204), -1);

	free(out);
	free(in);
	munmap(buf, bytes);
}

/*
 * Read-only memory: the device reads it, but a device write is refused
 * with EPERM and changes nothing.  Made writable, the same write works.
 */
TEST_F(hmm, device_write_readonly)
{
	unsigned long n = 32, bytes = n * self->ps;
	struct hmm_dmirror_cmd cmd;
	char *buf, *in, *out;

	buf = map_anon(bytes, PROT_READ, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	in = malloc(bytes);
	ASSERT_NE(in, NULL);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);

	memset(out, 0x5a, self->ps);
	ASSERT_EQ(dev_read(self->fd, buf, out, 1, &cmd), 0);
	ASSERT_EQ(cmd.cpages, 1);
	ASSERT_EQ(cmd.faults, 1);
	ASSERT_TRUE(all_zero(out, self->ps));

	fill(in, bytes, 206);
	ASSERT_EQ(dev_write(self->fd, buf, in, n, NULL), -EPERM);
	ASSERT_TRUE(all_zero(buf, bytes));

	ASSERT_EQ(mprotect(buf, bytes, PROT_READ | PROT_WRITE), 0);
	ASSERT_EQ(dev_write(self->fd, buf, in, n, &cmd), 0);
	ASSERT_EQ(cmd.cpages, n);
	ASSERT_EQ(cmd.faults, 1);
	ASSERT_EQ(verify(buf, bytes, 206), -1);

	free(out);
	free(in);
	munmap(buf, bytes);
}

/* ---------------------------------------------------------------------------
 * Keeping the mirror coherent with the CPU page table
 */

/*
 * mprotect(PROT_READ) takes write access away from the device too: its
 * writable entries are gone, a device write is refused with EPERM and
 * leaves the data alone, and a device read has to fault again.
 */
TEST_F(hmm, device_write_after_mprotect)
{
	unsigned long n = 32, bytes = n * self->ps;
	struct hmm_dmirror_cmd cmd;
	unsigned char prot[32];
	char *buf, *in, *out;

	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	in = malloc(bytes);
	ASSERT_NE(in, NULL);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);

	fill(in, bytes, 207);
	ASSERT_EQ(dev_write(self->fd, buf, in, n, &cmd), 0);
	ASSERT_EQ(cmd.faults, 1);
	ASSERT_EQ(mprotect(buf, bytes, PROT_READ), 0);

	fill(in, bytes, 208);
	ASSERT_EQ(dev_write(self->fd, buf, in, n, NULL), -EPERM);
	ASSERT_EQ(verify(buf, bytes, 207), -1);
	ASSERT_EQ(dev_read(self->fd, buf, out, n, &cmd), 0);
	ASSERT_EQ(cmd.cpages, n);
	ASSERT_EQ(cmd.faults, 1);
	ASSERT_EQ(verify(out, bytes, 207), -1);
	ASSERT_EQ(dev_snapshot(self->fd, buf, prot, n), 0);
	ASSERT_EQ(count_other(prot, n, HMM_DMIRROR_PROT_READ), 0);

	free(out);
	free(in);
	munmap(buf, bytes);
}

/*
 * MADV_DONTNEED throws the pages away: the device must not go on reading
 * them.  Its next read faults and sees zeroes.
 */
TEST_F(hmm, device_read_after_dontneed)
{
	unsigned long n = 32, bytes = n * self->ps;
	struct hmm_dmirror_cmd cmd;
	char *buf, *out;

	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	madvise(buf, bytes, MADV_NOHUGEPAGE);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	fill(buf, bytes, 209);

	ASSERT_EQ(dev_read(self->fd, buf, out, n, &cmd), 0);
	ASSERT_EQ(cmd.faults, 1);
	ASSERT_EQ(verify(out, bytes, 209), -1);

	ASSERT_EQ(madvise(buf, bytes, MADV_DONTNEED), 0);
	memset(out, 0x5a, bytes);
	ASSERT_EQ(dev_read(self->fd, buf, out, n, &cmd), 0);
	ASSERT_EQ(cmd.cpages, n);
	ASSERT_EQ(cmd.faults, 1);
	ASSERT_TRUE(all_zero(out, bytes));

	free(out);
	munmap(buf, bytes);
}

/*
 * Device and CPU share the pages: CPU stores show up in device reads and
 * device stores in CPU loads, with no fault once the range is mirrored.
 */
TEST_F(hmm, device_and_cpu_share_pages)
{
	unsigned long n = 32, bytes = n * self->ps;
	struct hmm_dmirror_cmd cmd;
	char *buf, *in, *out;

	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	madvise(buf, bytes, MADV_NOHUGEPAGE);
	in = malloc(bytes);
	ASSERT_NE(in, NULL);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);

	fill(buf, bytes, 210);
	ASSERT_EQ(dev_read(self->fd, buf, out, n, &cmd), 0);
	ASSERT_EQ(cmd.faults, 1);
	ASSERT_EQ(verify(out, bytes, 210), -1);

	fill(buf, bytes, 211);
	ASSERT_EQ(dev_read(self->fd, buf, out, n, &cmd), 0);
	ASSERT_EQ(cmd.faults, 0);
	ASSERT_EQ(verify(out, bytes, 211), -1);

	fill(in, bytes, 212);
	ASSERT_EQ(dev_write(self->fd, buf, in, n, &cmd), 0);
	ASSERT_EQ(cmd.faults, 0);
	ASSERT_EQ(verify(buf, bytes, 212), -1);

	free(out);
	free(in);
	munmap(buf, bytes);
}

/*
 * fork() makes private memory copy-on-write, for the device as well: the
 * parent's device write after the fork faults and copies the pages, so the
 * child keeps the data of fork time; the child's device writes, through a
 * mirror of its own, are not seen by the parent.
 */
TEST_F(hmm, device_write_after_fork)
{
	unsigned long n = 32, bytes = n * self->ps;
	struct hmm_dmirror_cmd cmd;
	char *buf, *in, *out;
	int go[2];
	pid_t pid;

	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	in = malloc(bytes);
	ASSERT_NE(in, NULL);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	fill(buf, bytes, 213);
	/* Writable device entries before the fork. */
	ASSERT_EQ(dev_read(self->fd, buf, out, n, &cmd), 0);
	ASSERT_EQ(cmd.faults, 1);
	ASSERT_EQ(pipe(go), 0);

	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		char c;
		int fd;

		close(go[1]);
		if (read(go[0], &c, 1) != 1)
			_exit(2);
		if (verify(buf, bytes, 213) != -1)
			_exit(3);
		fd = open_unit(self->unit);
		if (fd < 0)
			_exit(4);
		fill(in, bytes, 215);
		if (dev_write(fd, buf, in, n, &cmd) || cmd.cpages != n ||
		    cmd.faults != 1)
			_exit(5);
		if (verify(buf, bytes, 215) != -1)
			_exit(6);
		close(fd);
		_exit(0);
	}

	close(go[0]);
	fill(in, bytes, 214);
	ASSERT_EQ(dev_write(self->fd, buf, in, n, &cmd), 0);
	ASSERT_EQ(cmd.cpages, n);
	ASSERT_EQ(cmd.faults, 1);
	ASSERT_EQ(verify(buf, bytes, 214), -1);
	ASSERT_EQ(write(go[1], "x", 1), 1);
	close(go[1]);
	ASSERT_EQ(reap(pid), 0);
	ASSERT_EQ(verify(buf, bytes, 214), -1);

	free(out);
	free(in);
	munmap(buf, bytes);
}

/*
 * Shared anonymous memory is one set of pages for parent and child: what
 * the child's device writes, the parent reads on the CPU and through its
 * own device, whose entries still point at the right pages.
 */
TEST_F(hmm, device_write_shared_anon_child)
{
	unsigned long n = 32, bytes = n * self->ps;
	struct hmm_dmirror_cmd cmd;
	char *buf, *in, *out;
	pid_t pid;

	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_SHARED);
	ASSERT_NE(buf, MAP_FAILED);
	in = malloc(bytes);
	ASSERT_NE(in, NULL);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	fill(buf, bytes, 216);
	ASSERT_EQ(dev_read(self->fd, buf, out, n, &cmd), 0);
	ASSERT_EQ(cmd.faults, 1);
	ASSERT_EQ(verify(out, bytes, 216), -1);

	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		int fd = open_unit(self->unit);

		if (fd < 0)
			_exit(2);
		fill(in, bytes, 217);
		if (dev_write(fd, buf, in, n, &cmd) || cmd.cpages != n ||
		    cmd.faults != 1)
			_exit(3);
		close(fd);
		_exit(0);
	}
	ASSERT_EQ(reap(pid), 0);

	ASSERT_EQ(verify(buf, bytes, 217), -1);
	ASSERT_EQ(dev_read(self->fd, buf, out, n, &cmd), 0);
	ASSERT_EQ(cmd.cpages, n);
	ASSERT_EQ(cmd.faults, 0);
	ASSERT_EQ(verify(out, bytes, 217), -1);

	free(out);
	free(in);
	munmap(buf, bytes);
}

/* ---------------------------------------------------------------------------
 * Huge pages, files and special mappings
 */

/*
 * A transparent huge page is reported with PMD order for every one of its
 * base pages and is read and written in place; after mprotect(PROT_READ)
 * it is reported read-only and device writes are refused.
 */
TEST_F(hmm, device_access_thp)
{
	unsigned long bytes = SZ_2M, n = bytes / self->ps;
	struct hmm_dmirror_cmd cmd;
	unsigned char *prot;
	char *buf, *in, *out;

	if (!thp_possible())
		SKIP(return, "transparent huge pages are disabled");
	buf = map_aligned(bytes, SZ_2M);
	ASSERT_NE(buf, MAP_FAILED);
	ASSERT_EQ(madvise(buf, bytes, MADV_HUGEPAGE), 0);
	fill(buf, bytes, 218);
	if (smaps_kb(buf, "AnonHugePages:") < (long)(SZ_2M >> 10))
		SKIP(return, "no huge page could be allocated");
	prot = malloc(n);
	ASSERT_NE(prot, NULL);
	in = malloc(bytes);
	ASSERT_NE(in, NULL);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);

	ASSERT_EQ(dev_snapshot(self->fd, buf, prot, n), 0);
	ASSERT_EQ(count_other(prot, n, HMM_DMIRROR_PROT_WRITE |
				       HMM_DMIRROR_PROT_PMD), 0);

	ASSERT_EQ(dev_read(self->fd, buf, out, n, &cmd), 0);
	ASSERT_EQ(cmd.cpages, n);
	ASSERT_EQ(cmd.faults, 1);
	ASSERT_EQ(verify(out, bytes, 218), -1);
	fill(in, bytes, 219);
	ASSERT_EQ(dev_write(self->fd, buf, in, n, &cmd), 0);
	ASSERT_EQ(cmd.cpages, n);
	ASSERT_EQ(cmd.faults, 0);
	ASSERT_EQ(verify(buf, bytes, 219), -1);

	ASSERT_EQ(mprotect(buf, bytes, PROT_READ), 0);
	ASSERT_EQ(dev_snapshot(self->fd, buf, prot, n), 0);
	ASSERT_EQ(count_other(prot, n, HMM_DMIRROR_PROT_READ |
				       HMM_DMIRROR_PROT_PMD), 0);
	ASSERT_EQ(dev_write(self->fd, buf, in, n, NULL), -EPERM);
	ASSERT_EQ(verify(buf, bytes, 219), -1);
	/* None of it split the huge page. */
	ASSERT_GE(smaps_kb(buf, "AnonHugePages:"), (long)(SZ_2M >> 10));

	free(out);
	free(in);
	free(prot);
	munmap(buf, bytes);
}

/*
 * A device write to an untouched MADV_HUGEPAGE region faults it in, with a
 * huge page when one can be had, and the CPU reads what the device wrote.
 */
TEST_F(hmm, device_write_fresh_thp)
{
	unsigned long bytes = SZ_2M, n = bytes / self->ps;
	struct hmm_dmirror_cmd cmd;
	unsigned char *prot, level;
	char *buf, *in;

	buf = map_aligned(bytes, SZ_2M);
	ASSERT_NE(buf, MAP_FAILED);
	madvise(buf, bytes, MADV_HUGEPAGE);
	prot = malloc(n);
	ASSERT_NE(prot, NULL);
	in = malloc(bytes);
	ASSERT_NE(in, NULL);

	fill(in, bytes, 220);
	ASSERT_EQ(dev_write(self->fd, buf, in, n, &cmd), 0);
	ASSERT_EQ(cmd.cpages, n);
	ASSERT_EQ(cmd.faults, 1);
	ASSERT_EQ(verify(buf, bytes, 220), -1);

	ASSERT_EQ(dev_snapshot(self->fd, buf, prot, n), 0);
	level = 0;
	if (smaps_kb(buf, "AnonHugePages:") >= (long)(SZ_2M >> 10))
		level = HMM_DMIRROR_PROT_PMD;
	ASSERT_EQ(count_other(prot, n, HMM_DMIRROR_PROT_WRITE | level), 0);

	free(in);
	free(prot);
	munmap(buf, bytes);
}

/*
 * hugetlbfs: a huge page is written and read by the device and reported
 * with the order of its size (PMD for 2 MiB, PUD for 1 GiB); read-only
 * after mprotect().
 */
TEST_F(hmm, device_access_hugetlbfs)
{
	long hsize = meminfo_value("Hugepagesize:") * 1024;
	unsigned long bytes, n;
	struct hmm_dmirror_cmd cmd;
	unsigned char *prot, level;
	char *buf, *in, *out;

	if (hsize <= 0 || meminfo_value("HugePages_Free:") < 1)
		SKIP(return, "no free hugetlbfs page");
	if (hsize == (long)SZ_2M)
		level = HMM_DMIRROR_PROT_PMD;
	else if (hsize == 1L << 30)
		level = HMM_DMIRROR_PROT_PUD;
	else
		SKIP(return, "huge page size %ld kB not handled", hsize >> 10);
	bytes = hsize;
	n = bytes / self->ps;
	buf = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	if (buf == MAP_FAILED)
		SKIP(return, "cannot map a hugetlbfs page");
	prot = malloc(n);
	ASSERT_NE(prot, NULL);
	in = malloc(bytes);
	ASSERT_NE(in, NULL);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);

	fill(in, bytes, 221);
	ASSERT_EQ(dev_write(self->fd, buf, in, n, &cmd), 0);
	ASSERT_EQ(cmd.cpages, n);
	ASSERT_EQ(cmd.faults, 1);
	ASSERT_EQ(verify(buf, bytes, 221), -1);

	ASSERT_EQ(dev_snapshot(self->fd, buf, prot, n), 0);
	ASSERT_EQ(count_other(prot, n, HMM_DMIRROR_PROT_WRITE | level), 0);
	ASSERT_EQ(dev_read(self->fd, buf, out, n, &cmd), 0);
	ASSERT_EQ(cmd.cpages, n);
	ASSERT_EQ(cmd.faults, 0);
	ASSERT_EQ(verify(out, bytes, 221), -1);

	ASSERT_EQ(mprotect(buf, bytes, PROT_READ), 0);
	ASSERT_EQ(dev_snapshot(self->fd, buf, prot, n), 0);
	ASSERT_EQ(count_other(prot, n, HMM_DMIRROR_PROT_READ | level), 0);
	ASSERT_EQ(dev_write(self->fd, buf, in, n, NULL), -EPERM);

	free(out);
	free(in);
	free(prot);
	munmap(buf, bytes);
}

/* The device reads a shared file mapping (tmpfs) in place. */
TEST_F(hmm, device_read_file)
{
	unsigned long n = 32, bytes = n * self->ps;
	struct hmm_dmirror_cmd cmd;
	unsigned char prot[32];
	char *buf, *out;
	int fd;

	fd = tmp_file(bytes, 222);
	if (fd < 0)
		SKIP(return, "no O_TMPFILE support in /tmp");
	buf = mmap(NULL, bytes, PROT_READ, MAP_SHARED, fd, 0);
	ASSERT_NE(buf, MAP_FAILED);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);

	ASSERT_EQ(dev_read(self->fd, buf, out, n, &cmd), 0);
	ASSERT_EQ(cmd.cpages, n);
	ASSERT_EQ(cmd.faults, 1);
	ASSERT_EQ(verify(out, bytes, 222), -1);
	ASSERT_EQ(dev_snapshot(self->fd, buf, prot, n), 0);
	ASSERT_EQ(count_other(prot, n, HMM_DMIRROR_PROT_READ), 0);

	free(out);
	munmap(buf, bytes);
	close(fd);
}

/*
 * The device writes a shared file mapping: the data is in the file.  In a
 * private mapping of the file, device writes copy on write instead and
 * the file keeps its data.
 */
TEST_F(hmm, device_write_file)
{
	unsigned long n = 32, bytes = n * self->ps;
	struct hmm_dmirror_cmd cmd;
	char *shared, *priv, *in;
	int fd;

	fd = tmp_file(bytes, 223);
	if (fd < 0)
		SKIP(return, "no O_TMPFILE support in /tmp");
	shared = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ASSERT_NE(shared, MAP_FAILED);
	priv = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	ASSERT_NE(priv, MAP_FAILED);
	in = malloc(bytes);
	ASSERT_NE(in, NULL);

	fill(in, bytes, 224);
	ASSERT_EQ(dev_write(self->fd, shared, in, n, &cmd), 0);
	ASSERT_EQ(cmd.cpages, n);
	ASSERT_EQ(cmd.faults, 1);
	ASSERT_EQ(verify(shared, bytes, 224), -1);
	ASSERT_EQ(pread(fd, in, bytes, 0), (ssize_t)bytes);
	ASSERT_EQ(verify(in, bytes, 224), -1);

	/* The private mapping reads the file, then copies on write. */
	ASSERT_EQ(verify(priv, bytes, 224), -1);
	fill(in, bytes, 225);
	ASSERT_EQ(dev_write(self->fd, priv, in, n, &cmd), 0);
	ASSERT_EQ(cmd.cpages, n);
	ASSERT_EQ(cmd.faults, 1);
	ASSERT_EQ(verify(priv, bytes, 225), -1);
	ASSERT_EQ(count_pagemap(priv, n, PM_PRESENT | PM_FILE, PM_PRESENT), n);
	ASSERT_EQ(pread(fd, in, bytes, 0), (ssize_t)bytes);
	ASSERT_EQ(verify(in, bytes, 224), -1);
	ASSERT_EQ(verify(shared, bytes, 224), -1);

	free(in);
	munmap(priv, bytes);
	munmap(shared, bytes);
	close(fd);
}

/*
 * A VM_MIXEDMAP mapping: mmap() of the device file inserts zeroed kernel
 * pages, read-only in a private mapping.  The device snapshots and reads
 * them, and its write copies them on write as a CPU write would.
 */
TEST_F(hmm, device_access_mixedmap)
{
	unsigned long n = 4, bytes = n * self->ps;
	struct hmm_dmirror_cmd cmd;
	unsigned char prot[4];
	char *buf, *in, *out;

	buf = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE,
		   self->fd, 0);
	ASSERT_NE(buf, MAP_FAILED);
	in = malloc(bytes);
	ASSERT_NE(in, NULL);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);

	ASSERT_EQ(dev_snapshot(self->fd, buf, prot, n), 0);
	ASSERT_EQ(count_other(prot, n, HMM_DMIRROR_PROT_READ), 0);
	memset(out, 0x5a, bytes);
	ASSERT_EQ(dev_read(self->fd, buf, out, n, &cmd), 0);
	ASSERT_EQ(cmd.cpages, n);
	ASSERT_EQ(cmd.faults, 1);
	ASSERT_TRUE(all_zero(out, bytes));

	fill(in, bytes, 226);
	ASSERT_EQ(dev_write(self->fd, buf, in, n, &cmd), 0);
	ASSERT_EQ(cmd.cpages, n);
	ASSERT_EQ(cmd.faults, 1);
	ASSERT_EQ(verify(buf, bytes, 226), -1);
	ASSERT_EQ(dev_snapshot(self->fd, buf, prot, n), 0);
	ASSERT_EQ(count_other(prot, n, HMM_DMIRROR_PROT_WRITE), 0);

	free(out);
	free(in);
	munmap(buf, bytes);
}

/*
 * VM_IO | VM_PFNMAP memory (the vDSO data page, "[vvar]") has no pages the
 * device may use: the snapshot reports ERROR, reads and writes fail with
 * EFAULT.
 */
TEST_F(hmm, device_access_pfnmap)
{
	uintptr_t start, end;
	unsigned char prot[1];
	char *out;

	if (!find_mapping("[vvar]", &start, &end))
		SKIP(return, "no [vvar] mapping");
	out = malloc(self->ps);
	ASSERT_NE(out, NULL);

	ASSERT_EQ(dev_snapshot(self->fd, (void *)start, prot, 1), 0);
	ASSERT_EQ(prot[0], HMM_DMIRROR_PROT_ERROR);
	ASSERT_EQ(dev_read(self->fd, (void *)start, out, 1, NULL), -EFAULT);
	ASSERT_EQ(dev_write(self->fd, (void *)start, out, 1, NULL), -EFAULT);

	free(out);
}

/* ---------------------------------------------------------------------------
 * The device and its own memory
 */

/*
 * Pages in this device's memory are read and written by the device where
 * they are, through the records of the migration: no fault, nothing comes
 * back to system memory.  The CPU then sees what the device wrote.
 */
TEST_F(hmm, device_access_own_pages)
{
	unsigned long n = 32, bytes = n * self->ps;
	struct hmm_dmirror_cmd cmd;
	char *buf, *in, *out;
	uint64_t cpages;
	long on_dev;

	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	in = malloc(bytes);
	ASSERT_NE(in, NULL);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	fill(buf, bytes, 227);
	ASSERT_EQ(to_device(self->fd, buf, out, n, &cpages), 0);
	ASSERT_EQ(cpages, n);
	on_dev = pages_on_unit(self->unit);
	ASSERT_GE(on_dev, (long)n);

	memset(out, 0, bytes);
	ASSERT_EQ(dev_read(self->fd, buf, out, n, &cmd), 0);
	ASSERT_EQ(cmd.cpages, n);
	ASSERT_EQ(cmd.faults, 0);
	ASSERT_EQ(verify(out, bytes, 227), -1);

	fill(in, bytes, 228);
	ASSERT_EQ(dev_write(self->fd, buf, in, n, &cmd), 0);
	ASSERT_EQ(cmd.cpages, n);
	ASSERT_EQ(cmd.faults, 0);
	ASSERT_EQ(pages_on_unit(self->unit), on_dev);
	ASSERT_EQ(count_on_device(buf, n), n);

	/* The CPU faults device-private pages back, reads coherent ones. */
	ASSERT_EQ(verify(buf, bytes, 228), -1);
	ASSERT_EQ(pages_on_unit(self->unit),
		  on_dev - (self->coherent ? 0 : (long)n));

	free(out);
	free(in);
	munmap(buf, bytes);
}

/*
 * With the migration records gone (mprotect() invalidated them), the
 * device faults and hmm_range_fault() reports its own pages, read-only:
 * they are read in place, nothing moves, the snapshot shows them as this
 * device's, and a device write is refused.  Once the mapping is writable
 * again, a device write brings device-private pages back to system memory
 * and writes there; device-coherent pages are made writable in place by
 * the write fault, as system memory would be.
 */
TEST_F(hmm, device_access_own_readonly_pages)
{
	unsigned long n = 32, bytes = n * self->ps;
	struct hmm_dmirror_cmd cmd;
	unsigned char prot[32];
	char *buf, *in, *out;
	uint64_t cpages;
	long on_dev, calls;

	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	in = malloc(bytes);
	ASSERT_NE(in, NULL);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	fill(buf, bytes, 229);
	ASSERT_EQ(to_device(self->fd, buf, out, n, &cpages), 0);
	ASSERT_EQ(cpages, n);
	on_dev = pages_on_unit(self->unit);
	ASSERT_EQ(mprotect(buf, bytes, PROT_READ), 0);

	memset(out, 0, bytes);
	ASSERT_EQ(dev_read(self->fd, buf, out, n, &cmd), 0);
	ASSERT_EQ(cmd.cpages, n);
	ASSERT_EQ(cmd.faults, 1);
	ASSERT_EQ(verify(out, bytes, 229), -1);
	ASSERT_EQ(dev_snapshot(self->fd, buf, prot, n), 0);
	ASSERT_EQ(count_other(prot, n, prot_local(self->coherent) |
				       HMM_DMIRROR_PROT_READ), 0);
	fill(in, bytes, 230);
	ASSERT_EQ(dev_write(self->fd, buf, in, n, NULL), -EPERM);
	ASSERT_EQ(pages_on_unit(self->unit), on_dev);
	ASSERT_EQ(count_on_device(buf, n), n);

	/*
	 * Writable VMA, read-only device entries: the driver unshares them
	 * itself; hmm_range_fault() never faults its own pages.
	 */
	ASSERT_EQ(mprotect(buf, bytes, PROT_READ | PROT_WRITE), 0);
	calls = cpu_faults_on_unit(self->unit);
	ASSERT_GE(calls, 0);
	ASSERT_EQ(dev_write(self->fd, buf, in, n, &cmd), 0);
	ASSERT_EQ(cmd.cpages, n);
	ASSERT_EQ(cmd.faults, 1);
	ASSERT_EQ(cpu_faults_on_unit(self->unit), calls);
	ASSERT_EQ(pages_on_unit(self->unit),
		  on_dev - (self->coherent ? 0 : (long)n));
	ASSERT_EQ(count_on_device(buf, n), self->coherent ? n : 0);
	ASSERT_EQ(verify(buf, bytes, 230), -1);

	free(out);
	free(in);
	munmap(buf, bytes);
}

/*
 * Any protection change of a range in device-private memory takes write
 * access away from the device entries, as 6.12 does, even one that keeps
 * PROT_WRITE: the device sees its pages read-only until the CPU writes
 * (and gets them back).  Soft-dirty tracking is not lost on the way.
 * Device-coherent pages are mapped by present PTEs, which such a change
 * leaves writable, as for system memory.
 */
TEST_F(hmm, protection_change_write_protects_device_pages)
{
	unsigned long n = 16, bytes = n * self->ps;
	unsigned char prot[16];
	uint64_t cpages;
	char *buf, *out;

	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	fill(buf, bytes, 235);
	ASSERT_EQ(to_device(self->fd, buf, out, n, &cpages), 0);
	ASSERT_EQ(cpages, n);
	ASSERT_EQ(dev_snapshot(self->fd, buf, prot, n), 0);
	ASSERT_EQ(count_other(prot, n, prot_local(self->coherent) |
				       HMM_DMIRROR_PROT_WRITE), 0);

	ASSERT_EQ(mprotect(buf, bytes, PROT_READ | PROT_WRITE | PROT_EXEC), 0);
	ASSERT_EQ(dev_snapshot(self->fd, buf, prot, n), 0);
	ASSERT_EQ(count_other(prot, n, prot_local(self->coherent) |
			      (self->coherent ? HMM_DMIRROR_PROT_WRITE :
						HMM_DMIRROR_PROT_READ)), 0);
	ASSERT_EQ(pages_on_unit(self->unit), (long)n);

	/* The CPU still writes: a device-private page comes back, writable. */
	fill(buf, bytes, 236);
	ASSERT_EQ(verify(buf, bytes, 236), -1);
	ASSERT_EQ(pages_on_unit(self->unit), self->coherent ? (long)n : 0);

	free(out);
	munmap(buf, bytes);
}

/*
 * A long-term pin (gup_test's PIN_LONGTERM_TEST, the kind RDMA or vfio
 * take) must not keep process memory in device memory, which its driver
 * must always be able to evict.  Device-coherent pages are migrated to
 * system memory before they are pinned, device-private ones faulted back;
 * the data is intact, and the pinned pages are the ones the process maps
 * (a CPU store after the pin is seen through them).  With and without
 * GUP-fast.
 */
TEST_F(hmm, longterm_pin_moves_device_pages)
{
	static const unsigned int flags[] = {
		PIN_LONGTERM_TEST_FLAG_USE_WRITE,
		PIN_LONGTERM_TEST_FLAG_USE_FAST,
	};
	unsigned long n = 16, bytes = n * self->ps;
	long before = pages_on_unit(self->unit);
	struct pin_longterm_test pin;
	char *buf, *out, *seen;
	unsigned int round;
	uint64_t cpages;
	__u64 dst;
	int gup;

	ASSERT_GE(before, 0);
	gup = open("/sys/kernel/debug/gup_test", O_RDWR | O_CLOEXEC);
	if (gup < 0)
		SKIP(return, "no /sys/kernel/debug/gup_test");
	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	seen = malloc(bytes);
	ASSERT_NE(seen, NULL);
	dst = (uintptr_t)seen;

	for (round = 0; round < 2; round++) {
		fill(buf, bytes, 280 + round);
		ASSERT_EQ(to_device(self->fd, buf, out, n, &cpages), 0);
		ASSERT_EQ(cpages, n);
		ASSERT_EQ(pages_on_unit(self->unit), before + (long)n);
		ASSERT_EQ(count_on_device(buf, n), n);

		pin = (struct pin_longterm_test) {
			.addr	= (uintptr_t)buf,
			.size	= bytes,
			.flags	= flags[round],
		};
		ASSERT_EQ(ioctl(gup, PIN_LONGTERM_TEST_START, &pin), 0);
		ASSERT_EQ(pages_on_unit(self->unit), before);
		ASSERT_EQ(count_in_system(buf, n), n);
		memset(seen, 0, bytes);
		ASSERT_EQ(ioctl(gup, PIN_LONGTERM_TEST_READ, &dst), 0);
		ASSERT_EQ(verify(seen, bytes, 280 + round), -1);
		fill(buf, bytes, 290 + round);
		ASSERT_EQ(ioctl(gup, PIN_LONGTERM_TEST_READ, &dst), 0);
		ASSERT_EQ(verify(seen, bytes, 290 + round), -1);
		ASSERT_EQ(ioctl(gup, PIN_LONGTERM_TEST_STOP), 0);
		ASSERT_EQ(verify(buf, bytes, 290 + round), -1);
	}

	close(gup);
	free(seen);
	free(out);
	munmap(buf, bytes);
}

/*
 * A read of /proc/self/mem reaches pages in device memory through
 * ordinary GUP (access_remote_vm(), as ptrace and process_vm_readv() do):
 * a device-coherent page is read where it is, a device-private one is
 * faulted back first.  The data read is intact either way.
 */
TEST_F(hmm, proc_mem_read_device_pages)
{
	unsigned long n = 16, bytes = n * self->ps;
	long before = pages_on_unit(self->unit);
	char *buf, *out, *seen;
	uint64_t cpages;
	int mem;

	ASSERT_GE(before, 0);
	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	seen = malloc(bytes);
	ASSERT_NE(seen, NULL);
	fill(buf, bytes, 285);
	ASSERT_EQ(to_device(self->fd, buf, out, n, &cpages), 0);
	ASSERT_EQ(cpages, n);
	ASSERT_EQ(pages_on_unit(self->unit), before + (long)n);

	mem = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
	ASSERT_GE(mem, 0);
	memset(seen, 0, bytes);
	ASSERT_EQ(pread(mem, seen, bytes, (uintptr_t)buf), (ssize_t)bytes);
	close(mem);
	ASSERT_EQ(verify(seen, bytes, 285), -1);
	ASSERT_EQ(pages_on_unit(self->unit),
		  before + (self->coherent ? (long)n : 0));
	ASSERT_EQ(count_on_device(buf, n), self->coherent ? n : 0);
	ASSERT_EQ(verify(buf, bytes, 285), -1);

	free(seen);
	free(out);
	munmap(buf, bytes);
}

static int sigbus_seen;

static void note_sigbus(int sig)
{
	__atomic_store_n(&sigbus_seen, 1, __ATOMIC_RELAXED);
}

/*
 * A poisoned page is reported as nothing mapped (0) by a snapshot, as
 * 6.12 does, and a device access that must fault it fails with -EFAULT.
 * Poisoning a page we map sends us SIGBUS (the injection counts as an
 * access): it is caught.
 */
TEST_F(hmm, snapshot_poisoned_page)
{
	unsigned long n = 2, bytes = n * self->ps;
	struct sigaction sa = { .sa_handler = note_sigbus };
	unsigned char prot[2];
	char *buf, *in;

	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	in = malloc(bytes);
	ASSERT_NE(in, NULL);
	fill(buf, bytes, 237);
	sigemptyset(&sa.sa_mask);
	ASSERT_EQ(sigaction(SIGBUS, &sa, NULL), 0);
	if (madvise(buf, self->ps, MADV_HWPOISON))
		SKIP(return, "MADV_HWPOISON: %s", strerror(errno));

	ASSERT_EQ(dev_snapshot(self->fd, buf, prot, n), 0);
	ASSERT_EQ(prot[0], HMM_DMIRROR_PROT_NONE);
	ASSERT_EQ(prot[1], HMM_DMIRROR_PROT_WRITE);
	ASSERT_EQ(dev_read(self->fd, buf, in, 1, NULL), -EFAULT);
	ASSERT_EQ(dev_read(self->fd, buf + self->ps, in, 1, NULL), 0);

	free(in);
	munmap(buf, bytes);
}

/*
 * fork() with pages in this device's memory makes them read-only in both
 * processes: a device write in the parent copies them first, and the
 * child keeps the data of fork time.
 */
TEST_F(hmm, device_write_own_pages_after_fork)
{
	unsigned long n = 32, bytes = n * self->ps;
	struct hmm_dmirror_cmd cmd;
	char *buf, *in, *out;
	uint64_t cpages;
	long calls;
	int go[2];
	pid_t pid;

	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	in = malloc(bytes);
	ASSERT_NE(in, NULL);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	fill(buf, bytes, 233);
	ASSERT_EQ(to_device(self->fd, buf, out, n, &cpages), 0);
	ASSERT_EQ(cpages, n);
	ASSERT_EQ(pipe(go), 0);

	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		char c;

		close(go[1]);
		if (read(go[0], &c, 1) != 1)
			_exit(2);
		_exit(verify(buf, bytes, 233) == -1 ? 0 : 3);
	}

	close(go[0]);
	fill(in, bytes, 234);
	calls = cpu_faults_on_unit(self->unit);
	ASSERT_GE(calls, 0);
	ASSERT_EQ(dev_write(self->fd, buf, in, n, &cmd), 0);
	ASSERT_EQ(cmd.cpages, n);
	ASSERT_EQ(cmd.faults, 1);
	/*
	 * hmm_range_fault() reported our own read-only pages as they are,
	 * without faulting them back through migrate_to_ram(); the driver
	 * moved them itself.
	 */
	ASSERT_EQ(cpu_faults_on_unit(self->unit), calls);
	ASSERT_EQ(verify(buf, bytes, 234), -1);
	ASSERT_EQ(write(go[1], "x", 1), 1);
	close(go[1]);
	ASSERT_EQ(reap(pid), 0);
	ASSERT_EQ(verify(buf, bytes, 234), -1);

	free(out);
	free(in);
	munmap(buf, bytes);
}

/* ---------------------------------------------------------------------------
 * Races and teardown
 */

struct unmapper {
	char		*addr;
	size_t		bytes;
	unsigned int	delay_us;
};

static void *unmap_later(void *arg)
{
	struct unmapper *u = arg;

	usleep(u->delay_us);
	munmap(u->addr, u->bytes);
	return NULL;
}

/*
 * Half of the range is unmapped while the device reads it: the read
 * either completes with the right data or fails with EFAULT, never
 * returns data of pages already gone.
 */
TEST_F(hmm, device_read_racing_munmap)
{
	unsigned long n = 64, bytes = n * self->ps;
	struct hmm_dmirror_cmd cmd;
	unsigned int round;
	char *out;

	out = malloc(bytes);
	ASSERT_NE(out, NULL);

	for (round = 0; round < 16; round++) {
		struct unmapper u;
		pthread_t tid;
		char *buf;
		int ret;

		buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
		ASSERT_NE(buf, MAP_FAILED);
		fill(buf, bytes, 240 + round);
		u.addr = buf + bytes / 2;
		u.bytes = bytes / 2;
		u.delay_us = (round * 37) % 300;
		ASSERT_EQ(pthread_create(&tid, NULL, unmap_later, &u), 0);

		ret = dev_read(self->fd, buf, out, n, &cmd);
		if (ret) {
			ASSERT_EQ(ret, -EFAULT);
		} else {
			ASSERT_EQ(cmd.cpages, n);
			ASSERT_GE(cmd.faults, 1);
			ASSERT_EQ(verify(out, bytes, 240 + round), -1);
		}
		ASSERT_EQ(pthread_join(tid, NULL), 0);
		ASSERT_EQ(dev_read(self->fd, buf, out, n, NULL), -EFAULT);
		munmap(buf, bytes / 2);
	}

	free(out);
}

struct replacer {
	char		*buf;
	unsigned long	npages;
	unsigned long	ps;
	unsigned int	rounds;
	uint32_t	*committed;	/* seed in place once mremap() returned */
	uint32_t	*pending;	/* seed about to be put in place */
	int		done;
	int		error;
};

static void *replace_pages(void *arg)
{
	struct replacer *r = arg;
	unsigned int round;

	for (round = 0; round < r->rounds; round++) {
		unsigned long i = round % r->npages;
		uint32_t seed = 2 + round;
		char *page;

		page = map_anon(r->ps, PROT_READ | PROT_WRITE, MAP_PRIVATE);
		if (page == MAP_FAILED) {
			r->error = errno;
			break;
		}
		fill(page, r->ps, seed);
		__atomic_store_n(&r->pending[i], seed, __ATOMIC_SEQ_CST);
		if (mremap(page, r->ps, r->ps, MREMAP_MAYMOVE | MREMAP_FIXED,
			   r->buf + i * r->ps) == MAP_FAILED) {
			r->error = errno;
			break;
		}
		__atomic_store_n(&r->committed[i], seed, __ATOMIC_SEQ_CST);
		if (!(round % 4))
			usleep(20);
	}
	__atomic_store_n(&r->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

/*
 * Pages are replaced under the device's feet (mremap() of a freshly filled
 * page over each page in turn) while it reads them.  Every page the device
 * returns must be whole, and no older than the page in place when the read
 * started: a read never sees data the CPU page table had already dropped.
 */
TEST_F(hmm, device_read_racing_replacement)
{
	enum { NPAGES = 16, ROUNDS = 400, MAX_READS = 4000 };
	uint32_t committed[NPAGES], pending[NPAGES];
	uint32_t before[NPAGES], after[NPAGES];
	unsigned long bytes = NPAGES * self->ps;
	unsigned int reads = 0, busy = 0, i;
	struct hmm_dmirror_cmd cmd;
	struct replacer r;
	pthread_t tid;
	char *buf, *out;

	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	for (i = 0; i < NPAGES; i++) {
		fill(buf + i * self->ps, self->ps, 1);
		committed[i] = 1;
		pending[i] = 1;
	}
	memset(&r, 0, sizeof(r));
	r.buf = buf;
	r.npages = NPAGES;
	r.ps = self->ps;
	r.rounds = ROUNDS;
	r.committed = committed;
	r.pending = pending;
	ASSERT_EQ(pthread_create(&tid, NULL, replace_pages, &r), 0);

	while (!__atomic_load_n(&r.done, __ATOMIC_SEQ_CST) &&
	       reads + busy < MAX_READS) {
		int ret;

		for (i = 0; i < NPAGES; i++)
			before[i] = __atomic_load_n(&committed[i],
						    __ATOMIC_SEQ_CST);
		ret = dev_read(self->fd, buf, out, NPAGES, &cmd);
		for (i = 0; i < NPAGES; i++)
			after[i] = __atomic_load_n(&pending[i],
						   __ATOMIC_SEQ_CST);
		if (ret == -EBUSY) {
			busy++;
			continue;
		}
		ASSERT_EQ(ret, 0);
		ASSERT_EQ(cmd.cpages, NPAGES);
		for (i = 0; i < NPAGES; i++) {
			char *page = out + i * self->ps;
			uint32_t seed = page_seed(page);

			ASSERT_EQ(verify(page, self->ps, seed), -1)
				TH_LOG("page %u is torn", i);
			ASSERT_GE(seed, before[i])
				TH_LOG("page %u: stale seed %u, %u in place",
				       i, seed, before[i]);
			ASSERT_LE(seed, after[i]);
		}
		reads++;
	}
	ASSERT_EQ(pthread_join(tid, NULL), 0);
	ASSERT_EQ(r.error, 0);
	ASSERT_GT(reads, 0);

	/* Once quiet, the device reads exactly what the CPU has. */
	ASSERT_EQ(dev_read(self->fd, buf, out, NPAGES, &cmd), 0);
	for (i = 0; i < NPAGES; i++) {
		ASSERT_EQ(verify(out + i * self->ps, self->ps, committed[i]),
			  -1);
		ASSERT_EQ(verify(buf + i * self->ps, self->ps, committed[i]),
			  -1);
	}

	free(out);
	munmap(buf, bytes);
}

/*
 * A mirror whose process has gone: a descendant still holding the file
 * gets EFAULT from device reads and writes and EINVAL from snapshots and
 * migrations, and can close it.
 */
TEST_F(hmm, mirror_outlives_process)
{
	char res = 0;
	int result[2];
	pid_t pid;

	ASSERT_EQ(pipe(result), 0);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		unsigned long n = 16, bytes = n * psize();
		unsigned char prot[16];
		char *buf, *out, c, r = 'F';
		int alive[2], fd;
		pid_t gpid;

		close(result[0]);
		fd = open_unit(self->unit);
		buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
		out = malloc(bytes);
		if (fd < 0 || buf == MAP_FAILED || !out)
			_exit(2);
		fill(buf, bytes, 231);
		if (dev_read(fd, buf, out, n, NULL) ||
		    verify(out, bytes, 231) != -1 || pipe(alive))
			_exit(3);
		gpid = fork();
		if (gpid < 0)
			_exit(4);
		if (gpid) {
			/* Exit with the mirror populated. */
			_exit(0);
		}

		close(alive[1]);
		/* EOF once our parent has exited, its mm torn down. */
		if (read(alive[0], &c, 1) == 0 &&
		    dev_read(fd, buf, out, n, NULL) == -EFAULT &&
		    dev_write(fd, buf, out, n, NULL) == -EFAULT &&
		    dev_snapshot(fd, buf, prot, n) == -EINVAL &&
		    to_device(fd, buf, out, n, NULL) == -EINVAL &&
		    close(fd) == 0)
			r = 'P';
		if (write(result[1], &r, 1) != 1)
			_exit(5);
		_exit(0);
	}

	close(result[1]);
	ASSERT_EQ(reap(pid), 0);
	ASSERT_EQ(read(result[0], &res, 1), 1);
	ASSERT_EQ(res, 'P');
	close(result[0]);
}

/* ---------------------------------------------------------------------------
 * Bad input to READ, WRITE and SNAPSHOT
 */

/*
 * The range checks common to all commands, ranges running into unmapped
 * memory (EFAULT for accesses, ERROR bytes for a snapshot), and user
 * buffers that cannot be read or written (EFAULT).  Nothing changes.
 */
TEST_F(hmm, bad_mirror_commands)
{
	uintptr_t top = ~(uintptr_t)0 & ~(uintptr_t)(self->ps - 1);
	unsigned long n = 4, bytes = n * self->ps;
	unsigned char prot[8];
	char *buf, *out;

	/* Map one page more and unmap it: a gap right after the buffer. */
	buf = map_anon(bytes + self->ps, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	ASSERT_EQ(munmap(buf + bytes, self->ps), 0);
	madvise(buf, bytes, MADV_NOHUGEPAGE);
	out = malloc(bytes + self->ps);
	ASSERT_NE(out, NULL);
	fill(buf, bytes, 232);

	ASSERT_EQ(dev_read(self->fd, buf + 1, out, 1, NULL), -EINVAL);
	ASSERT_EQ(dev_write(self->fd, buf + 8, out, 1, NULL), -EINVAL);
	ASSERT_EQ(dev_snapshot(self->fd, buf + 16, prot, 1), -EINVAL);
	ASSERT_EQ(dev_read(self->fd, buf, out, 0, NULL), -EINVAL);
	ASSERT_EQ(dev_write(self->fd, buf, out, 0, NULL), -EINVAL);
	ASSERT_EQ(dev_snapshot(self->fd, buf, prot, 0), -EINVAL);
	ASSERT_EQ(dev_read(self->fd, (void *)top, out, 2, NULL), -EINVAL);
	ASSERT_EQ(dev_snapshot(self->fd, (void *)top, prot, 2), -EINVAL);
	ASSERT_EQ(dev_write(self->fd, buf, out, ~0ULL, NULL), -EINVAL);

	memset(out, 0xa5, bytes + self->ps);
	ASSERT_EQ(dev_read(self->fd, buf, out, n + 1, NULL), -EFAULT);
	ASSERT_EQ(dev_write(self->fd, buf, out, n + 1, NULL), -EFAULT);
	ASSERT_EQ(dev_read(self->fd, buf, out, 1ULL << 30, NULL), -EFAULT);
	ASSERT_EQ(verify(buf, bytes, 232), -1);

	ASSERT_EQ(dev_snapshot(self->fd, buf, prot, n + 1), 0);
	ASSERT_EQ(count_other(prot, n, HMM_DMIRROR_PROT_WRITE), 0);
	ASSERT_EQ(prot[n], HMM_DMIRROR_PROT_ERROR);

	ASSERT_EQ(dev_read(self->fd, buf, NULL, n, NULL), -EFAULT);
	ASSERT_EQ(dev_write(self->fd, buf, NULL, n, NULL), -EFAULT);
	ASSERT_EQ(dmirror(self->fd, HMM_DMIRROR_SNAPSHOT, buf, NULL, n, NULL),
		  -EFAULT);
	ASSERT_EQ(verify(buf, bytes, 232), -1);

	free(out);
	munmap(buf, bytes);
}

/* ---------------------------------------------------------------------------
 * Device-exclusive access
 */

/*
 * Make [addr, addr + npages) exclusive to the device of @fd; the device
 * reads it into @buf.  Returns 0 or -errno; a success that does not report
 * every page is -EPROTO.
 */
static int dev_exclusive(int fd, void *addr, void *buf, uint64_t npages)
{
	struct hmm_dmirror_cmd cmd;
	int ret;

	ret = dmirror(fd, HMM_DMIRROR_EXCLUSIVE, addr, buf, npages, &cmd);
	if (!ret && cmd.cpages != npages)
		return -EPROTO;
	return ret;
}

/* 0 if the CPU took back every page of the range, -EPERM if not. */
static int dev_check_exclusive(int fd, void *addr, uint64_t npages)
{
	return dmirror(fd, HMM_DMIRROR_CHECK_EXCLUSIVE, addr, NULL, npages,
		       NULL);
}

/*
 * The device gets exclusive access and writes (its atomics) without a
 * fault; meanwhile the CPU page table shows non-present swap-like entries
 * that still count as resident.  The first CPU access sees what the device
 * wrote and revokes the device's access.
 */
TEST_F(hmm, exclusive_atomics)
{
	unsigned long n = 64, bytes = n * self->ps;
	struct hmm_dmirror_cmd cmd;
	unsigned char *prot;
	char *buf, *in, *out;

	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	madvise(buf, bytes, MADV_NOHUGEPAGE);
	prot = malloc(n);
	ASSERT_NE(prot, NULL);
	in = malloc(bytes);
	ASSERT_NE(in, NULL);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	fill(buf, bytes, 300);

	ASSERT_EQ(dev_exclusive(self->fd, buf, out, n), 0);
	ASSERT_EQ(verify(out, bytes, 300), -1);
	ASSERT_EQ(dev_check_exclusive(self->fd, buf, n), -EPERM);
	ASSERT_EQ(count_on_device(buf, n), n);
	ASSERT_EQ(smaps_kb(buf, "Rss:"), (long)(bytes >> 10));
	/* Nothing the device could use without a fault. */
	ASSERT_EQ(dev_snapshot(self->fd, buf, prot, n), 0);
	ASSERT_EQ(count_other(prot, n, HMM_DMIRROR_PROT_NONE), 0);

	fill(in, bytes, 301);
	ASSERT_EQ(dev_write(self->fd, buf, in, n, &cmd), 0);
	ASSERT_EQ(cmd.cpages, n);
	ASSERT_EQ(cmd.faults, 0);
	ASSERT_EQ(dev_check_exclusive(self->fd, buf, n), -EPERM);

	/* CPU reads take the pages back. */
	ASSERT_EQ(verify(buf, bytes, 301), -1);
	ASSERT_EQ(dev_check_exclusive(self->fd, buf, n), 0);
	ASSERT_EQ(count_in_system(buf, n), n);
	ASSERT_EQ(smaps_kb(buf, "Rss:"), (long)(bytes >> 10));

	/* Again, taken back by CPU writes this time. */
	ASSERT_EQ(dev_exclusive(self->fd, buf, out, n), 0);
	ASSERT_EQ(verify(out, bytes, 301), -1);
	fill(buf, bytes, 302);
	ASSERT_EQ(dev_check_exclusive(self->fd, buf, n), 0);
	ASSERT_EQ(verify(buf, bytes, 302), -1);
	ASSERT_EQ(dev_read(self->fd, buf, out, n, &cmd), 0);
	ASSERT_EQ(cmd.faults, 1);
	ASSERT_EQ(verify(out, bytes, 302), -1);

	free(out);
	free(in);
	free(prot);
	munmap(buf, bytes);
}

/*
 * Only the pages the CPU touches are taken back; the others stay exclusive
 * and keep what the device wrote.
 */
TEST_F(hmm, exclusive_partial_revoke)
{
	unsigned long n = 16, bytes = n * self->ps;
	char *buf, *in, *out;

	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	in = malloc(bytes);
	ASSERT_NE(in, NULL);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	fill(buf, bytes, 303);

	ASSERT_EQ(dev_exclusive(self->fd, buf, out, n), 0);
	fill(in, bytes, 304);
	ASSERT_EQ(dev_write(self->fd, buf, in, n, NULL), 0);
	touch_read(buf + 3 * self->ps);
	ASSERT_EQ(dev_check_exclusive(self->fd, buf + 3 * self->ps, 1), 0);
	ASSERT_EQ(dev_check_exclusive(self->fd, buf, 3), -EPERM);
	ASSERT_EQ(dev_check_exclusive(self->fd, buf + 4 * self->ps, n - 4),
		  -EPERM);
	ASSERT_EQ(count_in_system(buf, n), 1);
	ASSERT_EQ(verify(buf, bytes, 304), -1);
	ASSERT_EQ(dev_check_exclusive(self->fd, buf, n), 0);

	free(out);
	free(in);
	munmap(buf, bytes);
}

/*
 * mprotect(PROT_READ) revokes the device's access and keeps it from
 * writing; the CPU still reads the data and may write again once the
 * mapping is writable again.
 */
TEST_F(hmm, exclusive_mprotect)
{
	unsigned long n = 32, bytes = n * self->ps;
	char *buf, *in, *out;

	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	in = malloc(bytes);
	ASSERT_NE(in, NULL);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	fill(buf, bytes, 305);

	ASSERT_EQ(dev_exclusive(self->fd, buf, out, n), 0);
	ASSERT_EQ(verify(out, bytes, 305), -1);
	ASSERT_EQ(mprotect(buf, bytes, PROT_READ), 0);
	ASSERT_EQ(dev_check_exclusive(self->fd, buf, n), 0);
	fill(in, bytes, 306);
	ASSERT_EQ(dev_write(self->fd, buf, in, n, NULL), -EPERM);
	ASSERT_EQ(verify(buf, bytes, 305), -1);

	ASSERT_EQ(mprotect(buf, bytes, PROT_READ | PROT_WRITE), 0);
	fill(buf, bytes, 307);
	ASSERT_EQ(verify(buf, bytes, 307), -1);
	/* Write-protected while still exclusive: the CPU restores read-only. */
	ASSERT_EQ(dev_exclusive(self->fd, buf, out, n), 0);
	ASSERT_EQ(mprotect(buf, bytes, PROT_READ), 0);
	ASSERT_EQ(mprotect(buf, bytes, PROT_READ | PROT_WRITE), 0);
	ASSERT_EQ(verify(buf, bytes, 307), -1);
	fill(buf, bytes, 308);
	ASSERT_EQ(verify(buf, bytes, 308), -1);

	free(out);
	free(in);
	munmap(buf, bytes);
}

/*
 * fork() takes the pages back before copying them: neither process holds
 * device-exclusive entries afterwards, and copy-on-write keeps the two
 * copies apart whichever process writes.
 */
TEST_F(hmm, exclusive_fork)
{
	unsigned long n = 32, bytes = n * self->ps;
	char *buf, *in, *out;
	int go[2];
	pid_t pid;

	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	in = malloc(bytes);
	ASSERT_NE(in, NULL);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	fill(buf, bytes, 310);
	ASSERT_EQ(dev_exclusive(self->fd, buf, out, n), 0);
	fill(in, bytes, 311);
	ASSERT_EQ(dev_write(self->fd, buf, in, n, NULL), 0);
	ASSERT_EQ(pipe(go), 0);

	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		char c;

		close(go[1]);
		if (count_in_system(buf, n) != n)
			_exit(2);
		if (verify(buf, bytes, 311) != -1)
			_exit(3);
		/* Wait for the parent to write its copy first. */
		if (read(go[0], &c, 1) != 1)
			_exit(4);
		if (verify(buf, bytes, 311) != -1)
			_exit(5);
		fill(buf, bytes, 313);
		if (verify(buf, bytes, 313) != -1)
			_exit(6);
		_exit(0);
	}

	close(go[0]);
	ASSERT_EQ(dev_check_exclusive(self->fd, buf, n), 0);
	ASSERT_EQ(count_in_system(buf, n), n);
	ASSERT_EQ(verify(buf, bytes, 311), -1);
	fill(buf, bytes, 312);
	ASSERT_EQ(write(go[1], "x", 1), 1);
	close(go[1]);
	ASSERT_EQ(reap(pid), 0);
	ASSERT_EQ(verify(buf, bytes, 312), -1);

	free(out);
	free(in);
	munmap(buf, bytes);
}

/* A child that writes first, with the parent's pages made exclusive again. */
TEST_F(hmm, exclusive_fork_child_writes)
{
	unsigned long n = 16, bytes = n * self->ps;
	char *buf, *out;
	pid_t pid;

	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	fill(buf, bytes, 315);
	ASSERT_EQ(dev_exclusive(self->fd, buf, out, n), 0);

	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		fill(buf, bytes, 316);
		_exit(verify(buf, bytes, 316) == -1 ? 0 : 2);
	}
	ASSERT_EQ(reap(pid), 0);
	ASSERT_EQ(dev_exclusive(self->fd, buf, out, n), 0);
	ASSERT_EQ(verify(out, bytes, 315), -1);
	ASSERT_EQ(verify(buf, bytes, 315), -1);
	ASSERT_EQ(dev_check_exclusive(self->fd, buf, n), 0);

	free(out);
	munmap(buf, bytes);
}

/*
 * munmap() and exit with pages still exclusive to the device free them:
 * the system's anonymous memory goes back to where it was.
 */
TEST_F(hmm, exclusive_munmap_and_exit)
{
	unsigned long n = 2048, bytes = n * self->ps;
	long before, during, after, slack = 512;
	char *buf, *out;
	pid_t pid;

	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	/* Fault the output buffer in now, not while measuring. */
	fill(out, bytes, 319);

	before = meminfo_value("AnonPages:");
	ASSERT_GT(before, 0);
	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	fill(buf, bytes, 320);
	ASSERT_EQ(dev_exclusive(self->fd, buf, out, n), 0);
	during = meminfo_value("AnonPages:");
	ASSERT_GE(during, before + (long)(bytes >> 10) - slack);
	ASSERT_EQ(munmap(buf, bytes), 0);
	after = meminfo_value("AnonPages:");
	ASSERT_LE(after, before + slack);
	ASSERT_EQ(dev_check_exclusive(self->fd, buf, n), 0);

	before = meminfo_value("AnonPages:");
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		int fd = open_unit(self->unit);

		buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
		if (fd < 0 || buf == MAP_FAILED)
			_exit(2);
		fill(buf, bytes, 321);
		if (dev_exclusive(fd, buf, out, n))
			_exit(3);
		/* Exit with the pages exclusive and the file open. */
		_exit(0);
	}
	ASSERT_EQ(reap(pid), 0);
	after = meminfo_value("AnonPages:");
	ASSERT_LE(after, before + slack);

	free(out);
}

/*
 * MADV_DONTNEED drops exclusive pages like any others: the device loses
 * them and the CPU reads zeroes.
 */
TEST_F(hmm, exclusive_dontneed)
{
	unsigned long n = 16, bytes = n * self->ps;
	char *buf, *out;

	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	fill(buf, bytes, 322);

	ASSERT_EQ(dev_exclusive(self->fd, buf, out, n), 0);
	ASSERT_EQ(madvise(buf, bytes, MADV_DONTNEED), 0);
	ASSERT_EQ(dev_check_exclusive(self->fd, buf, n), 0);
	ASSERT_EQ(count_pagemap(buf, n, PM_PRESENT | PM_SWAP, 0), n);
	ASSERT_TRUE(all_zero(buf, bytes));

	free(out);
	munmap(buf, bytes);
}

/*
 * Compaction may migrate pages the device holds exclusively: migration
 * takes them back for the CPU first, and the data survives either way.
 */
TEST_F(hmm, exclusive_compaction)
{
	unsigned long n = 256, bytes = n * self->ps, i, moved = 0;
	const uint64_t pfn_mask = (1ULL << 55) - 1;
	uint64_t *pfn;
	char *buf, *in, *out;
	int fd;

	fd = open("/proc/sys/vm/compact_memory", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		SKIP(return, "no /proc/sys/vm/compact_memory");
	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	in = malloc(bytes);
	ASSERT_NE(in, NULL);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	pfn = malloc(n * sizeof(*pfn));
	ASSERT_NE(pfn, NULL);
	fill(buf, bytes, 323);
	for (i = 0; i < n; i++)
		pfn[i] = pagemap_of(buf + i * self->ps) & pfn_mask;

	ASSERT_EQ(dev_exclusive(self->fd, buf, out, n), 0);
	fill(in, bytes, 324);
	ASSERT_EQ(dev_write(self->fd, buf, in, n, NULL), 0);
	ASSERT_EQ(write(fd, "1", 1), 1);
	close(fd);
	ASSERT_EQ(verify(buf, bytes, 324), -1);
	ASSERT_EQ(dev_check_exclusive(self->fd, buf, n), 0);
	ASSERT_EQ(count_in_system(buf, n), n);
	/* Only informative: pfns read as 0 without CAP_SYS_ADMIN. */
	for (i = 0; i < n; i++)
		if ((pagemap_of(buf + i * self->ps) & pfn_mask) != pfn[i])
			moved++;
	TH_LOG("%lu of %lu exclusive pages migrated", moved, n);

	free(pfn);
	free(out);
	free(in);
	munmap(buf, bytes);
}

/*
 * Many threads read and write one page the device holds exclusively, all
 * at once, over and over: the faults queue on the page lock and all finish.
 */
TEST_F(hmm, exclusive_threads_fault_same_page)
{
	enum { NTHREADS = 4, ROUNDS = 32 };
	unsigned long bytes = self->ps;
	struct racer racer[NTHREADS];
	pthread_t tid[NTHREADS];
	pthread_barrier_t start;
	uint64_t *words;
	char *out;
	int round, t;

	words = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(words, MAP_FAILED);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);

	for (round = 0; round < ROUNDS; round++) {
		fill(words, bytes, 330 + round);
		ASSERT_EQ(dev_exclusive(self->fd, words, out, 1), 0);
		ASSERT_EQ(pthread_barrier_init(&start, NULL, NTHREADS), 0);
		for (t = 0; t < NTHREADS; t++) {
			racer[t].start = &start;
			racer[t].word = &words[t + 1];
			racer[t].mine = (t & 1) ? &words[64 + t] : NULL;
			racer[t].value = ~0ULL - t;
			ASSERT_EQ(pthread_create(&tid[t], NULL, race_fault,
						 &racer[t]), 0);
		}
		for (t = 0; t < NTHREADS; t++)
			ASSERT_EQ(pthread_join(tid[t], NULL), 0);
		pthread_barrier_destroy(&start);

		ASSERT_EQ(dev_check_exclusive(self->fd, words, 1), 0);
		for (t = 0; t < NTHREADS; t++) {
			ASSERT_EQ(racer[t].seen, word_value(330 + round, t + 1));
			if (t & 1) {
				ASSERT_EQ(words[64 + t], ~0ULL - t);
				words[64 + t] = word_value(330 + round, 64 + t);
			}
		}
		ASSERT_EQ(verify(words, bytes, 330 + round), -1);
	}

	free(out);
	munmap(words, bytes);
}

/*
 * A transparent huge page is made exclusive page by page (6.12 failed
 * with EBUSY here); the device writes it, and the CPU gets the data back.
 */
/*
 * The @n pages at @p hold what fill() wrote with @seed: make them exclusive
 * for the device, and check what it read and where the pages are.
 */
static void exclusive_take(struct __test_metadata *_metadata, int fd,
			   char *p, unsigned long n, unsigned int seed)
{
	size_t bytes = n * psize();
	char *out = malloc(bytes);

	ASSERT_NE(out, NULL);
	ASSERT_EQ(dev_exclusive(fd, p, out, n), 0);
	ASSERT_EQ(verify(out, bytes, seed), -1);
	ASSERT_EQ(dev_check_exclusive(fd, p, n), -EPERM);
	ASSERT_EQ(count_on_device(p, n), n);
	free(out);
}

/*
 * After exclusive_take(): the device writes @seed through its exclusive
 * access without a fault, and the CPU reads that once it has taken every
 * page back.
 */
static void exclusive_write(struct __test_metadata *_metadata, int fd,
			    char *p, unsigned long n, unsigned int seed)
{
	size_t bytes = n * psize();
	struct hmm_dmirror_cmd cmd;
	char *in = malloc(bytes);

	ASSERT_NE(in, NULL);
	fill(in, bytes, seed);
	ASSERT_EQ(dev_write(fd, p, in, n, &cmd), 0);
	ASSERT_EQ(cmd.cpages, n);
	ASSERT_EQ(cmd.faults, 0);
	ASSERT_EQ(verify(p, bytes, seed), -1);
	ASSERT_EQ(dev_check_exclusive(fd, p, n), 0);
	free(in);
}

TEST_F(hmm, exclusive_thp)
{
	unsigned long bytes = SZ_2M, n = bytes / self->ps;
	char *buf;

	if (!thp_possible())
		SKIP(return, "transparent huge pages are disabled");
	buf = map_aligned(bytes, SZ_2M);
	ASSERT_NE(buf, MAP_FAILED);
	ASSERT_EQ(madvise(buf, bytes, MADV_HUGEPAGE), 0);
	fill(buf, bytes, 340);
	if (smaps_kb(buf, "AnonHugePages:") < (long)(SZ_2M >> 10))
		SKIP(return, "no huge page could be allocated");

	exclusive_take(_metadata, self->fd, buf, n, 340);
	exclusive_write(_metadata, self->fd, buf, n, 341);
	fill(buf, bytes, 342);
	ASSERT_EQ(verify(buf, bytes, 342), -1);
	ASSERT_EQ(smaps_kb(buf, "Rss:"), (long)(bytes >> 10));
	munmap(buf, bytes);
}

/* Part of a huge page, in the middle of it. */
TEST_F(hmm, exclusive_thp_part)
{
	unsigned long bytes = SZ_2M, n = bytes / self->ps, off = 100, len = 50;
	char *buf, *out;

	if (!thp_possible())
		SKIP(return, "transparent huge pages are disabled");
	buf = map_aligned(bytes, SZ_2M);
	ASSERT_NE(buf, MAP_FAILED);
	ASSERT_EQ(madvise(buf, bytes, MADV_HUGEPAGE), 0);
	fill(buf, bytes, 345);
	if (smaps_kb(buf, "AnonHugePages:") < (long)(SZ_2M >> 10))
		SKIP(return, "no huge page could be allocated");
	/*
	 * The huge page stays, but khugepaged must not collapse the split
	 * range again: with fewer than max_ptes_swap exclusive entries it
	 * faults them back in on the way, which revokes them.
	 */
	ASSERT_EQ(madvise(buf, bytes, MADV_NOHUGEPAGE), 0);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);

	ASSERT_EQ(dev_exclusive(self->fd, buf + off * self->ps, out, len), 0);
	ASSERT_EQ(count_on_device(buf, n), len);
	ASSERT_EQ(count_in_system(buf, n), n - len);
	ASSERT_EQ(verify(buf, bytes, 345), -1);
	ASSERT_EQ(dev_check_exclusive(self->fd, buf, n), 0);

	free(out);
	munmap(buf, bytes);
}

/*
 * One range over three VMAs: 4 KiB pages, two THPs, 4 KiB pages.  The
 * kernel takes it with few GUP calls, ending one at each THP, which is
 * split: every page is made exclusive, the data stays where it was.
 */
TEST_F(hmm, exclusive_thp_vmas)
{
	unsigned long edge = 8, n;
	size_t huge = 2 * SZ_2M, bytes = huge + 2 * edge * self->ps;
	char *buf, *start;

	if (!thp_possible())
		SKIP(return, "transparent huge pages are disabled");
	buf = map_aligned(huge + 2 * SZ_2M, SZ_2M);
	ASSERT_NE(buf, MAP_FAILED);
	ASSERT_EQ(madvise(buf, SZ_2M, MADV_NOHUGEPAGE), 0);
	ASSERT_EQ(madvise(buf + SZ_2M, huge, MADV_HUGEPAGE), 0);
	ASSERT_EQ(madvise(buf + SZ_2M + huge, SZ_2M, MADV_NOHUGEPAGE), 0);
	start = buf + SZ_2M - edge * self->ps;
	n = bytes / self->ps;
	fill(start, bytes, 346);
	if (smaps_kb(buf + SZ_2M, "AnonHugePages:") < (long)(huge >> 10))
		SKIP(return, "no huge page could be allocated");

	exclusive_take(_metadata, self->fd, start, n, 346);
	ASSERT_EQ(smaps_kb(buf + SZ_2M, "AnonHugePages:"), 0);
	exclusive_write(_metadata, self->fd, start, n, 347);
	ASSERT_EQ(count_in_system(start, n), n);
	munmap(buf, huge + 2 * SZ_2M);
}

/* hugetlbfs memory is refused (6.12 hit a BUG here), and left intact. */
TEST_F(hmm, exclusive_hugetlbfs_refused)
{
	long hsize = meminfo_value("Hugepagesize:") * 1024;
	unsigned long bytes, n;
	char *buf, *out;

	if (hsize <= 0 || meminfo_value("HugePages_Free:") < 1)
		SKIP(return, "no free hugetlbfs page");
	bytes = hsize;
	n = bytes / self->ps;
	buf = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	if (buf == MAP_FAILED)
		SKIP(return, "cannot map a hugetlbfs page");
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	fill(buf, bytes, 350);

	ASSERT_EQ(dev_exclusive(self->fd, buf, out, n), -EINVAL);
	ASSERT_EQ(dev_exclusive(self->fd, buf + self->ps, out, 1), -EINVAL);
	ASSERT_EQ(dev_check_exclusive(self->fd, buf, n), 0);
	ASSERT_EQ(count_in_system(buf, n), n);
	ASSERT_EQ(verify(buf, bytes, 350), -1);

	free(out);
	munmap(buf, bytes);
}

/*
 * Mark the page of @pfn idle through idle page tracking (one bit per pfn in
 * 64-bit words of /sys/kernel/mm/page_idle/bitmap, open in @fd), then read
 * its bit back.  Returns 1 if the page is still idle, 0 if it was used in
 * between, -1 on error.
 */
/*
 * The last chunk of the page_idle bitmap, which reaches past the end of
 * memory, reads and writes short (0 bytes): is @pfn in a full chunk?
 */
static bool idle_chunk_full(int fd, uint64_t pfn)
{
	uint64_t word;

	return pread(fd, &word, sizeof(word), pfn / 64 * sizeof(word)) ==
	       sizeof(word);
}

static int mark_idle_and_check(int fd, uint64_t pfn)
{
	off_t where = pfn / 64 * sizeof(uint64_t);
	uint64_t bit = 1ULL << (pfn % 64), word = bit;

	if (pwrite(fd, &word, sizeof(word), where) != sizeof(word))
		return -1;
	if (pread(fd, &word, sizeof(word), where) != sizeof(word))
		return -1;
	return !!(word & bit);
}

/*
 * Idle page tracking leaves device-exclusive entries alone and counts them
 * as a use: a device holding a page exclusively is using it.  (It used to
 * treat them as present PTEs: with no "young" bit to find the pages looked
 * idle, and on arm64 clearing that bit turned the entries into swap-file
 * entries the CPU then faulted on forever.)  The pages the device does not
 * hold are the control: nobody touches them, they read back idle.
 */
TEST_F(hmm, exclusive_page_idle)
{
	unsigned long n = 16, half = n / 2, bytes = n * self->ps, i;
	const uint64_t pfn_mask = (1ULL << 55) - 1;
	uint64_t *pfn, *entry;
	int idle_fd, drop_fd, tries;
	char *buf, *out;

	idle_fd = open("/sys/kernel/mm/page_idle/bitmap", O_RDWR | O_CLOEXEC);
	if (idle_fd < 0 && errno == ENOENT)
		SKIP(return, "no page_idle bitmap (CONFIG_IDLE_PAGE_TRACKING)");
	drop_fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
	if (drop_fd < 0 && errno == ENOENT) {
		close(idle_fd);
		SKIP(return, "no /proc/sys/vm/drop_caches");
	}
	ASSERT_GE(idle_fd, 0);
	ASSERT_GE(drop_fd, 0);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	pfn = malloc(n * sizeof(*pfn));
	ASSERT_NE(pfn, NULL);
	entry = malloc(n * sizeof(*entry));
	ASSERT_NE(entry, NULL);
	/*
	 * Pages in the bitmap's last, short chunk cannot be checked through
	 * it: keep such pages mapped (so they are not handed out again) and
	 * take others.
	 */
	for (tries = 0;; tries++) {
		ASSERT_LT(tries, 8);
		buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
		ASSERT_NE(buf, MAP_FAILED);
		/* Small pages only: idle page tracking skips tail pages. */
		ASSERT_EQ(madvise(buf, bytes, MADV_NOHUGEPAGE), 0);
		fill(buf, bytes, 370);
		for (i = 0; i < n; i++) {
			pfn[i] = pagemap_of(buf + i * self->ps) & pfn_mask;
			ASSERT_NE(pfn[i], 0ULL);
			if (!idle_chunk_full(idle_fd, pfn[i]))
				break;
		}
		if (i == n)
			break;
	}

	ASSERT_EQ(dev_exclusive(self->fd, buf, out, half), 0);
	ASSERT_EQ(verify(out, half * self->ps, 370), -1);
	ASSERT_EQ(count_on_device(buf, half),
		  half);
	for (i = 0; i < half; i++)
		entry[i] = pagemap_of(buf + i * self->ps);
	/*
	 * Idle page tracking only looks at pages on an LRU list: flush the
	 * per-CPU batches new pages wait in, which drop_caches does.
	 */
	ASSERT_EQ(write(drop_fd, "1", 1), 1);

	for (i = 0; i < n; i++)
		ASSERT_EQ(mark_idle_and_check(idle_fd, pfn[i]), i >= half)
			TH_LOG("page %lu (%s)", i,
			       i < half ? "exclusive" : "control");
	/* The entries are as they were, and the device still holds them. */
	for (i = 0; i < half; i++)
		ASSERT_EQ(pagemap_of(buf + i * self->ps), entry[i]);
	ASSERT_EQ(dev_check_exclusive(self->fd, buf, half), -EPERM);

	/* The CPU takes the pages back with their data. */
	ASSERT_EQ(verify(buf, bytes, 370), -1);
	ASSERT_EQ(dev_check_exclusive(self->fd, buf, half), 0);
	for (i = 0; i < n; i++)
		ASSERT_EQ(pagemap_of(buf + i * self->ps) &
			  (PM_PRESENT | pfn_mask), PM_PRESENT | pfn[i]);

	free(entry);
	free(pfn);
	free(out);
	close(drop_fd);
	close(idle_fd);
	munmap(buf, bytes);
}

/*
 * MADV_PAGEOUT over pages a device holds exclusively, and pages it does
 * not: the call succeeds, passes over the device-exclusive entries, which
 * stay as they are, and every page keeps its data, whether it was swapped
 * out and in again or not (there may be no swap).
 */
TEST_F(hmm, exclusive_pageout)
{
	unsigned long n = 16, half = n / 2, bytes = n * self->ps, i;
	uint64_t *entry;
	char *buf, *out;

	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	ASSERT_EQ(madvise(buf, bytes, MADV_NOHUGEPAGE), 0);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	entry = malloc(half * sizeof(*entry));
	ASSERT_NE(entry, NULL);
	fill(buf, bytes, 375);

	ASSERT_EQ(dev_exclusive(self->fd, buf, out, half), 0);
	for (i = 0; i < half; i++)
		entry[i] = pagemap_of(buf + i * self->ps);
	ASSERT_EQ(madvise(buf, bytes, MADV_PAGEOUT), 0);
	for (i = 0; i < half; i++)
		ASSERT_EQ(pagemap_of(buf + i * self->ps), entry[i]);
	ASSERT_EQ(dev_check_exclusive(self->fd, buf, half), -EPERM);

	ASSERT_EQ(verify(buf, bytes, 375), -1);
	ASSERT_EQ(dev_check_exclusive(self->fd, buf, half), 0);
	ASSERT_EQ(count_in_system(buf, n), n);

	free(entry);
	free(out);
	munmap(buf, bytes);
}

/*
 * Bad EXCLUSIVE and CHECK_EXCLUSIVE commands get the documented errors and
 * leave the memory as it was.
 */
TEST_F(hmm, exclusive_bad_commands)
{
	unsigned long n = 4, bytes = n * self->ps;
	char *buf, *ro, *shared, *out;

	/* Map one page more and unmap it: a gap right after the buffer. */
	buf = map_anon(bytes + self->ps, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	ASSERT_EQ(munmap(buf + bytes, self->ps), 0);
	ro = map_anon(bytes, PROT_READ, MAP_PRIVATE);
	ASSERT_NE(ro, MAP_FAILED);
	shared = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_SHARED);
	ASSERT_NE(shared, MAP_FAILED);
	out = malloc(bytes + self->ps);
	ASSERT_NE(out, NULL);
	fill(buf, bytes, 360);
	fill(shared, bytes, 361);

	ASSERT_EQ(dev_exclusive(self->fd, buf + 8, out, 1), -EINVAL);
	ASSERT_EQ(dev_exclusive(self->fd, buf, out, 0), -EINVAL);
	ASSERT_EQ(dev_exclusive(self->fd, buf, out, ~0ULL), -EINVAL);
	ASSERT_EQ(dev_check_exclusive(self->fd, buf + 8, 1), -EINVAL);
	ASSERT_EQ(dev_check_exclusive(self->fd, buf, 0), -EINVAL);

	/* Nothing mapped, read-only, shared. */
	ASSERT_EQ(dev_exclusive(self->fd, buf + bytes, out, 1), -EFAULT);
	ASSERT_EQ(dev_exclusive(self->fd, ro, out, n), -EFAULT);
	ASSERT_EQ(dev_exclusive(self->fd, shared, out, n), -EINVAL);
	ASSERT_EQ(verify(shared, bytes, 361), -1);
	/* Running into the gap: not every page could be made exclusive. */
	ASSERT_EQ(dev_exclusive(self->fd, buf, out, n + 1), -EBUSY);
	ASSERT_EQ(verify(buf, bytes, 360), -1);
	ASSERT_EQ(dev_check_exclusive(self->fd, buf, n + 1), 0);
	/* Nowhere to put what the device read. */
	ASSERT_EQ(dmirror(self->fd, HMM_DMIRROR_EXCLUSIVE, buf, NULL, n, NULL),
		  -EFAULT);
	ASSERT_EQ(verify(buf, bytes, 360), -1);
	ASSERT_EQ(dev_check_exclusive(self->fd, buf, n), 0);

	free(out);
	munmap(shared, bytes);
	munmap(ro, bytes);
	munmap(buf, bytes);
}

/* ---------------------------------------------------------------------------
 * Two devices
 */

/*
 * Pages on one device are not taken by another: migrating them to the
 * second device fails with ENOENT, and its MIGRATE_TO_SYS moves nothing.
 */
TEST_F(hmm2, pages_of_other_device)
{
	unsigned long n = 64, bytes = n * self->ps;
	long before0 = pages_on_unit(self->unit0);
	long before1 = pages_on_unit(self->unit1);
	uint64_t cpages;
	char *buf, *out;

	ASSERT_GE(before0, 0);
	ASSERT_GE(before1, 0);
	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	fill(buf, bytes, 90);

	ASSERT_EQ(to_device(self->fd0, buf, out, n, &cpages), 0);
	ASSERT_EQ(cpages, n);
	ASSERT_EQ(to_device(self->fd1, buf, out, n, NULL), -ENOENT);
	ASSERT_EQ(to_system(self->fd1, buf, n, &cpages), 0);
	ASSERT_EQ(cpages, 0);
	ASSERT_EQ(pages_on_unit(self->unit0), before0 + (long)n);
	ASSERT_EQ(pages_on_unit(self->unit1), before1);
	ASSERT_EQ(count_on_device(buf, n), n);

	ASSERT_EQ(verify(buf, bytes, 90), -1);
	ASSERT_EQ(pages_on_unit(self->unit0),
		  before0 + (self->coherent ? (long)n : 0));

	free(out);
	munmap(buf, bytes);
}

/* One buffer spread over both devices comes back whole. */
TEST_F(hmm2, split_between_devices)
{
	unsigned long n = 128, bytes = n * self->ps;
	long before0 = pages_on_unit(self->unit0);
	long before1 = pages_on_unit(self->unit1);
	uint64_t cpages;
	char *buf, *out;

	ASSERT_GE(before0, 0);
	ASSERT_GE(before1, 0);
	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	fill(buf, bytes, 91);

	ASSERT_EQ(to_device(self->fd0, buf, out, n / 2, &cpages), 0);
	ASSERT_EQ(cpages, n / 2);
	ASSERT_EQ(to_device(self->fd1, buf + bytes / 2, out + bytes / 2,
			    n / 2, &cpages), 0);
	ASSERT_EQ(cpages, n / 2);
	ASSERT_EQ(verify(out, bytes, 91), -1);
	ASSERT_EQ(pages_on_unit(self->unit0), before0 + (long)(n / 2));
	ASSERT_EQ(pages_on_unit(self->unit1), before1 + (long)(n / 2));

	/*
	 * Bring device 1's half back explicitly, fault device 0's half (or
	 * read it in place if the CPU can).
	 */
	ASSERT_EQ(to_system(self->fd1, buf, n, &cpages), 0);
	ASSERT_EQ(cpages, n / 2);
	ASSERT_EQ(verify(buf, bytes, 91), -1);
	ASSERT_EQ(pages_on_unit(self->unit0),
		  before0 + (self->coherent ? (long)(n / 2) : 0));
	ASSERT_EQ(pages_on_unit(self->unit1), before1);

	free(out);
	munmap(buf, bytes);
}

/*
 * One snapshot across everything a range can hold: a huge page, a hole,
 * PROT_NONE, the zero page, read-only and writable pages, a page never
 * touched, and pages in the memory of this and of the other device (the
 * latter is reported only if device-coherent: a device-private one could
 * be used only after a fault).  Seen from either device; taking it faults
 * nothing in and moves nothing.
 */
TEST_F(hmm2, snapshot_mixed)
{
	unsigned long huge = SZ_2M / self->ps, n = huge + 8;
	unsigned long bytes = n * self->ps;
	long before0, before1;
	unsigned char *prot, *p, thp;
	char *buf, *small, *out;
	uint64_t cpages;

	buf = map_aligned(bytes, SZ_2M);
	ASSERT_NE(buf, MAP_FAILED);
	madvise(buf, SZ_2M, MADV_HUGEPAGE);
	small = buf + SZ_2M;
	prot = malloc(n);
	ASSERT_NE(prot, NULL);
	out = malloc(self->ps);
	ASSERT_NE(out, NULL);
	fill(buf, SZ_2M, 250);
	thp = smaps_kb(buf, "AnonHugePages:") >= (long)(SZ_2M >> 10) ?
	      HMM_DMIRROR_PROT_PMD : 0;

	/* small: hole, PROT_NONE, zero page, read-only, writable, empty. */
	ASSERT_EQ(munmap(small, self->ps), 0);
	ASSERT_EQ(mprotect(small + self->ps, self->ps, PROT_NONE), 0);
	ASSERT_EQ(mprotect(small + 2 * self->ps, self->ps, PROT_READ), 0);
	ASSERT_EQ(touch_read(small + 2 * self->ps), 0);
	fill(small + 3 * self->ps, self->ps, 251);
	ASSERT_EQ(mprotect(small + 3 * self->ps, self->ps, PROT_READ), 0);
	fill(small + 4 * self->ps, self->ps, 252);
	/* ...then one page on each device. */
	fill(small + 6 * self->ps, self->ps, 253);
	ASSERT_EQ(to_device(self->fd0, small + 6 * self->ps, out, 1, &cpages),
		  0);
	ASSERT_EQ(cpages, 1);
	fill(small + 7 * self->ps, self->ps, 254);
	ASSERT_EQ(to_device(self->fd1, small + 7 * self->ps, out, 1, &cpages),
		  0);
	ASSERT_EQ(cpages, 1);
	before0 = pages_on_unit(self->unit0);
	before1 = pages_on_unit(self->unit1);

	ASSERT_EQ(dev_snapshot(self->fd0, buf, prot, n), 0);
	ASSERT_EQ(count_other(prot, huge, HMM_DMIRROR_PROT_WRITE | thp), 0);
	p = prot + huge;
	ASSERT_EQ(p[0], HMM_DMIRROR_PROT_ERROR);
	ASSERT_EQ(p[1], HMM_DMIRROR_PROT_ERROR);
	ASSERT_EQ(p[2], HMM_DMIRROR_PROT_ZERO | HMM_DMIRROR_PROT_READ);
	ASSERT_EQ(p[3], HMM_DMIRROR_PROT_READ);
	ASSERT_EQ(p[4], HMM_DMIRROR_PROT_WRITE);
	ASSERT_EQ(p[5], HMM_DMIRROR_PROT_NONE);
	ASSERT_EQ(p[6], prot_local(self->coherent) | HMM_DMIRROR_PROT_WRITE);
	ASSERT_EQ(p[7], self->coherent ? prot_remote(true) |
					 HMM_DMIRROR_PROT_WRITE :
					 HMM_DMIRROR_PROT_NONE);

	ASSERT_EQ(dev_snapshot(self->fd1, buf, prot, n), 0);
	ASSERT_EQ(count_other(prot, huge, HMM_DMIRROR_PROT_WRITE | thp), 0);
	ASSERT_EQ(p[0], HMM_DMIRROR_PROT_ERROR);
	ASSERT_EQ(p[1], HMM_DMIRROR_PROT_ERROR);
	ASSERT_EQ(p[2], HMM_DMIRROR_PROT_ZERO | HMM_DMIRROR_PROT_READ);
	ASSERT_EQ(p[3], HMM_DMIRROR_PROT_READ);
	ASSERT_EQ(p[4], HMM_DMIRROR_PROT_WRITE);
	ASSERT_EQ(p[5], HMM_DMIRROR_PROT_NONE);
	ASSERT_EQ(p[6], self->coherent ? prot_remote(true) |
					 HMM_DMIRROR_PROT_WRITE :
					 HMM_DMIRROR_PROT_NONE);
	ASSERT_EQ(p[7], prot_local(self->coherent) | HMM_DMIRROR_PROT_WRITE);

	ASSERT_EQ(count_pagemap(small + 5 * self->ps, 1, PM_PRESENT, 0), 1);
	ASSERT_EQ(count_on_device(small + 6 * self->ps, 2), 2);
	ASSERT_EQ(pages_on_unit(self->unit0), before0);
	ASSERT_EQ(pages_on_unit(self->unit1), before1);

	ASSERT_EQ(verify(buf, SZ_2M, 250), -1);
	ASSERT_EQ(verify(small + 3 * self->ps, self->ps, 251), -1);
	ASSERT_EQ(verify(small + 6 * self->ps, self->ps, 253), -1);
	ASSERT_EQ(verify(small + 7 * self->ps, self->ps, 254), -1);

	free(out);
	free(prot);
	munmap(buf, SZ_2M);
	munmap(small + self->ps, 7 * self->ps);
}

/*
 * Two devices mirror the same pages.  Both read them; pages moved into
 * the memory of one are read by the other through a fault that brings
 * them back (or, device-coherent, that maps them where they are); stores
 * of one device are seen by the other without a fault, both pointing at
 * the same pages.
 */
TEST_F(hmm2, same_range_two_devices)
{
	unsigned long n = 32, bytes = n * self->ps;
	long before1 = pages_on_unit(self->unit1);
	struct hmm_dmirror_cmd cmd;
	char *buf, *in, *out;
	uint64_t cpages;

	ASSERT_GE(before1, 0);
	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	in = malloc(bytes);
	ASSERT_NE(in, NULL);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	fill(buf, bytes, 260);

	ASSERT_EQ(dev_read(self->fd0, buf, out, n, &cmd), 0);
	ASSERT_EQ(cmd.cpages, n);
	ASSERT_EQ(cmd.faults, 1);
	ASSERT_EQ(verify(out, bytes, 260), -1);
	memset(out, 0, bytes);
	ASSERT_EQ(dev_read(self->fd1, buf, out, n, &cmd), 0);
	ASSERT_EQ(cmd.cpages, n);
	ASSERT_EQ(cmd.faults, 1);
	ASSERT_EQ(verify(out, bytes, 260), -1);

	ASSERT_EQ(to_device(self->fd1, buf, out, n, &cpages), 0);
	ASSERT_EQ(cpages, n);
	ASSERT_EQ(pages_on_unit(self->unit1), before1 + (long)n);
	memset(out, 0, bytes);
	ASSERT_EQ(dev_read(self->fd0, buf, out, n, &cmd), 0);
	ASSERT_EQ(cmd.cpages, n);
	ASSERT_EQ(cmd.faults, 1);
	ASSERT_EQ(verify(out, bytes, 260), -1);
	if (self->coherent) {
		/* Nothing moved: device 1 still has its records. */
		ASSERT_EQ(pages_on_unit(self->unit1), before1 + (long)n);
		ASSERT_EQ(count_on_device(buf, n), n);
	} else {
		ASSERT_EQ(pages_on_unit(self->unit1), before1);
		ASSERT_EQ(count_in_system(buf, n), n);
	}
	memset(out, 0, bytes);
	ASSERT_EQ(dev_read(self->fd1, buf, out, n, &cmd), 0);
	ASSERT_EQ(cmd.faults, self->coherent ? 0 : 1);
	ASSERT_EQ(verify(out, bytes, 260), -1);

	fill(in, bytes, 261);
	ASSERT_EQ(dev_write(self->fd0, buf, in, n, &cmd), 0);
	ASSERT_EQ(cmd.cpages, n);
	ASSERT_EQ(dev_read(self->fd1, buf, out, n, &cmd), 0);
	ASSERT_EQ(verify(out, bytes, 261), -1);

	/* Both mirrors are complete now: no more faults either side. */
	fill(in, bytes, 262);
	ASSERT_EQ(dev_write(self->fd0, buf, in, n, &cmd), 0);
	ASSERT_EQ(cmd.faults, 0);
	ASSERT_EQ(dev_read(self->fd1, buf, out, n, &cmd), 0);
	ASSERT_EQ(cmd.faults, 0);
	ASSERT_EQ(verify(out, bytes, 262), -1);
	ASSERT_EQ(verify(buf, bytes, 262), -1);

	free(out);
	free(in);
	munmap(buf, bytes);
}

/* ---------------------------------------------------------------------------
 * Device work racing with MADV_DONTNEED
 *
 * MADV_DONTNEED only needs the mmap lock for reading, so it can zap pages
 * while the driver migrates them to the device or makes them exclusive.
 * A page zapped before the driver recorded it must not stay in the
 * device's page table: it is freed (a device page goes back to the pool)
 * and a later device access would use freed or reused memory.
 *
 * One thread loops over the device command, the other zaps the range and
 * refills most of it, each round with data that tells the round and the
 * page.  Every device view seen meanwhile must be plausible: each page all
 * zero, or the data of some round for that very page, possibly half
 * written (the CPU may be filling it).  Afterwards the device must see
 * exactly what the CPU sees.
 */

#define DNR_SEED_BASE	20000U

struct dnr_race {
	int		fd;
	char		*buf;
	unsigned long	n;		/* pages in the range */
	unsigned long	ps;
	unsigned int	rounds;		/* of the zapping thread */
	unsigned long	request;	/* the device thread's command */
	int		expected_err;	/* its legitimate failure under races */
	bool		thp;		/* a MADV_HUGEPAGE range of whole THPs */
	pthread_barrier_t start;
	int		stop;		/* set when the zapping thread is done */
	/* Results, read after both threads are joined. */
	unsigned long	calls, ok, failed, reads, read_busy;
	int		device_err;	/* an unexpected device error, or 0 */
	int		cpu_err;	/* errno of a failed madvise(), or 0 */
	long		bad_page;	/* first implausible page seen, or -1 */
};

/* Seed of page @i in round @round: fits the 16 bits page_seed() returns. */
static unsigned int dnr_seed(const struct dnr_race *r, unsigned int round,
			     unsigned long i)
{
	return DNR_SEED_BASE + round * r->n + i;
}

/* Which pages a round refills after zapping them all: three in four. */
static bool dnr_filled(unsigned int round, unsigned long i)
{
	return (i + round) % 4 != 0;
}

/* Is each byte of @w either zero or the same byte of @v? */
static bool dnr_bytes_of(uint64_t w, uint64_t v)
{
	uint64_t mask;

	for (mask = 0xff; mask; mask <<= 8)
		if ((w & mask) && (w & mask) != (v & mask))
			return false;
	return true;
}

/* Are the words of @w from @first on parts of the data @seed fills in? */
static bool dnr_part_of(const uint64_t *w, size_t first, size_t nwords,
			unsigned int seed)
{
	size_t k;

	for (k = first; k < nwords; k++)
		if (!dnr_bytes_of(w[k], word_value(seed, k)))
			return false;
	return true;
}

/*
 * Could @page be what the device sees at page @i during the race?  All
 * zero, or one round's data for page @i with some of it still zero: a
 * fill in progress (pages are zero before they are filled).
 *
 * Written or not is a matter of bytes, not of words: the driver copies a
 * page that the CPU may be filling with memcpy(), which promises nothing
 * about reading a word in one go (gcc makes a page-sized one rep movsl on
 * x86_64, four bytes at a time).  It may read part of a word before the
 * CPU stores it and the rest after.  Another page's data, or a mix of two
 * rounds, still differs from what is expected in the seed bytes.
 */
static bool dnr_plausible(const struct dnr_race *r, const void *page,
			  unsigned long i)
{
	const uint64_t *w = page;
	size_t first, nwords = r->ps / sizeof(*w);
	unsigned int seed, round;

	for (first = 0; first < nwords && !w[first]; first++)
		;
	if (first == nwords)
		return true;
	/* word_value() puts the seed in the top 16 bits... */
	seed = (unsigned int)((w[first] ^ word_value(0, first)) >> 48);
	if (seed >= DNR_SEED_BASE &&
	    seed < DNR_SEED_BASE + r->rounds * r->n &&
	    (seed - DNR_SEED_BASE) % r->n == i &&
	    dnr_part_of(w, first, nwords, seed))
		return true;
	/* ...unless that word is torn there: then try every round's. */
	for (round = 0; round < r->rounds; round++)
		if (dnr_part_of(w, first, nwords, dnr_seed(r, round, i)))
			return true;
	return false;
}

static void dnr_check(struct dnr_race *r, const char *view)
{
	unsigned long i;

	for (i = 0; i < r->n && r->bad_page < 0; i++)
		if (!dnr_plausible(r, view + i * r->ps, i))
			r->bad_page = (long)i;
}

static void *dnr_device_loop(void *arg)
{
	struct dnr_race *r = arg;
	struct hmm_dmirror_cmd cmd;
	char *view;
	int ret;

	view = malloc(r->n * r->ps);
	pthread_barrier_wait(&r->start);
	if (!view) {
		r->device_err = -ENOMEM;
		return NULL;
	}

	/* At least once, then for as long as the other thread zaps. */
	do {
		r->calls++;
		ret = dmirror(r->fd, r->request, r->buf, view, r->n, &cmd);
		if (!ret && cmd.cpages != r->n) {
			r->device_err = -EPROTO;
		} else if (!ret) {
			r->ok++;
			dnr_check(r, view);
		} else if (ret == r->expected_err) {
			r->failed++;
		} else {
			r->device_err = ret;
		}

		/* The device reads through whatever its mirror now holds. */
		r->reads++;
		ret = dev_read(r->fd, r->buf, view, r->n, NULL);
		if (!ret)
			dnr_check(r, view);
		else if (ret == -EBUSY)
			r->read_busy++;
		else
			r->device_err = ret;
	} while (!r->device_err && r->bad_page < 0 &&
		 !__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE));

	free(view);
	return NULL;
}

static void *dnr_cpu_loop(void *arg)
{
	struct dnr_race *r = arg;
	unsigned int round;
	unsigned long i;

	pthread_barrier_wait(&r->start);
	for (round = 0; round < r->rounds; round++) {
		unsigned long from = 0;

		/* Every other round zaps half of each THP, splitting its PMD. */
		if (r->thp && round % 2 && round != r->rounds - 1)
			from = r->n / 2;
		if (madvise(r->buf + from * r->ps, (r->n - from) * r->ps,
			    MADV_DONTNEED)) {
			r->cpu_err = errno;
			break;
		}
		for (i = from; i < r->n; i++)
			if (dnr_filled(round, i))
				fill(r->buf + i * r->ps, r->ps,
				     dnr_seed(r, round, i));
	}
	__atomic_store_n(&r->stop, 1, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * Run the race on @r, then check that the CPU holds what the last round
 * left (returned in @expect) and the device sees the same.  Returns 0, or
 * the line of the first check that failed, for the caller to report.
 */
static int dnr_run(struct dnr_race *r, char *expect, char *view)
{
	size_t bytes = r->n * r->ps;
	unsigned int last = r->rounds - 1;
	pthread_t dev_tid, cpu_tid;
	unsigned long i;

	r->bad_page = -1;
	if (pthread_barrier_init(&r->start, NULL, 2))
		return __LINE__;
	if (pthread_create(&dev_tid, NULL, dnr_device_loop, r))
		return __LINE__;
	if (pthread_create(&cpu_tid, NULL, dnr_cpu_loop, r)) {
		/* Let the device thread go, then stop it. */
		__atomic_store_n(&r->stop, 1, __ATOMIC_RELEASE);
		pthread_barrier_wait(&r->start);
		pthread_join(dev_tid, NULL);
		return __LINE__;
	}
	pthread_join(cpu_tid, NULL);
	pthread_join(dev_tid, NULL);
	pthread_barrier_destroy(&r->start);

	if (r->cpu_err || r->device_err || r->bad_page >= 0)
		return __LINE__;

	/* CPU reads bring back whatever the device still holds. */
	for (i = 0; i < r->n; i++) {
		const char *page = r->buf + i * r->ps;

		if (dnr_filled(last, i) ?
		    verify(page, r->ps, dnr_seed(r, last, i)) != -1 :
		    !all_zero(page, r->ps))
			return __LINE__;
	}
	memcpy(expect, r->buf, bytes);

	/* No entry the race left in the device's page table may differ. */
	if (dev_read(r->fd, r->buf, view, r->n, NULL))
		return __LINE__;
	for (i = 0; i < r->n; i++)
		if (memcmp(view + i * r->ps, expect + i * r->ps, r->ps))
			return __LINE__;
	return 0;
}

/*
 * Map the range of @r, run the race on it and check how it went; @expect
 * and @view come back allocated, @expect with what the CPU holds at the
 * end.  @what names the device command in the log.
 */
static void dnr_race_and_check(struct __test_metadata *_metadata,
			       struct dnr_race *r, const char *what,
			       char **expect, char **view)
{
	size_t bytes = r->n * r->ps;
	int line;

	if (r->thp) {
		r->buf = map_aligned(bytes, SZ_2M);
		ASSERT_NE(r->buf, MAP_FAILED);
		ASSERT_EQ(madvise(r->buf, bytes, MADV_HUGEPAGE), 0);
	} else {
		r->buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
		ASSERT_NE(r->buf, MAP_FAILED);
	}
	*expect = malloc(bytes);
	ASSERT_NE(*expect, NULL);
	*view = malloc(bytes);
	ASSERT_NE(*view, NULL);

	line = dnr_run(r, *expect, *view);
	TH_LOG("%lu %s calls: %lu complete, %lu refused; %lu reads, %lu busy",
	       r->calls, what, r->ok, r->failed, r->reads, r->read_busy);
	ASSERT_EQ(r->cpu_err, 0);
	ASSERT_EQ(r->device_err, 0);
	ASSERT_EQ(r->bad_page, -1);
	ASSERT_EQ(line, 0);
}

/*
 * MIGRATE_TO_DEV against MADV_DONTNEED and refills.  A migration may find
 * some page zapped or refilled under it and report it missing (-ENOENT);
 * what it hands back otherwise, and what the device reads, is plausible.
 * Then the device sees what the CPU sees, a quiet migration moves every
 * page with its data, and RELEASE empties the device: no device page was
 * lost or kept by the race.  On device @fd (counter @unit), @n pages,
 * @rounds of zapping, THPs if @thp.
 */
static void dnr_migrate_race(struct __test_metadata *_metadata, int fd,
			     int unit, unsigned long n, unsigned int rounds,
			     bool thp)
{
	unsigned long bytes = n * psize();
	struct dnr_race r = {
		.fd		= fd,
		.n		= n,
		.ps		= psize(),
		.rounds		= rounds,
		.request	= HMM_DMIRROR_MIGRATE_TO_DEV,
		.expected_err	= -ENOENT,
		.thp		= thp,
	};
	char *expect, *view;
	uint64_t cpages;

	dnr_race_and_check(_metadata, &r, "MIGRATE_TO_DEV", &expect, &view);

	ASSERT_EQ(to_device(fd, r.buf, view, n, &cpages), 0);
	ASSERT_EQ(cpages, n);
	ASSERT_EQ(memcmp(view, expect, bytes), 0);
	ASSERT_EQ(dmirror(fd, HMM_DMIRROR_RELEASE, r.buf, NULL, n, NULL),
		  0);
	ASSERT_EQ(pages_on_unit(unit), 0);
	ASSERT_EQ(memcmp(r.buf, expect, bytes), 0);

	free(view);
	free(expect);
	munmap(r.buf, bytes);
}

TEST_F_TIMEOUT(hmm, migrate_dontneed_race, RACE_TIMEOUT)
{
	dnr_migrate_race(_metadata, self->fd, self->unit, 64, 200, false);
}

/*
 * The same on a THP, which MIGRATE_TO_DEV collects whole and splits as it
 * moves: MADV_DONTNEED zaps all of it, or half (splitting its PMD, even
 * while it is a PMD migration entry), and the refills fault new THPs in.
 */
TEST_F_TIMEOUT(hmm, migrate_dontneed_race_thp, RACE_TIMEOUT)
{
	dnr_migrate_race(_metadata, self->fd, self->unit, SZ_2M / self->ps,
			 40, true);
}

/*
 * EXCLUSIVE against MADV_DONTNEED and refills.  A page zapped while it is
 * made exclusive must not be recorded as the device's; EXCLUSIVE may give
 * up on a range that keeps changing (-EBUSY).  Afterwards the CPU has
 * taken every page back and the device sees what the CPU sees.
 */
TEST_F_TIMEOUT(hmm, exclusive_dontneed_race, RACE_TIMEOUT)
{
	unsigned long n = 16, bytes = n * self->ps;
	struct dnr_race r = {
		.fd		= self->fd,
		.n		= n,
		.ps		= self->ps,
		.rounds		= 100,
		.request	= HMM_DMIRROR_EXCLUSIVE,
		.expected_err	= -EBUSY,
	};
	char *expect, *view;

	dnr_race_and_check(_metadata, &r, "EXCLUSIVE", &expect, &view);
	ASSERT_EQ(dev_check_exclusive(self->fd, r.buf, n), 0);

	/* Quiet now: the whole range becomes exclusive at once. */
	ASSERT_EQ(dev_exclusive(self->fd, r.buf, view, n), 0);
	ASSERT_EQ(memcmp(view, expect, bytes), 0);
	ASSERT_EQ(dev_check_exclusive(self->fd, r.buf, n), -EPERM);
	ASSERT_EQ(memcmp(r.buf, expect, bytes), 0);
	ASSERT_EQ(dev_check_exclusive(self->fd, r.buf, n), 0);

	free(view);
	free(expect);
	munmap(r.buf, bytes);
}

/*
 * EXCLUSIVE on pages the device already holds exclusively: making them
 * exclusive again first faults them back, which invalidates the range.
 * That must not count as a change that forces a retry (it would happen on
 * every retry, and the call would fail with EBUSY after a second), with
 * small pages and with a THP, whose split invalidates the range too.
 */
TEST_F(hmm, exclusive_twice)
{
	unsigned long bytes = SZ_2M, n = bytes / self->ps;
	struct hmm_dmirror_cmd cmd;
	char *buf, *in, *out;

	buf = map_aligned(bytes, SZ_2M);
	ASSERT_NE(buf, MAP_FAILED);
	in = malloc(bytes);
	ASSERT_NE(in, NULL);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);

	/* Small pages first. */
	ASSERT_EQ(madvise(buf, bytes, MADV_NOHUGEPAGE), 0);
	fill(buf, bytes, 500);
	ASSERT_EQ(dev_exclusive(self->fd, buf, out, 64), 0);
	ASSERT_EQ(dev_exclusive(self->fd, buf, out, 64), 0);
	ASSERT_EQ(verify(out, 64 * self->ps, 500), -1);
	ASSERT_EQ(dev_check_exclusive(self->fd, buf, 64), -EPERM);
	fill(in, 64 * self->ps, 501);
	ASSERT_EQ(dev_write(self->fd, buf, in, 64, &cmd), 0);
	ASSERT_EQ(cmd.faults, 0);
	ASSERT_EQ(verify(buf, 64 * self->ps, 501), -1);
	ASSERT_EQ(dev_check_exclusive(self->fd, buf, 64), 0);
	ASSERT_EQ(munmap(buf, bytes), 0);

	/* The small-page part counts even where no THP can be had. */
	if (!thp_possible()) {
		TH_LOG("transparent huge pages are disabled, THP part skipped");
		goto out;
	}
	buf = map_aligned(bytes, SZ_2M);
	ASSERT_NE(buf, MAP_FAILED);
	ASSERT_EQ(madvise(buf, bytes, MADV_HUGEPAGE), 0);
	fill(buf, bytes, 502);
	if (smaps_kb(buf, "AnonHugePages:") < (long)(SZ_2M >> 10)) {
		TH_LOG("no huge page could be allocated, THP part skipped");
		munmap(buf, bytes);
		goto out;
	}
	/* Keep khugepaged from collapsing the split range meanwhile. */
	ASSERT_EQ(madvise(buf, bytes, MADV_NOHUGEPAGE), 0);
	ASSERT_EQ(dev_exclusive(self->fd, buf, out, n), 0);
	ASSERT_EQ(dev_exclusive(self->fd, buf, out, n), 0);
	ASSERT_EQ(verify(out, bytes, 502), -1);
	ASSERT_EQ(dev_check_exclusive(self->fd, buf, n), -EPERM);
	ASSERT_EQ(count_on_device(buf, n), n);
	ASSERT_EQ(verify(buf, bytes, 502), -1);
	ASSERT_EQ(dev_check_exclusive(self->fd, buf, n), 0);
	munmap(buf, bytes);
out:
	free(out);
	free(in);
}

/* ---------------------------------------------------------------------------
 * Device pages under other mm features
 *
 * What the rest of mm does to a range while its pages are in device
 * memory: move and grow it, lazily free, lock, register it with
 * userfaultfd, charge it to a memory cgroup, merge it with KSM, read it
 * from another process's point of view.  Each test knows where every page
 * must be afterwards, and that nothing is left on the device at the end.
 */

/*
 * A private anonymous range of @n pages filled with @seed and migrated
 * whole to the device of @fd, which hands back the right data; MAP_FAILED
 * if any of that fails.
 */
static char *map_on_device(int fd, unsigned long n, unsigned int seed)
{
	unsigned long bytes = n * psize();
	uint64_t cpages = 0;
	char *buf, *out;
	bool ok;

	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	out = malloc(bytes);
	if (buf == MAP_FAILED || !out) {
		free(out);
		return MAP_FAILED;
	}
	fill(buf, bytes, seed);
	ok = !to_device(fd, buf, out, n, &cpages) && cpages == n &&
	     verify(out, bytes, seed) == -1;
	free(out);
	if (!ok) {
		munmap(buf, bytes);
		return MAP_FAILED;
	}
	return buf;
}

/*
 * mremap() moves device pages with their range: the page table entries
 * move as they are, nothing is migrated or freed, and the data is found at
 * the new address, by the device and by the CPU.
 */
TEST_F(hmm, mremap_move_device_pages)
{
	unsigned long n = 32, bytes = n * self->ps;
	long before = pages_on_unit(self->unit);
	struct hmm_dmirror_cmd cmd;
	char *buf, *dst, *out;

	ASSERT_GE(before, 0);
	buf = map_on_device(self->fd, n, 600);
	ASSERT_NE(buf, MAP_FAILED);
	/* Where the range moves to. */
	dst = map_anon(bytes, PROT_NONE, MAP_PRIVATE);
	ASSERT_NE(dst, MAP_FAILED);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);

	ASSERT_EQ(mremap(buf, bytes, bytes, MREMAP_MAYMOVE | MREMAP_FIXED,
			 dst), dst);
	ASSERT_EQ(pages_on_unit(self->unit), before + (long)n);
	ASSERT_EQ(count_on_device(dst, n), n);

	memset(out, 0, bytes);
	ASSERT_EQ(dev_read(self->fd, dst, out, n, &cmd), 0);
	ASSERT_EQ(cmd.cpages, n);
	ASSERT_EQ(verify(out, bytes, 600), -1);
	ASSERT_EQ(count_on_device(dst, n), n);

	ASSERT_EQ(verify(dst, bytes, 600), -1);
	ASSERT_EQ(count_on_device(dst, n), self->coherent ? n : 0);
	ASSERT_EQ(pages_on_unit(self->unit),
		  before + (self->coherent ? (long)n : 0));

	ASSERT_EQ(munmap(dst, bytes), 0);
	ASSERT_EQ(pages_on_unit(self->unit), before);
	free(out);
}

/*
 * Growing a range keeps its device pages, in place and when the grown
 * range has to move; the added part is empty and migrates as zero pages.
 */
TEST_F(hmm, mremap_grow_device_range)
{
	unsigned long n = 32, bytes = n * self->ps;
	long before = pages_on_unit(self->unit);
	char *buf, *dst, *out;
	uint64_t cpages;

	ASSERT_GE(before, 0);
	/* Room to grow in place: the second half is unmapped again. */
	buf = map_anon(2 * bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	ASSERT_EQ(munmap(buf + bytes, bytes), 0);
	dst = map_anon(3 * bytes, PROT_NONE, MAP_PRIVATE);
	ASSERT_NE(dst, MAP_FAILED);
	out = malloc(2 * bytes);
	ASSERT_NE(out, NULL);
	fill(buf, bytes, 605);
	ASSERT_EQ(to_device(self->fd, buf, out, n, &cpages), 0);
	ASSERT_EQ(cpages, n);

	ASSERT_EQ(mremap(buf, bytes, 2 * bytes, 0), buf);
	ASSERT_EQ(pages_on_unit(self->unit), before + (long)n);
	ASSERT_EQ(count_on_device(buf, n), n);
	ASSERT_EQ(count_pagemap(buf + bytes, n, PM_PRESENT | PM_SWAP, 0), n);
	memset(out, 0xff, bytes);
	ASSERT_EQ(to_device(self->fd, buf + bytes, out, n, &cpages), 0);
	ASSERT_EQ(cpages, n);
	ASSERT_TRUE(all_zero(out, bytes));
	ASSERT_EQ(pages_on_unit(self->unit), before + 2 * (long)n);

	/* Grow again, into a place the range must move to. */
	ASSERT_EQ(mremap(buf, 2 * bytes, 3 * bytes,
			 MREMAP_MAYMOVE | MREMAP_FIXED, dst), dst);
	ASSERT_EQ(pages_on_unit(self->unit), before + 2 * (long)n);
	ASSERT_EQ(count_on_device(dst, 2 * n), 2 * n);
	ASSERT_EQ(count_pagemap(dst + 2 * bytes, n, PM_PRESENT | PM_SWAP, 0),
		  n);
	ASSERT_EQ(verify(dst, bytes, 605), -1);
	ASSERT_TRUE(all_zero(dst + bytes, 2 * bytes));

	ASSERT_EQ(munmap(dst, 3 * bytes), 0);
	ASSERT_EQ(pages_on_unit(self->unit), before);
	free(out);
}

/*
 * MADV_FREE leaves pages in device memory alone, as 6.12 does: they are
 * not system pages that reclaim could drop, so their data stays.
 */
TEST_F(hmm, madv_free_keeps_device_pages)
{
	unsigned long n = 32, bytes = n * self->ps;
	long before = pages_on_unit(self->unit);
	char *buf;

	ASSERT_GE(before, 0);
	buf = map_on_device(self->fd, n, 610);
	ASSERT_NE(buf, MAP_FAILED);

	ASSERT_EQ(madvise(buf, bytes, MADV_FREE), 0);
	ASSERT_EQ(pages_on_unit(self->unit), before + (long)n);
	ASSERT_EQ(count_on_device(buf, n), n);
	ASSERT_EQ(verify(buf, bytes, 610), -1);
	ASSERT_EQ(count_on_device(buf, n), self->coherent ? n : 0);

	ASSERT_EQ(munmap(buf, bytes), 0);
	ASSERT_EQ(pages_on_unit(self->unit), before);
}

/*
 * mlock() does not keep pages from migrating to the device (6.12 ignores
 * VM_LOCKED there too).  mlock() of a range whose pages are on the device
 * populates it: device-private pages are faulted back, device-coherent
 * ones, which the CPU maps, stay.
 */
TEST_F(hmm, mlocked_range)
{
	unsigned long n = 32, bytes = n * self->ps;
	long before = pages_on_unit(self->unit);
	uint64_t cpages;
	char *buf, *out;

	ASSERT_GE(before, 0);
	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	ASSERT_EQ(mlock(buf, bytes), 0);
	fill(buf, bytes, 620);

	ASSERT_EQ(to_device(self->fd, buf, out, n, &cpages), 0);
	ASSERT_EQ(cpages, n);
	ASSERT_EQ(verify(out, bytes, 620), -1);
	ASSERT_EQ(pages_on_unit(self->unit), before + (long)n);
	ASSERT_EQ(count_on_device(buf, n), n);
	ASSERT_EQ(verify(buf, bytes, 620), -1);
	ASSERT_EQ(count_on_device(buf, n), self->coherent ? n : 0);

	if (!self->coherent) {
		ASSERT_EQ(to_device(self->fd, buf, out, n, &cpages), 0);
		ASSERT_EQ(cpages, n);
	}
	ASSERT_EQ(mlock(buf, bytes), 0);
	ASSERT_EQ(count_on_device(buf, n), self->coherent ? n : 0);
	ASSERT_EQ(count_in_system(buf, n), self->coherent ? 0 : n);
	ASSERT_EQ(pages_on_unit(self->unit),
		  before + (self->coherent ? (long)n : 0));
	ASSERT_EQ(verify(buf, bytes, 620), -1);

	ASSERT_EQ(munlock(buf, bytes), 0);
	ASSERT_EQ(munmap(buf, bytes), 0);
	ASSERT_EQ(pages_on_unit(self->unit), before);
	free(out);
}

/*
 * mprotect(PROT_NONE) over pages in device memory: they stay there, a
 * CPU access gets SIGSEGV and a device access -EFAULT, as on 6.12.  Made
 * accessible again, the data is all there.
 */
TEST_F(hmm, prot_none_device_pages)
{
	unsigned long n = 32, bytes = n * self->ps;
	long before = pages_on_unit(self->unit);
	char *buf, *out;
	pid_t pid;

	ASSERT_GE(before, 0);
	buf = map_on_device(self->fd, n, 740);
	ASSERT_NE(buf, MAP_FAILED);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);

	ASSERT_EQ(mprotect(buf, bytes, PROT_NONE), 0);
	ASSERT_EQ(pages_on_unit(self->unit), before + (long)n);
	ASSERT_EQ(count_on_device(buf, n), n);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		touch_read(buf + self->ps);
		_exit(0);
	}
	ASSERT_EQ(reap(pid), 128 + SIGSEGV);
	ASSERT_EQ(dev_read(self->fd, buf, out, n, NULL), -EFAULT);
	ASSERT_EQ(pages_on_unit(self->unit), before + (long)n);
	ASSERT_EQ(count_on_device(buf, n), n);

	ASSERT_EQ(mprotect(buf, bytes, PROT_READ | PROT_WRITE), 0);
	ASSERT_EQ(verify(buf, bytes, 740), -1);
	fill(buf, bytes, 741);
	ASSERT_EQ(verify(buf, bytes, 741), -1);

	ASSERT_EQ(munmap(buf, bytes), 0);
	ASSERT_EQ(pages_on_unit(self->unit), before);
	free(out);
}

/*
 * A userfaultfd with the API @features, or -errno if the kernel has no
 * userfaultfd, or not with those features.
 */
static int uffd_open(uint64_t features)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };
	int uffd, err;

	uffd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0)
		return -errno;
	if (ioctl(uffd, UFFDIO_API, &api)) {
		err = -errno;
		close(uffd);
		return err;
	}
	return uffd;
}

/* Register [addr, addr + bytes) for missing-page faults; 0 or -errno. */
static int uffd_register_missing(int uffd, void *addr, size_t bytes)
{
	struct uffdio_register reg = {
		.range	= { .start = (uintptr_t)addr, .len = bytes },
		.mode	= UFFDIO_REGISTER_MODE_MISSING,
	};

	return ioctl(uffd, UFFDIO_REGISTER, &reg) ? -errno : 0;
}

/* True if the userfaultfd has no event queued. */
static bool uffd_quiet(int uffd)
{
	struct uffd_msg msg;

	return read(uffd, &msg, sizeof(msg)) < 0 && errno == EAGAIN;
}

/*
 * Register [addr, addr + bytes) with @uffd for write-protect faults and
 * write-protect it; 0 or -errno.
 */
static int uffd_wp_protect(int uffd, void *addr, size_t bytes)
{
	struct uffdio_register reg = {
		.range	= { .start = (uintptr_t)addr, .len = bytes },
		.mode	= UFFDIO_REGISTER_MODE_WP,
	};
	struct uffdio_writeprotect wp = {
		.range	= reg.range,
		.mode	= UFFDIO_WRITEPROTECT_MODE_WP,
	};

	if (ioctl(uffd, UFFDIO_REGISTER, &reg) ||
	    ioctl(uffd, UFFDIO_WRITEPROTECT, &wp))
		return -errno;
	return 0;
}

/* Lift the write protection of [addr, addr + bytes); 0 or -errno. */
static int uffd_wp_release(int uffd, void *addr, size_t bytes)
{
	struct uffdio_writeprotect wp = {
		.range	= { .start = (uintptr_t)addr, .len = bytes },
		.mode	= 0,
	};

	return ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) ? -errno : 0;
}

/* Pages of [addr, addr + npages) that pagemap shows write-protected. */
static unsigned long count_uffd_wp(void *addr, unsigned long npages)
{
	return count_pagemap(addr, npages, PM_UFFD_WP, PM_UFFD_WP);
}

/*
 * A userfaultfd write protection stays on every page through each trip to
 * the device and back: MIGRATE_TO_DEV, an eviction, MIGRATE_TO_SYS and
 * (device-private memory) a CPU read fault.  None of them raises a
 * userfault; once the protection is lifted, the process writes again.
 */
TEST_F(hmm, uffd_wp_kept_on_the_device)
{
	unsigned long n = 8, bytes = n * self->ps;
	long before = pages_on_unit(self->unit);
	uint64_t cpages;
	char *buf, *out;
	int uffd;

	ASSERT_GE(before, 0);
	uffd = uffd_open(0);
	ASSERT_GE(uffd, 0);
	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	ASSERT_EQ(madvise(buf, bytes, MADV_NOHUGEPAGE), 0);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	fill(buf, bytes, 640);
	ASSERT_EQ(uffd_wp_protect(uffd, buf, bytes), 0);
	ASSERT_EQ(count_uffd_wp(buf, n), n);

	ASSERT_EQ(to_device(self->fd, buf, out, n, &cpages), 0);
	ASSERT_EQ(cpages, n);
	ASSERT_EQ(count_on_device(buf, n), n);
	ASSERT_EQ(count_uffd_wp(buf, n), n);

	ASSERT_EQ(dmirror(self->fd, HMM_DMIRROR_RELEASE, buf, NULL, 1, NULL),
		  0);
	ASSERT_EQ(count_in_system(buf, n), n);
	ASSERT_EQ(count_uffd_wp(buf, n), n);

	ASSERT_EQ(to_device(self->fd, buf, out, n, &cpages), 0);
	ASSERT_EQ(to_system(self->fd, buf, n, &cpages), 0);
	ASSERT_EQ(cpages, n);
	ASSERT_EQ(count_in_system(buf, n), n);
	ASSERT_EQ(count_uffd_wp(buf, n), n);

	/* A read faults a device-private page back, not a coherent one. */
	ASSERT_EQ(to_device(self->fd, buf, out, n, &cpages), 0);
	ASSERT_EQ(verify(buf, bytes, 640), -1);
	ASSERT_EQ(count_in_system(buf, n), self->coherent ? 0 : n);
	ASSERT_EQ(count_uffd_wp(buf, n), n);
	ASSERT_TRUE(uffd_quiet(uffd));
	ASSERT_EQ(to_system(self->fd, buf, n, &cpages), 0);
	ASSERT_EQ(cpages, self->coherent ? n : 0);
	ASSERT_EQ(count_uffd_wp(buf, n), n);
	ASSERT_EQ(pages_on_unit(self->unit), before);

	ASSERT_EQ(uffd_wp_release(uffd, buf, bytes), 0);
	ASSERT_EQ(count_uffd_wp(buf, n), 0);
	fill(buf, bytes, 641);
	ASSERT_EQ(verify(buf, bytes, 641), -1);
	close(uffd);
	free(out);
	ASSERT_EQ(munmap(buf, bytes), 0);
}

/*
 * The same for a THP: the protection of its PMD goes to the device-private
 * PMD and back to the THP it returns to, whole or split (FAIL_ALLOC).
 */
TEST_F(hmm_thp, uffd_wp_kept_on_the_device)
{
	int uffd = uffd_open(0);

	ASSERT_GE(uffd, 0);
	ASSERT_EQ(uffd_wp_protect(uffd, self->buf, SZ_2M), 0);
	ASSERT_EQ(count_uffd_wp(self->buf, self->n), self->n);

	/* Moved whole; the device-private PMD is read-only, as the PMD was. */
	ASSERT_EQ(thp_to_device(self->fd, self->buf), 0);
	ASSERT_EQ(dev_snapshot(self->fd, self->buf, self->prot, self->n), 0);
	ASSERT_EQ(count_other(self->prot, self->n,
			      HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL |
			      HMM_DMIRROR_PROT_READ | HMM_DMIRROR_PROT_PMD), 0);
	ASSERT_EQ(count_uffd_wp(self->buf, self->n), self->n);

	/* Evicted whole into a THP. */
	ASSERT_EQ(dmirror(self->fd, HMM_DMIRROR_RELEASE, self->buf, NULL, 1,
			  NULL), 0);
	ASSERT_EQ(smaps_kb(self->buf, "AnonHugePages:"), (long)(SZ_2M >> 10));
	ASSERT_EQ(count_uffd_wp(self->buf, self->n), self->n);

	/* Faulted back whole by a read. */
	ASSERT_EQ(thp_to_device(self->fd, self->buf), 0);
	ASSERT_TRUE(thp_intact(self->buf));
	ASSERT_EQ(smaps_kb(self->buf, "AnonHugePages:"), (long)(SZ_2M >> 10));
	ASSERT_EQ(count_uffd_wp(self->buf, self->n), self->n);

	/* Evicted into base pages: the split keeps it on each. */
	ASSERT_EQ(thp_to_device(self->fd, self->buf), 0);
	ASSERT_EQ(dmirror(self->fd, HMM_DMIRROR_FLAGS, self->buf, NULL,
			  HMM_DMIRROR_FLAG_FAIL_ALLOC, NULL), 0);
	ASSERT_EQ(dmirror(self->fd, HMM_DMIRROR_RELEASE, self->buf, NULL, 1,
			  NULL), 0);
	ASSERT_EQ(smaps_kb(self->buf, "AnonHugePages:"), 0);
	ASSERT_EQ(count_in_system(self->buf, self->n), self->n);
	ASSERT_EQ(count_uffd_wp(self->buf, self->n), self->n);
	ASSERT_TRUE(thp_intact(self->buf));
	ASSERT_TRUE(uffd_quiet(uffd));
	ASSERT_EQ(pages_on_unit(UNIT_PRIVATE_A), self->base);

	ASSERT_EQ(uffd_wp_release(uffd, self->buf, SZ_2M), 0);
	touch_write(self->buf);
	close(uffd);
}

/*
 * A range registered with userfaultfd for missing pages: its populated
 * pages migrate; its missing ones are the process's to fill, so migration
 * does not fill them and the device's command reports them missing
 * (-ENOENT), as on 6.12, without raising a userfault.  A page the process
 * fills with UFFDIO_COPY then migrates.
 */
TEST_F(hmm, userfaultfd_missing_range)
{
	unsigned long n = 32, h = n / 2, bytes = n * self->ps;
	long before = pages_on_unit(self->unit);
	struct uffdio_copy copy;
	char *buf, *out, *src;
	uint64_t cpages;
	int uffd;

	uffd = uffd_open(0);
	if (uffd < 0)
		SKIP(return, "no userfaultfd: %s", strerror(-uffd));
	ASSERT_GE(before, 0);
	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	ASSERT_EQ(madvise(buf, bytes, MADV_NOHUGEPAGE), 0);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	src = map_anon(self->ps, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(src, MAP_FAILED);
	fill(buf, h * self->ps, 630);
	ASSERT_EQ(uffd_register_missing(uffd, buf, bytes), 0);

	ASSERT_EQ(to_device(self->fd, buf, out, n, NULL), -ENOENT);
	ASSERT_EQ(pages_on_unit(self->unit), before + (long)h);
	ASSERT_EQ(count_on_device(buf, h), h);
	ASSERT_EQ(count_pagemap(buf + h * self->ps, n - h,
				PM_PRESENT | PM_SWAP, 0), n - h);
	ASSERT_TRUE(uffd_quiet(uffd));

	fill(src, self->ps, 631);
	copy = (struct uffdio_copy) {
		.dst	= (uintptr_t)(buf + h * self->ps),
		.src	= (uintptr_t)src,
		.len	= self->ps,
	};
	ASSERT_EQ(ioctl(uffd, UFFDIO_COPY, &copy), 0);
	ASSERT_EQ(copy.copy, (int64_t)self->ps);
	ASSERT_EQ(to_device(self->fd, buf + h * self->ps, out, 1, &cpages), 0);
	ASSERT_EQ(cpages, 1);
	ASSERT_EQ(verify(out, self->ps, 631), -1);
	ASSERT_EQ(pages_on_unit(self->unit), before + (long)h + 1);

	ASSERT_EQ(verify(buf, h * self->ps, 630), -1);
	ASSERT_EQ(verify(buf + h * self->ps, self->ps, 631), -1);
	ASSERT_TRUE(uffd_quiet(uffd));

	close(uffd);
	ASSERT_EQ(munmap(buf, bytes), 0);
	ASSERT_EQ(pages_on_unit(self->unit), before);
	munmap(src, self->ps);
	free(out);
}

#define CGROUP2_ROOT	"/sys/fs/cgroup"

/* Write @val to the file @path; 0 or -errno. */
static int write_file(const char *path, const char *val)
{
	ssize_t len = strlen(val), ret;
	int fd, err = 0;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = write(fd, val, len);
	if (ret != len)
		err = ret < 0 ? -errno : -EIO;
	close(fd);
	return err;
}

/* The number in the file @path, or -1. */
static long read_long_file(const char *path)
{
	long val = -1;
	FILE *f;

	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fscanf(f, "%ld", &val) != 1)
		val = -1;
	fclose(f);
	return val;
}

/* Does the file @path hold the word @word? */
static bool file_has_word(const char *path, const char *word)
{
	char w[64];
	bool found = false;
	FILE *f;

	f = fopen(path, "r");
	if (!f)
		return false;
	while (!found && fscanf(f, "%63s", w) == 1)
		found = !strcmp(w, word);
	fclose(f);
	return found;
}

/* memory.current of the cgroup directory @cg, in bytes, or -1. */
static long memcg_current(const char *cg)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/memory.current", cg);
	return read_long_file(path);
}

/*
 * The memory cgroup charge of a page moves with its data: migrating a
 * range to the device and back leaves memory.current of the process's
 * cgroup where it was, and freeing the range on the device uncharges it.
 * (Per-CPU charge batching makes memory.current move by up to 64 pages a
 * CPU on its own: the slack.)
 */
TEST_F_TIMEOUT(hmm, memcg_charge_follows_migration, RACE_TIMEOUT)
{
	unsigned long n = 2048, bytes = n * self->ps, slack = 512 * self->ps;
	long before = pages_on_unit(self->unit);
	long c0, c1, c2, c3;
	char cg[64], procs[96];
	uint64_t cpages;
	char *buf, *out;

	if (!file_has_word(CGROUP2_ROOT "/cgroup.controllers", "memory"))
		SKIP(return, "no cgroup2 memory controller at " CGROUP2_ROOT);
	ASSERT_GE(before, 0);
	/* The test's own memory is charged before it measures. */
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	/* Not zero: the compiler may turn malloc() + zeroing into calloc(). */
	memset(out, 0xff, bytes);
	ASSERT_EQ(write_file(CGROUP2_ROOT "/cgroup.subtree_control", "+memory"),
		  0);
	snprintf(cg, sizeof(cg), CGROUP2_ROOT "/hmm-tests-%d", getpid());
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", cg);
	ASSERT_EQ(mkdir(cg, 0755), 0);
	ASSERT_EQ(write_file(procs, "0"), 0);

	c0 = memcg_current(cg);
	ASSERT_GE(c0, 0);
	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	ASSERT_EQ(madvise(buf, bytes, MADV_NOHUGEPAGE), 0);
	fill(buf, bytes, 640);
	c1 = memcg_current(cg);
	ASSERT_GE(c1 - c0, (long)(bytes - slack));

	ASSERT_EQ(to_device(self->fd, buf, out, n, &cpages), 0);
	ASSERT_EQ(cpages, n);
	ASSERT_EQ(pages_on_unit(self->unit), before + (long)n);
	c2 = memcg_current(cg);
	ASSERT_LE(labs(c2 - c1), (long)slack)
		TH_LOG("memory.current %ld before migrating, %ld after", c1, c2);

	ASSERT_EQ(to_system(self->fd, buf, n, &cpages), 0);
	ASSERT_EQ(cpages, n);
	ASSERT_EQ(pages_on_unit(self->unit), before);
	c3 = memcg_current(cg);
	ASSERT_LE(labs(c3 - c1), (long)slack)
		TH_LOG("memory.current %ld on the device, %ld back", c2, c3);
	ASSERT_EQ(verify(buf, bytes, 640), -1);

	ASSERT_EQ(to_device(self->fd, buf, out, n, &cpages), 0);
	ASSERT_EQ(cpages, n);
	ASSERT_EQ(munmap(buf, bytes), 0);
	ASSERT_EQ(pages_on_unit(self->unit), before);
	c3 = memcg_current(cg);
	ASSERT_LE(c3, c0 + (long)slack)
		TH_LOG("memory.current %ld with nothing mapped, %ld at first",
		       c3, c0);

	ASSERT_EQ(write_file(CGROUP2_ROOT "/cgroup.procs", "0"), 0);
	ASSERT_EQ(rmdir(cg), 0);
	free(out);
}

#define KSM_DIR		"/sys/kernel/mm/ksm"

/*
 * KSM-merged pages stay in system memory (src 0, a documented difference
 * from 6.12, which moved a merged page to the device where KSM cannot
 * compare it): the device's command reports them missing, the others
 * migrate, and the merged pages keep their data.  A CPU write unmerges a
 * page (COW), which then migrates like any other.
 */
TEST_F_TIMEOUT(hmm, ksm_merged_pages_stay, RACE_TIMEOUT)
{
	unsigned long n = 8, merged = 4, bytes = n * self->ps, i;
	long before = pages_on_unit(self->unit);
	long run, sleep_ms, to_scan, merging = -1;
	uint64_t cpages;
	char *buf, *out;
	char val[32];
	int tries;

	run = read_long_file(KSM_DIR "/run");
	sleep_ms = read_long_file(KSM_DIR "/sleep_millisecs");
	to_scan = read_long_file(KSM_DIR "/pages_to_scan");
	if (run < 0 || sleep_ms < 0 || to_scan < 0 ||
	    access("/proc/self/ksm_merging_pages", R_OK))
		SKIP(return, "the kernel has no KSM");
	ASSERT_GE(before, 0);
	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	ASSERT_EQ(madvise(buf, bytes, MADV_NOHUGEPAGE), 0);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	/* The first pages are alike, the others all different. */
	for (i = 0; i < n; i++)
		fill(buf + i * self->ps, self->ps, i < merged ? 650 : 651 + i);
	ASSERT_EQ(madvise(buf, bytes, MADV_MERGEABLE), 0);

	ASSERT_EQ(write_file(KSM_DIR "/sleep_millisecs", "10"), 0);
	ASSERT_EQ(write_file(KSM_DIR "/pages_to_scan", "1000"), 0);
	ASSERT_EQ(write_file(KSM_DIR "/run", "1"), 0);
	for (tries = 0; tries < 600; tries++) {
		merging = read_long_file("/proc/self/ksm_merging_pages");
		if (merging >= (long)merged)
			break;
		usleep(100000);
	}
	snprintf(val, sizeof(val), "%ld", run);
	ASSERT_EQ(write_file(KSM_DIR "/run", val), 0);
	snprintf(val, sizeof(val), "%ld", sleep_ms);
	ASSERT_EQ(write_file(KSM_DIR "/sleep_millisecs", val), 0);
	snprintf(val, sizeof(val), "%ld", to_scan);
	ASSERT_EQ(write_file(KSM_DIR "/pages_to_scan", val), 0);
	ASSERT_EQ(merging, (long)merged)
		TH_LOG("KSM merged %ld pages in 60 s", merging);

	ASSERT_EQ(to_device(self->fd, buf, out, n, NULL), -ENOENT);
	ASSERT_EQ(pages_on_unit(self->unit), before + (long)(n - merged));
	ASSERT_EQ(count_in_system(buf, merged), merged);
	ASSERT_EQ(count_on_device(buf + merged * self->ps, n - merged),
		  n - merged);
	for (i = 0; i < n; i++)
		ASSERT_EQ(verify(buf + i * self->ps, self->ps,
				 i < merged ? 650 : 651 + i), -1);

	fill(buf, self->ps, 649);
	ASSERT_EQ(to_device(self->fd, buf, out, 1, &cpages), 0);
	ASSERT_EQ(cpages, 1);
	ASSERT_EQ(verify(out, self->ps, 649), -1);
	for (i = 1; i < merged; i++)
		ASSERT_EQ(verify(buf + i * self->ps, self->ps, 650), -1);
	ASSERT_EQ(verify(buf, self->ps, 649), -1);

	ASSERT_EQ(munmap(buf, bytes), 0);
	ASSERT_EQ(pages_on_unit(self->unit), before);
	free(out);
}

/*
 * hugetlbfs memory cannot migrate to or from device memory: both commands
 * fail with migrate_vma_setup()'s -EINVAL and leave the memory as it was;
 * the device still reads it in place.
 */
TEST_F(hmm, migrate_hugetlbfs_refused)
{
	long hsize = meminfo_value("Hugepagesize:") * 1024;
	long before = pages_on_unit(self->unit);
	struct hmm_dmirror_cmd cmd;
	unsigned long bytes, n;
	char *buf, *out;

	if (hsize <= 0 || meminfo_value("HugePages_Free:") < 1)
		SKIP(return, "no free hugetlbfs page");
	bytes = hsize;
	n = bytes / self->ps;
	buf = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	if (buf == MAP_FAILED)
		SKIP(return, "cannot map a hugetlbfs page");
	ASSERT_GE(before, 0);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	fill(buf, bytes, 660);

	ASSERT_EQ(to_device(self->fd, buf, out, n, NULL), -EINVAL);
	ASSERT_EQ(to_system(self->fd, buf, n, NULL), -EINVAL);
	ASSERT_EQ(pages_on_unit(self->unit), before);
	ASSERT_EQ(count_in_system(buf, n), n);
	ASSERT_EQ(verify(buf, bytes, 660), -1);
	memset(out, 0, bytes);
	ASSERT_EQ(dev_read(self->fd, buf, out, n, &cmd), 0);
	ASSERT_EQ(cmd.cpages, n);
	ASSERT_EQ(verify(out, bytes, 660), -1);

	free(out);
	munmap(buf, bytes);
}

/*
 * process_vm_readv() and process_vm_writev() reach device pages through
 * GUP like /proc/PID/mem: device-private pages are faulted back first,
 * device-coherent ones are read and written in place.
 */
TEST_F(hmm, process_vm_rw_device_pages)
{
	unsigned long n = 16, bytes = n * self->ps;
	long before = pages_on_unit(self->unit);
	struct iovec local, remote;
	char *buf, *buf2, *out;
	char probe = 1;

	/* Kernels built without CROSS_MEMORY_ATTACH have no such calls. */
	local = (struct iovec) { .iov_base = &probe, .iov_len = 1 };
	if (process_vm_readv(getpid(), &local, 1, &local, 1, 0) != 1)
		SKIP(return, "no process_vm_readv(): %s", strerror(errno));
	ASSERT_GE(before, 0);
	buf = map_on_device(self->fd, n, 670);
	ASSERT_NE(buf, MAP_FAILED);
	buf2 = map_on_device(self->fd, n, 669);
	ASSERT_NE(buf2, MAP_FAILED);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	ASSERT_EQ(pages_on_unit(self->unit), before + 2 * (long)n);

	memset(out, 0, bytes);
	local = (struct iovec) { .iov_base = out, .iov_len = bytes };
	remote = (struct iovec) { .iov_base = buf, .iov_len = bytes };
	ASSERT_EQ(process_vm_readv(getpid(), &local, 1, &remote, 1, 0),
		  (ssize_t)bytes);
	ASSERT_EQ(verify(out, bytes, 670), -1);
	ASSERT_EQ(count_on_device(buf, n), self->coherent ? n : 0);

	fill(out, bytes, 671);
	remote.iov_base = buf2;
	ASSERT_EQ(process_vm_writev(getpid(), &local, 1, &remote, 1, 0),
		  (ssize_t)bytes);
	ASSERT_EQ(count_on_device(buf2, n), self->coherent ? n : 0);
	ASSERT_EQ(pages_on_unit(self->unit),
		  before + (self->coherent ? 2 * (long)n : 0));
	ASSERT_EQ(verify(buf2, bytes, 671), -1);
	ASSERT_EQ(verify(buf, bytes, 670), -1);

	munmap(buf2, bytes);
	munmap(buf, bytes);
	ASSERT_EQ(pages_on_unit(self->unit), before);
	free(out);
}

/*
 * mremap() of a range the device has exclusive access to moves the
 * device-exclusive entries with it: still not present at the new
 * address, then taken back by the first CPU access there, with what the
 * device wrote.  The device can take the moved range again.
 */
TEST_F(hmm, exclusive_mremap)
{
	unsigned long n = 32, bytes = n * self->ps;
	struct hmm_dmirror_cmd cmd;
	char *buf, *dst, *in, *out;

	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	ASSERT_EQ(madvise(buf, bytes, MADV_NOHUGEPAGE), 0);
	dst = map_anon(bytes, PROT_NONE, MAP_PRIVATE);
	ASSERT_NE(dst, MAP_FAILED);
	in = malloc(bytes);
	ASSERT_NE(in, NULL);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	fill(buf, bytes, 680);
	ASSERT_EQ(dev_exclusive(self->fd, buf, out, n), 0);
	fill(in, bytes, 681);
	ASSERT_EQ(dev_write(self->fd, buf, in, n, &cmd), 0);
	ASSERT_EQ(cmd.faults, 0);

	ASSERT_EQ(mremap(buf, bytes, bytes, MREMAP_MAYMOVE | MREMAP_FIXED,
			 dst), dst);
	ASSERT_EQ(count_on_device(dst, n), n);
	ASSERT_EQ(smaps_kb(dst, "Rss:"), (long)(bytes >> 10));
	ASSERT_EQ(verify(dst, bytes, 681), -1);
	ASSERT_EQ(count_in_system(dst, n), n);

	ASSERT_EQ(dev_exclusive(self->fd, dst, out, n), 0);
	ASSERT_EQ(verify(out, bytes, 681), -1);
	ASSERT_EQ(dev_check_exclusive(self->fd, dst, n), -EPERM);
	fill(in, bytes, 682);
	ASSERT_EQ(dev_write(self->fd, dst, in, n, &cmd), 0);
	ASSERT_EQ(cmd.faults, 0);
	ASSERT_EQ(verify(dst, bytes, 682), -1);
	ASSERT_EQ(dev_check_exclusive(self->fd, dst, n), 0);

	free(out);
	free(in);
	munmap(dst, bytes);
}

/*
 * GUP takes exclusive pages back like a CPU access: a /proc/self/mem read
 * and a long-term pin (with and without GUP-fast) both see what the device
 * wrote, and the device no longer holds the pages.
 */
TEST_F(hmm, exclusive_gup_takes_back)
{
	static const unsigned int flags[] = {
		PIN_LONGTERM_TEST_FLAG_USE_WRITE,
		PIN_LONGTERM_TEST_FLAG_USE_FAST,
	};
	unsigned long n = 16, bytes = n * self->ps;
	struct pin_longterm_test pin;
	struct hmm_dmirror_cmd cmd;
	char *buf, *in, *out;
	unsigned int round;
	int gup, mem;
	__u64 dst;

	gup = open("/sys/kernel/debug/gup_test", O_RDWR | O_CLOEXEC);
	if (gup < 0)
		SKIP(return, "no /sys/kernel/debug/gup_test");
	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	ASSERT_EQ(madvise(buf, bytes, MADV_NOHUGEPAGE), 0);
	in = malloc(bytes);
	ASSERT_NE(in, NULL);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	fill(buf, bytes, 690);

	ASSERT_EQ(dev_exclusive(self->fd, buf, out, n), 0);
	fill(in, bytes, 691);
	ASSERT_EQ(dev_write(self->fd, buf, in, n, &cmd), 0);
	ASSERT_EQ(cmd.faults, 0);
	mem = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
	ASSERT_GE(mem, 0);
	memset(out, 0, bytes);
	ASSERT_EQ(pread(mem, out, bytes, (uintptr_t)buf), (ssize_t)bytes);
	close(mem);
	ASSERT_EQ(verify(out, bytes, 691), -1);
	ASSERT_EQ(dev_check_exclusive(self->fd, buf, n), 0);
	ASSERT_EQ(count_in_system(buf, n), n);

	dst = (uintptr_t)out;
	for (round = 0; round < 2; round++) {
		ASSERT_EQ(dev_exclusive(self->fd, buf, out, n), 0);
		fill(in, bytes, 692 + round);
		ASSERT_EQ(dev_write(self->fd, buf, in, n, &cmd), 0);
		ASSERT_EQ(cmd.faults, 0);
		pin = (struct pin_longterm_test) {
			.addr	= (uintptr_t)buf,
			.size	= bytes,
			.flags	= flags[round],
		};
		ASSERT_EQ(ioctl(gup, PIN_LONGTERM_TEST_START, &pin), 0);
		ASSERT_EQ(dev_check_exclusive(self->fd, buf, n), 0);
		ASSERT_EQ(count_in_system(buf, n), n);
		memset(out, 0, bytes);
		ASSERT_EQ(ioctl(gup, PIN_LONGTERM_TEST_READ, &dst), 0);
		ASSERT_EQ(ioctl(gup, PIN_LONGTERM_TEST_STOP), 0);
		ASSERT_EQ(verify(out, bytes, 692 + round), -1);
		ASSERT_EQ(verify(buf, bytes, 692 + round), -1);
	}

	close(gup);
	free(out);
	free(in);
	munmap(buf, bytes);
}

/*
 * A thread that migrates one range to the device and back until told to
 * stop, checking what the device hands back.  Failures that races make
 * legitimate (a page that changed hands meanwhile: -ENOENT; the device's
 * time limit: -EBUSY) are counted, anything else stops it.
 */
struct migrator {
	int		fd;
	char		*buf;
	unsigned long	n;
	unsigned long	ps;
	unsigned int	seed;
	bool		both_ways;	/* also MIGRATE_TO_SYS each round */
	bool		no_reads;	/* no HMM_DMIRROR_READ each round */
	unsigned int	max_rounds;	/* 0: until stop */
	pthread_barrier_t *start;	/* or NULL */
	bool		stop;		/* read and set with __atomic */
	bool		done;		/* set with __atomic on return */
	/* Results, read after the thread is joined. */
	unsigned long	rounds, moved, reads, raced;
	int		error;		/* an unexpected errno, or 0 */
	long		wrong;		/* a word the device got wrong, or -1 */
};

static bool migrator_ok(struct migrator *m, int ret, const char *out)
{
	if (ret == -ENOENT || ret == -EBUSY) {
		m->raced++;
		return true;
	}
	if (ret) {
		m->error = ret;
		return false;
	}
	m->wrong = verify(out, m->n * m->ps, m->seed);
	return m->wrong == -1;
}

static void *migrate_loop(void *arg)
{
	struct migrator *m = arg;
	struct hmm_dmirror_cmd cmd;
	char *out;
	int ret;

	m->wrong = -1;
	out = malloc(m->n * m->ps);
	if (!out) {
		m->error = -ENOMEM;
		__atomic_store_n(&m->done, true, __ATOMIC_RELEASE);
		return NULL;
	}
	if (m->start)
		pthread_barrier_wait(m->start);
	while (!__atomic_load_n(&m->stop, __ATOMIC_ACQUIRE) &&
	       (!m->max_rounds || m->rounds < m->max_rounds)) {
		m->rounds++;
		ret = to_device(m->fd, m->buf, out, m->n, NULL);
		if (!migrator_ok(m, ret, out))
			break;
		m->moved += !ret;
		if (!m->no_reads) {
			ret = dev_read(m->fd, m->buf, out, m->n, &cmd);
			if (!migrator_ok(m, ret, out))
				break;
			m->reads += !ret;
		}
		if (m->both_ways) {
			ret = to_system(m->fd, m->buf, m->n, NULL);
			if (ret && ret != -EBUSY) {
				m->error = ret;
				break;
			}
		}
	}
	free(out);
	__atomic_store_n(&m->done, true, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * fork() while a thread migrates the range back and forth: every child
 * sees the data the range had at its fork and can write its own copy
 * without the parent seeing it; nothing is left on the device after.
 */
TEST_F_TIMEOUT(hmm, fork_while_migrating, RACE_TIMEOUT)
{
	unsigned long n = 64, bytes = n * self->ps;
	long before = pages_on_unit(self->unit);
	struct migrator m;
	pthread_t tid;
	unsigned int k;
	pid_t pid;

	ASSERT_GE(before, 0);
	m = (struct migrator) {
		.fd = self->fd, .n = n, .ps = self->ps, .seed = 700,
		.both_ways = true, .wrong = -1,
	};
	m.buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(m.buf, MAP_FAILED);
	fill(m.buf, bytes, 700);
	ASSERT_EQ(pthread_create(&tid, NULL, migrate_loop, &m), 0);

	for (k = 0; k < 16; k++) {
		usleep(k * 1000);
		pid = fork();
		ASSERT_GE(pid, 0);
		if (pid == 0) {
			if (verify(m.buf, bytes, 700) != -1)
				_exit(1);
			fill(m.buf, bytes, 701 + k);
			_exit(verify(m.buf, bytes, 701 + k) == -1 ? 0 : 2);
		}
		ASSERT_EQ(reap(pid), 0);
		ASSERT_EQ(verify(m.buf, bytes, 700), -1);
	}
	__atomic_store_n(&m.stop, true, __ATOMIC_RELEASE);
	ASSERT_EQ(pthread_join(tid, NULL), 0);
	ASSERT_EQ(m.error, 0);
	ASSERT_EQ(m.wrong, -1);
	ASSERT_GT(m.rounds, 0);

	ASSERT_EQ(verify(m.buf, bytes, 700), -1);
	ASSERT_EQ(munmap(m.buf, bytes), 0);
	ASSERT_EQ(pages_on_unit(self->unit), before);
}

/* UFFDIO_MOVE of one page; 0 or -errno. */
static int uffd_move_page(int uffd, void *dst, void *src, unsigned long ps)
{
	struct uffdio_move mv = {
		.dst	= (uintptr_t)dst,
		.src	= (uintptr_t)src,
		.len	= ps,
	};

	return ioctl(uffd, UFFDIO_MOVE, &mv) ? -errno : 0;
}

/*
 * UFFDIO_MOVE moves pages out of a range and back in while a thread
 * migrates that range to the device and back.  A move that meets a page
 * under migration waits for it inside an invalidation of the range, so a
 * migration must never wait for invalidations to end while it holds page
 * locks (test_hmm's mmu_interval_read_begin() comes first): otherwise
 * both hang.  A move meeting a device-private page fails with -EFAULT, a
 * page being migrated with -EBUSY or -EAGAIN; a migration meeting a page
 * moved away finds a hole it must leave to userfaultfd (-ENOENT).  In the
 * end every page is in exactly one of the two places, with its data.
 */
static bool uffd_race_goes_on(struct migrator *m, unsigned long moves)
{
	unsigned long rounds = __atomic_load_n(&m->rounds, __ATOMIC_RELAXED);

	return rounds < 40 || (!moves && rounds < 400);
}

TEST_F_TIMEOUT(hmm, uffd_move_racing_migration, RACE_TIMEOUT)
{
	unsigned long n = 16, bytes = n * self->ps, i, moves = 0;
	long before = pages_on_unit(self->unit);
	struct uffdio_range range;
	struct migrator m;
	char *a, *b, *ref;
	unsigned long errs[2] = { 0, 0 };	/* -EFAULT, others */
	pthread_t tid;
	int uffd, ret;

	uffd = uffd_open(UFFD_FEATURE_MOVE);
	if (uffd < 0)
		SKIP(return, "no userfaultfd with UFFDIO_MOVE: %s",
		     strerror(-uffd));
	ASSERT_GE(before, 0);
	/* One mapping: the range migrated, then where its pages move to. */
	a = map_anon(2 * bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(a, MAP_FAILED);
	b = a + bytes;
	ASSERT_EQ(madvise(a, 2 * bytes, MADV_NOHUGEPAGE), 0);
	ref = malloc(bytes);
	ASSERT_NE(ref, NULL);
	fill(ref, bytes, 730);
	memcpy(a, ref, bytes);
	ASSERT_EQ(uffd_register_missing(uffd, a, 2 * bytes), 0);

	/*
	 * No device reads: a device fault on a page moved away would be a
	 * userfault that nobody resolves.
	 */
	m = (struct migrator) {
		.fd = self->fd, .buf = a, .n = n, .ps = self->ps, .seed = 730,
		.both_ways = true, .no_reads = true, .wrong = -1,
	};
	ASSERT_EQ(pthread_create(&tid, NULL, migrate_loop, &m), 0);
	/*
	 * A hang here is the bug this test is for: make test's timeout.  At
	 * least 40 migration rounds, and more (up to 400) until a page has
	 * moved: a busy host can hold this thread off for 40 rounds.
	 */
	while (!m.error && uffd_race_goes_on(&m, moves)) {
		for (i = 0; i < n; i++) {
			char *pa = a + i * self->ps, *pb = b + i * self->ps;

			/* Whichever way the page can go. */
			ret = uffd_move_page(uffd, pb, pa, self->ps);
			if (ret == -EEXIST || ret == -ENOENT)
				ret = uffd_move_page(uffd, pa, pb, self->ps);
			if (!ret) {
				moves++;
				continue;
			}
			ASSERT_TRUE(ret == -EFAULT || ret == -EBUSY ||
				    ret == -EAGAIN)
				TH_LOG("UFFDIO_MOVE failed with %d", ret);
			errs[ret == -EFAULT ? 0 : 1]++;
		}
		usleep(200);
	}
	__atomic_store_n(&m.stop, true, __ATOMIC_RELEASE);
	ASSERT_EQ(pthread_join(tid, NULL), 0);
	ASSERT_EQ(m.error, 0);
	ASSERT_EQ(m.wrong, -1);
	ASSERT_GT(moves, 0);
	TH_LOG("%lu moves, %lu refused on the device, %lu busy; %lu migration rounds, %lu complete",
	       moves, errs[0], errs[1], m.rounds, m.moved);

	/* Missing pages read as zero from here on instead of blocking. */
	range = (struct uffdio_range) {
		.start = (uintptr_t)a, .len = 2 * bytes,
	};
	ASSERT_EQ(ioctl(uffd, UFFDIO_UNREGISTER, &range), 0);
	for (i = 0; i < n; i++) {
		char *pa = a + i * self->ps, *pb = b + i * self->ps;
		bool in_a = count_pagemap(pa, 1, PM_PRESENT | PM_SWAP, 0) == 0;
		bool in_b = count_pagemap(pb, 1, PM_PRESENT | PM_SWAP, 0) == 0;

		ASSERT_NE(in_a, in_b) TH_LOG("page %lu", i);
		ASSERT_EQ(memcmp(in_a ? pa : pb, ref + i * self->ps,
				 self->ps), 0) TH_LOG("page %lu", i);
	}

	close(uffd);
	ASSERT_EQ(munmap(a, 2 * bytes), 0);
	ASSERT_EQ(pages_on_unit(self->unit), before);
	free(ref);
}

/* Poll for up to 10 s for the unit's pages in use to come back to @want. */
static long pages_on_unit_settle(int unit, long want)
{
	long now = pages_on_unit(unit);
	int tries;

	for (tries = 0; now != want && tries < 100; tries++) {
		usleep(100000);
		now = pages_on_unit(unit);
	}
	return now;
}

/*
 * A process exits while one of its threads is in the middle of a
 * migration: the exit waits for the command, and the process's device
 * pages are all freed.
 */
TEST_F_TIMEOUT(hmm, exit_during_migration, RACE_TIMEOUT)
{
	unsigned long n = 256, bytes = n * self->ps;
	long before = pages_on_unit(self->unit);
	unsigned int k;
	pid_t pid;

	ASSERT_GE(before, 0);
	for (k = 0; k < 8; k++) {
		pid = fork();
		ASSERT_GE(pid, 0);
		if (pid == 0) {
			struct migrator m = {
				.n = n, .ps = self->ps, .seed = 710 + k,
				.both_ways = k & 1, .wrong = -1,
			};
			pthread_t tid;

			m.fd = open_unit(self->unit);
			m.buf = map_anon(bytes, PROT_READ | PROT_WRITE,
					 MAP_PRIVATE);
			if (m.fd < 0 || m.buf == MAP_FAILED)
				_exit(1);
			fill(m.buf, bytes, 710 + k);
			if (pthread_create(&tid, NULL, migrate_loop, &m))
				_exit(1);
			usleep(1000 + k * 3000);
			/* The thread is still at work: it does not stop. */
			_exit(m.error ? 2 : 0);
		}
		ASSERT_EQ(reap(pid), 0);
	}
	ASSERT_EQ(pages_on_unit_settle(self->unit, before), before);
}

/*
 * Eight threads sharing one mirror migrate the same range, which crosses a
 * PMD boundary (two batches), to the device and read it there, every other
 * one moving it back each round too, while the CPU reads it: batches of
 * different threads reserve, fill and give back the same mirror slots.
 * The data is never wrong, every failure is one a race explains, and no
 * device page is left once the range is gone.
 */
TEST_F_TIMEOUT(hmm, one_mirror_threads_race, RACE_TIMEOUT)
{
	unsigned long n = 96, bytes = n * self->ps, reads = 0;
	long before = pages_on_unit(self->unit);
	pthread_barrier_t start;
	struct migrator m[8];
	pthread_t tid[8];
	char *map, *buf;
	bool done;
	int t;

	ASSERT_GE(before, 0);
	map = map_aligned(2 * SZ_2M, SZ_2M);
	ASSERT_NE(map, MAP_FAILED);
	buf = map + SZ_2M - bytes / 2;
	fill(buf, bytes, 730);
	ASSERT_EQ(pthread_barrier_init(&start, NULL, 9), 0);
	for (t = 0; t < 8; t++) {
		m[t] = (struct migrator) {
			.fd = self->fd, .buf = buf, .n = n, .ps = self->ps,
			.seed = 730, .both_ways = t & 1, .max_rounds = 10,
			.start = &start, .wrong = -1,
		};
		ASSERT_EQ(pthread_create(&tid[t], NULL, migrate_loop, &m[t]),
			  0);
	}
	pthread_barrier_wait(&start);
	do {
		ASSERT_EQ(verify(buf, bytes, 730), -1);
		usleep(500);
		done = true;
		for (t = 0; t < 8; t++)
			done &= __atomic_load_n(&m[t].done, __ATOMIC_ACQUIRE);
	} while (!done);
	for (t = 0; t < 8; t++)
		ASSERT_EQ(pthread_join(tid[t], NULL), 0);
	pthread_barrier_destroy(&start);
	for (t = 0; t < 8; t++) {
		ASSERT_EQ(m[t].error, 0);
		ASSERT_EQ(m[t].wrong, -1);
		ASSERT_EQ(m[t].rounds, 10);
		reads += m[t].reads;
	}
	ASSERT_GT(reads, 0);

	ASSERT_EQ(verify(buf, bytes, 730), -1);
	ASSERT_EQ(munmap(map, 2 * SZ_2M), 0);
	ASSERT_EQ(pages_on_unit(self->unit), before);
}

/*
 * Two devices migrate the same range and read it, each in a loop, while
 * the CPU reads it too: the data is never wrong, every failure is one a
 * race explains, and neither device keeps a page once the range is gone.
 */
TEST_F_TIMEOUT(hmm2, same_range_two_devices_race, RACE_TIMEOUT)
{
	unsigned long n = 64, bytes = n * self->ps;
	long before0 = pages_on_unit(self->unit0);
	long before1 = pages_on_unit(self->unit1);
	struct migrator m[2];
	pthread_barrier_t start;
	unsigned long cpu_reads = 0;
	pthread_t tid[2];
	char *buf;
	int t;

	ASSERT_GE(before0, 0);
	ASSERT_GE(before1, 0);
	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	fill(buf, bytes, 720);
	ASSERT_EQ(pthread_barrier_init(&start, NULL, 3), 0);
	for (t = 0; t < 2; t++) {
		m[t] = (struct migrator) {
			.fd = t ? self->fd1 : self->fd0, .buf = buf, .n = n,
			.ps = self->ps, .seed = 720, .max_rounds = 50,
			.start = &start, .wrong = -1,
		};
		ASSERT_EQ(pthread_create(&tid[t], NULL, migrate_loop, &m[t]),
			  0);
	}
	pthread_barrier_wait(&start);
	while (!__atomic_load_n(&m[0].done, __ATOMIC_ACQUIRE) ||
	       !__atomic_load_n(&m[1].done, __ATOMIC_ACQUIRE)) {
		ASSERT_EQ(verify(buf, bytes, 720), -1);
		cpu_reads++;
		usleep(500);
	}
	for (t = 0; t < 2; t++)
		ASSERT_EQ(pthread_join(tid[t], NULL), 0);
	pthread_barrier_destroy(&start);
	for (t = 0; t < 2; t++) {
		ASSERT_EQ(m[t].error, 0);
		ASSERT_EQ(m[t].wrong, -1);
		ASSERT_EQ(m[t].rounds, 50);
	}
	ASSERT_GT(m[0].reads + m[1].reads, 0);
	TH_LOG("moved %lu + %lu, read %lu + %lu, raced %lu + %lu, CPU reads %lu",
	       m[0].moved, m[1].moved, m[0].reads, m[1].reads, m[0].raced,
	       m[1].raced, cpu_reads);

	ASSERT_EQ(verify(buf, bytes, 720), -1);
	ASSERT_EQ(munmap(buf, bytes), 0);
	ASSERT_EQ(pages_on_unit(self->unit0), before0);
	ASSERT_EQ(pages_on_unit(self->unit1), before1);
}

/* ---------------------------------------------------------------------------
 * Module unload, last: it reloads the driver from TEST_HMM_KO
 */

#define TEST_HMM_KO	"/lib/modules/test_hmm.ko"

/*
 * The parameters test_hmm was loaded with, for loading it again the same
 * way ("" if it has none): the device-coherent devices need them.
 */
static void module_params(char *params, size_t size)
{
	static const char *const names[] = { "spm_addr_dev0", "spm_addr_dev1" };
	unsigned long val;
	size_t len = 0;
	char path[96];
	unsigned int i;
	FILE *f;

	params[0] = '\0';
	for (i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "/sys/module/test_hmm/parameters/%s",
			 names[i]);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fscanf(f, "%lu", &val) == 1 && val && len < size)
			len += snprintf(params + len, size - len, "%s%s=%#lx",
					len ? " " : "", names[i], val);
		fclose(f);
	}
}

/*
 * Unload the driver while pages are in its memory: with every file
 * closed, delete_module() evicts them and the process finds its data
 * intact in system memory.  Device-coherent pages, when that device
 * exists, are mapped by a child too, which finds them intact as well.
 * The driver is then loaded again, with the same parameters, and works.
 */
TEST(module_unload_with_pages_on_device)
{
	unsigned long n = 64, ps = psize(), bytes = n * ps;
	unsigned long back, present, cback = 0;
	char *buf, *out, *cbuf = NULL;
	int fd, ko, ret, err, status;
	long intact, cintact = -1;
	char params[128];
	pid_t child = -1;
	uint64_t cpages;
	int go[2];

	if (access("/sys/module/test_hmm/refcnt", F_OK))
		SKIP(return, "test_hmm is not a loaded module");
	ko = open(TEST_HMM_KO, O_RDONLY | O_CLOEXEC);
	if (ko < 0)
		SKIP(return, "no %s to load it again from", TEST_HMM_KO);

	fd = open_unit(UNIT_PRIVATE_A);
	ASSERT_GE(fd, 0);
	buf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(buf, MAP_FAILED);
	out = malloc(bytes);
	ASSERT_NE(out, NULL);
	fill(buf, bytes, 270);
	ASSERT_EQ(to_device(fd, buf, out, n, &cpages), 0);
	ASSERT_EQ(cpages, n);
	ASSERT_EQ(close(fd), 0);
	ASSERT_EQ(count_on_device(buf, n), n);

	module_params(params, sizeof(params));
	fd = open_unit(UNIT_COHERENT_A);
	if (fd >= 0) {
		cbuf = map_anon(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE);
		ASSERT_NE(cbuf, MAP_FAILED);
		fill(cbuf, bytes, 271);
		ASSERT_EQ(to_device(fd, cbuf, out, n, &cpages), 0);
		ASSERT_EQ(cpages, n);
		ASSERT_EQ(close(fd), 0);
		ASSERT_EQ(pipe(go), 0);
		child = sharing_child(cbuf, bytes, 271, go);
		ASSERT_GE(child, 0);
		close(go[0]);
		ASSERT_EQ(count_on_device(cbuf, n), n);
	}

	ret = syscall(__NR_delete_module, "test_hmm", O_NONBLOCK);
	err = errno;
	if (ret && err == EPERM)
		SKIP(return, "not allowed to unload modules");
	ASSERT_EQ(ret, 0)
		TH_LOG("delete_module(test_hmm): %s", strerror(err));

	/* Look at the data first, reload before asserting anything. */
	back = count_in_system(buf, n);
	intact = verify(buf, bytes, 270);
	present = count_in_system(buf, n);
	if (cbuf) {
		cback = count_in_system(cbuf, n);
		cintact = verify(cbuf, bytes, 271);
		if (write(go[1], "x", 1) != 1 ||
		    waitpid(child, &status, 0) != child)
			status = -1;
		close(go[1]);
	}
	ret = syscall(__NR_finit_module, ko, params, 0);
	err = errno;
	close(ko);
	ASSERT_EQ(ret, 0)
		TH_LOG("finit_module(%s, \"%s\"): %s", TEST_HMM_KO, params,
		       strerror(err));
	ASSERT_EQ(back, n);
	ASSERT_EQ(intact, -1);
	ASSERT_EQ(present, n);
	if (cbuf) {
		ASSERT_EQ(cback, n);
		ASSERT_EQ(cintact, -1);
		ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		munmap(cbuf, bytes);
	}

	/* A new driver, with nothing in its memory, that works. */
	fd = open_unit(UNIT_PRIVATE_A);
	ASSERT_GE(fd, 0);
	ASSERT_EQ(pages_on_unit(UNIT_PRIVATE_A), 0);
	ASSERT_EQ(to_device(fd, buf, out, n, &cpages), 0);
	ASSERT_EQ(cpages, n);
	ASSERT_EQ(verify(out, bytes, 270), -1);
	ASSERT_EQ(verify(buf, bytes, 270), -1);
	ASSERT_EQ(close(fd), 0);

	free(out);
	munmap(buf, bytes);
}

TEST_HARNESS_MAIN
