// SPDX-License-Identifier: GPL-2.0
/*
 * hmm_bench: time the core HMM calls from inside the kernel.
 *
 * The module owns a pool of device-private memory (its own dev_pagemap)
 * and offers one ioctl per core operation: hmm_range_fault() as a snapshot
 * or with fault-in, migrate_vma_*() to and from the pool,
 * migrate_device_*() eviction and make_device_exclusive_range().  Each
 * ioctl times only the core calls, with ktime_get_ns(); what a driver adds
 * around them (pfn arrays, destination pages, the interval notifier) is
 * done outside the timed spans.  CPU faults on pool pages go through
 * migrate_to_ram(), which accumulates its own time in counters that
 * HMM_BENCH_INFO reads.
 *
 * The device has no memory behind its pages: a migration moves no data,
 * and a page that comes back to system memory comes back zeroed.  That is
 * what keeps the figures about the core API and not about copying.
 *
 * It uses only the exported API of Linux 6.12, so the same source is built
 * against each kernel it compares, and, where the kernel has it, the
 * device-private THP API of Linux 6.19 (MIGRATE_PFN_COMPOUND): THPs then
 * move whole, into PMD-sized pool folios, and come back whole, as a driver
 * for such a kernel would do.  See bench/README.md for how it is run.
 */
#include <linux/bitmap.h>
#include <linux/delay.h>
#include <linux/fs.h>
#include <linux/highmem.h>
#include <linux/hmm.h>
#include <linux/kthread.h>
#include <linux/memremap.h>
#include <linux/migrate.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/mmu_notifier.h>
#include <linux/module.h>
#include <linux/pagemap.h>
#include <linux/rmap.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/vmstat.h>

#include "hmm_bench_uapi.h"

static unsigned long pool_mib = 1024;
module_param(pool_mib, ulong, 0444);
MODULE_PARM_DESC(pool_mib, "Size of the device-private pool in MiB (default 1024)");

/* The largest range one ioctl takes: 4 GiB of 4 KiB pages. */
#define BENCH_MAX_PAGES		BIT(20)

/**
 * struct bench_pool - the device-private memory of the bench device
 * @pgmap: its pagemap; @pgmap.owner is the pool itself
 * @res: the physical address range reserved for it
 * @base_pfn: first pfn of the pool
 * @npages: pages in the pool
 * @lock: protects @used, @nr_used and @cursor
 * @used: one bit per page, set while the page is handed out
 * @nr_used: set bits in @used
 * @cursor: where the next allocation starts looking
 * @meta_bytes: drop of free system memory that memremap_pages() caused
 *
 * Pages are handed out lowest first from @cursor, and @cursor goes back to
 * the start whenever the pool is empty, so N pages taken from an empty
 * pool are its first N pages (HMM_BENCH_EVICT relies on that).
 */
struct bench_pool {
	struct dev_pagemap	pgmap;
	struct resource		*res;
	unsigned long		base_pfn;
	unsigned long		npages;
	spinlock_t		lock;		/* protects used, nr_used, cursor */
	unsigned long		*used;
	unsigned long		nr_used;
	unsigned long		cursor;
	u64			meta_bytes;
};

static struct bench_pool pool;

/* migrate_to_ram() statistics, reset by HMM_BENCH_INFO */
static atomic64_t fault_count;
static atomic64_t fault_pages;
static atomic64_t fault_ns;

/* The 6.19 API, on an architecture that can map device memory by PMDs. */
#if defined(MIGRATE_PFN_COMPOUND) && defined(CONFIG_ARCH_ENABLE_THP_MIGRATION)
#define BENCH_THP		1
#define BENCH_SELECT_COMPOUND	MIGRATE_VMA_SELECT_COMPOUND
#define BENCH_PFN_COMPOUND	MIGRATE_PFN_COMPOUND
#else
#define BENCH_THP		0
#define BENCH_SELECT_COMPOUND	0
#define BENCH_PFN_COMPOUND	0
#endif

