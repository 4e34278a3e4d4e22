// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit tests for hmm_range_fault().
 *
 * Each test maps anonymous memory into the test thread's own mm with
 * kunit_vm_mmap(), covers it with a real mmu_interval_notifier and plays
 * the driver: mmu_interval_read_begin(), hmm_range_fault() under the mmap
 * lock, mmu_interval_read_retry() under the "driver" lock.
 *
 * The last tests check that walkers of the reverse map leave alone the
 * device-exclusive entries of make_device_exclusive_range(), which keep the
 * mapcount and the rmap of the PTE they replace, and count them as a use.
 */
#include <kunit/resource.h>
#include <kunit/test.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/highmem.h>
#include <linux/hmm.h>
#include <linux/mm.h>
#include <linux/mman.h>
#include <linux/mmu_notifier.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/page_idle.h>
#include <linux/rmap.h>
#include <linux/sizes.h>
#include <linux/swap.h>
#include <linux/swapops.h>
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
/*
 * Ask for transparent huge pages in the mirror's VMA (MADV_HUGEPAGE), so
 * that a PMD-aligned fault gets one in the "madvise" THP mode too.
 */
static void hmm_kunit_want_thp(struct kunit *test, struct hmm_kunit_mirror *m)
{
	struct vm_area_struct *vma;

	mmap_write_lock(current->mm);
	vma = vma_lookup(current->mm, m->addr);
	if (vma)
		vm_flags_set(vma, VM_HUGEPAGE);
	mmap_write_unlock(current->mm);
	KUNIT_ASSERT_NOT_NULL(test, vma);
}

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
	hmm_kunit_want_thp(test, m);
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
	KUNIT_ASSERT_EQ_MSG(test, hmm_pfn_to_map_order(m->pfns[first]), order,
			    "the write fault did not give a THP");

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

/*
 * The PTE mapping @addr in the test's mm, or pte_none() if there is no page
 * table.  pte_offset_map() is not exported, but the page tables of an
 * anonymous VMA are only freed with the mmap lock held for writing, and
 * without CONFIG_HIGHPTE they are in the direct map, where
 * pte_offset_kernel() finds them.
 */
static pte_t hmm_kunit_read_pte(unsigned long addr)
{
	struct mm_struct *mm = current->mm;
	pte_t pte = __pte(0);
	pmd_t *pmd, pmdval;
	pgd_t *pgd;
	p4d_t *p4d;
	pud_t *pud;

	mmap_read_lock(mm);
	pgd = pgd_offset(mm, addr);
	if (!pgd_present(pgdp_get(pgd)))
		goto out;
	p4d = p4d_offset(pgd, addr);
	if (!p4d_present(p4dp_get(p4d)))
		goto out;
	pud = pud_offset(p4d, addr);
	if (!pud_present(pudp_get(pud)) || pud_leaf(pudp_get(pud)))
		goto out;
	pmd = pmd_offset(pud, addr);
	pmdval = pmdp_get(pmd);
	if (!pmd_present(pmdval) || pmd_leaf(pmdval))
		goto out;
	pte = ptep_get(pte_offset_kernel(&pmdval, addr));
out:
	mmap_read_unlock(mm);
	return pte;
}

/* Is the PTE mapping @addr a device-exclusive entry for @pfn? */
static bool hmm_kunit_is_exclusive(unsigned long addr, unsigned long pfn)
{
	pte_t pte = hmm_kunit_read_pte(addr);
	swp_entry_t entry;

	if (pte_none(pte) || pte_present(pte))
		return false;
	entry = pte_to_swp_entry(pte);
	return is_device_exclusive_entry(entry) && swp_offset_pfn(entry) == pfn;
}

/* Is the PTE mapping @addr present, for @pfn? */
static bool hmm_kunit_is_present(unsigned long addr, unsigned long pfn)
{
	pte_t pte = hmm_kunit_read_pte(addr);

	return pte_present(pte) && pte_pfn(pte) == pfn;
}

