// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit tests for hmm_range_fault().
 *
 * Each test maps anonymous memory into the test thread's own mm with
 * kunit_vm_mmap(), covers it with a real mmu_interval_notifier and plays
 * the driver: mmu_interval_read_begin(), hmm_range_fault() under the mmap
 * lock, mmu_interval_read_retry() under the "driver" lock.
 */
#include <kunit/resource.h>
#include <kunit/test.h>
#include <linux/highmem.h>
#include <linux/hmm.h>
#include <linux/mm.h>
#include <linux/mman.h>
#include <linux/mmu_notifier.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/sizes.h>
#include <linux/uaccess.h>

/* How often hmm_kunit_mirror() starts over after an invalidation. */
#define HMM_KUNIT_TRIES		16

/**
 * struct hmm_kunit_mirror - a pretend device mirroring a range
 * @notifier: interval notifier covering [@addr, @addr + @npages pages)
 * @lock: the device page table lock, taken by the invalidate callback
 * @invalidations: invalidate callbacks seen so far
 * @addr: start of the mapping
 * @npages: its size in pages
 * @pfns: the hmm pfn array of the last call
 */
struct hmm_kunit_mirror {
	struct mmu_interval_notifier notifier;
	struct mutex lock;	/* the device page table lock */
	unsigned int invalidations;
	unsigned long addr;
	unsigned long npages;
	unsigned long *pfns;
};

static bool hmm_kunit_invalidate(struct mmu_interval_notifier *mni,
				 const struct mmu_notifier_range *range,
				 unsigned long cur_seq)
{
	struct hmm_kunit_mirror *m;

	m = container_of(mni, struct hmm_kunit_mirror, notifier);
	if (mmu_notifier_range_blockable(range))
		mutex_lock(&m->lock);
	else if (!mutex_trylock(&m->lock))
		return false;
	m->invalidations++;
	mmu_interval_set_seq(mni, cur_seq);
	mutex_unlock(&m->lock);
	return true;
}

static const struct mmu_interval_notifier_ops hmm_kunit_notifier_ops = {
	.invalidate = hmm_kunit_invalidate,
};

static void hmm_kunit_remove_notifier(void *data)
{
	struct hmm_kunit_mirror *m = data;

	mmu_interval_notifier_remove(&m->notifier);
}

/* Map @npages of anonymous memory with @prot and put a mirror on them. */
static struct hmm_kunit_mirror *hmm_kunit_map(struct kunit *test,
					      unsigned long npages,
					      unsigned long prot)
{
	struct hmm_kunit_mirror *m;
	unsigned long addr;
	int ret;

	addr = kunit_vm_mmap(test, NULL, 0, npages * PAGE_SIZE, prot,
			     MAP_ANONYMOUS | MAP_PRIVATE, 0);
	KUNIT_ASSERT_NE_MSG(test, addr, 0, "no user mm for the test");
	KUNIT_ASSERT_FALSE_MSG(test, IS_ERR_VALUE(addr), "vm_mmap failed");

	m = kunit_kzalloc(test, sizeof(*m), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, m);
	m->pfns = kunit_kcalloc(test, npages, sizeof(*m->pfns), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, m->pfns);
	mutex_init(&m->lock);
	m->addr = addr;
	m->npages = npages;

	ret = mmu_interval_notifier_insert(&m->notifier, current->mm, addr,
					   npages * PAGE_SIZE,
					   &hmm_kunit_notifier_ops);
	KUNIT_ASSERT_EQ(test, ret, 0);
	ret = kunit_add_action_or_reset(test, hmm_kunit_remove_notifier, m);
	KUNIT_ASSERT_EQ(test, ret, 0);
	return m;
}

/* A range over pages [first, first + n) of the mirror. */
static struct hmm_range hmm_kunit_range(struct hmm_kunit_mirror *m,
					unsigned long first, unsigned long n,
					unsigned long default_flags)
{
	return (struct hmm_range) {
		.notifier = &m->notifier,
		.start = m->addr + first * PAGE_SIZE,
		.end = m->addr + (first + n) * PAGE_SIZE,
		.hmm_pfns = m->pfns + first,
		.default_flags = default_flags,
	};
}