static __always_inline struct page *pool_alloc_page(void)
{
	unsigned long idx;

	spin_lock(&pool.lock);
	if (!pool.nr_used)
		pool.cursor = 0;
	idx = find_next_zero_bit(pool.used, pool.npages, pool.cursor);
	if (idx >= pool.npages)
		idx = find_first_zero_bit(pool.used, pool.npages);
	if (idx >= pool.npages) {
		spin_unlock(&pool.lock);
		return NULL;
	}
	__set_bit(idx, pool.used);
	pool.nr_used++;
	pool.cursor = idx + 1;
	spin_unlock(&pool.lock);

	/* takes the page's first reference and locks it, as migration wants */
	zone_device_page_init(pfn_to_page(pool.base_pfn + idx));
	return pfn_to_page(pool.base_pfn + idx);
}

/*
 * Give pool page @idx back, with the same code in both builds.  It used to
 * be pool_put(idx, 1): where the kernel has the THP API, pool_put() has
 * several callers, stays out of line and calls bitmap_clear() out of line,
 * which cost about 50 instructions per page more than in the reference's
 * build, where it was inlined with nr = 1.  Every row that frees device
 * pages in its timed part (to-sys, evict) paid that.
 */
static void pool_put_page(unsigned long idx)
{
	spin_lock(&pool.lock);
	if (!WARN_ON_ONCE(idx >= pool.npages || !test_bit(idx, pool.used))) {
		__clear_bit(idx, pool.used);
		pool.nr_used--;
	}
	spin_unlock(&pool.lock);
}

/* dev_pagemap_ops.page_free: the last reference to a pool page is gone */
static void bench_page_free(struct page *page)
{
	pool_put_page(page_to_pfn(page) - pool.base_pfn);
}

#if BENCH_THP
/* Give @nr pool pages from index @idx back. */
static void pool_put(unsigned long idx, unsigned long nr)
{
	spin_lock(&pool.lock);
	if (!WARN_ON_ONCE(idx + nr > pool.npages ||
			  find_next_zero_bit(pool.used, idx + nr, idx) <
			  idx + nr)) {
		bitmap_clear(pool.used, idx, nr);
		pool.nr_used -= nr;
	}
	spin_unlock(&pool.lock);
}

/*
 * A PMD-sized pool folio, physically aligned, locked and with its first
 * reference, as pool_alloc_page() hands out pages; NULL if the pool has no
 * aligned free run left.
 */
static struct page *pool_alloc_folio(void)
{
	unsigned long idx, cursor, off = pool.base_pfn & (HPAGE_PMD_NR - 1);
	struct page *page;

	spin_lock(&pool.lock);
	if (!pool.nr_used)
		pool.cursor = 0;
	cursor = pool.cursor;
	idx = bitmap_find_next_zero_area_off(pool.used, pool.npages,
					     pool.cursor, HPAGE_PMD_NR,
					     HPAGE_PMD_NR - 1, off);
	if (idx >= pool.npages)
		idx = bitmap_find_next_zero_area_off(pool.used, pool.npages, 0,
						     HPAGE_PMD_NR,
						     HPAGE_PMD_NR - 1, off);
	if (idx >= pool.npages) {
		spin_unlock(&pool.lock);
		return NULL;
	}
	bitmap_set(pool.used, idx, HPAGE_PMD_NR);
	pool.nr_used += HPAGE_PMD_NR;
	pool.cursor = idx + HPAGE_PMD_NR;
	spin_unlock(&pool.lock);

	/* A free page's compound head may be stale: no page_folio() here. */
	page = pfn_to_page(pool.base_pfn + idx);
	if (zone_device_folio_init((struct folio *)page, HPAGE_PMD_ORDER)) {
		pool_put(idx, HPAGE_PMD_NR);
		/* As if never taken: EVICT counts on the pool's order. */
		spin_lock(&pool.lock);
		pool.cursor = cursor;
		spin_unlock(&pool.lock);
		return NULL;
	}
	return page;
}

/* dev_pagemap_ops.folio_free: the last reference to a pool folio is gone */
static void bench_folio_free(struct folio *folio)
{
	/* a base page is freed as the reference's page_free frees it */
	if (!folio_test_large(folio))
		bench_page_free(&folio->page);
	else
		pool_put(folio_pfn(folio) - pool.base_pfn,
			 folio_nr_pages(folio));
}