/*
 * Fill page @index of the mapping with @fill from the CPU, then make it
 * exclusive to the pretend device.  Returns the page as
 * make_device_exclusive_range() hands it out: locked and referenced.
 */
static struct page *hmm_kunit_exclusive(struct kunit *test,
					struct hmm_kunit_mirror *m,
					unsigned long index, u8 fill)
{
	unsigned long addr = m->addr + index * PAGE_SIZE;
	struct page *page = NULL;
	int ret;

	if (IS_ENABLED(CONFIG_HIGHPTE))
		kunit_skip(test, "page tables may be in highmem");
	hmm_kunit_write(test, m, index, fill);
	mmap_read_lock(current->mm);
	ret = make_device_exclusive_range(current->mm, addr, addr + PAGE_SIZE,
					  &page, m);
	mmap_read_unlock(current->mm);
	KUNIT_ASSERT_EQ(test, ret, 1);
	KUNIT_ASSERT_NOT_NULL(test, page);
	return page;
}

/* Does a CPU read of page @index find @fill?  It revokes exclusive access. */
static bool hmm_kunit_cpu_reads(struct kunit *test, struct hmm_kunit_mirror *m,
				unsigned long index, u8 fill)
{
	void __user *uaddr = (void __user *)(m->addr + index * PAGE_SIZE);
	u8 *buf = kunit_kmalloc(test, PAGE_SIZE, GFP_KERNEL);
	bool same;

	KUNIT_ASSERT_NOT_NULL(test, buf);
	same = !copy_from_user(buf, uaddr, PAGE_SIZE) &&
	       !memchr_inv(buf, fill, PAGE_SIZE);
	kunit_kfree(test, buf);
	return same;
}

/*
 * Reclaim asks folio_referenced() whether a folio was used.  For a page a
 * device holds exclusively the answer is yes, and the device-exclusive
 * entry must come out of the question untouched (clearing its "young" bit
 * turned it into a swap-file entry on arm64).  folio_referenced() is
 * exported to KUnit tests only.
 */
static void hmm_kunit_exclusive_referenced(struct kunit *test)
{
	unsigned long vm_flags = 0, vm_flags_again = 0, pfn;
	struct hmm_kunit_mirror *m;
	int referenced, again;
	struct folio *folio;
	struct page *page;
	bool exclusive;

	m = hmm_kunit_map(test, 1, PROT_READ | PROT_WRITE);
	page = hmm_kunit_exclusive(test, m, 0, 0x3c);
	folio = page_folio(page);
	pfn = page_to_pfn(page);

	/*
	 * Reclaim holds the folio lock: keep the one we were given.  Ask
	 * twice, the first answer must not have used anything up.
	 */
	referenced = folio_referenced(folio, 1, NULL, &vm_flags);
	again = folio_referenced(folio, 1, NULL, &vm_flags_again);
	folio_unlock(folio);
	/* Not under the folio lock: the mmap lock ranks above it. */
	exclusive = hmm_kunit_is_exclusive(m->addr, pfn);
	put_page(page);

	KUNIT_EXPECT_EQ(test, referenced, 1);
	KUNIT_EXPECT_TRUE(test, vm_flags & VM_WRITE);
	KUNIT_EXPECT_EQ(test, again, 1);
	KUNIT_EXPECT_EQ(test, vm_flags_again, vm_flags);
	KUNIT_EXPECT_TRUE(test, exclusive);

	/* The CPU gets the page back, data and all. */
	KUNIT_EXPECT_TRUE(test, hmm_kunit_cpu_reads(test, m, 0, 0x3c));
	KUNIT_EXPECT_TRUE(test, hmm_kunit_is_present(m->addr, pfn));
}

static void hmm_kunit_fput(void *file)
{
	fput(file);
}

