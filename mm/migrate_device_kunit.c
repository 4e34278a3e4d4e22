// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit tests for migrate_vma_setup(), migrate_vma_pages() and
 * migrate_vma_finalize().
 *
 * No device is needed: the tests migrate anonymous memory of an mm owned by
 * the test thread (kunit_vm_mmap()) from system pages to other system pages,
 * acting as the driver between the three calls.
 */
#include <kunit/test.h>
#include <linux/highmem.h>
#include <linux/ioport.h>
#include <linux/memremap.h>
#include <linux/migrate.h>
#include <linux/mm.h>
#include <linux/mman.h>
#include <linux/module.h>
#include <linux/swapops.h>
#include <linux/uaccess.h>

#define MVD_SENTINEL	0x5a5a5a5aUL

/* Map @npages of private anonymous memory into the test thread's mm. */
static unsigned long mvd_map(struct kunit *test, unsigned long npages)
{
	unsigned long addr;

	addr = kunit_vm_mmap(test, NULL, 0, npages * PAGE_SIZE,
			     PROT_READ | PROT_WRITE,
			     MAP_ANONYMOUS | MAP_PRIVATE, 0);
	KUNIT_ASSERT_NE_MSG(test, addr, 0, "no user mm for the test");
	KUNIT_ASSERT_FALSE_MSG(test, IS_ERR_VALUE(addr), "vm_mmap failed");
	return addr;
}

/* The value stored at word @word of page @index, for pattern @seed. */
static u64 mvd_word(unsigned int seed, unsigned long index, unsigned int word)
{
	return ((u64)seed << 48) ^ ((u64)index << 24) ^ word;
}

static void mvd_pattern(u64 *buf, unsigned int seed, unsigned long index)
{
	unsigned int w;

	for (w = 0; w < PAGE_SIZE / sizeof(u64); w++)
		buf[w] = mvd_word(seed, index, w);
}

/* Write pattern @seed into user pages [first, first + nr) from the CPU. */
static void mvd_fill_user(struct kunit *test, unsigned long addr,
			  unsigned long first, unsigned long nr,
			  unsigned int seed)
{
	u64 *buf = kunit_kmalloc(test, PAGE_SIZE, GFP_KERNEL);
	unsigned long i;

	KUNIT_ASSERT_NOT_NULL(test, buf);
	for (i = first; i < first + nr; i++) {
		void __user *uaddr = (void __user *)(addr + i * PAGE_SIZE);

		mvd_pattern(buf, seed, i);
		KUNIT_ASSERT_EQ(test, copy_to_user(uaddr, buf, PAGE_SIZE), 0);
	}
	kunit_kfree(test, buf);
}

/* Check from the CPU that user page @index holds pattern @seed. */
static void mvd_expect_user(struct kunit *test, unsigned long addr,
			    unsigned long index, unsigned int seed)
{
	void __user *uaddr = (void __user *)(addr + index * PAGE_SIZE);
	u64 *buf = kunit_kmalloc(test, PAGE_SIZE, GFP_KERNEL);
	unsigned int w, bad = 0;

	KUNIT_ASSERT_NOT_NULL(test, buf);
	KUNIT_ASSERT_EQ(test, copy_from_user(buf, uaddr, PAGE_SIZE), 0);
	for (w = 0; w < PAGE_SIZE / sizeof(u64); w++)
		bad += buf[w] != mvd_word(seed, index, w);
	KUNIT_EXPECT_EQ_MSG(test, bad, 0, "page %lu: words differing", index);
	kunit_kfree(test, buf);
}

/*
 * The page mapped at @addr, for identity checks only (no reference is kept).
 * Takes the mmap lock itself.
 */
static struct page *mvd_page_at(unsigned long addr)
{
	struct page *page;
	long got;

	mmap_read_lock(current->mm);
	got = get_user_pages(addr, 1, 0, &page);
	mmap_read_unlock(current->mm);
	if (got != 1)
		return NULL;
	put_page(page);
	return page;
}

/* Act as a driver moving to system memory: copy each source page. */
static unsigned long mvd_copy_to_new_pages(struct kunit *test,
					   struct migrate_vma *mig,
					   struct page **newpages)
{
	unsigned long i, nr = 0;

	for (i = 0; i < mig->npages; i++) {
		struct page *spage = migrate_pfn_to_page(mig->src[i]);
		struct page *dpage;

		newpages[i] = NULL;
		if (!spage || !(mig->src[i] & MIGRATE_PFN_MIGRATE))
			continue;
		dpage = alloc_page(GFP_HIGHUSER_MOVABLE);
		if (!dpage)
			continue;
		lock_page(dpage);
		copy_highpage(dpage, spage);
		mig->dst[i] = migrate_pfn(page_to_pfn(dpage));
		newpages[i] = dpage;
		nr++;
	}
	return nr;
}

/* Give every empty entry a new page holding pattern @seed. */
static void mvd_fill_holes(struct kunit *test, struct migrate_vma *mig,
			   unsigned int seed)
{
	unsigned long i;

	for (i = 0; i < mig->npages; i++) {
		struct page *dpage;
		void *kaddr;

		if (mig->src[i] != MIGRATE_PFN_MIGRATE)
			continue;
		dpage = alloc_page(GFP_HIGHUSER_MOVABLE);
		KUNIT_EXPECT_NOT_NULL(test, dpage);
		if (!dpage)
			continue;
		kaddr = kmap_local_page(dpage);
		mvd_pattern(kaddr, seed, i);
		kunmap_local(kaddr);
		lock_page(dpage);
		mig->dst[i] = migrate_pfn(page_to_pfn(dpage));
	}
}

struct mvd_ctx {
	unsigned long addr;
	unsigned long npages;
	unsigned long *src;
	unsigned long *dst;
	struct migrate_vma mig;
};

/*
 * Map @npages and prepare a migration of all of them selecting @flags.  The
 * VMA is looked up later, under the mmap lock, by mvd_lock().
 */
static void mvd_ctx_init(struct kunit *test, struct mvd_ctx *c,
			 unsigned long npages, unsigned long flags)
{
	c->npages = npages;
	c->addr = mvd_map(test, npages);
	c->src = kunit_kcalloc(test, npages, sizeof(*c->src), GFP_KERNEL);
	c->dst = kunit_kcalloc(test, npages, sizeof(*c->dst), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, c->src);
	KUNIT_ASSERT_NOT_NULL(test, c->dst);
	c->mig = (struct migrate_vma) {
		.src = c->src,
		.dst = c->dst,
		.start = c->addr,
		.end = c->addr + npages * PAGE_SIZE,
		.flags = flags,
	};
}

static void mvd_lock(struct mvd_ctx *c)
{
	mmap_read_lock(current->mm);
	c->mig.vma = vma_lookup(current->mm, c->addr);
}

static void mvd_unlock(void)
{
	mmap_read_unlock(current->mm);
}