/*
 * The compound destination of the MIGRATE_PFN_COMPOUND entry @src: a pool
 * folio when @to_device, else a zeroed system THP allocated as a THP fault
 * would (GFP_TRANSHUGE); 0 if there is none, or if @src is a hole going to
 * system memory.
 */
static unsigned long dst_folio(unsigned long src, bool to_device)
{
	struct folio *folio;
	struct page *page;

	if (to_device) {
		page = pool_alloc_folio();
		return page ? migrate_pfn(page_to_pfn(page)) |
			      MIGRATE_PFN_COMPOUND : 0;
	}
	if (!migrate_pfn_to_page(src))
		return 0;
	folio = folio_alloc(GFP_TRANSHUGE | __GFP_ZERO, HPAGE_PMD_ORDER);
	if (!folio)
		return 0;
	folio_lock(folio);
	return migrate_pfn(folio_pfn(folio)) | MIGRATE_PFN_COMPOUND;
}
#else
static unsigned long dst_folio(unsigned long src, bool to_device)
{
	return 0;
}
#endif

static unsigned long pool_used(void)
{
	unsigned long n;

	spin_lock(&pool.lock);
	n = pool.nr_used;
	spin_unlock(&pool.lock);
	return n;
}

/* A locked, zeroed system page to migrate a device page back into. */
static __always_inline unsigned long sys_dst_pfn(gfp_t gfp)
{
	struct page *page = alloc_page(gfp | __GFP_ZERO);

	if (!page)
		return 0;
	lock_page(page);
	return migrate_pfn(page_to_pfn(page));
}

/*
 * The destination of the collected entry @src: a pool page when
 * @to_device, else a system page allocated with @gfp; 0 if there is none.
 * Inline in both builds, as the helpers it calls (see Kbuild).
 */
static __always_inline unsigned long dst_page(unsigned long src,
					      bool to_device, gfp_t gfp)
{
	struct page *dpage;

	/* 6.12 marks holes for migration too: leave them be */
	if (!to_device)
		return migrate_pfn_to_page(src) ? sys_dst_pfn(gfp) : 0;
	dpage = pool_alloc_page();
	return dpage ? migrate_pfn(page_to_pfn(dpage)) : 0;
}

/*
 * Fill @dst for every entry of @src that the core collected.  A compound
 * entry gets a compound destination, or, if there is none, a page for each
 * of its addresses (the core splits it then).  An entry left 0 (no page to
 * be had) makes the core leave that page where it is.
 */
static void fill_dst(const unsigned long *src, unsigned long *dst,
		     unsigned long npages, bool to_device, gfp_t gfp)
{
	unsigned long i, j, nr;

	memset(dst, 0, npages * sizeof(*dst));
	for (i = 0; i < npages; i += nr) {
		nr = 1;
		if (!(src[i] & MIGRATE_PFN_MIGRATE))
			continue;
		if (src[i] & BENCH_PFN_COMPOUND) {
			nr = min_t(unsigned long, HPAGE_PMD_NR, npages - i);
			dst[i] = dst_folio(src[i], to_device);
			if (dst[i])
				continue;
			for (j = 0; j < nr; j++)
				dst[i + j] = dst_page(src[i], to_device, gfp);
			continue;
		}
		dst[i] = dst_page(src[i], to_device, gfp);
	}
}

/* Pages that moved: an entry still compound moved whole. */
static unsigned long count_migrated(const unsigned long *src, unsigned long npages)
{
	unsigned long i, n = 0;

	for (i = 0; i < npages; i++) {
		if (!(src[i] & MIGRATE_PFN_MIGRATE))
			continue;
		n += (src[i] & BENCH_PFN_COMPOUND) ? HPAGE_PMD_NR : 1;
	}
	return n;
}

/*
 * Make @args, set up for the fault page alone, cover the PMD-sized range
 * around @addr, to bring a pool folio back whole, if its VMA covers that
 * range and the pfn arrays can be had.
 */