/* Write @len bytes of @buf to the file at @path; returns 0 or -errno. */
static int hmm_kunit_write_file(const char *path, const void *buf, size_t len)
{
	struct file *file = filp_open(path, O_WRONLY, 0);
	loff_t pos = 0;
	ssize_t ret;

	if (IS_ERR(file))
		return PTR_ERR(file);
	ret = kernel_write(file, buf, len, &pos);
	fput(file);
	if (ret < 0)
		return ret;
	return ret == len ? 0 : -EIO;
}

/*
 * The page_idle bitmap's last chunk reaches past the end of memory and
 * reads and writes short (0 bytes): is @pfn in a full chunk?
 */
static bool hmm_kunit_idle_chunk_full(struct file *bitmap, unsigned long pfn)
{
	loff_t pos = pfn / 64 * sizeof(u64);
	u64 word;

	return kernel_read(bitmap, &word, sizeof(word), &pos) == sizeof(word);
}

/*
 * Mark the folio of @pfn idle through the page_idle bitmap, then read the
 * bit back (the read is what looks for references): is it still idle?
 */
static bool hmm_kunit_idle(struct kunit *test, struct file *bitmap,
			   unsigned long pfn)
{
	loff_t where = pfn / 64 * sizeof(u64), pos;
	u64 word = BIT_ULL(pfn % 64);

	pos = where;
	KUNIT_ASSERT_EQ(test, kernel_write(bitmap, &word, sizeof(word), &pos),
			(ssize_t)sizeof(word));
	pos = where;
	KUNIT_ASSERT_EQ(test, kernel_read(bitmap, &word, sizeof(word), &pos),
			(ssize_t)sizeof(word));
	return word & BIT_ULL(pfn % 64);
}

/*
 * The same through idle page tracking, which modules and user space reach
 * through /sys/kernel/mm/page_idle/bitmap: a page the device holds
 * exclusively is never idle, its entry stays as it is, while a page nobody
 * touches (the control, to show the bitmap works) stays idle.
 */
#define HMM_KUNIT_IDLE_PAGES	128

static void hmm_kunit_exclusive_idle(struct kunit *test)
{
	unsigned long pfn, control_pfn, i, index[2], found;
	struct hmm_kunit_mirror *m;
	struct file *bitmap;
	struct folio *folio;
	struct page *page;
	pte_t control;
	int ret;

	if (!IS_ENABLED(CONFIG_IDLE_PAGE_TRACKING))
		kunit_skip(test, "no CONFIG_IDLE_PAGE_TRACKING");
	bitmap = filp_open("/sys/kernel/mm/page_idle/bitmap", O_RDWR, 0);
	if (IS_ERR(bitmap))
		kunit_skip(test, "no /sys/kernel/mm/page_idle/bitmap");
	ret = kunit_add_action_or_reset(test, hmm_kunit_fput, bitmap);
	KUNIT_ASSERT_EQ(test, ret, 0);

	/*
	 * Two pages outside the bitmap's short last chunk, which holds at
	 * most 63 pages: one for the device, one as the control.
	 */
	m = hmm_kunit_map(test, HMM_KUNIT_IDLE_PAGES, PROT_READ | PROT_WRITE);
	for (i = 0, found = 0; i < HMM_KUNIT_IDLE_PAGES && found < 2; i++) {
		hmm_kunit_write(test, m, i, 0x5a);
		control = hmm_kunit_read_pte(m->addr + i * PAGE_SIZE);
		KUNIT_ASSERT_TRUE(test, pte_present(control));
		if (hmm_kunit_idle_chunk_full(bitmap, pte_pfn(control)))
			index[found++] = i;
	}
	KUNIT_ASSERT_EQ(test, found, 2);
	control_pfn = pte_pfn(hmm_kunit_read_pte(m->addr +
						 index[1] * PAGE_SIZE));
	page = hmm_kunit_exclusive(test, m, index[0], 0x3c);
	folio = page_folio(page);
	pfn = page_to_pfn(page);
	folio_unlock(folio);

	/*
	 * Idle page tracking only looks at folios on an LRU list: flush the
	 * per-CPU batches that new pages wait in (drop_caches does).
	 */
	ret = hmm_kunit_write_file("/proc/sys/vm/drop_caches", "1", 1);
	if (ret || !folio_test_lru(folio) ||
	    !folio_test_lru(pfn_folio(control_pfn))) {
		put_page(page);
		KUNIT_FAIL(test, "cannot put the pages on the LRU (%d)", ret);
		return;
	}

	KUNIT_EXPECT_FALSE(test, hmm_kunit_idle(test, bitmap, pfn));
	KUNIT_EXPECT_TRUE(test, hmm_kunit_is_exclusive(m->addr +
						       index[0] * PAGE_SIZE,
						       pfn));
	KUNIT_EXPECT_TRUE(test, hmm_kunit_idle(test, bitmap, control_pfn));
	put_page(page);

	KUNIT_EXPECT_TRUE(test, hmm_kunit_cpu_reads(test, m, index[0], 0x3c));
	KUNIT_EXPECT_TRUE(test, hmm_kunit_is_present(m->addr +
						     index[0] * PAGE_SIZE, pfn));
	KUNIT_EXPECT_TRUE(test, hmm_kunit_cpu_reads(test, m, index[1], 0x5a));
}