/*
 * The rest of a migration of all @nr entries of @c to new system pages,
 * once the caller has checked what migrate_vma_setup() collected: copy,
 * migrate, finalize and unlock, then expect every address to map its new
 * page and still hold pattern @seed.
 */
static void mvd_move_to_new(struct kunit *test, struct mvd_ctx *c,
			    struct page **new, unsigned long nr,
			    unsigned int seed)
{
	unsigned long i, start = c->mig.start;

	KUNIT_EXPECT_EQ(test, mvd_copy_to_new_pages(test, &c->mig, new), nr);
	migrate_vma_pages(&c->mig);
	for (i = 0; i < nr; i++)
		KUNIT_EXPECT_TRUE(test, c->src[i] & MIGRATE_PFN_MIGRATE);
	migrate_vma_finalize(&c->mig);
	mvd_unlock();

	for (i = 0; i < nr; i++) {
		mvd_expect_user(test, start, i, seed);
		KUNIT_EXPECT_PTR_EQ(test, mvd_page_at(start + i * PAGE_SIZE),
				    new[i]);
	}
}

/* ----- argument validation ----- */

struct mvd_bad_args_case {
	const char *name;
	void (*tweak)(struct migrate_vma *mig);
};

static void mvd_no_vma(struct migrate_vma *mig)
{
	mig->vma = NULL;
}

static void mvd_no_src(struct migrate_vma *mig)
{
	mig->src = NULL;
}

static void mvd_no_dst(struct migrate_vma *mig)
{
	mig->dst = NULL;
}

/* Rounding start down would give the range one page more than its length. */
static void mvd_unaligned_start(struct migrate_vma *mig)
{
	mig->start += 1;
}

/* Less than a page long, although it straddles a page boundary. */
static void mvd_short_range(struct migrate_vma *mig)
{
	mig->start += PAGE_SIZE / 2;
	mig->end = mig->start + PAGE_SIZE - 1;
}

static void mvd_empty_range(struct migrate_vma *mig)
{
	mig->end = mig->start;
}

static void mvd_inverted_range(struct migrate_vma *mig)
{
	swap(mig->start, mig->end);
}

static void mvd_start_below_vma(struct migrate_vma *mig)
{
	mig->start -= PAGE_SIZE;
}

static void mvd_end_beyond_vma(struct migrate_vma *mig)
{
	mig->end += PAGE_SIZE;
}

static void mvd_range_after_vma(struct migrate_vma *mig)
{
	unsigned long len = mig->end - mig->start;

	mig->start = mig->end;
	mig->end += len;
}

static void mvd_system_fault_page(struct migrate_vma *mig)
{
	/* Not a device-private page. */
	mig->fault_page = ZERO_PAGE(0);
	mig->flags |= MIGRATE_VMA_SELECT_DEVICE_PRIVATE;
}

static const struct mvd_bad_args_case mvd_bad_args_cases[] = {
	{ "NULL vma", mvd_no_vma },
	{ "NULL src", mvd_no_src },
	{ "NULL dst", mvd_no_dst },
	{ "unaligned start that rounding grows", mvd_unaligned_start },
	{ "less than a page", mvd_short_range },
	{ "empty range", mvd_empty_range },
	{ "end before start", mvd_inverted_range },
	{ "start below the VMA", mvd_start_below_vma },
	{ "end beyond the VMA", mvd_end_beyond_vma },
	{ "range after the VMA", mvd_range_after_vma },
	{ "fault page not device-private", mvd_system_fault_page },
};