static bool fault_whole_range(struct migrate_vma *args, unsigned long addr)
{
	unsigned long start = ALIGN_DOWN(addr, HPAGE_PMD_SIZE);
	unsigned long *pfns;

	if (start < args->vma->vm_start ||
	    start + HPAGE_PMD_SIZE > args->vma->vm_end)
		return false;
	pfns = kmalloc_array(2 * HPAGE_PMD_NR, sizeof(*pfns), GFP_KERNEL);
	if (!pfns)
		return false;
	args->start = start;
	args->src = pfns;
	args->dst = pfns + HPAGE_PMD_NR;
	args->flags |= BENCH_SELECT_COMPOUND;
	return true;
}

/*
 * migrate_to_ram(): bring the fault page back to system memory; a page of
 * a pool folio (only with the 6.19 API) brings the whole folio back.
 */
static vm_fault_t bench_migrate_to_ram(struct vm_fault *vmf)
{
	unsigned long src = 0, dst = 0, npages = 1;
	struct migrate_vma args = {
		.vma		= vmf->vma,
		.start		= ALIGN_DOWN(vmf->address, PAGE_SIZE),
		.src		= &src,
		.dst		= &dst,
		.pgmap_owner	= &pool,
		.flags		= MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
		.fault_page	= vmf->page,
	};
	vm_fault_t ret = 0;
	u64 t0, t1, t2, t3;

	/* Only a fault on a device-private PMD: it maps the folio whole. */
	if (BENCH_THP && is_swap_pmd(vmf->orig_pmd) &&
	    fault_whole_range(&args, vmf->address))
		npages = HPAGE_PMD_NR;
	args.end = args.start + npages * PAGE_SIZE;

	t0 = ktime_get_ns();
	if (migrate_vma_setup(&args)) {
		ret = VM_FAULT_SIGBUS;
		goto out;
	}
	t1 = ktime_get_ns();
	fill_dst(args.src, args.dst, npages, false, GFP_HIGHUSER_MOVABLE);
	t2 = ktime_get_ns();
	migrate_vma_pages(&args);
	migrate_vma_finalize(&args);
	t3 = ktime_get_ns();

	atomic64_inc(&fault_count);
	atomic64_add(count_migrated(args.src, npages), &fault_pages);
	atomic64_add((t1 - t0) + (t3 - t2), &fault_ns);
	/* a page that did not move is still device memory: the CPU retries */
out:
	if (args.src != &src)
		kfree(args.src);
	return ret;
}

static const struct dev_pagemap_ops bench_pgmap_ops = {
	.page_free	= bench_page_free,
#if BENCH_THP
	.folio_free	= bench_folio_free,
#endif
	.migrate_to_ram	= bench_migrate_to_ram,
};

/*
 * Free system memory in pages: the buddy allocator's (NR_FREE_PAGES) and
 * what the per-CPU page lists hold, which NR_FREE_PAGES leaves out.  The
 * lists fill and drain in batches of dozens of pages whenever pages are
 * allocated or freed, so without them a figure moves by a batch or two
 * with the timing of the calls, not with what the code under test keeps.
 * The per-CPU counts are read without their locks: a sample.
 */
static unsigned long bench_free_pages(void)
{
	unsigned long free = global_zone_page_state(NR_FREE_PAGES);
	int nid, cpu;

	for_each_online_node(nid) {
		struct pglist_data *pgdat = NODE_DATA(nid);
		int z;

		for (z = 0; z < MAX_NR_ZONES; z++) {
			struct zone *zone = &pgdat->node_zones[z];

			if (!populated_zone(zone))
				continue;
			for_each_online_cpu(cpu)
				free += READ_ONCE(per_cpu_ptr(zone->per_cpu_pageset,
							      cpu)->count);
		}
	}
	return free;
}

/*
 * Free-memory sampler for HMM_BENCH_F_SAMPLE: a kthread that watches
 * bench_free_pages() while the timed calls run and keeps the lowest value.
 * The baseline is taken once the thread exists: its own stack (four pages
 * without VMAP_STACK) would otherwise count as a drop, or not, when the
 * stack of the previous sampler is freed after its RCU grace period in the
 * same window.  @go tells the thread that @start and @low are set.
 */
struct bench_sampler {
	struct task_struct	*task;
	unsigned long		start;
	unsigned long		low;
	bool			go;
};