/*
 * A THP that cannot be split, because someone else holds a reference to one
 * of its pages, is not made exclusive, and make_device_exclusive_range()
 * returns with no lock held on it: it must never sleep on a lock of its
 * own while it looks up the next page.
 */
static void hmm_kunit_exclusive_unsplittable(struct kunit *test)
{
	const unsigned long nr = PMD_SIZE >> PAGE_SHIFT, n = 4;
	struct page *pages[4], *pin = NULL;
	struct hmm_kunit_mirror *m;
	unsigned long huge, i;
	struct folio *folio;
	long ret;

	if (!IS_ENABLED(CONFIG_TRANSPARENT_HUGEPAGE))
		kunit_skip(test, "no THP support");
	m = hmm_kunit_map(test, 2 * nr, PROT_READ | PROT_WRITE);
	hmm_kunit_want_thp(test, m);
	huge = ALIGN(m->addr, PMD_SIZE);
	hmm_kunit_write(test, m, (huge - m->addr) >> PAGE_SHIFT, 0x77);

	/* Our reference on the second page keeps the THP from splitting. */
	mmap_read_lock(current->mm);
	ret = get_user_pages(huge + PAGE_SIZE, 1, 0, &pin);
	mmap_read_unlock(current->mm);
	KUNIT_ASSERT_EQ(test, ret, 1);
	folio = page_folio(pin);
	if (!folio_test_large(folio)) {
		put_page(pin);
		KUNIT_FAIL(test, "the write fault did not give a THP");
		return;
	}

	mmap_read_lock(current->mm);
	ret = make_device_exclusive_range(current->mm, huge, huge + n * PAGE_SIZE,
					  pages, m);
	mmap_read_unlock(current->mm);

	KUNIT_EXPECT_EQ(test, ret, n);
	for (i = 0; i < n; i++) {
		KUNIT_EXPECT_NULL(test, pages[i]);
		if (pages[i]) {
			unlock_page(pages[i]);
			put_page(pages[i]);
		}
	}
	KUNIT_EXPECT_FALSE(test, folio_test_locked(folio));
	KUNIT_EXPECT_TRUE(test, folio_test_large(folio));
	put_page(pin);
	/* Nothing was taken from the CPU. */
	KUNIT_EXPECT_TRUE(test,
			  hmm_kunit_cpu_reads(test, m, (huge - m->addr) >> PAGE_SHIFT,
					      0x77));
}

/*
 * A THP followed by a hole: one GUP call takes the whole THP, PTE-mapped,
 * and stops short at the hole.  The THP's first page ends that batch (its
 * split must find only our reference), the rest of the range is taken by
 * a second GUP, and the result counts the pages up to the hole, as 6.12's
 * single GUP call does.  Every page comes back made exclusive on its own.
 */