/* One hmm_range_fault() call, as a driver makes it. */
static int hmm_kunit_call(struct hmm_kunit_mirror *m, struct hmm_range *range)
{
	int ret;

	mmap_read_lock(m->notifier.mm);
	ret = hmm_range_fault(range);
	mmap_read_unlock(m->notifier.mm);
	return ret;
}

/*
 * The driver's loop: start over while the range keeps being invalidated.
 * @req, if not NULL, holds per-page request flags; they are copied into the
 * pfn array before each try because a call overwrites them.
 */
static int hmm_kunit_mirror(struct hmm_kunit_mirror *m,
			    struct hmm_range *range, const unsigned long *req)
{
	unsigned long npages = (range->end - range->start) >> PAGE_SHIFT;
	int tries, ret;
	bool stale;

	for (tries = 0; tries < HMM_KUNIT_TRIES; tries++) {
		if (req)
			memcpy(range->hmm_pfns, req, npages * sizeof(*req));
		range->notifier_seq = mmu_interval_read_begin(&m->notifier);
		ret = hmm_kunit_call(m, range);
		if (ret == -EBUSY)
			continue;
		if (ret)
			return ret;
		mutex_lock(&m->lock);
		stale = mmu_interval_read_retry(&m->notifier,
						range->notifier_seq);
		mutex_unlock(&m->lock);
		if (!stale)
			return 0;
	}
	return -EBUSY;
}

static unsigned long hmm_kunit_pfn(unsigned long entry)
{
	return entry & ~HMM_PFN_FLAGS;
}

/* Store a page of byte @fill at page @index of the mapping, from the CPU. */
static void hmm_kunit_write(struct kunit *test, struct hmm_kunit_mirror *m,
			    unsigned long index, u8 fill)
{
	void __user *uaddr = (void __user *)(m->addr + index * PAGE_SIZE);
	u8 *buf = kunit_kmalloc(test, PAGE_SIZE, GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, buf);
	memset(buf, fill, PAGE_SIZE);
	KUNIT_ASSERT_EQ(test, copy_to_user(uaddr, buf, PAGE_SIZE), 0);
	kunit_kfree(test, buf);
}

/* Read one byte of page @index from the CPU, mapping the zero page there. */
static void hmm_kunit_touch(struct kunit *test, struct hmm_kunit_mirror *m,
			    unsigned long index)
{
	u8 __user *uaddr = (u8 __user *)(m->addr + index * PAGE_SIZE);
	u8 byte;

	KUNIT_ASSERT_EQ(test, get_user(byte, uaddr), 0);
	KUNIT_EXPECT_EQ(test, byte, 0);
}

/* Is every byte of the page behind @entry equal to @fill? */
static bool hmm_kunit_page_is(unsigned long entry, u8 fill)
{
	u8 *p = kmap_local_page(hmm_pfn_to_page(entry));
	bool same = !memchr_inv(p, fill, PAGE_SIZE);

	kunmap_local(p);
	return same;
}

/* A read request on never-touched memory maps the zero page, read-only. */
static void hmm_kunit_fault_read(struct kunit *test)
{
	struct hmm_kunit_mirror *m = hmm_kunit_map(test, 8,
						   PROT_READ | PROT_WRITE);
	struct hmm_range range = hmm_kunit_range(m, 0, 8, HMM_PFN_REQ_FAULT);
	unsigned long i;

	KUNIT_ASSERT_EQ(test, hmm_kunit_mirror(m, &range, NULL), 0);
	for (i = 0; i < 8; i++) {
		unsigned long e = m->pfns[i];

		KUNIT_EXPECT_TRUE(test, e & HMM_PFN_VALID);
		KUNIT_EXPECT_FALSE(test, e & (HMM_PFN_WRITE | HMM_PFN_ERROR));
		KUNIT_EXPECT_EQ(test, hmm_pfn_to_map_order(e), 0);
		KUNIT_EXPECT_TRUE(test, is_zero_pfn(hmm_kunit_pfn(e)));
	}
}