static int sampler_fn(void *data)
{
	struct bench_sampler *s = data;

	while (!kthread_should_stop()) {
		/* A sample counts only if taken after the baseline. */
		if (smp_load_acquire(&s->go)) {
			unsigned long v = bench_free_pages();

			if (v < READ_ONCE(s->low))
				WRITE_ONCE(s->low, v);
		}
		usleep_range(20, 50);
	}
	return 0;
}

static void sampler_start(struct bench_sampler *s, bool on)
{
	s->task = NULL;
	s->go = false;
	if (on)
		s->task = kthread_run(sampler_fn, s, "hmm_bench_sample");
	if (IS_ERR(s->task))
		s->task = NULL;
	s->start = bench_free_pages();
	s->low = s->start;
	/* Pairs with the acquire in sampler_fn(): @low is set before. */
	smp_store_release(&s->go, true);
}

/* Stop sampling; the peak drop of free memory in bytes (0 if off). */
static u64 sampler_stop(struct bench_sampler *s)
{
	unsigned long v;

	if (!s->task)
		return 0;
	kthread_stop(s->task);
	v = bench_free_pages();
	if (v < s->low)
		s->low = v;
	return (u64)(s->start - s->low) << PAGE_SHIFT;
}

/*
 * The interval notifier of the hmm_range_fault() ioctls.  The bench device
 * keeps no page table, so there is nothing to tear down: advancing the
 * sequence is all an invalidation has to do for the retry loop to see it.
 */
static bool bench_invalidate(struct mmu_interval_notifier *mni,
			     const struct mmu_notifier_range *range,
			     unsigned long cur_seq)
{
	mmu_interval_set_seq(mni, cur_seq);
	return true;
}

static const struct mmu_interval_notifier_ops bench_mni_ops = {
	.invalidate = bench_invalidate,
};

/* hmm_range_fault() with the usual retry loop; returns 0 or an errno. */
static int bench_range_fault(struct mmu_interval_notifier *mni,
			     struct hmm_range *range)
{
	unsigned long timeout = jiffies + msecs_to_jiffies(HMM_RANGE_DEFAULT_TIMEOUT);
	struct mm_struct *mm = mni->mm;
	int ret;

	for (;;) {
		if (time_after(jiffies, timeout))
			return -EBUSY;
		range->notifier_seq = mmu_interval_read_begin(mni);
		mmap_read_lock(mm);
		ret = hmm_range_fault(range);
		mmap_read_unlock(mm);
		if (ret == -EBUSY)
			continue;
		if (ret)
			return ret;
		if (!mmu_interval_read_retry(mni, range->notifier_seq))
			return 0;
	}
}

static int bench_hmm_fault(struct hmm_bench_cmd *cmd, unsigned long flags)
{
	unsigned long npages = cmd->size >> PAGE_SHIFT, i;
	struct mmu_interval_notifier mni;
	struct hmm_range range = {
		.notifier		= &mni,
		.start			= cmd->addr,
		.end			= cmd->addr + cmd->size,
		.default_flags		= flags,
		.dev_private_owner	= &pool,
	};
	u64 t0;
	int ret;

	range.hmm_pfns = kvcalloc(npages, sizeof(*range.hmm_pfns), GFP_KERNEL);
	if (!range.hmm_pfns)
		return -ENOMEM;
	ret = mmu_interval_notifier_insert(&mni, current->mm, cmd->addr,
					   cmd->size, &bench_mni_ops);
	if (ret)
		goto out;

	t0 = ktime_get_ns();
	ret = bench_range_fault(&mni, &range);
	cmd->ns = ktime_get_ns() - t0;

	mmu_interval_notifier_remove(&mni);
	for (i = 0; i < npages && !ret; i++)
		cmd->pages += !!(range.hmm_pfns[i] & HMM_PFN_VALID);
out:
	kvfree(range.hmm_pfns);
	return ret;
}

/* The pfn arrays of one migration. */
static int alloc_pfns(unsigned long npages, unsigned long **src,
		      unsigned long **dst)
{
	*src = kvcalloc(npages, sizeof(**src), GFP_KERNEL);
	*dst = kvcalloc(npages, sizeof(**dst), GFP_KERNEL);
	if (*src && *dst)
		return 0;
	kvfree(*src);
	kvfree(*dst);
	return -ENOMEM;
}