static void mvd_bad_args_desc(const struct mvd_bad_args_case *c, char *desc)
{
	strscpy(desc, c->name, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(mvd_bad_args, mvd_bad_args_cases, mvd_bad_args_desc);

/* Each broken argument is refused with -EINVAL and nothing is touched. */
static void mvd_test_bad_args(struct kunit *test)
{
	const struct mvd_bad_args_case *bad = test->param_value;
	struct mvd_ctx c;
	struct migrate_vma mig;
	int ret;

	mvd_ctx_init(test, &c, 4, MIGRATE_VMA_SELECT_SYSTEM);
	mvd_fill_user(test, c.addr, 0, 4, 1);
	c.src[0] = MVD_SENTINEL;
	c.dst[0] = MVD_SENTINEL;

	mvd_lock(&c);
	mig = c.mig;
	bad->tweak(&mig);
	ret = migrate_vma_setup(&mig);
	mvd_unlock();

	KUNIT_EXPECT_EQ(test, ret, -EINVAL);
	KUNIT_EXPECT_EQ(test, c.src[0], MVD_SENTINEL);
	KUNIT_EXPECT_EQ(test, c.dst[0], MVD_SENTINEL);
	/* The pages are still mapped, with their data. */
	mvd_expect_user(test, c.addr, 0, 1);
	mvd_expect_user(test, c.addr, 3, 1);
}

/* ----- migrations ----- */

/* System pages move to new system pages; the CPU then sees the new ones. */
static void mvd_test_system_to_system(struct kunit *test)
{
	const unsigned long npages = 8;
	struct page *old[8], *new[8];
	struct mvd_ctx c;
	unsigned long i;
	int ret;

	mvd_ctx_init(test, &c, npages, MIGRATE_VMA_SELECT_SYSTEM);
	mvd_fill_user(test, c.addr, 0, npages, 2);
	for (i = 0; i < npages; i++) {
		old[i] = mvd_page_at(c.addr + i * PAGE_SIZE);
		KUNIT_ASSERT_NOT_NULL(test, old[i]);
	}

	mvd_lock(&c);
	ret = migrate_vma_setup(&c.mig);
	KUNIT_EXPECT_EQ(test, ret, 0);
	KUNIT_EXPECT_EQ(test, c.mig.npages, npages);
	KUNIT_EXPECT_EQ(test, c.mig.cpages, npages);
	for (i = 0; i < npages; i++) {
		KUNIT_EXPECT_PTR_EQ(test, migrate_pfn_to_page(c.src[i]), old[i]);
		KUNIT_EXPECT_TRUE(test, c.src[i] & MIGRATE_PFN_MIGRATE);
		KUNIT_EXPECT_TRUE(test, c.src[i] & MIGRATE_PFN_WRITE);
	}
	mvd_move_to_new(test, &c, new, npages, 2);
	/* The new pages are ordinary, writable anonymous memory. */
	mvd_fill_user(test, c.addr, 0, npages, 3);
	for (i = 0; i < npages; i++)
		mvd_expect_user(test, c.addr, i, 3);
}

/* Part of a range: only the pages inside [start, end) move. */
static void mvd_test_subrange(struct kunit *test)
{
	const unsigned long npages = 6;
	struct page *old[6], *new[2];
	struct mvd_ctx c;
	unsigned long i;

	mvd_ctx_init(test, &c, npages, MIGRATE_VMA_SELECT_SYSTEM);
	mvd_fill_user(test, c.addr, 0, npages, 4);
	for (i = 0; i < npages; i++)
		old[i] = mvd_page_at(c.addr + i * PAGE_SIZE);

	c.mig.start = c.addr + 2 * PAGE_SIZE;
	c.mig.end = c.addr + 4 * PAGE_SIZE;
	mvd_lock(&c);
	KUNIT_EXPECT_EQ(test, migrate_vma_setup(&c.mig), 0);
	KUNIT_EXPECT_EQ(test, c.mig.npages, 2);
	KUNIT_EXPECT_EQ(test, c.mig.cpages, 2);
	mvd_copy_to_new_pages(test, &c.mig, new);
	migrate_vma_pages(&c.mig);
	migrate_vma_finalize(&c.mig);
	mvd_unlock();

	for (i = 0; i < npages; i++) {
		struct page *now = mvd_page_at(c.addr + i * PAGE_SIZE);

		mvd_expect_user(test, c.addr, i, 4);
		if (i == 2 || i == 3)
			KUNIT_EXPECT_PTR_EQ(test, now, new[i - 2]);
		else
			KUNIT_EXPECT_PTR_EQ(test, now, old[i]);
	}
}

/* Without destination pages everything is put back as it was. */
static void mvd_test_restore(struct kunit *test)
{
	const unsigned long npages = 4;
	struct page *old[4];
	struct mvd_ctx c;
	unsigned long i;

	mvd_ctx_init(test, &c, npages, MIGRATE_VMA_SELECT_SYSTEM);
	mvd_fill_user(test, c.addr, 0, npages, 5);
	for (i = 0; i < npages; i++)
		old[i] = mvd_page_at(c.addr + i * PAGE_SIZE);

	mvd_lock(&c);
	KUNIT_EXPECT_EQ(test, migrate_vma_setup(&c.mig), 0);
	KUNIT_EXPECT_EQ(test, c.mig.cpages, npages);
	migrate_vma_pages(&c.mig);
	for (i = 0; i < npages; i++)
		KUNIT_EXPECT_FALSE(test, c.src[i] & MIGRATE_PFN_MIGRATE);
	migrate_vma_finalize(&c.mig);
	mvd_unlock();

	for (i = 0; i < npages; i++) {
		mvd_expect_user(test, c.addr, i, 5);
		KUNIT_EXPECT_PTR_EQ(test, mvd_page_at(c.addr + i * PAGE_SIZE),
				    old[i]);
	}
}

/*
 * Unpopulated addresses and the zero page are offered as empty entries and
 * get the driver's pages.
 */
static void mvd_test_populate(struct kunit *test)
{
	const unsigned long npages = 4;
	struct mvd_ctx c;
	unsigned long i;
	int val;

	mvd_ctx_init(test, &c, npages, MIGRATE_VMA_SELECT_SYSTEM);
	/* A read fault maps the shared zero page at page 1. */
	KUNIT_ASSERT_EQ(test,
			get_user(val, (int __user *)(c.addr + PAGE_SIZE)), 0);
	KUNIT_EXPECT_EQ(test, val, 0);

	mvd_lock(&c);
	KUNIT_EXPECT_EQ(test, migrate_vma_setup(&c.mig), 0);
	KUNIT_EXPECT_EQ(test, c.mig.cpages, npages);
	for (i = 0; i < npages; i++)
		KUNIT_EXPECT_EQ(test, c.src[i], MIGRATE_PFN_MIGRATE);
	mvd_fill_holes(test, &c.mig, 6);
	migrate_vma_pages(&c.mig);
	for (i = 0; i < npages; i++)
		KUNIT_EXPECT_EQ(test, c.src[i], MIGRATE_PFN_MIGRATE);
	migrate_vma_finalize(&c.mig);
	mvd_unlock();

	for (i = 0; i < npages; i++) {
		struct page *page = mvd_page_at(c.addr + i * PAGE_SIZE);

		KUNIT_EXPECT_PTR_EQ(test, page, migrate_pfn_to_page(c.dst[i]));
		mvd_expect_user(test, c.addr, i, 6);
	}
}

/*
 * A CPU fault that populates an empty address after migrate_vma_setup() wins
 * over the driver's page.
 */
static void mvd_test_populate_race(struct kunit *test)
{
	struct mvd_ctx c;

	mvd_ctx_init(test, &c, 2, MIGRATE_VMA_SELECT_SYSTEM);

	mvd_lock(&c);
	KUNIT_EXPECT_EQ(test, migrate_vma_setup(&c.mig), 0);
	KUNIT_EXPECT_EQ(test, c.src[0], MIGRATE_PFN_MIGRATE);
	KUNIT_EXPECT_EQ(test, c.src[1], MIGRATE_PFN_MIGRATE);
	mvd_unlock();

	/*
	 * Stand in for another thread faulting.  Dropping the mmap lock is
	 * fine here only because the range holds no migration entries and
	 * nothing can unmap it.
	 */
	mvd_fill_user(test, c.addr, 0, 1, 7);

	mvd_lock(&c);
	mvd_fill_holes(test, &c.mig, 8);
	migrate_vma_pages(&c.mig);
	KUNIT_EXPECT_FALSE(test, c.src[0] & MIGRATE_PFN_MIGRATE);
	KUNIT_EXPECT_TRUE(test, c.src[1] & MIGRATE_PFN_MIGRATE);
	migrate_vma_finalize(&c.mig);
	mvd_unlock();

	mvd_expect_user(test, c.addr, 0, 7);
	mvd_expect_user(test, c.addr, 1, 8);
}

/*
 * Pages someone else holds stay where they are: one pinned (FOLL_PIN, caught
 * while collecting), one with a plain extra reference (caught by the
 * reference count check after unmapping).
 */
static void mvd_test_busy_pages(struct kunit *test)
{
	const unsigned long npages = 4;
	struct page *old[4], *new[4], *pinned, *held;
	struct mvd_ctx c;
	unsigned long i;

	mvd_ctx_init(test, &c, npages, MIGRATE_VMA_SELECT_SYSTEM);
	mvd_fill_user(test, c.addr, 0, npages, 9);
	for (i = 0; i < npages; i++)
		old[i] = mvd_page_at(c.addr + i * PAGE_SIZE);

	mvd_lock(&c);
	KUNIT_ASSERT_EQ(test, pin_user_pages(c.addr, 1, FOLL_WRITE, &pinned),
			1);
	KUNIT_ASSERT_EQ(test, get_user_pages(c.addr + PAGE_SIZE, 1, 0, &held),
			1);

	KUNIT_EXPECT_EQ(test, migrate_vma_setup(&c.mig), 0);
	KUNIT_EXPECT_EQ(test, c.mig.cpages, npages - 2);
	KUNIT_EXPECT_EQ(test, c.src[0], 0);
	KUNIT_EXPECT_EQ(test, c.src[1], 0);
	KUNIT_EXPECT_TRUE(test, c.src[2] & MIGRATE_PFN_MIGRATE);
	KUNIT_EXPECT_TRUE(test, c.src[3] & MIGRATE_PFN_MIGRATE);
	mvd_copy_to_new_pages(test, &c.mig, new);
	migrate_vma_pages(&c.mig);
	migrate_vma_finalize(&c.mig);

	unpin_user_page(pinned);
	put_page(held);
	mvd_unlock();

	for (i = 0; i < npages; i++) {
		struct page *now = mvd_page_at(c.addr + i * PAGE_SIZE);

		mvd_expect_user(test, c.addr, i, 9);
		KUNIT_EXPECT_PTR_EQ(test, now, i < 2 ? old[i] : new[i]);
	}
}

/*
 * Flags selecting no system memory leave system pages alone; holes of a
 * private anonymous VMA are offered whatever the flags, as by 6.12.
 */
static void mvd_test_not_selected(struct kunit *test)
{
	static const unsigned long flags[] = {
		0,
		MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
		MIGRATE_VMA_SELECT_DEVICE_COHERENT,
	};
	struct mvd_ctx c;
	unsigned int f;

	mvd_ctx_init(test, &c, 4, 0);
	/* Pages 0 and 1 populated, 2 and 3 not. */
	mvd_fill_user(test, c.addr, 0, 2, 10);

	for (f = 0; f < ARRAY_SIZE(flags); f++) {
		unsigned long i;

		c.mig.flags = flags[f];
		mvd_lock(&c);
		KUNIT_EXPECT_EQ(test, migrate_vma_setup(&c.mig), 0);
		KUNIT_EXPECT_EQ(test, c.mig.cpages, 2);
		for (i = 0; i < 4; i++)
			KUNIT_EXPECT_EQ(test, c.src[i],
					i < 2 ? 0 : MIGRATE_PFN_MIGRATE);
		migrate_vma_pages(&c.mig);
		migrate_vma_finalize(&c.mig);
		mvd_unlock();
	}
	mvd_expect_user(test, c.addr, 0, 10);
	mvd_expect_user(test, c.addr, 1, 10);
}

/*
 * An unaligned start and end are rounded down to pages and written back,
 * and flag bits that select nothing are ignored, as by 6.12.
 */
static void mvd_test_rounding_and_flags(struct kunit *test)
{
	struct page *new[2];
	struct mvd_ctx c;
	unsigned long i;

	mvd_ctx_init(test, &c, 4, MIGRATE_VMA_SELECT_SYSTEM | (1UL << 3) |
			       (1UL << (BITS_PER_LONG - 1)));
	mvd_fill_user(test, c.addr, 0, 4, 12);
	c.mig.start = c.addr + PAGE_SIZE + PAGE_SIZE / 2;
	c.mig.end = c.mig.start + 2 * PAGE_SIZE;

	mvd_lock(&c);
	KUNIT_EXPECT_EQ(test, migrate_vma_setup(&c.mig), 0);
	KUNIT_EXPECT_EQ(test, c.mig.start, c.addr + PAGE_SIZE);
	KUNIT_EXPECT_EQ(test, c.mig.end, c.addr + 3 * PAGE_SIZE);
	KUNIT_EXPECT_EQ(test, c.mig.npages, 2);
	KUNIT_EXPECT_EQ(test, c.mig.cpages, 2);
	KUNIT_EXPECT_EQ(test, mvd_copy_to_new_pages(test, &c.mig, new), 2);
	migrate_vma_pages(&c.mig);
	migrate_vma_finalize(&c.mig);
	mvd_unlock();

	for (i = 0; i < 2; i++)
		KUNIT_EXPECT_PTR_EQ(test, new[i],
				    mvd_page_at(c.addr + (i + 1) * PAGE_SIZE));
	for (i = 0; i < 4; i++)
		mvd_expect_user(test, c.addr, i, 12);
}

/* Ask for THPs in the VMA at @addr (MADV_HUGEPAGE), for either THP mode. */
static void mvd_want_thp(struct kunit *test, unsigned long addr)
{
	struct vm_area_struct *vma;

	mmap_write_lock(current->mm);
	vma = vma_lookup(current->mm, addr);
	if (vma)
		vm_flags_set(vma, VM_HUGEPAGE);
	mmap_write_unlock(current->mm);
	KUNIT_ASSERT_NOT_NULL(test, vma);
}

/* Migrating a few pages out of a PMD-mapped THP splits it first. */
static void mvd_test_thp(struct kunit *test)
{
	const unsigned long span = 2 * (PMD_SIZE >> PAGE_SHIFT);
	const unsigned long first = 4, nr = 4;
	struct page *new[4], *page;
	unsigned long huge, base, i;
	struct mvd_ctx c;

	if (!IS_ENABLED(CONFIG_TRANSPARENT_HUGEPAGE))
		kunit_skip(test, "no THP support");

	mvd_ctx_init(test, &c, span, MIGRATE_VMA_SELECT_SYSTEM);
	mvd_want_thp(test, c.addr);
	huge = ALIGN(c.addr, PMD_SIZE);
	base = (huge - c.addr) >> PAGE_SHIFT;
	mvd_fill_user(test, c.addr, base, PMD_SIZE >> PAGE_SHIFT, 11);

	page = mvd_page_at(huge);
	KUNIT_ASSERT_NOT_NULL(test, page);
	KUNIT_ASSERT_TRUE_MSG(test, folio_test_large(page_folio(page)),
			      "the fault did not give a THP");

	c.mig.start = huge + first * PAGE_SIZE;
	c.mig.end = c.mig.start + nr * PAGE_SIZE;
	mvd_lock(&c);
	KUNIT_EXPECT_EQ(test, migrate_vma_setup(&c.mig), 0);
	KUNIT_EXPECT_EQ(test, c.mig.cpages, nr);
	mvd_copy_to_new_pages(test, &c.mig, new);
	migrate_vma_pages(&c.mig);
	for (i = 0; i < nr; i++)
		KUNIT_EXPECT_TRUE(test, c.src[i] & MIGRATE_PFN_MIGRATE);
	migrate_vma_finalize(&c.mig);
	mvd_unlock();

	for (i = 0; i < nr; i++)
		KUNIT_EXPECT_PTR_EQ(test, new[i],
				    mvd_page_at(c.mig.start + i * PAGE_SIZE));
	for (i = 0; i < PMD_SIZE >> PAGE_SHIFT; i++)
		mvd_expect_user(test, c.addr, base + i, 11);
}

/*
 * Map two PMDs' worth of memory with a THP in the PMD-aligned part, filled
 * with pattern @seed; set up @c to migrate exactly that THP, selecting
 * @flags.  Returns the THP's head page (the test is skipped without THP
 * support).
 */
static struct page *mvd_thp_setup(struct kunit *test, struct mvd_ctx *c,
				  unsigned long flags, unsigned int seed)
{
	const unsigned long span = 2 * (PMD_SIZE >> PAGE_SHIFT);
	unsigned long huge;
	struct page *page;

	if (!IS_ENABLED(CONFIG_TRANSPARENT_HUGEPAGE))
		kunit_skip(test, "no THP support");

	mvd_ctx_init(test, c, span, flags);
	mvd_want_thp(test, c->addr);
	huge = ALIGN(c->addr, PMD_SIZE);
	mvd_fill_user(test, huge, 0, PMD_SIZE >> PAGE_SHIFT, seed);

	page = mvd_page_at(huge);
	KUNIT_ASSERT_NOT_NULL(test, page);
	KUNIT_ASSERT_TRUE_MSG(test, folio_test_large(page_folio(page)) &&
			      page == folio_page(page_folio(page), 0),
			      "the fault did not give a PMD-aligned THP");
	c->mig.start = huge;
	c->mig.end = huge + PMD_SIZE;
	return page;
}

/* A locked new system page holding a copy of @page, for a dst entry. */
static struct page *mvd_copy_page(struct kunit *test, struct page *page)
{
	struct page *new = alloc_page(GFP_HIGHUSER_MOVABLE);

	KUNIT_ASSERT_NOT_NULL(test, new);
	lock_page(new);
	copy_highpage(new, page);
	return new;
}

/* The test's own references on the pages of mvd_pattern_pages(). */
struct mvd_held_pages {
	struct page **page;
	unsigned long nr;
};

static void mvd_held_pages_release(void *data)
{
	struct mvd_held_pages *held = data;
	unsigned long i;

	for (i = 0; i < held->nr && held->page[i]; i++)
		put_page(held->page[i]);
}

/*
 * @nr new system pages, page @i holding pattern @seed for index @i,
 * allocated before the mmap lock.  The test keeps one reference on each
 * until it ends, whatever fails before: a migration gets its own
 * destination reference through mvd_dst_pfn().
 */
static struct page **mvd_pattern_pages(struct kunit *test, unsigned long nr,
				       unsigned int seed)
{
	struct mvd_held_pages *held;
	unsigned long i;

	held = kunit_kzalloc(test, sizeof(*held), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, held);
	held->page = kunit_kcalloc(test, nr, sizeof(*held->page), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, held->page);
	held->nr = nr;
	KUNIT_ASSERT_EQ(test, kunit_add_action_or_reset(test,
							mvd_held_pages_release,
							held), 0);
	for (i = 0; i < nr; i++) {
		struct page *page = alloc_page(GFP_HIGHUSER_MOVABLE);
		void *kaddr;

		KUNIT_ASSERT_NOT_NULL(test, page);
		kaddr = kmap_local_page(page);
		mvd_pattern(kaddr, seed, i);
		kunmap_local(kaddr);
		held->page[i] = page;
	}
	return held->page;
}

static void mvd_folio_put(void *folio)
{
	folio_put(folio);
}

/*
 * A dst entry for @page, which the test holds: locked and with a reference
 * of its own, which migrate_vma_finalize() drops whether @page was used or
 * not.
 */
static unsigned long mvd_dst_pfn(struct page *page)
{
	get_page(page);
	lock_page(page);
	return migrate_pfn(page_to_pfn(page));
}

/*
 * A THP the range covers whole, without MIGRATE_VMA_SELECT_COMPOUND: one
 * entry per page, as 6.12 gives them, and each page moves on its own.
 */
static void mvd_test_thp_whole(struct kunit *test)
{
	const unsigned long nr = PMD_SIZE >> PAGE_SHIFT;
	struct page *head, **new;
	struct mvd_ctx c;
	unsigned long i;

	new = kunit_kcalloc(test, nr, sizeof(*new), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, new);
	head = mvd_thp_setup(test, &c, MIGRATE_VMA_SELECT_SYSTEM, 21);

	mvd_lock(&c);
	KUNIT_EXPECT_EQ(test, migrate_vma_setup(&c.mig), 0);
	KUNIT_EXPECT_EQ(test, c.mig.cpages, nr);
	for (i = 0; i < nr; i++)
		KUNIT_EXPECT_EQ(test, c.src[i],
				migrate_pfn(page_to_pfn(head) + i) |
				MIGRATE_PFN_MIGRATE | MIGRATE_PFN_WRITE);
	mvd_move_to_new(test, &c, new, nr, 21);
}

/*
 * With MIGRATE_VMA_SELECT_COMPOUND the THP is one entry; answered with base
 * pages (none for one address), migrate_vma_pages() splits it and gives
 * each page its entry.
 */
static void mvd_test_thp_compound(struct kunit *test)
{
	const unsigned long nr = PMD_SIZE >> PAGE_SHIFT, kept = 7;
	struct page *head, **new;
	struct mvd_ctx c;
	unsigned long i;

	new = kunit_kcalloc(test, nr, sizeof(*new), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, new);
	head = mvd_thp_setup(test, &c, MIGRATE_VMA_SELECT_SYSTEM |
			     MIGRATE_VMA_SELECT_COMPOUND, 22);

	mvd_lock(&c);
	KUNIT_EXPECT_EQ(test, migrate_vma_setup(&c.mig), 0);
	KUNIT_EXPECT_EQ(test, c.mig.cpages, 1);
	KUNIT_EXPECT_EQ(test, c.src[0], migrate_pfn(page_to_pfn(head)) |
			MIGRATE_PFN_MIGRATE | MIGRATE_PFN_WRITE |
			MIGRATE_PFN_COMPOUND);
	for (i = 1; i < nr; i++)
		KUNIT_EXPECT_EQ(test, c.src[i], 0);
	KUNIT_EXPECT_TRUE(test, folio_test_large(page_folio(head)));

	for (i = 0; i < nr; i++) {
		if (i == kept)
			continue;
		new[i] = mvd_copy_page(test, head + i);
		c.dst[i] = migrate_pfn(page_to_pfn(new[i]));
	}
	migrate_vma_pages(&c.mig);
	for (i = 0; i < nr; i++)
		KUNIT_EXPECT_EQ(test, c.src[i],
				migrate_pfn(page_to_pfn(head) + i) |
				(i == kept ? 0 : MIGRATE_PFN_MIGRATE) |
				MIGRATE_PFN_WRITE);
	migrate_vma_finalize(&c.mig);
	mvd_unlock();

	new[kept] = head + kept;
	for (i = 0; i < nr; i++) {
		KUNIT_EXPECT_PTR_EQ(test, new[i],
				    mvd_page_at(c.mig.start + i * PAGE_SIZE));
		mvd_expect_user(test, c.mig.start, i, 22);
	}
	KUNIT_EXPECT_FALSE(test, folio_test_large(page_folio(head + kept)));
}

/*
 * A THP collected whole that gets no destination page, or a compound one
 * of another order, is not split: it is mapped whole again.
 */
static void mvd_test_thp_compound_stays(struct kunit *test)
{
	const unsigned long nr = PMD_SIZE >> PAGE_SHIFT;
	struct page *head;
	struct mvd_ctx c;
	unsigned long i;
	int round;

	head = mvd_thp_setup(test, &c, MIGRATE_VMA_SELECT_SYSTEM |
			     MIGRATE_VMA_SELECT_COMPOUND, 23);

	for (round = 0; round < 2; round++) {
		mvd_lock(&c);
		KUNIT_EXPECT_EQ(test, migrate_vma_setup(&c.mig), 0);
		KUNIT_EXPECT_EQ(test, c.mig.cpages, 1);
		/* Round 1: a compound answer of order 0, which cannot take it. */
		if (round) {
			struct page *dpage = mvd_copy_page(test, head);

			c.dst[0] = migrate_pfn(page_to_pfn(dpage)) |
				   MIGRATE_PFN_COMPOUND;
		}
		migrate_vma_pages(&c.mig);
		KUNIT_EXPECT_FALSE(test, c.src[0] & MIGRATE_PFN_MIGRATE);
		migrate_vma_finalize(&c.mig);
		mvd_unlock();

		KUNIT_EXPECT_TRUE(test, folio_test_large(page_folio(head)));
	}
	for (i = 0; i < nr; i++)
		KUNIT_EXPECT_PTR_EQ(test, mvd_page_at(c.mig.start + i * PAGE_SIZE),
				    head + i);
	for (i = 0; i < nr; i += 37)
		mvd_expect_user(test, c.mig.start, i, 23);
}

/*
 * Holes with MIGRATE_VMA_SELECT_COMPOUND, in a range of fresh memory (no
 * page table below the PUD) from 5 pages into one PMD to 7 pages into the
 * fourth: each of the two whole PMDs is one compound entry without a pfn,
 * the ends are page by page.  The first whole PMD takes a system THP, the
 * second base pages, the ends nothing.
 */
static void mvd_test_huge_holes(struct kunit *test)
{
	const unsigned long pmd_nr = PMD_SIZE >> PAGE_SHIFT;
	const unsigned long head = pmd_nr - 5, tail = 7;
	const unsigned long first = head, second = head + pmd_nr;
	unsigned long i, nr, huge;
	struct page **pages;
	struct folio *thp;
	struct mvd_ctx c;

	if (!IS_ENABLED(CONFIG_ARCH_ENABLE_THP_MIGRATION))
		kunit_skip(test, "no PMD migration entries");
	thp = folio_alloc(GFP_TRANSHUGE | __GFP_ZERO, PMD_SHIFT - PAGE_SHIFT);
	if (!thp)
		kunit_skip(test, "no THP to be had");
	/* The allocation's reference is the test's until it ends. */
	KUNIT_ASSERT_EQ(test, kunit_add_action_or_reset(test, mvd_folio_put,
							thp), 0);

	/* The base pages for the second PMD. */
	pages = mvd_pattern_pages(test, pmd_nr, 31);

	mvd_ctx_init(test, &c, 5 * pmd_nr, MIGRATE_VMA_SELECT_SYSTEM |
		     MIGRATE_VMA_SELECT_COMPOUND);
	mvd_want_thp(test, c.addr);
	huge = ALIGN(c.addr, PMD_SIZE);
	c.mig.start = huge + (pmd_nr - head) * PAGE_SIZE;
	c.mig.end = huge + (3 * pmd_nr + tail) * PAGE_SIZE;
	nr = head + 2 * pmd_nr + tail;

	mvd_lock(&c);
	KUNIT_EXPECT_EQ(test, migrate_vma_setup(&c.mig), 0);
	KUNIT_EXPECT_EQ(test, c.mig.npages, nr);
	KUNIT_EXPECT_EQ(test, c.mig.cpages, head + 2 + tail);
	for (i = 0; i < nr; i++) {
		unsigned long want = MIGRATE_PFN_MIGRATE;

		if (i == first || i == second)
			want |= MIGRATE_PFN_COMPOUND;
		else if (i > first && i < second + pmd_nr)
			want = 0;
		KUNIT_EXPECT_EQ_MSG(test, c.src[i], want, "entry %lu", i);
	}

	c.dst[first] = mvd_dst_pfn(&thp->page) | MIGRATE_PFN_COMPOUND;
	for (i = 0; i < pmd_nr; i++)
		c.dst[second + i] = mvd_dst_pfn(pages[i]);
	migrate_vma_pages(&c.mig);
	for (i = 0; i < nr; i++) {
		unsigned long want = 0;

		if (i == first)
			want = MIGRATE_PFN_MIGRATE | MIGRATE_PFN_COMPOUND;
		else if (i >= second && i < second + pmd_nr)
			want = MIGRATE_PFN_MIGRATE;
		KUNIT_EXPECT_EQ_MSG(test, c.src[i], want, "entry %lu", i);
	}
	migrate_vma_finalize(&c.mig);
	mvd_unlock();

	/* The THP is mapped whole, by one PMD. */
	KUNIT_EXPECT_PTR_EQ(test, mvd_page_at(huge + PMD_SIZE), &thp->page);
	KUNIT_EXPECT_PTR_EQ(test, mvd_page_at(huge + 2 * PMD_SIZE - PAGE_SIZE),
			    folio_page(thp, pmd_nr - 1));
	KUNIT_EXPECT_EQ(test, folio_entire_mapcount(thp), 1);
	for (i = 0; i < pmd_nr; i += 61) {
		KUNIT_EXPECT_PTR_EQ(test, mvd_page_at(huge + 2 * PMD_SIZE +
						      i * PAGE_SIZE), pages[i]);
		mvd_expect_user(test, huge + 2 * PMD_SIZE, i, 31);
	}
}

/* ----- fault_page ----- */

/*
 * A device-private page for the fault_page of a migration, as the fault path
 * hands it to migrate_to_ram(): locked and referenced.  Its pgmap lives
 * until the test ends; nothing ever maps its pages, so they never fault.
 */
struct mvd_devmem {
	struct dev_pagemap pgmap;
	struct resource *res;
	struct page *page;
};

static void mvd_devmem_page_free(struct page *page)
{
}

static vm_fault_t mvd_devmem_fault(struct vm_fault *vmf)
{
	return VM_FAULT_SIGBUS;
}

static const struct dev_pagemap_ops mvd_devmem_ops = {
	.page_free = mvd_devmem_page_free,
	.migrate_to_ram = mvd_devmem_fault,
};

static void mvd_devmem_release(void *data)
{
	struct mvd_devmem *dm = data;

	/*
	 * The test expects the page back locked and with its one reference.
	 * If the code under test broke that (the test has failed already),
	 * do not crash on a second unlock, and do not let memunmap_pages()
	 * wait for ever for a reference it kept: leak the pgmap instead.
	 */
	if (dm->page) {
		if (PageLocked(dm->page))
			unlock_page(dm->page);
		if (page_ref_count(dm->page) != 1) {
			pr_warn("migrate_device_kunit: device page refcount %d, pgmap leaked\n",
				page_ref_count(dm->page));
			return;
		}
		put_page(dm->page);
	}
	if (dm->pgmap.nr_range)
		memunmap_pages(&dm->pgmap);
	release_mem_region(dm->res->start, resource_size(dm->res));
}

static struct page *mvd_locked_device_page(struct kunit *test)
{
	struct mvd_devmem *dm;
	void *kaddr;

	dm = kunit_kzalloc(test, sizeof(*dm), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, dm);
	dm->res = request_free_mem_region(&iomem_resource, SZ_2M,
					  "migrate_device_kunit");
	KUNIT_ASSERT_FALSE(test, IS_ERR(dm->res));
	KUNIT_ASSERT_EQ(test, kunit_add_action_or_reset(test, mvd_devmem_release,
							dm), 0);

	dm->pgmap.type = MEMORY_DEVICE_PRIVATE;
	dm->pgmap.range.start = dm->res->start;
	dm->pgmap.range.end = dm->res->start + SZ_2M - 1;
	dm->pgmap.nr_range = 1;
	dm->pgmap.ops = &mvd_devmem_ops;
	dm->pgmap.owner = dm;
	kaddr = memremap_pages(&dm->pgmap, numa_node_id());
	if (IS_ERR_OR_NULL(kaddr))
		dm->pgmap.nr_range = 0;	/* nothing for the release to unmap */
	KUNIT_ASSERT_FALSE(test, IS_ERR_OR_NULL(kaddr));

	/* One reference and the page lock, like a migration destination. */
	dm->page = pfn_to_page(PHYS_PFN(dm->res->start));
	zone_device_page_init(dm->page);
	return dm->page;
}

/*
 * The page a CPU fault is on need not lie in the range its migrate_to_ram()
 * migrates (amdkfd migrates a window around the fault that may miss it):
 * as in 6.12, the range migrates as usual, and fault_page is left alone,
 * still locked by its caller and with its references as they were.
 */
static void mvd_test_fault_page_outside(struct kunit *test)
{
	struct page *fault_page = mvd_locked_device_page(test);
	const unsigned long npages = 4;
	struct page *new[4];
	struct mvd_ctx c;
	unsigned long i;
	int refs;

	mvd_ctx_init(test, &c, npages, MIGRATE_VMA_SELECT_SYSTEM);
	mvd_fill_user(test, c.addr, 0, npages, 12);
	c.mig.fault_page = fault_page;
	refs = page_ref_count(fault_page);

	mvd_lock(&c);
	KUNIT_EXPECT_EQ(test, migrate_vma_setup(&c.mig), 0);
	KUNIT_EXPECT_EQ(test, c.mig.cpages, npages);
	for (i = 0; i < npages; i++)
		KUNIT_EXPECT_TRUE(test, c.src[i] & MIGRATE_PFN_MIGRATE);
	mvd_move_to_new(test, &c, new, npages, 12);
	KUNIT_EXPECT_TRUE(test, PageLocked(fault_page));
	KUNIT_EXPECT_EQ(test, page_ref_count(fault_page), refs);
}

/* ----- device-private PMDs ----- */

/*
 * Device memory for one PMD-sized device-private folio: a PMD-aligned PMD
 * out of a free range twice that size.  @frees counts the folios that
 * came back through folio_free, @freed_order the order of the last one.
 */
struct mvd_devfolio {
	struct dev_pagemap pgmap;
	struct resource *res;
	unsigned int frees;
	unsigned int freed_order;
};

static void mvd_devfolio_free(struct folio *folio)
{
	struct mvd_devfolio *df = container_of(page_pgmap(&folio->page),
					       struct mvd_devfolio, pgmap);

	df->frees++;
	df->freed_order = folio_order(folio);
}

static const struct dev_pagemap_ops mvd_devfolio_ops = {
	.folio_free = mvd_devfolio_free,
	.migrate_to_ram = mvd_devmem_fault,
};

static void mvd_devfolio_release(void *data)
{
	struct mvd_devfolio *df = data;
	unsigned long pfn;

	if (!df->pgmap.nr_range)
		goto release;
	/*
	 * memunmap_pages() would wait for ever for a page still handed out,
	 * which only a failed test leaves behind: leak the pgmap then.
	 */
	for (pfn = PHYS_PFN(df->pgmap.range.start);
	     pfn <= PHYS_PFN(df->pgmap.range.end); pfn++) {
		if (page_ref_count(pfn_to_page(pfn))) {
			pr_warn("migrate_device_kunit: device page %#lx in use, pgmap leaked\n",
				pfn);
			return;
		}
	}
	memunmap_pages(&df->pgmap);
release:
	release_mem_region(df->res->start, resource_size(df->res));
}

/* Set up @df and hand out its one folio, locked and referenced. */
static struct folio *mvd_device_folio(struct kunit *test,
				      struct mvd_devfolio *df)
{
	struct folio *folio;
	void *kaddr;

	df->res = request_free_mem_region(&iomem_resource, 2 * PMD_SIZE,
					  "migrate_device_kunit");
	KUNIT_ASSERT_FALSE(test, IS_ERR(df->res));
	KUNIT_ASSERT_EQ(test, kunit_add_action_or_reset(test,
							mvd_devfolio_release,
							df), 0);
	df->pgmap.type = MEMORY_DEVICE_PRIVATE;
	df->pgmap.range.start = ALIGN(df->res->start, PMD_SIZE);
	df->pgmap.range.end = df->pgmap.range.start + PMD_SIZE - 1;
	df->pgmap.nr_range = 1;
	df->pgmap.ops = &mvd_devfolio_ops;
	df->pgmap.owner = df;
	kaddr = memremap_pages(&df->pgmap, numa_node_id());
	if (IS_ERR_OR_NULL(kaddr))
		df->pgmap.nr_range = 0;	/* nothing for the release to unmap */
	KUNIT_ASSERT_FALSE(test, IS_ERR_OR_NULL(kaddr));

	folio = page_folio(pfn_to_page(PHYS_PFN(df->pgmap.range.start)));
	KUNIT_ASSERT_EQ(test, zone_device_folio_init(folio,
						     PMD_SHIFT - PAGE_SHIFT), 0);
	return folio;
}

/*
 * The folio that a device-private PMD maps at @addr in the test thread's
 * mm, or NULL if the PMD there is anything else.
 */
static struct folio *mvd_device_pmd_folio(unsigned long addr)
{
	struct folio *folio = NULL;
	pgd_t *pgd;
	p4d_t *p4d;
	pud_t *pud;
	pmd_t pmd;

	mmap_read_lock(current->mm);
	pgd = pgd_offset(current->mm, addr);
	if (pgd_none(*pgd) || pgd_bad(*pgd))
		goto out;
	p4d = p4d_offset(pgd, addr);
	if (p4d_none(*p4d) || p4d_bad(*p4d))
		goto out;
	pud = pud_offset(p4d, addr);
	if (!pud_present(*pud) || pud_leaf(*pud))
		goto out;
	pmd = pmdp_get(pmd_offset(pud, addr));
	if (is_pmd_device_private_entry(pmd))
		folio = pfn_swap_entry_folio(pmd_to_swp_entry(pmd));
out:
	mmap_read_unlock(current->mm);
	return folio;
}

/*
 * A device-private PMD whose folio someone else holds locked (a CPU fault
 * bringing it back, another migration) is skipped and left mapped whole,
 * whether the caller asked for compound entries or not, as 6.12 skips a
 * THP it cannot lock.  Once unlocked, a 6.12 driver (no compound entries)
 * gets it back page by page: the PMD and the folio are split under the
 * folio lock, and the device folio comes back as 512 base pages.
 */
static void mvd_test_device_pmd_locked(struct kunit *test)
{
	static const unsigned long busy_flags[] = {
		MIGRATE_VMA_SELECT_DEVICE_PRIVATE | MIGRATE_VMA_SELECT_COMPOUND,
		MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
	};
	const unsigned long nr = PMD_SIZE >> PAGE_SHIFT;
	struct page **pages;
	struct folio *dfolio;
	struct mvd_devfolio *df;
	struct mvd_ctx c;
	unsigned long i;
	unsigned int k;

	if (!IS_ENABLED(CONFIG_ARCH_ENABLE_THP_MIGRATION))
		kunit_skip(test, "no PMD migration entries");

	/* The system pages it comes back to. */
	pages = mvd_pattern_pages(test, nr, 41);
	df = kunit_kzalloc(test, sizeof(*df), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, df);

	/* Out to the device, where one PMD maps it. */
	mvd_thp_setup(test, &c, MIGRATE_VMA_SELECT_SYSTEM |
		      MIGRATE_VMA_SELECT_COMPOUND, 41);
	dfolio = mvd_device_folio(test, df);
	mvd_lock(&c);
	KUNIT_EXPECT_EQ(test, migrate_vma_setup(&c.mig), 0);
	KUNIT_EXPECT_EQ(test, c.mig.cpages, 1);
	c.dst[0] = migrate_pfn(folio_pfn(dfolio)) | MIGRATE_PFN_COMPOUND |
		   MIGRATE_PFN_WRITE;
	migrate_vma_pages(&c.mig);
	KUNIT_EXPECT_TRUE(test, c.src[0] & MIGRATE_PFN_MIGRATE);
	migrate_vma_finalize(&c.mig);
	mvd_unlock();
	KUNIT_ASSERT_PTR_EQ(test, mvd_device_pmd_folio(c.mig.start), dfolio);

	/* Locked by someone else: skipped, the PMD left as it was. */
	folio_get(dfolio);
	folio_lock(dfolio);
	c.mig.pgmap_owner = df;
	for (k = 0; k < ARRAY_SIZE(busy_flags); k++) {
		c.mig.flags = busy_flags[k];
		mvd_lock(&c);
		KUNIT_EXPECT_EQ(test, migrate_vma_setup(&c.mig), 0);
		KUNIT_EXPECT_EQ_MSG(test, c.mig.cpages, 0, "flags %#lx",
				    busy_flags[k]);
		for (i = 0; i < nr; i++)
			KUNIT_EXPECT_EQ_MSG(test, c.src[i], 0, "entry %lu", i);
		migrate_vma_pages(&c.mig);
		migrate_vma_finalize(&c.mig);
		mvd_unlock();
		KUNIT_EXPECT_PTR_EQ_MSG(test, mvd_device_pmd_folio(c.mig.start),
					dfolio, "flags %#lx", busy_flags[k]);
	}
	folio_unlock(dfolio);
	folio_put(dfolio);

	/* Unlocked: split, and back page by page. */
	c.mig.flags = MIGRATE_VMA_SELECT_DEVICE_PRIVATE;
	mvd_lock(&c);
	KUNIT_EXPECT_EQ(test, migrate_vma_setup(&c.mig), 0);
	KUNIT_EXPECT_EQ(test, c.mig.cpages, nr);
	for (i = 0; i < nr; i++) {
		KUNIT_EXPECT_EQ_MSG(test, c.src[i],
				    migrate_pfn(folio_pfn(dfolio) + i) |
				    MIGRATE_PFN_MIGRATE | MIGRATE_PFN_WRITE,
				    "entry %lu", i);
		c.dst[i] = mvd_dst_pfn(pages[i]);
	}
	migrate_vma_pages(&c.mig);
	for (i = 0; i < nr; i++)
		KUNIT_EXPECT_TRUE(test, c.src[i] & MIGRATE_PFN_MIGRATE);
	migrate_vma_finalize(&c.mig);
	mvd_unlock();

	for (i = 0; i < nr; i += 73) {
		KUNIT_EXPECT_PTR_EQ(test, mvd_page_at(c.mig.start +
						      i * PAGE_SIZE), pages[i]);
		mvd_expect_user(test, c.mig.start, i, 41);
	}
	KUNIT_EXPECT_EQ(test, df->frees, nr);
	KUNIT_EXPECT_EQ(test, df->freed_order, 0);
}

static struct kunit_case mvd_test_cases[] = {
	KUNIT_CASE_PARAM(mvd_test_bad_args, mvd_bad_args_gen_params),
	KUNIT_CASE(mvd_test_system_to_system),
	KUNIT_CASE(mvd_test_subrange),
	KUNIT_CASE(mvd_test_restore),
	KUNIT_CASE(mvd_test_populate),
	KUNIT_CASE(mvd_test_populate_race),
	KUNIT_CASE(mvd_test_busy_pages),
	KUNIT_CASE(mvd_test_not_selected),
	KUNIT_CASE(mvd_test_rounding_and_flags),
	KUNIT_CASE(mvd_test_thp),
	KUNIT_CASE(mvd_test_thp_whole),
	KUNIT_CASE(mvd_test_thp_compound),
	KUNIT_CASE(mvd_test_thp_compound_stays),
	KUNIT_CASE(mvd_test_huge_holes),
	KUNIT_CASE(mvd_test_fault_page_outside),
	KUNIT_CASE(mvd_test_device_pmd_locked),
	{}
};

static struct kunit_suite mvd_test_suite = {
	.name = "migrate_device",
	.test_cases = mvd_test_cases,
};

kunit_test_suite(mvd_test_suite);

MODULE_DESCRIPTION("KUnit tests for migrate_vma_*()");
MODULE_LICENSE("GPL");