/* A write request gives private, writable pages (also over the zero page). */
static void hmm_kunit_fault_write(struct kunit *test)
{
	struct hmm_kunit_mirror *m = hmm_kunit_map(test, 8,
						   PROT_READ | PROT_WRITE);
	struct hmm_range range;
	unsigned long i, j;

	/* Pages 0-3 get the zero page first; 4-7 stay empty. */
	for (i = 0; i < 4; i++)
		hmm_kunit_touch(test, m, i);

	range = hmm_kunit_range(m, 0, 8,
				HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE);
	KUNIT_ASSERT_EQ(test, hmm_kunit_mirror(m, &range, NULL), 0);
	for (i = 0; i < 8; i++) {
		unsigned long e = m->pfns[i];

		KUNIT_EXPECT_EQ(test, e & (HMM_PFN_VALID | HMM_PFN_WRITE |
					   HMM_PFN_ERROR),
				HMM_PFN_VALID | HMM_PFN_WRITE);
		KUNIT_EXPECT_FALSE(test, is_zero_pfn(hmm_kunit_pfn(e)));
		KUNIT_EXPECT_TRUE(test, hmm_kunit_page_is(e, 0));
		for (j = 0; j < i; j++)
			KUNIT_EXPECT_NE(test, hmm_kunit_pfn(e),
					hmm_kunit_pfn(m->pfns[j]));
	}
}

/* A snapshot reports what is there and faults nothing in. */
static void hmm_kunit_snapshot(struct kunit *test)
{
	struct hmm_kunit_mirror *m = hmm_kunit_map(test, 8,
						   PROT_READ | PROT_WRITE);
	struct hmm_range range = hmm_kunit_range(m, 0, 8, 0);
	unsigned long i;
	int pass;

	hmm_kunit_write(test, m, 0, 0xa0);
	hmm_kunit_write(test, m, 2, 0xa2);
	hmm_kunit_write(test, m, 5, 0xa5);
	hmm_kunit_touch(test, m, 3);

	/* Twice: the first snapshot must not have populated anything. */
	for (pass = 0; pass < 2; pass++) {
		KUNIT_ASSERT_EQ(test, hmm_kunit_mirror(m, &range, NULL), 0);
		for (i = 0; i < 8; i++) {
			unsigned long e = m->pfns[i];

			switch (i) {
			case 0:
			case 2:
			case 5:
				KUNIT_EXPECT_EQ(test, e & ~hmm_kunit_pfn(e),
						HMM_PFN_VALID | HMM_PFN_WRITE);
				KUNIT_EXPECT_TRUE(test,
						  hmm_kunit_page_is(e, 0xa0 + i));
				break;
			case 3:
				KUNIT_EXPECT_EQ(test, e & ~hmm_kunit_pfn(e),
						HMM_PFN_VALID);
				KUNIT_EXPECT_TRUE(test,
						  is_zero_pfn(hmm_kunit_pfn(e)));
				break;
			default:
				KUNIT_EXPECT_EQ(test, e, 0);
			}
		}
	}
}