/* The VMA that holds all of [start, end), with mmap_lock held. */
static struct vm_area_struct *whole_vma(struct mm_struct *mm,
					unsigned long start, unsigned long end)
{
	struct vm_area_struct *vma = vma_lookup(mm, start);

	if (!vma || end > vma->vm_end)
		return NULL;
	return vma;
}

static int bench_migrate_vma(struct hmm_bench_cmd *cmd, bool to_device)
{
	unsigned long npages = cmd->size >> PAGE_SHIFT;
	struct mm_struct *mm = current->mm;
	struct migrate_vma args = {
		.start		= cmd->addr,
		.end		= cmd->addr + cmd->size,
		.pgmap_owner	= &pool,
		.flags		= (to_device ? MIGRATE_VMA_SELECT_SYSTEM :
					       MIGRATE_VMA_SELECT_DEVICE_PRIVATE) |
				  BENCH_SELECT_COMPOUND,
	};
	struct bench_sampler sampler;
	u64 t[4];
	int ret;

	ret = alloc_pfns(npages, &args.src, &args.dst);
	if (ret)
		return ret;
	/* the peak is the core's: the pfn arrays above do not count */
	sampler_start(&sampler, cmd->flags & HMM_BENCH_F_SAMPLE);
	mmap_read_lock(mm);
	args.vma = whole_vma(mm, args.start, args.end);
	if (!args.vma) {
		ret = -EINVAL;
		goto unlock;
	}
	t[0] = ktime_get_ns();
	ret = migrate_vma_setup(&args);
	t[1] = ktime_get_ns();
	if (ret)
		goto unlock;
	fill_dst(args.src, args.dst, npages, to_device, GFP_HIGHUSER_MOVABLE);
	t[2] = ktime_get_ns();
	migrate_vma_pages(&args);
	t[3] = ktime_get_ns();
	migrate_vma_finalize(&args);
	cmd->phase_ns[0] = t[1] - t[0];
	cmd->phase_ns[1] = t[3] - t[2];
	cmd->phase_ns[2] = ktime_get_ns() - t[3];
	cmd->ns = cmd->phase_ns[0] + cmd->phase_ns[1] + cmd->phase_ns[2];
	/* finalize leaves @src as migrate_vma_pages() made it */
	cmd->pages = count_migrated(args.src, npages);
unlock:
	mmap_read_unlock(mm);
	cmd->peak_bytes = sampler_stop(&sampler);
	kvfree(args.src);
	kvfree(args.dst);
	return ret;
}

/*
 * migrate_device_*() of @npages pool pages from @first back to system
 * memory, as a driver does when it gives its memory up.  With @cmd, the
 * timings and the peak memory (if asked) go there; without, the system
 * pages are allocated with __GFP_NOFAIL (module exit).  Returns the number
 * of pages that moved, or an errno.
 */
static long evict_pool_range(unsigned long first, unsigned long npages,
			     struct hmm_bench_cmd *cmd)
{
	unsigned long *src, *dst, start_pfn = pool.base_pfn + first;
	gfp_t gfp = GFP_HIGHUSER_MOVABLE | (cmd ? 0 : __GFP_NOFAIL);
	struct bench_sampler sampler;
	long moved;
	u64 t[4], peak;
	int ret;

	ret = alloc_pfns(npages, &src, &dst);
	if (ret)
		return ret;
	sampler_start(&sampler, cmd && (cmd->flags & HMM_BENCH_F_SAMPLE));
	t[0] = ktime_get_ns();
	ret = migrate_device_range(src, start_pfn, npages);
	t[1] = ktime_get_ns();
	if (ret)
		goto out;
	fill_dst(src, dst, npages, false, gfp);
	t[2] = ktime_get_ns();
	migrate_device_pages(src, dst, npages);
	t[3] = ktime_get_ns();
	migrate_device_finalize(src, dst, npages);
	if (cmd) {
		cmd->phase_ns[0] = t[1] - t[0];
		cmd->phase_ns[1] = t[3] - t[2];
		cmd->phase_ns[2] = ktime_get_ns() - t[3];
	}
	moved = count_migrated(src, npages);
out:
	peak = sampler_stop(&sampler);
	if (cmd)
		cmd->peak_bytes = peak;
	kvfree(src);
	kvfree(dst);
	return ret ? ret : moved;
}