static void hmm_kunit_exclusive_thp_hole(struct kunit *test)
{
	const unsigned long nr = PMD_SIZE >> PAGE_SHIFT;
	unsigned long huge, first, i, held = 0, *pfns;
	struct hmm_kunit_mirror *m;
	struct page **pages, *page = NULL;
	bool large;
	long ret;

	if (!IS_ENABLED(CONFIG_TRANSPARENT_HUGEPAGE))
		kunit_skip(test, "no THP support");
	if (IS_ENABLED(CONFIG_HIGHPTE))
		kunit_skip(test, "page tables may be in highmem");
	m = hmm_kunit_map(test, 3 * nr, PROT_READ | PROT_WRITE);
	hmm_kunit_want_thp(test, m);
	huge = ALIGN(m->addr, PMD_SIZE);
	first = (huge - m->addr) >> PAGE_SHIFT;
	hmm_kunit_write(test, m, first, 0x5a);
	hmm_kunit_write(test, m, first + nr - 1, 0x5b);
	KUNIT_ASSERT_EQ(test, vm_munmap(huge + PMD_SIZE, PAGE_SIZE), 0);

	mmap_read_lock(current->mm);
	ret = get_user_pages(huge, 1, 0, &page);
	mmap_read_unlock(current->mm);
	KUNIT_ASSERT_EQ(test, ret, 1);
	large = folio_test_large(page_folio(page));
	put_page(page);
	KUNIT_ASSERT_TRUE_MSG(test, large, "the write fault did not give a THP");

	pages = kunit_kcalloc(test, nr + 4, sizeof(*pages), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, pages);
	pfns = kunit_kcalloc(test, nr, sizeof(*pfns), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, pfns);
	mmap_read_lock(current->mm);
	ret = make_device_exclusive_range(current->mm, huge,
					  huge + PMD_SIZE + 4 * PAGE_SIZE,
					  pages, m);
	mmap_read_unlock(current->mm);

	KUNIT_EXPECT_EQ(test, ret, nr);
	for (i = 0; i < nr && i < ret; i++) {
		if (!pages[i])
			continue;
		held++;
		pfns[i] = page_to_pfn(pages[i]);
		KUNIT_EXPECT_FALSE(test, folio_test_large(page_folio(pages[i])));
		unlock_page(pages[i]);
		put_page(pages[i]);
	}
	KUNIT_EXPECT_EQ(test, held, nr);
	if (held != nr)
		return;
	/* No CPU access yet: every entry is still device-exclusive. */
	for (i = 0; i < nr; i++)
		if (!hmm_kunit_is_exclusive(huge + i * PAGE_SIZE, pfns[i]))
			break;
	KUNIT_EXPECT_EQ(test, i, nr);
	KUNIT_EXPECT_TRUE(test, hmm_kunit_cpu_reads(test, m, first, 0x5a));
	KUNIT_EXPECT_TRUE(test, hmm_kunit_cpu_reads(test, m, first + 1, 0));
	KUNIT_EXPECT_TRUE(test, hmm_kunit_cpu_reads(test, m, first + nr - 1,
						    0x5b));
	KUNIT_EXPECT_TRUE(test, hmm_kunit_is_present(huge, pfns[0]));
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
	KUNIT_CASE(hmm_kunit_exclusive_referenced),
	KUNIT_CASE(hmm_kunit_exclusive_idle),
	KUNIT_CASE(hmm_kunit_exclusive_unsplittable),
	KUNIT_CASE(hmm_kunit_exclusive_thp_hole),
	{}
};

static struct kunit_suite hmm_kunit_suite = {
	.name = "hmm_range_fault",
	.test_cases = hmm_kunit_cases,
};

kunit_test_suite(hmm_kunit_suite);

MODULE_DESCRIPTION("KUnit tests for hmm_range_fault()");
MODULE_LICENSE("GPL");
MODULE_IMPORT_NS(EXPORTED_FOR_KUNIT_TESTING);