/* Per-page requests count only where pfn_flags_mask lets them through. */
static void hmm_kunit_per_page(struct kunit *test)
{
	static const unsigned long req[4] = {
		0,
		HMM_PFN_REQ_FAULT,
		HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE,
		0,
	};
	static const unsigned long ignored[4] = {
		HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE,
		HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE,
		HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE,
		HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE,
	};
	struct hmm_kunit_mirror *m = hmm_kunit_map(test, 4,
						   PROT_READ | PROT_WRITE);
	struct hmm_range range = hmm_kunit_range(m, 0, 4, 0);
	unsigned long i;

	/* A zero mask ignores whatever the array holds. */
	KUNIT_ASSERT_EQ(test, hmm_kunit_mirror(m, &range, ignored), 0);
	for (i = 0; i < 4; i++)
		KUNIT_EXPECT_EQ(test, m->pfns[i], 0);

	range.pfn_flags_mask = HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE;
	KUNIT_ASSERT_EQ(test, hmm_kunit_mirror(m, &range, req), 0);
	KUNIT_EXPECT_EQ(test, m->pfns[0], 0);
	KUNIT_EXPECT_EQ(test, m->pfns[1] & ~hmm_kunit_pfn(m->pfns[1]),
			HMM_PFN_VALID);
	KUNIT_EXPECT_EQ(test, m->pfns[2] & ~hmm_kunit_pfn(m->pfns[2]),
			HMM_PFN_VALID | HMM_PFN_WRITE);
	KUNIT_EXPECT_EQ(test, m->pfns[3], 0);
}

/* Write requests on a read-only mapping are refused with -EPERM. */
static void hmm_kunit_read_only(struct kunit *test)
{
	struct hmm_kunit_mirror *m = hmm_kunit_map(test, 4, PROT_READ);
	struct hmm_range range = hmm_kunit_range(m, 0, 4, HMM_PFN_REQ_FAULT);
	unsigned long i;

	KUNIT_ASSERT_EQ(test, hmm_kunit_mirror(m, &range, NULL), 0);
	for (i = 0; i < 4; i++)
		KUNIT_EXPECT_EQ(test, m->pfns[i] & ~hmm_kunit_pfn(m->pfns[i]),
				HMM_PFN_VALID);

	range.default_flags |= HMM_PFN_REQ_WRITE;
	KUNIT_EXPECT_EQ(test, hmm_kunit_mirror(m, &range, NULL), -EPERM);
}

/* PROT_NONE: errors in a snapshot, -EFAULT when a fault is requested. */
static void hmm_kunit_prot_none(struct kunit *test)
{
	struct hmm_kunit_mirror *m = hmm_kunit_map(test, 4, PROT_NONE);
	struct hmm_range range = hmm_kunit_range(m, 0, 4, 0);
	unsigned long i;

	KUNIT_ASSERT_EQ(test, hmm_kunit_mirror(m, &range, NULL), 0);
	for (i = 0; i < 4; i++)
		KUNIT_EXPECT_EQ(test, m->pfns[i], HMM_PFN_ERROR);

	range.default_flags = HMM_PFN_REQ_FAULT;
	KUNIT_EXPECT_EQ(test, hmm_kunit_mirror(m, &range, NULL), -EFAULT);
	range.default_flags |= HMM_PFN_REQ_WRITE;
	KUNIT_EXPECT_EQ(test, hmm_kunit_mirror(m, &range, NULL), -EFAULT);
}

/* A hole without a VMA: an error entry, or -EFAULT when it is requested. */
static void hmm_kunit_no_vma(struct kunit *test)
{
	static const unsigned long req[3] = {
		HMM_PFN_REQ_FAULT, 0, HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE,
	};
	struct hmm_kunit_mirror *m = hmm_kunit_map(test, 3,
						   PROT_READ | PROT_WRITE);
	struct hmm_range range = hmm_kunit_range(m, 0, 3, 0);

	KUNIT_ASSERT_EQ(test, vm_munmap(m->addr + PAGE_SIZE, PAGE_SIZE), 0);

	KUNIT_ASSERT_EQ(test, hmm_kunit_mirror(m, &range, NULL), 0);
	KUNIT_EXPECT_EQ(test, m->pfns[0], 0);
	KUNIT_EXPECT_EQ(test, m->pfns[1], HMM_PFN_ERROR);
	KUNIT_EXPECT_EQ(test, m->pfns[2], 0);

	/* Faulting around the hole works... */
	range.pfn_flags_mask = HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE;
	KUNIT_ASSERT_EQ(test, hmm_kunit_mirror(m, &range, req), 0);
	KUNIT_EXPECT_TRUE(test, m->pfns[0] & HMM_PFN_VALID);
	KUNIT_EXPECT_EQ(test, m->pfns[1], HMM_PFN_ERROR);
	KUNIT_EXPECT_TRUE(test, m->pfns[2] & HMM_PFN_WRITE);

	/* ...faulting the hole itself does not. */
	range.default_flags = HMM_PFN_REQ_FAULT;
	KUNIT_EXPECT_EQ(test, hmm_kunit_mirror(m, &range, req), -EFAULT);
	range = hmm_kunit_range(m, 1, 1, HMM_PFN_REQ_FAULT);
	KUNIT_EXPECT_EQ(test, hmm_kunit_mirror(m, &range, NULL), -EFAULT);
}