static int bench_evict(struct hmm_bench_cmd *cmd)
{
	long moved;

	if (cmd->addr)
		return -EINVAL;
	moved = evict_pool_range(0, cmd->size >> PAGE_SHIFT, cmd);
	if (moved < 0)
		return moved;
	cmd->pages = moved;
	cmd->ns = cmd->phase_ns[0] + cmd->phase_ns[1] + cmd->phase_ns[2];
	return 0;
}

static int bench_exclusive(struct hmm_bench_cmd *cmd)
{
	unsigned long npages = cmd->size >> PAGE_SHIFT, i;
	struct mm_struct *mm = current->mm;
	struct page **pages;
	u64 t0, t1;
	int ret;

	pages = kvcalloc(npages, sizeof(*pages), GFP_KERNEL);
	if (!pages)
		return -ENOMEM;
	mmap_read_lock(mm);
	t0 = ktime_get_ns();
	ret = make_device_exclusive_range(mm, cmd->addr, cmd->addr + cmd->size,
					  pages, &pool);
	t1 = ktime_get_ns();
	mmap_read_unlock(mm);
	cmd->ns = t1 - t0;
	if (ret >= 0) {
		/* the device would program its page table here */
		for (i = 0; i < npages; i++) {
			if (!pages[i])
				continue;
			unlock_page(pages[i]);
			put_page(pages[i]);
			cmd->pages++;
		}
		cmd->phase_ns[1] = ktime_get_ns() - t1;
		ret = 0;
	}
	kvfree(pages);
	return ret;
}

/* Shared checks of every range ioctl: a clear errno for bad input. */
static int check_cmd(const struct hmm_bench_cmd *cmd)
{
	if (cmd->flags & ~HMM_BENCH_F_ALL)
		return -EINVAL;
	if (!cmd->size || !PAGE_ALIGNED(cmd->size) || !PAGE_ALIGNED(cmd->addr))
		return -EINVAL;
	if (cmd->size >> PAGE_SHIFT > BENCH_MAX_PAGES)
		return -E2BIG;
	if (cmd->addr + cmd->size < cmd->addr)
		return -EINVAL;
	return 0;
}

static long bench_range_ioctl(unsigned int op, struct hmm_bench_cmd *cmd)
{
	int ret = check_cmd(cmd);

	if (ret)
		return ret;
	cmd->ns = 0;
	cmd->pages = 0;
	cmd->peak_bytes = 0;
	memset(cmd->phase_ns, 0, sizeof(cmd->phase_ns));

	if (op == HMM_BENCH_EVICT)
		return cmd->size >> PAGE_SHIFT > pool.npages ? -EINVAL : bench_evict(cmd);
	/* everything else works on the caller's address space */
	if (!current->mm || cmd->addr + cmd->size > TASK_SIZE)
		return -EINVAL;
	switch (op) {
	case HMM_BENCH_SNAPSHOT:
		return bench_hmm_fault(cmd, 0);
	case HMM_BENCH_FAULT:
		return bench_hmm_fault(cmd, HMM_PFN_REQ_FAULT |
				       (cmd->flags & HMM_BENCH_F_WRITE ?
					HMM_PFN_REQ_WRITE : 0));
	case HMM_BENCH_TO_DEV:
		return bench_migrate_vma(cmd, true);
	case HMM_BENCH_TO_SYS:
		return bench_migrate_vma(cmd, false);
	case HMM_BENCH_EXCLUSIVE:
		return bench_exclusive(cmd);
	}
	return -ENOTTY;
}

static long bench_info(void __user *uarg)
{
	struct hmm_bench_info info = {
		.pool_pages	= pool.npages,
		.pool_used	= pool_used(),
		.meta_bytes	= pool.meta_bytes,
		.fault_count	= atomic64_xchg(&fault_count, 0),
		.fault_pages	= atomic64_xchg(&fault_pages, 0),
		.fault_ns	= atomic64_xchg(&fault_ns, 0),
	};

	return copy_to_user(uarg, &info, sizeof(info)) ? -EFAULT : 0;
}