/* An invalidation after mmu_interval_read_begin() makes the call -EBUSY. */
static void hmm_kunit_invalidated(struct kunit *test)
{
	struct hmm_kunit_mirror *m = hmm_kunit_map(test, 4,
						   PROT_READ | PROT_WRITE);
	struct hmm_range range = hmm_kunit_range(m, 0, 4, HMM_PFN_REQ_FAULT);
	unsigned int seen;

	KUNIT_ASSERT_EQ(test, hmm_kunit_mirror(m, &range, NULL), 0);
	KUNIT_ASSERT_TRUE(test, is_zero_pfn(hmm_kunit_pfn(m->pfns[1])));

	range.notifier_seq = mmu_interval_read_begin(&m->notifier);
	KUNIT_EXPECT_EQ(test, hmm_kunit_call(m, &range), 0);

	/* Replacing the zero page invalidates the range. */
	seen = m->invalidations;
	hmm_kunit_write(test, m, 1, 0x5c);
	KUNIT_EXPECT_GT(test, m->invalidations, seen);
	KUNIT_EXPECT_EQ(test, hmm_kunit_call(m, &range), -EBUSY);

	/* With a fresh sequence the new page shows up. */
	KUNIT_ASSERT_EQ(test, hmm_kunit_mirror(m, &range, NULL), 0);
	KUNIT_EXPECT_EQ(test, m->pfns[1] & ~hmm_kunit_pfn(m->pfns[1]),
			HMM_PFN_VALID | HMM_PFN_WRITE);
	KUNIT_EXPECT_TRUE(test, hmm_kunit_page_is(m->pfns[1], 0x5c));
}

/* Malformed ranges are rejected with -EINVAL, without a warning. */
static void hmm_kunit_bad_range(struct kunit *test)
{
	struct hmm_kunit_mirror *m = hmm_kunit_map(test, 2,
						   PROT_READ | PROT_WRITE);
	struct hmm_range good = hmm_kunit_range(m, 0, 2, HMM_PFN_REQ_FAULT);
	struct hmm_range bad;

	good.notifier_seq = mmu_interval_read_begin(&m->notifier);

	bad = good;
	bad.end = bad.start;
	KUNIT_EXPECT_EQ(test, hmm_kunit_call(m, &bad), -EINVAL);
	bad = good;
	bad.end = bad.start - PAGE_SIZE;
	KUNIT_EXPECT_EQ(test, hmm_kunit_call(m, &bad), -EINVAL);
	bad = good;
	bad.start += 8;
	KUNIT_EXPECT_EQ(test, hmm_kunit_call(m, &bad), -EINVAL);
	bad = good;
	bad.end -= 8;
	KUNIT_EXPECT_EQ(test, hmm_kunit_call(m, &bad), -EINVAL);
	bad = good;
	bad.hmm_pfns = NULL;
	KUNIT_EXPECT_EQ(test, hmm_kunit_call(m, &bad), -EINVAL);

	bad = good;
	bad.notifier = NULL;
	mmap_read_lock(current->mm);
	KUNIT_EXPECT_EQ(test, hmm_range_fault(&bad), -EINVAL);
	mmap_read_unlock(current->mm);
	KUNIT_EXPECT_EQ(test, hmm_range_fault(NULL), -EINVAL);

	KUNIT_EXPECT_EQ(test, hmm_kunit_call(m, &good), 0);
}