static long bench_ioctl(struct file *file, unsigned int op, unsigned long arg)
{
	void __user *uarg = (void __user *)arg;
	struct hmm_bench_cmd cmd;
	long ret;

	switch (op) {
	case HMM_BENCH_INFO:
		return bench_info(uarg);
	case HMM_BENCH_SNAPSHOT:
	case HMM_BENCH_FAULT:
	case HMM_BENCH_TO_DEV:
	case HMM_BENCH_TO_SYS:
	case HMM_BENCH_EVICT:
	case HMM_BENCH_EXCLUSIVE:
		break;
	default:
		return -ENOTTY;
	}
	if (copy_from_user(&cmd, uarg, sizeof(cmd)))
		return -EFAULT;
	ret = bench_range_ioctl(op, &cmd);
	if (ret)
		return ret;
	return copy_to_user(uarg, &cmd, sizeof(cmd)) ? -EFAULT : 0;
}

static const struct file_operations bench_fops = {
	.owner		= THIS_MODULE,
	.unlocked_ioctl	= bench_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
};

static struct miscdevice bench_misc = {
	.minor	= MISC_DYNAMIC_MINOR,
	.name	= "hmm_bench",
	.fops	= &bench_fops,
};

static int __init pool_init(void)
{
	unsigned long size = pool_mib << 20, free_before;
	void *addr;
	int ret;

	if (!pool_mib || pool_mib > (BENCH_MAX_PAGES << PAGE_SHIFT) >> 20)
		return -EINVAL;
	pool.res = request_free_mem_region(&iomem_resource, size, "hmm_bench");
	if (IS_ERR(pool.res))
		return PTR_ERR(pool.res);

	/* the region may be larger than asked: the pagemap covers all of it */
	pool.npages = resource_size(pool.res) >> PAGE_SHIFT;
	pool.base_pfn = PHYS_PFN(pool.res->start);
	pool.used = bitmap_zalloc(pool.npages, GFP_KERNEL);
	if (!pool.used) {
		ret = -ENOMEM;
		goto release;
	}
	spin_lock_init(&pool.lock);
	pool.pgmap.type = MEMORY_DEVICE_PRIVATE;
	pool.pgmap.range.start = pool.res->start;
	pool.pgmap.range.end = pool.res->end;
	pool.pgmap.nr_range = 1;
	pool.pgmap.ops = &bench_pgmap_ops;
	pool.pgmap.owner = &pool;

	free_before = bench_free_pages();
	addr = memremap_pages(&pool.pgmap, numa_node_id());
	if (IS_ERR(addr)) {
		ret = PTR_ERR(addr);
		goto free_bitmap;
	}
	pool.meta_bytes = (u64)(free_before - min(free_before,
			bench_free_pages())) << PAGE_SHIFT;
	return 0;

free_bitmap:
	bitmap_free(pool.used);
release:
	release_mem_region(pool.res->start, resource_size(pool.res));
	return ret;
}

/* Bring every page still out back to system memory, then drop the pool. */
static void pool_exit(void)
{
	/*
	 * A pass can move nothing while a CPU fault holds a page (the core
	 * only trylocks it here): memunmap_pages() would then wait for good,
	 * so try again until the pool is empty.
	 */
	while (pool_used()) {
		if (evict_pool_range(0, pool.npages, NULL) <= 0)
			usleep_range(500, 1000);
	}
	memunmap_pages(&pool.pgmap);
	bitmap_free(pool.used);
	release_mem_region(pool.res->start, resource_size(pool.res));
}

static int __init hmm_bench_init(void)
{
	int ret = pool_init();

	if (ret)
		return ret;
	ret = misc_register(&bench_misc);
	if (ret)
		pool_exit();
	return ret;
}

static void __exit hmm_bench_exit(void)
{
	misc_deregister(&bench_misc);
	pool_exit();
}

module_init(hmm_bench_init);
module_exit(hmm_bench_exit);
MODULE_DESCRIPTION("Timings of the core HMM calls, for benchmarks");
MODULE_LICENSE("GPL");