/*
 * Over a PMD-aligned block a write fault may allocate a THP: every entry
 * then reports the PMD order and the pfns of one huge page.  A read fault
 * on another block may map the huge zero page, which must stay read-only.
 * Skipped when no THP is given to us (THP disabled, "madvise" mode, or no
 * huge page free).
 */
static void hmm_kunit_thp(struct kunit *test)
{
	const unsigned int order = PMD_SHIFT - PAGE_SHIFT;
	unsigned long nr = 1UL << order, first, i, head;
	struct hmm_kunit_mirror *m;
	struct hmm_range range;

	if (!IS_ENABLED(CONFIG_TRANSPARENT_HUGEPAGE))
		kunit_skip(test, "no THP support");

	/* Room for two aligned blocks: [first, +nr) and [first + nr, +nr). */
	m = hmm_kunit_map(test, 3 * nr, PROT_READ | PROT_WRITE);
	first = (ALIGN(m->addr, PMD_SIZE) - m->addr) >> PAGE_SHIFT;

	range = hmm_kunit_range(m, first + nr, nr, HMM_PFN_REQ_FAULT);
	KUNIT_ASSERT_EQ(test, hmm_kunit_mirror(m, &range, NULL), 0);
	for (i = 0; i < nr; i++) {
		unsigned long e = m->pfns[first + nr + i];

		KUNIT_EXPECT_EQ(test, e & (HMM_PFN_VALID | HMM_PFN_WRITE),
				HMM_PFN_VALID);
	}

	range = hmm_kunit_range(m, first, nr,
				HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE);
	KUNIT_ASSERT_EQ(test, hmm_kunit_mirror(m, &range, NULL), 0);
	if (hmm_pfn_to_map_order(m->pfns[first]) != order)
		kunit_skip(test, "range not backed by a THP");

	/* A snapshot of the THP sees the same. */
	range.default_flags = 0;
	KUNIT_ASSERT_EQ(test, hmm_kunit_mirror(m, &range, NULL), 0);
	head = hmm_kunit_pfn(m->pfns[first]);
	KUNIT_EXPECT_TRUE(test, IS_ALIGNED(head, nr));
	for (i = 0; i < nr; i++) {
		unsigned long e = m->pfns[first + i];

		KUNIT_EXPECT_EQ(test, hmm_kunit_pfn(e), head + i);
		KUNIT_EXPECT_EQ(test, hmm_pfn_to_map_order(e), order);
		KUNIT_EXPECT_EQ(test, e & (HMM_PFN_VALID | HMM_PFN_WRITE),
				HMM_PFN_VALID | HMM_PFN_WRITE);
	}
}

static struct kunit_case hmm_kunit_cases[] = {
	KUNIT_CASE(hmm_kunit_fault_read),
	KUNIT_CASE(hmm_kunit_fault_write),
	KUNIT_CASE(hmm_kunit_snapshot),
	KUNIT_CASE(hmm_kunit_per_page),
	KUNIT_CASE(hmm_kunit_read_only),
	KUNIT_CASE(hmm_kunit_prot_none),
	KUNIT_CASE(hmm_kunit_no_vma),
	KUNIT_CASE(hmm_kunit_invalidated),
	KUNIT_CASE(hmm_kunit_bad_range),
	KUNIT_CASE(hmm_kunit_thp),
	{}
};

static struct kunit_suite hmm_kunit_suite = {
	.name = "hmm_range_fault",
	.test_cases = hmm_kunit_cases,
};

kunit_test_suite(hmm_kunit_suite);

MODULE_DESCRIPTION("KUnit tests for hmm_range_fault()");
MODULE_LICENSE("GPL");
