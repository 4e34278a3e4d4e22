// SPDX-License-Identifier: GPL-2.0
/*
 * test_hmm - a pretend device for exercising device memory
 *
 * Every /dev/hmm_dmirrorN node stands for one device with memory of its
 * own.  Devices 0 and 1 own memory the CPU cannot address: a set of
 * MEMORY_DEVICE_PRIVATE chunks, where what a device page "holds" is kept in
 * an ordinary system page the chunk records for it.  Their memory is handed
 * out in 2 MiB folios for THPs that move whole, in pages otherwise.  Devices 2
 * and 3, created when the module is given two ranges of specific-purpose
 * memory (spm_addr_dev0/1), own memory the CPU addresses coherently: one
 * MEMORY_DEVICE_COHERENT chunk each, whose pages hold their data
 * themselves.  A process opens a node, which gives
 * it a mirror: the device's view of that process, a page table mapping the
 * process's virtual pages to the pages holding them.  Through ioctls
 * (lib/test_hmm_uapi.h) the process moves parts of its address space into
 * device memory and back.  A CPU access to a device-private page faults and
 * brings the page back through dev_pagemap_ops.migrate_to_ram; the CPU
 * uses a device-coherent page in place.
 *
 * The device can also access system memory in place, the way a GPU with
 * its own MMU does: HMM_DMIRROR_READ and HMM_DMIRROR_WRITE fill the mirror
 * from the CPU page table with hmm_range_fault() when it misses, and the
 * mirror's mmu interval notifier keeps it coherent with the CPU page table.
 * HMM_DMIRROR_SNAPSHOT reports what hmm_range_fault() sees without faulting.
 *
 * HMM_DMIRROR_EXCLUSIVE gives the device exclusive access to a range, as a
 * device performing atomics needs: make_device_exclusive_range() replaces
 * the CPU mappings by device-exclusive entries and the mirror records the
 * pages as writable.  The next CPU access takes a page back, and the mmu
 * notifier drops it from the mirror; HMM_DMIRROR_CHECK_EXCLUSIVE tells
 * whether that happened to every page of a range.
 *
 * Locking, outermost first:
 *
 *   mmap_lock (read)           held around every migrate_vma_* sequence,
 *                              every hmm_range_fault() call and every
 *                              make_device_exclusive_range() call; a mirror
 *                              lock is taken inside it only to record the
 *                              result, never around a page table walk
 *   page lock                  pages being migrated, taken by migrate_vma_*
 *                              (the fault page by the fault handler); pages
 *                              made exclusive, until they are recorded
 *   hmmt_device.grow_lock      serialises adding memory chunks
 *   hmmt_mirror.lock           the mirror page table and the in-flight
 *                              windows, see below
 *   hmmt_device.pool_lock      spinlock: chunk table and free page bitmaps
 *
 * Nothing faults on user memory or allocates memory that may reclaim while
 * holding a mirror lock: reclaim can call the mirror's mmu notifier, which
 * takes that lock.  Likewise mmu_interval_read_begin(), which waits for
 * the invalidations under way to end, is called with no lock held but the
 * mmap lock: one of them may be waiting for a mirror lock or a page lock.
 */
#include <linux/bitmap.h>
#include <linux/cdev.h>
#include <linux/delay.h>
#include <linux/device.h>
#include <linux/fs.h>
#include <linux/highmem.h>
#include <linux/hmm.h>
#include <linux/init.h>
#include <linux/ioport.h>
#include <linux/jiffies.h>
#include <linux/kref.h>
#include <linux/memremap.h>
#include <linux/migrate.h>
#include <linux/mm.h>
#include <linux/mmu_notifier.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/rmap.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/uaccess.h>
#include <linux/xarray.h>

#include "test_hmm_uapi.h"

/* Minor numbers: 0-1 device-private, 2-3 device-coherent. */
#define HMMT_MINORS		4
#define HMMT_PRIVATE_DEVICES	2

/*
 * Device memory is added in chunks as it is used up.  The resource code
 * rounds a request up to the memory hotplug granularity, so a chunk is at
 * least this big; each device gets at most HMMT_MAX_CHUNKS of them.
 */
#define HMMT_CHUNK_BYTES	SZ_128M
#define HMMT_MAX_CHUNKS		8

/* A device-coherent device has one chunk, of this size, at its spm_addr. */
#define HMMT_COHERENT_BYTES	SZ_256M

/* Migrations are done in batches that never cross a PMD boundary. */
#define HMMT_BATCH		PTRS_PER_PTE

/*
 * Mirror page table entries, see struct hmmt_mirror: device pages that
 * MIGRATE_TO_DEV moved there are stored as plain pointers, marked
 * HMMT_MARK_WRITE when writable; pages found by hmm_range_fault() are
 * stored as xarray values, pfn << 1 with HMMT_PFN_WRITE in bit 0.  (A
 * pointer tag cannot carry the write bit: tag 1 would read as a value.)
 */
#define HMMT_MARK_WRITE		XA_MARK_0
#define HMMT_PFN_WRITE		1UL

/*
 * A mirrored page entry with this mark was made exclusive to the device by
 * HMM_DMIRROR_EXCLUSIVE and the CPU has not taken it back yet.
 */
#define HMMT_MARK_EXCLUSIVE	XA_MARK_1

/*
 * Device accesses through the mirror (READ, WRITE, SNAPSHOT) work on this
 * many pages at a time: one hmm_range_fault() call, one bounce buffer.
 */
#define HMMT_MIRROR_PAGES	64UL

/* How often a device write retries moving a busy page of its own back. */
#define HMMT_UNSHARE_TRIES	8

/*
 * Device-coherent memory: physical memory the kernel leaves alone, such as
 * a range of RAM that the firmware or the memmap= boot option typed as
 * specific-purpose ("soft reserved"), HMMT_COHERENT_BYTES at each address.
 * Both must be given for hmm_dmirror2 and hmm_dmirror3 to exist; as in
 * 6.12, hmm_dmirror2 gets spm_addr_dev1 and hmm_dmirror3 spm_addr_dev0.
 */
static unsigned long spm_addr_dev0;
module_param(spm_addr_dev0, ulong, 0444);
MODULE_PARM_DESC(spm_addr_dev0,
		 "Physical address of 256 MiB of specific-purpose memory for the device-coherent hmm_dmirror3 (set spm_addr_dev1 too)");
static unsigned long spm_addr_dev1;
module_param(spm_addr_dev1, ulong, 0444);
MODULE_PARM_DESC(spm_addr_dev1,
		 "Physical address of 256 MiB of specific-purpose memory for the device-coherent hmm_dmirror2 (set spm_addr_dev0 too)");

struct hmmt_device;

/* One MEMORY_DEVICE_PRIVATE or MEMORY_DEVICE_COHERENT range of a device. */
struct hmmt_chunk {
	struct dev_pagemap	pagemap;
	struct hmmt_device	*hdev;
	unsigned long		first_pfn;
	unsigned long		npages;
	/*
	 * Per page: what a handed-out page holds (see struct hmmt_owner).
	 * Set and cleared by whoever owns the page: the allocator before it
	 * hands the page out, the free method after the last reference.
	 */
	void			**data;
	/* Protected by hdev->pool_lock. */
	unsigned long		*in_use;	/* bit set: page handed out */
	unsigned long		nr_used;
	unsigned long		cursor;		/* where the next search starts */
};

/* One simulated device, i.e. one /dev/hmm_dmirrorN. */
struct hmmt_device {
	struct device		dev;
	struct cdev		cdev;
	unsigned int		mem_type;	/* HMM_DMIRROR_MEMORY_* */
	unsigned long		spm_addr;	/* device-coherent memory */

	struct mutex		grow_lock;	/* serialises chunk creation */

	spinlock_t		pool_lock;	/* chunks, bitmaps, counts */
	struct hmmt_chunk	*chunks[HMMT_MAX_CHUNKS];
	unsigned int		nr_chunks;
	unsigned long		pages_used;

	/* migrate_to_ram() calls, for the sysfs file cpu_faults */
	atomic64_t		cpu_faults;
	/* sysfs evict_delay_ms: a pause in the middle of each eviction */
	unsigned int		evict_delay_ms;
	/* sysfs evict_window: device pages per migrate_device_range() call */
	unsigned int		evict_window;
};

/*
 * The device's view of one process: one per open file.
 *
 * @ptab maps a virtual page number of the process to the page that holds
 * it.  Its entries are of two kinds, both changed only under @lock:
 *
 * Migration records (pointers) name a device page that MIGRATE_TO_DEV moved
 * there.  They are added between migrate_vma_pages() and
 * migrate_vma_finalize(), while the new device page is still locked: no
 * CPU fault or other migration can take it away before it is recorded.
 * A zap of the address (MADV_DONTNEED, which only needs the mmap lock for
 * reading too) takes no page lock, though: it may remove the migration
 * entry, or the entry of a page put into a hole, after migrate_vma_setup()
 * and before the record exists, with nothing in the mirror yet for the mmu
 * notifier to drop; finalize then frees the page.  So a migration works
 * inside an in-flight window (struct hmmt_inflight) that the mmu notifier
 * marks for every such change, and a page whose address was marked is not
 * recorded.  Once added, a record is removed before the device page can be
 * freed or reused: by the mmu notifier for every change of the CPU page
 * table that the device did not start itself, and by the code that
 * migrates a page back, which looks the entry up through the page's
 * owner (hmmt_page_owner()).  A reader holding @lock may therefore use the
 * page and its backing store.
 *
 * Mirrored pages (xarray values) record the pfn that hmm_range_fault()
 * found mapped at the address, a system page or one of this device's
 * pages, and whether the CPU page table let it be written.  They are added
 * under @lock only once nothing can have changed the address since the
 * walk: for hmm_range_fault() when mmu_interval_read_retry() says so, for
 * pages made exclusive when their in-flight window is unmarked.  The mmu
 * notifier removes them for every invalidation of their address, this
 * device's own migrations included (those move the page away).  So as long
 * as such an entry is present the page is still mapped there, cannot be
 * freed, and may be accessed -- under @lock only; no reference is taken.
 *
 * The mirror is reference counted: the file holds one reference and every
 * device page that names it as its owner holds one, because such a
 * page can outlive the file (closing the file leaves the process's pages on
 * the device, and they find their way back on the next CPU access).
 */
struct hmmt_mirror {
	struct kref			ref;
	struct hmmt_device		*hdev;
	struct mmu_interval_notifier	notifier;
	struct mutex			lock;	/* see above */
	struct xarray			ptab;
	struct list_head		inflight; /* hmmt_inflight.list */
	unsigned long			flags;	/* HMMT_FLAG_*, atomic bitops */
};

/* HMM_DMIRROR_FLAG_FAIL_ALLOC: fail the next 2 MiB device allocation. */
#define HMMT_FLAG_FAIL_ALLOC	0

/*
 * An in-flight window: the range a MIGRATE_TO_DEV batch or an EXCLUSIVE
 * chunk works on, from before it looks at the CPU page table until its
 * result is in the mirror.  The mmu notifier marks [dirty_start, dirty_end)
 * to cover whatever part of the range an invalidation touches, with two
 * exceptions that cannot take away a page the window holds:
 *
 * - this device's own migrations (and its own make_device_exclusive_range()
 *   calls, which the notifier ignores altogether): they only take pages
 *   they can lock, and a window keeps the pages it took locked until it is
 *   closed;
 * - invalidations @task makes itself, which come from the migrate_vma_* and
 *   make_device_exclusive_range() calls of the window: splitting a THP,
 *   unmapping a page from other processes, giving back a page an earlier
 *   call made exclusive.  Each of those happens before the page it touches
 *   is taken.
 *
 * The notifier sequence cannot tell the two kinds of invalidation apart,
 * which is why windows exist.  Protected by hmmt_mirror.lock; lives on the
 * stack of @task.
 */
struct hmmt_inflight {
	struct list_head	list;		/* in hmmt_mirror.inflight */
	struct task_struct	*task;
	unsigned long		start;
	unsigned long		end;
	unsigned long		dirty_start;	/* >= dirty_end: unmarked */
	unsigned long		dirty_end;
};

/*
 * The owner of a handed-out device page: the mirror that migrated it here
 * (the page holds a reference on it) and the virtual page it holds there,
 * its index in mirror->ptab.  A device-private page keeps its data in a
 * system page of ours, which nothing else maps or puts on an LRU, so that
 * page carries the owner too, in ->private and ->index; the chunk's data
 * entry for the device page points to it.  A device-coherent page holds
 * its data itself and is mapped like any anonymous page: its data entry
 * points to a struct hmmt_owner.  The entries live in the chunk rather than
 * in ->zone_device_data, which the second and third pages of a large folio
 * give up to the folio, so they need no care when a folio is split.
 */
struct hmmt_owner {
	struct hmmt_mirror	*mirror;
	unsigned long		vpfn;
};

/* Source and destination arrays of one migration batch. */
struct hmmt_xfer {
	unsigned long		src[HMMT_BATCH];
	unsigned long		dst[HMMT_BATCH];
};

static dev_t hmmt_devt;
static struct hmmt_device *hmmt_devices[HMMT_MINORS];
static const struct dev_pagemap_ops hmmt_pagemap_ops;
static const struct dev_pagemap_ops hmmt_coherent_ops;

static bool hmmt_coherent(const struct hmmt_device *hdev)
{
	return hdev->mem_type == HMM_DMIRROR_MEMORY_DEVICE_COHERENT;
}

/* The select flag for the device's own pages in migrate_vma_setup(). */
static unsigned long hmmt_select_own(const struct hmmt_device *hdev)
{
	return hmmt_coherent(hdev) ? MIGRATE_VMA_SELECT_DEVICE_COHERENT :
				     MIGRATE_VMA_SELECT_DEVICE_PRIVATE;
}

/*
 * The pgmap of ZONE_DEVICE page @page, which may be a tail page.  The same
 * as page_pgmap() without its debug check, which in a module built for size
 * stays a call: the lookups of a page's chunk run several times per page
 * moved.
 */
static __always_inline struct dev_pagemap *hmmt_pgmap(const struct page *page)
{
	return page_folio(page)->pgmap;
}

/*
 * The chunk of @page if @page is in the memory of @hdev, of whichever kind,
 * else NULL: only @hdev's own pgmaps, device-private or device-coherent,
 * carry it as their owner.
 */
static struct hmmt_chunk *hmmt_own_chunk(const struct hmmt_device *hdev,
					 const struct page *page)
{
	struct dev_pagemap *pgmap;

	if (!is_zone_device_page(page))
		return NULL;
	pgmap = hmmt_pgmap(page);
	if (pgmap->owner != hdev)
		return NULL;
	return container_of(pgmap, struct hmmt_chunk, pagemap);
}

/* The same as a yes or no. */
static bool hmmt_own_page(const struct hmmt_device *hdev,
			  const struct page *page)
{
	return hmmt_own_chunk(hdev, page);
}

/* ---------------------------------------------------------------------------
 * Mirrors
 */

static void hmmt_mirror_free(struct kref *ref)
{
	struct hmmt_mirror *mirror = container_of(ref, struct hmmt_mirror, ref);

	xa_destroy(&mirror->ptab);
	mutex_destroy(&mirror->lock);
	kfree(mirror);
}

/* May be called from the page_free callback: must not sleep. */
static void hmmt_mirror_put(struct hmmt_mirror *mirror)
{
	kref_put(&mirror->ref, hmmt_mirror_free);
}

/* A mirror entry for a page found by hmm_range_fault(). */
static void *hmmt_pfn_entry(unsigned long pfn, bool writable)
{
	return xa_mk_value(pfn << 1 | (writable ? HMMT_PFN_WRITE : 0));
}

/*
 * The device page a migration record names, or NULL for other entries and
 * for the reservations that xas_*() walks return as XA_ZERO_ENTRY.
 */
static struct page *hmmt_entry_dpage(void *entry)
{
	if (!entry || xa_is_value(entry) || xa_is_zero(entry))
		return NULL;
	return entry;
}

/*
 * Drop the mirror entries of the virtual range [start, end); with
 * @keep_records, the migration records stay.  Reservations stay too: their
 * owner gives them back.  One walk under the xarray lock, which is let go
 * every XA_CHECK_SCHED entries so that a huge range does not hold it long.
 */
static void hmmt_ptab_drop(struct hmmt_mirror *mirror, unsigned long start,
			   unsigned long end, bool keep_records)
{
	XA_STATE(xas, &mirror->ptab, start >> PAGE_SHIFT);
	unsigned int seen = 0;
	void *entry;

	lockdep_assert_held(&mirror->lock);
	xas_lock(&xas);
	xas_for_each(&xas, entry, (end - 1) >> PAGE_SHIFT) {
		if (!xa_is_zero(entry) && (!keep_records || xa_is_value(entry)))
			xas_store(&xas, NULL);
		if (++seen % XA_CHECK_SCHED)
			continue;
		xas_pause(&xas);
		xas_unlock(&xas);
		xas_lock(&xas);
	}
	xas_unlock(&xas);
}

/*
 * Reserve the empty mirror slots of [@vpfn, @vpfn + @nr), so that filling
 * them later under the mirror lock does not have to allocate; slots in use
 * stay as they are.  One walk under the xarray lock for the whole range:
 * when a node is missing, the walk stops, allocates it with the lock
 * dropped (xas_nomem()) and goes on where it stopped.
 */
static int hmmt_ptab_reserve(struct hmmt_mirror *mirror, unsigned long vpfn,
			     unsigned long nr)
{
	XA_STATE(xas, &mirror->ptab, vpfn);
	unsigned long i = 0;

	do {
		xas_lock(&xas);
		for (; i < nr; i++) {
			xas_set(&xas, vpfn + i);
			if (!xas_load(&xas))
				xas_store(&xas, XA_ZERO_ENTRY);
			if (xas_error(&xas))
				break;
		}
		xas_unlock(&xas);
	} while (xas_nomem(&xas, GFP_KERNEL));
	return xas_error(&xas);
}

/* Give back slot @vpfn if it is still only reserved; xarray lock held. */
static void hmmt_ptab_release(struct xa_state *xas, unsigned long vpfn)
{
	xas_set(xas, vpfn);
	if (xa_is_zero(xas_load(xas)))
		xas_store(xas, NULL);
}

/* Give back the reservations hmmt_ptab_reserve() left unused in a range. */
static void hmmt_ptab_unreserve(struct hmmt_mirror *mirror,
				unsigned long vpfn, unsigned long nr)
{
	XA_STATE(xas, &mirror->ptab, vpfn);
	unsigned long i;

	xas_lock(&xas);
	for (i = 0; i < nr; i++)
		hmmt_ptab_release(&xas, vpfn + i);
	xas_unlock(&xas);
}

/*
 * Store @entry at @vpfn, with the xarray lock held: into a slot reserved
 * by hmmt_ptab_reserve(), normally.  The reservation can be gone if a
 * concurrent batch on the same range gave it back; then xas_store() tries
 * an allocation that does not sleep, and this may fail with -ENOMEM.
 * Leaves @xas on the slot for the caller to set its marks.
 */
static int hmmt_ptab_store(struct xa_state *xas, unsigned long vpfn,
			   void *entry)
{
	xas_set(xas, vpfn);
	xas_store(xas, entry);
	return xas_error(xas);
}

/*
 * Mark what @range touches of the mirror's in-flight windows, see struct
 * hmmt_inflight.  The caller has ruled out this device's own migrations.
 */
static void hmmt_inflight_mark(struct hmmt_mirror *mirror,
			       const struct mmu_notifier_range *range)
{
	struct hmmt_inflight *win;

	lockdep_assert_held(&mirror->lock);
	list_for_each_entry(win, &mirror->inflight, list) {
		unsigned long start = max(range->start, win->start);
		unsigned long end = min(range->end, win->end);

		if (start >= end || win->task == current)
			continue;
		win->dirty_start = min(win->dirty_start, start);
		win->dirty_end = max(win->dirty_end, end);
	}
}

static bool hmmt_invalidate(struct mmu_interval_notifier *mni,
			    const struct mmu_notifier_range *range,
			    unsigned long cur_seq)
{
	struct hmmt_mirror *mirror =
		container_of(mni, struct hmmt_mirror, notifier);
	bool own_migration;

	/*
	 * make_device_exclusive_range() working for this device: the pages
	 * are about to be recorded as exclusive, and while they are being
	 * made so their mappings stay what the mirror may already hold.
	 */
	if (range->event == MMU_NOTIFY_EXCLUSIVE &&
	    range->owner == mirror->hdev)
		return true;

	/*
	 * Migrations this device starts itself keep their migration
	 * records up to date on their own, with the pages locked: dropping
	 * those here would only throw away what they are about to record.
	 * The pages they move away from system memory, or back to it, are
	 * no longer where a mirrored page entry says, though; and a racing
	 * hmm_range_fault() user must start over, so the sequence moves on
	 * for them as for any other invalidation.  Any other invalidation
	 * may also have taken a page from under an in-flight window.
	 */
	own_migration = range->event == MMU_NOTIFY_MIGRATE &&
			range->owner == mirror->hdev;

	if (mmu_notifier_range_blockable(range))
		mutex_lock(&mirror->lock);
	else if (!mutex_trylock(&mirror->lock))
		return false;

	mmu_interval_set_seq(mni, cur_seq);
	if (!own_migration)
		hmmt_inflight_mark(mirror, range);
	hmmt_ptab_drop(mirror, range->start, range->end, own_migration);
	mutex_unlock(&mirror->lock);
	return true;
}

static const struct mmu_interval_notifier_ops hmmt_notifier_ops = {
	.invalidate = hmmt_invalidate,
};

/*
 * Open an in-flight window on [@start, @end) for the current task.  An
 * invalidation that went past the mmu notifier before the window was on
 * the list may still be changing the page table: wait for it to end, so
 * that from here on every change of the range that is not ours is either
 * complete or marks the window.  Called with no lock held but the mmap
 * lock, see the top of this file.
 */
static void hmmt_inflight_open(struct hmmt_mirror *mirror,
			       struct hmmt_inflight *win, unsigned long start,
			       unsigned long end)
{
	win->task = current;
	win->start = start;
	win->end = end;
	win->dirty_start = ULONG_MAX;
	win->dirty_end = 0;

	mutex_lock(&mirror->lock);
	list_add(&win->list, &mirror->inflight);
	mutex_unlock(&mirror->lock);

	mmu_interval_read_begin(&mirror->notifier);
}

/* Close @win; called under mirror->lock, after its result is recorded. */
static void hmmt_inflight_close(struct hmmt_mirror *mirror,
				struct hmmt_inflight *win)
{
	lockdep_assert_held(&mirror->lock);
	list_del(&win->list);
}

/*
 * Whether someone else may have changed the CPU page table entry of the
 * page at @addr since @win was opened.  Called under mirror->lock.
 */
static bool hmmt_inflight_changed(const struct hmmt_inflight *win,
				  unsigned long addr)
{
	return addr < win->dirty_end && addr + PAGE_SIZE > win->dirty_start;
}

static struct hmmt_chunk *hmmt_page_chunk(struct page *page)
{
	return container_of(hmmt_pgmap(page), struct hmmt_chunk, pagemap);
}

/* Device-private (or else device-coherent) memory? */
static bool hmmt_chunk_private(const struct hmmt_chunk *chunk)
{
	return chunk->pagemap.type == MEMORY_DEVICE_PRIVATE;
}

/*
 * The data entry of device page @dpage in its chunk @chunk, see struct
 * hmmt_owner.  The callers look the chunk up once per page: the pgmap of
 * a page that may be a tail page is a call away.
 */
static void **hmmt_chunk_data(struct hmmt_chunk *chunk, struct page *dpage)
{
	return &chunk->data[page_to_pfn(dpage) - chunk->first_pfn];
}

/* The chunk's data entry of device page @dpage. */
static void **hmmt_data(struct page *dpage)
{
	return hmmt_chunk_data(hmmt_page_chunk(dpage), dpage);
}

/* The page holding the data of device page @dpage of @chunk. */
static struct page *hmmt_chunk_backing(struct hmmt_chunk *chunk,
				       struct page *dpage)
{
	return hmmt_chunk_private(chunk) ? *hmmt_chunk_data(chunk, dpage) :
					   dpage;
}

/* The same, for a device page of ours whose chunk is not known yet. */
static struct page *hmmt_backing(struct page *dpage)
{
	return hmmt_chunk_backing(hmmt_page_chunk(dpage), dpage);
}

/*
 * The owner of a handed-out device page, see struct hmmt_owner, from the
 * page's data entry @data: returns the mirror and sets @vpfn.  @private:
 * the page is device-private.
 */
static struct hmmt_mirror *hmmt_data_owner(void *data, bool private,
					   unsigned long *vpfn)
{
	struct hmmt_owner *owner = data;
	struct page *backing = data;

	if (private) {
		*vpfn = backing->index;
		return (struct hmmt_mirror *)page_private(backing);
	}
	*vpfn = owner->vpfn;
	return owner->mirror;
}

/* The same for device page @dpage. */
static struct hmmt_mirror *hmmt_page_owner(struct page *dpage,
					   unsigned long *vpfn)
{
	struct hmmt_chunk *chunk = hmmt_page_chunk(dpage);

	return hmmt_data_owner(*hmmt_chunk_data(chunk, dpage),
			       hmmt_chunk_private(chunk), vpfn);
}

/*
 * @dpage is leaving the device: forget it in the mirror that recorded it.
 * Only an entry still naming @dpage is dropped; the caller holds @dpage
 * locked and referenced.
 */
static void hmmt_forget(struct page *dpage)
{
	unsigned long vpfn;
	struct hmmt_mirror *mirror = hmmt_page_owner(dpage, &vpfn);
	XA_STATE(xas, &mirror->ptab, vpfn);

	/* One walk down the tree both looks and erases. */
	mutex_lock(&mirror->lock);
	xas_lock(&xas);
	if (hmmt_entry_dpage(xas_load(&xas)) == dpage)
		xas_store(&xas, NULL);
	xas_unlock(&xas);
	mutex_unlock(&mirror->lock);
}

/* ---------------------------------------------------------------------------
 * Device memory
 */

static struct hmmt_device *hmmt_page_device(struct page *page)
{
	return hmmt_page_chunk(page)->hdev;
}

/* Take a free page out of the device's chunks, or return NULL. */
static struct page *hmmt_pool_take(struct hmmt_device *hdev)
{
	struct page *page = NULL;
	unsigned int i;

	spin_lock(&hdev->pool_lock);
	for (i = 0; i < hdev->nr_chunks; i++) {
		struct hmmt_chunk *chunk = hdev->chunks[i];
		unsigned long bit;

		if (chunk->nr_used == chunk->npages)
			continue;
		bit = find_next_zero_bit(chunk->in_use, chunk->npages,
					 chunk->cursor);
		if (bit >= chunk->npages)
			bit = find_first_zero_bit(chunk->in_use,
						  chunk->npages);
		__set_bit(bit, chunk->in_use);
		chunk->nr_used++;
		chunk->cursor = bit + 1;
		hdev->pages_used++;
		page = pfn_to_page(chunk->first_pfn + bit);
		break;
	}
	spin_unlock(&hdev->pool_lock);
	return page;
}

/*
 * Take HPAGE_PMD_NR free pages of one chunk, aligned for a PMD-sized folio,
 * or return NULL.
 */
static struct page *hmmt_pool_take_huge(struct hmmt_device *hdev)
{
	struct page *page = NULL;
	unsigned int i;

	spin_lock(&hdev->pool_lock);
	for (i = 0; i < hdev->nr_chunks; i++) {
		struct hmmt_chunk *chunk = hdev->chunks[i];
		unsigned long off = chunk->first_pfn & (HPAGE_PMD_NR - 1);
		unsigned long bit;

		if (chunk->npages - chunk->nr_used < HPAGE_PMD_NR)
			continue;
		/* Such that first_pfn + bit is aligned to the folio size. */
		bit = bitmap_find_next_zero_area_off(chunk->in_use,
						     chunk->npages, 0,
						     HPAGE_PMD_NR,
						     HPAGE_PMD_NR - 1, off);
		if (bit >= chunk->npages)
			continue;
		bitmap_set(chunk->in_use, bit, HPAGE_PMD_NR);
		chunk->nr_used += HPAGE_PMD_NR;
		hdev->pages_used += HPAGE_PMD_NR;
		page = pfn_to_page(chunk->first_pfn + bit);
		break;
	}
	spin_unlock(&hdev->pool_lock);
	return page;
}

/* Give back @nr pages from @page on, all of @chunk. */
static void hmmt_pool_give(struct hmmt_chunk *chunk, struct page *page,
			   unsigned long nr)
{
	struct hmmt_device *hdev = chunk->hdev;
	unsigned long bit = page_to_pfn(page) - chunk->first_pfn;

	spin_lock(&hdev->pool_lock);
	/* A base page spares the out-of-line bitmap_clear() of a variable span. */
	if (nr == 1)
		__clear_bit(bit, chunk->in_use);
	else
		bitmap_clear(chunk->in_use, bit, nr);
	chunk->nr_used -= nr;
	hdev->pages_used -= nr;
	spin_unlock(&hdev->pool_lock);
}

static unsigned long hmmt_chunk_used(struct hmmt_chunk *chunk)
{
	unsigned long used;

	spin_lock(&chunk->hdev->pool_lock);
	used = chunk->nr_used;
	spin_unlock(&chunk->hdev->pool_lock);
	return used;
}

/* Has some chunk @nr free pages? */
static bool hmmt_pool_has_free(struct hmmt_device *hdev, unsigned long nr)
{
	bool found = false;
	unsigned int i;

	spin_lock(&hdev->pool_lock);
	for (i = 0; i < hdev->nr_chunks && !found; i++)
		found = hdev->chunks[i]->npages - hdev->chunks[i]->nr_used >= nr;
	spin_unlock(&hdev->pool_lock);
	return found;
}

/*
 * The physical range of the device's next chunk: a free range the resource
 * code finds for device-private memory, the one fixed range of a
 * device-coherent device.
 */
static struct resource *hmmt_chunk_region(struct hmmt_device *hdev)
{
	struct resource *res;

	if (!hmmt_coherent(hdev))
		return request_free_mem_region(&iomem_resource,
					       HMMT_CHUNK_BYTES, "hmm_dmirror");
	if (hdev->nr_chunks)
		return ERR_PTR(-ENOMEM);
	res = request_mem_region(hdev->spm_addr, HMMT_COHERENT_BYTES,
				 "hmm_dmirror");
	return res ? res : ERR_PTR(-EBUSY);
}

/*
 * Give the device one more chunk of memory, unless some chunk has @nr free
 * pages by now.  Returns 0 or -errno.
 */
static int hmmt_chunk_add(struct hmmt_device *hdev, unsigned long nr)
{
	struct hmmt_chunk *chunk;
	struct resource *res;
	void *vaddr;
	int ret;

	mutex_lock(&hdev->grow_lock);
	/* Somebody else may have added memory while we waited. */
	if (hmmt_pool_has_free(hdev, nr)) {
		ret = 0;
		goto out_unlock;
	}
	if (hdev->nr_chunks == HMMT_MAX_CHUNKS) {
		ret = -ENOMEM;
		goto out_unlock;
	}

	chunk = kzalloc(sizeof(*chunk), GFP_KERNEL);
	if (!chunk) {
		ret = -ENOMEM;
		goto out_unlock;
	}

	res = hmmt_chunk_region(hdev);
	if (IS_ERR_OR_NULL(res)) {
		ret = res ? PTR_ERR(res) : -ENOMEM;
		goto out_free;
	}

	chunk->hdev = hdev;
	chunk->first_pfn = PHYS_PFN(res->start);
	chunk->npages = PHYS_PFN(resource_size(res));
	chunk->in_use = bitmap_zalloc(chunk->npages, GFP_KERNEL);
	chunk->data = kvcalloc(chunk->npages, sizeof(*chunk->data),
			       GFP_KERNEL);
	if (!chunk->in_use || !chunk->data) {
		ret = -ENOMEM;
		goto out_bitmap;
	}

	if (hmmt_coherent(hdev)) {
		chunk->pagemap.type = MEMORY_DEVICE_COHERENT;
		chunk->pagemap.ops = &hmmt_coherent_ops;
	} else {
		chunk->pagemap.type = MEMORY_DEVICE_PRIVATE;
		chunk->pagemap.ops = &hmmt_pagemap_ops;
	}
	chunk->pagemap.range.start = res->start;
	chunk->pagemap.range.end = res->end;
	chunk->pagemap.nr_range = 1;
	chunk->pagemap.owner = hdev;
	vaddr = memremap_pages(&chunk->pagemap, numa_node_id());
	if (IS_ERR_OR_NULL(vaddr)) {
		ret = vaddr ? PTR_ERR(vaddr) : -ENOMEM;
		goto out_bitmap;
	}

	spin_lock(&hdev->pool_lock);
	hdev->chunks[hdev->nr_chunks++] = chunk;
	spin_unlock(&hdev->pool_lock);
	mutex_unlock(&hdev->grow_lock);

	dev_dbg(&hdev->dev, "added device memory pfn %#lx-%#lx\n",
		chunk->first_pfn, chunk->first_pfn + chunk->npages - 1);
	return 0;

out_bitmap:
	kvfree(chunk->data);
	bitmap_free(chunk->in_use);
	release_mem_region(res->start, resource_size(res));
out_free:
	kfree(chunk);
out_unlock:
	mutex_unlock(&hdev->grow_lock);
	return ret;
}

/*
 * What device page @dpage will hold for virtual page @vpfn of @mirror, see
 * struct hmmt_owner; the page takes a reference on @mirror.  Returns false
 * when system memory runs out.
 */
static bool hmmt_data_init(struct hmmt_mirror *mirror, struct page *dpage,
			   unsigned long vpfn)
{
	struct hmmt_owner *owner;
	struct page *backing;
	void *data;

	if (hmmt_coherent(mirror->hdev)) {
		owner = kmalloc(sizeof(*owner), GFP_KERNEL);
		if (owner) {
			owner->mirror = mirror;
			owner->vpfn = vpfn;
		}
		data = owner;
	} else {
		backing = alloc_page(GFP_HIGHUSER);
		if (backing) {
			set_page_private(backing, (unsigned long)mirror);
			backing->index = vpfn;
		}
		data = backing;
	}
	if (!data)
		return false;
	kref_get(&mirror->ref);
	*hmmt_data(dpage) = data;
	return true;
}

/*
 * Undo hmmt_data_init() for @dpage, a page of @chunk; the page's owner must
 * not sleep here.
 */
static void hmmt_data_free(struct hmmt_chunk *chunk, struct page *dpage)
{
	void **slot = hmmt_chunk_data(chunk, dpage);
	bool private = hmmt_chunk_private(chunk);
	struct hmmt_mirror *mirror;
	unsigned long vpfn;

	if (!*slot)
		return;
	mirror = hmmt_data_owner(*slot, private, &vpfn);
	if (private) {
		set_page_private(*slot, 0);
		__free_page(*slot);
	} else {
		kfree(*slot);
	}
	*slot = NULL;
	hmmt_mirror_put(mirror);
}

/*
 * Hand out a device page that will hold virtual page @vpfn of @mirror's
 * process.  It comes back referenced and locked, ready to be a migration
 * destination.  Returns NULL when memory (device or system) runs out.
 */
static struct page *hmmt_dpage_alloc(struct hmmt_mirror *mirror,
				     unsigned long vpfn)
{
	struct hmmt_device *hdev = mirror->hdev;
	struct page *dpage;

	dpage = hmmt_pool_take(hdev);
	while (!dpage) {
		if (hmmt_chunk_add(hdev, 1))
			return NULL;
		dpage = hmmt_pool_take(hdev);
	}

	if (!hmmt_data_init(mirror, dpage, vpfn)) {
		hmmt_pool_give(hmmt_page_chunk(dpage), dpage, 1);
		return NULL;
	}
	zone_device_page_init(dpage);
	return dpage;
}

/*
 * Hand out a PMD-sized device folio for the virtual pages from @vpfn on,
 * like hmmt_dpage_alloc().  Returns its first page, or NULL when memory
 * runs out, no aligned run of free pages is found, or HMM_DMIRROR_FLAGS
 * asked for this allocation to fail.
 */
static struct page *hmmt_dfolio_alloc(struct hmmt_mirror *mirror,
				      unsigned long vpfn)
{
	struct hmmt_device *hdev = mirror->hdev;
	struct hmmt_chunk *chunk;
	struct page *dpage;
	unsigned long i;

	if (test_and_clear_bit(HMMT_FLAG_FAIL_ALLOC, &mirror->flags))
		return NULL;
	dpage = hmmt_pool_take_huge(hdev);
	if (!dpage) {
		if (hmmt_chunk_add(hdev, HPAGE_PMD_NR))
			return NULL;
		dpage = hmmt_pool_take_huge(hdev);
		if (!dpage)
			return NULL;
	}

	for (i = 0; i < HPAGE_PMD_NR; i++)
		if (!hmmt_data_init(mirror, dpage + i, vpfn + i))
			goto undo;
	if (zone_device_folio_init((struct folio *)dpage, HPAGE_PMD_ORDER))
		goto undo;
	return dpage;

undo:
	chunk = hmmt_page_chunk(dpage);
	while (i--)
		hmmt_data_free(chunk, dpage + i);
	hmmt_pool_give(chunk, dpage, HPAGE_PMD_NR);
	return NULL;
}

/*
 * dev_pagemap_ops.folio_free: the last reference to a device folio is
 * gone.  Runs in whatever context dropped that reference, so it must not
 * sleep.
 */
static void hmmt_folio_free(struct folio *folio)
{
	struct hmmt_chunk *chunk = container_of(folio->pgmap, struct hmmt_chunk,
						pagemap);
	long i, nr = folio_nr_pages(folio);

	/* A folio never spans two chunks. */
	for (i = 0; i < nr; i++)
		hmmt_data_free(chunk, folio_page(folio, i));
	hmmt_pool_give(chunk, &folio->page, nr);
}

/*
 * Copy device page @dpage into the system page @page, which is to replace
 * it, and forget @dpage in its mirror.
 */
static void hmmt_copy_out(struct page *dpage, struct page *page)
{
	copy_highpage(page, hmmt_backing(dpage));
	hmmt_forget(dpage);
}

/* ---------------------------------------------------------------------------
 * Migration from system memory to the device
 */

/* End of the batch starting at @addr: same VMA, same PMD, inside the range */
static unsigned long hmmt_batch_end(struct vm_area_struct *vma,
				    unsigned long addr, unsigned long end)
{
	unsigned long next = (addr & PMD_MASK) + PMD_SIZE;

	if (next < addr || next > end)
		next = end;
	return min(next, vma->vm_end);
}

/*
 * MIGRATE_PFN_WRITE for the destination of a MIGRATE_TO_DEV entry with
 * flags @src and source page @spage: as the source was mapped, or, for a
 * hole or the zero page, as the VMA allows.
 */
static unsigned long hmmt_dst_write(const struct migrate_vma *mig,
				    const struct page *spage, unsigned long src)
{
	if ((src & MIGRATE_PFN_WRITE) ||
	    (!spage && (mig->vma->vm_flags & VM_WRITE)))
		return MIGRATE_PFN_WRITE;
	return 0;
}

/*
 * Allocate and fill the destination of entry @i of a MIGRATE_TO_DEV batch,
 * whose source page (NULL for a hole or the zero page) is @spage and whose
 * flags are those of @src.  Returns -ENOMEM if there is no memory for it.
 */
static int hmmt_to_dev_one(struct hmmt_mirror *mirror,
			   struct migrate_vma *mig, unsigned long i,
			   struct page *spage, unsigned long src)
{
	unsigned long vpfn = (mig->start >> PAGE_SHIFT) + i;
	struct page *dpage;

	dpage = hmmt_dpage_alloc(mirror, vpfn);
	if (!dpage)
		return -ENOMEM;

	if (spage)
		copy_highpage(hmmt_backing(dpage), spage);
	else
		clear_highpage(hmmt_backing(dpage));

	mig->dst[i] = migrate_pfn(page_to_pfn(dpage)) |
		      hmmt_dst_write(mig, spage, src);
	return 0;
}

/*
 * Give the THP @spage, collected whole at entry @i of a MIGRATE_TO_DEV
 * batch with the flags of @src, a device folio of its size; or, if @spage
 * is NULL, a zeroed one to the empty PMD (or huge zero page) there.
 * Returns false if there is none to be had.
 */
static bool hmmt_to_dev_folio(struct hmmt_mirror *mirror,
			      struct migrate_vma *mig, unsigned long i,
			      struct page *spage, unsigned long src)
{
	unsigned long vpfn = (mig->start >> PAGE_SHIFT) + i, j;
	struct page *dpage;

	if (spage && folio_nr_pages(page_folio(spage)) != HPAGE_PMD_NR)
		return false;
	dpage = hmmt_dfolio_alloc(mirror, vpfn);
	if (!dpage)
		return false;

	for (j = 0; j < HPAGE_PMD_NR; j++) {
		if (spage)
			copy_highpage(hmmt_backing(dpage + j), spage + j);
		else
			clear_highpage(hmmt_backing(dpage + j));
	}
	mig->dst[i] = migrate_pfn(page_to_pfn(dpage)) | MIGRATE_PFN_COMPOUND |
		      hmmt_dst_write(mig, spage, src);
	return true;
}

/*
 * Allocate and fill the destinations of one MIGRATE_TO_DEV batch.  Entries
 * without a destination simply stay in system memory.  A THP collected
 * whole (MIGRATE_PFN_COMPOUND) gets a device folio of its size, and moves
 * whole; without one, it gets a device page for each of its pages, and the
 * core splits it.  Returns -ENOMEM if some page was left behind for lack
 * of memory, else 0.
 */
static int hmmt_to_dev_prepare(struct hmmt_mirror *mirror,
			       struct migrate_vma *mig)
{
	unsigned long i, j, nr;
	int ret;

	/*
	 * Room in the mirror for the whole batch, while we may still sleep;
	 * hmmt_to_dev_record() gives back what it does not use.  Without it
	 * nothing moves: migrate_vma_setup() has cleared mig->dst.
	 */
	ret = hmmt_ptab_reserve(mirror, mig->start >> PAGE_SHIFT, mig->npages);
	if (ret)
		return ret;
	for (i = 0; i < mig->npages; i += nr) {
		unsigned long src = mig->src[i];
		struct page *spage = migrate_pfn_to_page(src);

		nr = 1;
		if (!(src & MIGRATE_PFN_MIGRATE))
			continue;
		/*
		 * No source page means a hole or the zero page: the device
		 * page starts out zeroed.  A device page as source cannot
		 * happen with MIGRATE_VMA_SELECT_SYSTEM; leave it alone.
		 */
		if (spage && is_zone_device_page(spage))
			continue;
		if (src & MIGRATE_PFN_COMPOUND) {
			nr = spage ? folio_nr_pages(page_folio(spage)) :
				     HPAGE_PMD_NR;
			if (hmmt_to_dev_folio(mirror, mig, i, spage, src))
				continue;
		}

		for (j = 0; j < nr; j++)
			if (hmmt_to_dev_one(mirror, mig, i + j,
					    spage ? spage + j : NULL, src))
				ret = -ENOMEM;
	}
	return ret;
}

/*
 * Record the pages of a batch that made it to the device in the mirror,
 * give back the slots hmmt_to_dev_prepare() reserved for the others, and
 * close the batch's in-flight window @win.  One walk of the mirror under
 * its xarray lock.  Called between migrate_vma_pages() and
 * migrate_vma_finalize(), see the comment above struct hmmt_mirror.
 */
static int hmmt_to_dev_record(struct hmmt_mirror *mirror,
			      struct migrate_vma *mig,
			      struct hmmt_inflight *win)
{
	unsigned long first = mig->start >> PAGE_SHIFT, i;
	XA_STATE(xas, &mirror->ptab, first);
	int ret = 0;

	mutex_lock(&mirror->lock);
	xas_lock(&xas);
	for (i = 0; i < mig->npages; i++) {
		struct page *dpage = migrate_pfn_to_page(mig->dst[i]);
		unsigned long dst = mig->dst[i], j, nr = 1;

		/* A device folio holds the pages of the entries after it. */
		if (dst & MIGRATE_PFN_COMPOUND)
			nr = folio_nr_pages(page_folio(dpage));
		for (j = 0; j < nr; j++) {
			/*
			 * Not migrated after all, finalize frees dpage; or
			 * maybe zapped meanwhile, and then finalize finds no
			 * entry to map dpage with and frees it too.  Either
			 * way it must not be recorded.  A page that did get
			 * mapped is still ours: the device reaches it through
			 * hmm_range_fault(), and MIGRATE_TO_DEV reports it
			 * missing this time.
			 */
			if (!dpage || !(mig->src[i] & MIGRATE_PFN_MIGRATE) ||
			    hmmt_inflight_changed(win, mig->start +
						  (i + j) * PAGE_SIZE)) {
				hmmt_ptab_release(&xas, first + i + j);
				continue;
			}
			if (hmmt_ptab_store(&xas, first + i + j, dpage + j)) {
				ret = -ENOMEM;
				continue;
			}
			if (dst & MIGRATE_PFN_WRITE)
				xas_set_mark(&xas, HMMT_MARK_WRITE);
			else
				xas_clear_mark(&xas, HMMT_MARK_WRITE);
			xas_clear_mark(&xas, HMMT_MARK_EXCLUSIVE);
		}
		i += nr - 1;
	}
	xas_unlock(&xas);
	hmmt_inflight_close(mirror, win);
	mutex_unlock(&mirror->lock);
	return ret;
}

/* Move one batch of system memory to the device. */
static int hmmt_to_dev_batch(struct hmmt_mirror *mirror,
			     struct migrate_vma *mig)
{
	struct hmmt_inflight win;
	int ret, err;

	/* Before setup: a zap may hit any page from the moment it is taken. */
	hmmt_inflight_open(mirror, &win, mig->start, mig->end);
	ret = migrate_vma_setup(mig);
	if (ret) {
		mutex_lock(&mirror->lock);
		hmmt_inflight_close(mirror, &win);
		mutex_unlock(&mirror->lock);
		return ret;
	}
	ret = hmmt_to_dev_prepare(mirror, mig);
	migrate_vma_pages(mig);
	err = hmmt_to_dev_record(mirror, mig, &win);
	migrate_vma_finalize(mig);
	return ret ? ret : err;
}

static int hmmt_access(struct hmmt_mirror *mirror,
		       struct hmm_dmirror_cmd *cmd, unsigned long start,
		       unsigned long end, bool write, bool fault);

/* ---------------------------------------------------------------------------
 * Migration from the device back to system memory
 */

/*
 * hmmt_forget() for the device pages a MIGRATE_TO_SYS batch is moving back
 * (those given a destination), those recorded by @mirror in one walk of
 * its page table under one hold of its lock; a page another mirror of the
 * device recorded (another open file, same process) the usual way.
 */
static void hmmt_forget_batch(struct hmmt_mirror *mirror,
			      struct migrate_vma *mig)
{
	unsigned long first = mig->start >> PAGE_SHIFT, i;
	XA_STATE(xas, &mirror->ptab, first);
	struct page *dpage;
	unsigned long vpfn;
	void *entry;

	mutex_lock(&mirror->lock);
	xas_lock(&xas);
	xas_for_each(&xas, entry, first + mig->npages - 1) {
		i = xas.xa_index - first;
		dpage = hmmt_entry_dpage(entry);
		if (dpage && mig->dst[i] &&
		    dpage == migrate_pfn_to_page(mig->src[i]))
			xas_store(&xas, NULL);
	}
	xas_unlock(&xas);
	mutex_unlock(&mirror->lock);

	for (i = 0; i < mig->npages; i++) {
		dpage = migrate_pfn_to_page(mig->src[i]);
		if (!mig->dst[i])
			continue;
		if (hmmt_page_owner(dpage, &vpfn) != mirror)
			hmmt_forget(dpage);
	}
}

/*
 * A system THP to take device folio @dfolio back at @addr of @vma (or
 * anywhere, for an eviction, which may reclaim for it: @vma NULL), locked,
 * or NULL if none can be had or HMM_DMIRROR_FLAGS asked the owner of
 * @dfolio for this allocation to fail.
 */
static struct folio *hmmt_sys_folio(struct folio *dfolio,
				    struct vm_area_struct *vma,
				    unsigned long addr)
{
	struct hmmt_mirror *mirror;
	struct folio *folio;
	unsigned long vpfn;

	mirror = hmmt_page_owner(&dfolio->page, &vpfn);
	if (test_and_clear_bit(HMMT_FLAG_FAIL_ALLOC, &mirror->flags))
		return NULL;
	if (vma)
		folio = vma_alloc_folio(GFP_TRANSHUGE_LIGHT | __GFP_NOWARN,
					HPAGE_PMD_ORDER, vma, addr, true);
	else
		folio = folio_alloc(GFP_TRANSHUGE | __GFP_NOWARN,
				    HPAGE_PMD_ORDER);
	if (folio)
		folio_lock(folio);
	return folio;
}

/*
 * The destination entry of the device folio whose first page is @dpage:
 * its data copied out into @folio, a system folio of its size, which the
 * mirror's pages of it are forgotten for.
 */
static unsigned long hmmt_copy_out_folio(struct page *dpage,
					 struct folio *folio)
{
	unsigned long j;

	for (j = 0; j < folio_nr_pages(folio); j++)
		hmmt_copy_out(dpage + j, folio_page(folio, j));
	return migrate_pfn(folio_pfn(folio)) | MIGRATE_PFN_COMPOUND;
}

/*
 * Give entry @i of @mig, whose device page's data is in @data (see
 * hmmt_backing()), a locked system page holding the same data as its
 * destination, writable if @write.  Returns false if no system page can be
 * had.  The caller makes the mirror forget the device page.
 */
static bool hmmt_sys_dst(struct migrate_vma *mig, unsigned long i,
			 struct page *data, unsigned long write)
{
	struct page *page;

	page = alloc_page_vma(GFP_HIGHUSER_MOVABLE, mig->vma,
			      mig->start + i * PAGE_SIZE);
	if (!page)
		return false;
	lock_page(page);
	copy_highpage(page, data);
	mig->dst[i] = migrate_pfn(page_to_pfn(page)) | write;
	return true;
}

/*
 * Give the device folio collected whole at the start of @mig, a batch of
 * one PMD, its way back: a system THP, or one system page for each of its
 * pages when there is none (the core splits the folio then).  Each of its
 * pages is forgotten by the mirror that recorded it.  Returns -ENOMEM if
 * some page got no system memory.
 */
static int hmmt_to_sys_folio(struct migrate_vma *mig)
{
	struct page *dpage = migrate_pfn_to_page(mig->src[0]);
	unsigned long write = mig->src[0] & MIGRATE_PFN_WRITE, j;
	struct folio *folio;
	int ret = 0;

	folio = hmmt_sys_folio(page_folio(dpage), mig->vma, mig->start);
	if (folio) {
		mig->dst[0] = hmmt_copy_out_folio(dpage, folio) | write;
		return 0;
	}

	for (j = 0; j < HPAGE_PMD_NR; j++) {
		if (!hmmt_sys_dst(mig, j, hmmt_backing(dpage + j), write)) {
			ret = -ENOMEM;
			continue;
		}
		hmmt_forget(dpage + j);
	}
	return ret;
}

/*
 * Whether the src entry @src is a device folio collected whole; a compound
 * entry without a page is an empty PMD, which stays empty.
 */
static bool hmmt_whole_folio(unsigned long src)
{
	return (src & MIGRATE_PFN_COMPOUND) && (src & MIGRATE_PFN_VALID);
}

/* Pages that a device-to-system batch moved: a THP counts as all of them. */
static u64 hmmt_moved(const struct migrate_vma *mig)
{
	unsigned long i;
	u64 moved = 0;

	for (i = 0; i < mig->npages; i++)
		if (mig->dst[i] && (mig->src[i] & MIGRATE_PFN_MIGRATE))
			moved += (mig->dst[i] & MIGRATE_PFN_COMPOUND) ?
				 HPAGE_PMD_NR : 1;
	return moved;
}

/*
 * Move one batch of device memory back to system memory, adding the number
 * of pages moved to @count.  Pages that get no system memory stay on the
 * device and make this return -ENOMEM.
 */
static int hmmt_to_sys_batch(struct hmmt_mirror *mirror,
			     struct migrate_vma *mig, u64 *count)
{
	unsigned long i;
	int ret;

	ret = migrate_vma_setup(mig);
	if (ret)
		return ret;

	/* A device folio collected whole is the whole batch. */
	if (hmmt_whole_folio(mig->src[0]) &&
	    hmmt_own_page(mirror->hdev, migrate_pfn_to_page(mig->src[0]))) {
		ret = hmmt_to_sys_folio(mig);
		goto move;
	}

	for (i = 0; i < mig->npages; i++) {
		struct page *dpage = migrate_pfn_to_page(mig->src[i]);
		struct hmmt_chunk *chunk;

		if (!dpage || !(mig->src[i] & MIGRATE_PFN_MIGRATE))
			continue;
		chunk = hmmt_own_chunk(mirror->hdev, dpage);
		if (!chunk)
			continue;
		if (!hmmt_sys_dst(mig, i, hmmt_chunk_backing(chunk, dpage),
				  mig->src[i] & MIGRATE_PFN_WRITE))
			ret = -ENOMEM;
	}
	hmmt_forget_batch(mirror, mig);

move:
	migrate_vma_pages(mig);
	/* migrate_vma_pages() clears MIGRATE for what it could not move. */
	*count += hmmt_moved(mig);
	migrate_vma_finalize(mig);
	return ret;
}

/*
 * MIGRATE_TO_DEV and MIGRATE_TO_SYS: work through [start, end) of the
 * mirrored process one batch at a time.  Every part of the range must be
 * mapped by a readable VMA; batches done before an error stay done.
 */
static int hmmt_migrate_range(struct hmmt_mirror *mirror,
			      struct hmm_dmirror_cmd *cmd, unsigned long start,
			      unsigned long end, bool to_dev)
{
	struct mm_struct *mm = mirror->notifier.mm;
	unsigned long addr, next, nr, *pfns;
	int ret = 0;

	/* The file may outlive the process that opened it. */
	if (!mmget_not_zero(mm))
		return -EINVAL;
	/*
	 * src and dst arrays for the largest batch of the range, see
	 * hmmt_batch_end(): a short range makes a small allocation.  Always
	 * taking room for HMMT_BATCH entries, 8 KiB, had the slab allocator
	 * take a new slab and free it again on each call.
	 */
	nr = min_t(unsigned long, (end - start) >> PAGE_SHIFT, HMMT_BATCH);
	pfns = kmalloc_array(2 * nr, sizeof(*pfns), GFP_KERNEL);
	if (!pfns) {
		ret = -ENOMEM;
		goto out_mmput;
	}
	if (mmap_read_lock_killable(mm)) {
		ret = -EINTR;
		goto out_free;
	}

	for (addr = start; addr < end; addr = next) {
		struct vm_area_struct *vma = vma_lookup(mm, addr);
		struct migrate_vma mig = {
			.vma		= vma,
			.src		= pfns,
			.dst		= pfns + nr,
			.pgmap_owner	= mirror->hdev,
		};

		if (!vma || !(vma->vm_flags & VM_READ)) {
			ret = -EINVAL;
			break;
		}
		if (fatal_signal_pending(current)) {
			ret = -EINTR;
			break;
		}
		next = hmmt_batch_end(vma, addr, end);
		mig.start = addr;
		mig.end = next;
		if (to_dev) {
			mig.flags = MIGRATE_VMA_SELECT_SYSTEM |
				    MIGRATE_VMA_SELECT_COMPOUND;
			ret = hmmt_to_dev_batch(mirror, &mig);
		} else {
			mig.flags = hmmt_select_own(mirror->hdev) |
				    MIGRATE_VMA_SELECT_COMPOUND;
			ret = hmmt_to_sys_batch(mirror, &mig, &cmd->cpages);
		}
		if (ret)
			break;
	}

	mmap_read_unlock(mm);
out_free:
	kfree(pfns);
out_mmput:
	mmput(mm);
	if (ret || !to_dev)
		return ret;

	/*
	 * Hand back what the device now holds, for the caller to verify:
	 * every page must be in its page table or its memory, else -ENOENT
	 * (a page that did not move, or that something else unmapped or
	 * changed while it moved, see hmmt_to_dev_record()).
	 */
	return hmmt_access(mirror, cmd, start, end, false, false);
}

/*
 * migrate_to_ram() for a page of a large device folio: bring back the
 * whole PMD-sized range around it, as one THP if it is still mapped by one
 * device-private PMD and a THP can be had, else page by page.  Returns
 * false, having moved nothing, if the range is not all in the VMA or no
 * memory for the arrays can be had: the caller then moves the one page.
 */
static bool hmmt_fault_folio(struct vm_fault *vmf, vm_fault_t *ret)
{
	unsigned long start = ALIGN_DOWN(vmf->address, HPAGE_PMD_SIZE), i;
	struct hmmt_xfer *xfer;
	struct migrate_vma mig = {
		.vma		= vmf->vma,
		.start		= start,
		.end		= start + HPAGE_PMD_SIZE,
		.pgmap_owner	= hmmt_page_device(vmf->page),
		.flags		= MIGRATE_VMA_SELECT_DEVICE_PRIVATE |
				  MIGRATE_VMA_SELECT_COMPOUND,
		.fault_page	= vmf->page,
	};

	if (start < vmf->vma->vm_start || mig.end > vmf->vma->vm_end)
		return false;
	xfer = kmalloc(sizeof(*xfer), GFP_KERNEL);
	if (!xfer)
		return false;
	mig.src = xfer->src;
	mig.dst = xfer->dst;
	*ret = 0;
	if (migrate_vma_setup(&mig)) {
		*ret = VM_FAULT_SIGBUS;
		goto out;
	}

	if (hmmt_whole_folio(mig.src[0])) {
		if (hmmt_to_sys_folio(&mig))
			*ret = VM_FAULT_OOM;
		goto move;
	}
	for (i = 0; i < mig.npages; i++) {
		struct page *dpage = migrate_pfn_to_page(mig.src[i]);

		if (!dpage || !(mig.src[i] & MIGRATE_PFN_MIGRATE))
			continue;
		if (hmmt_sys_dst(&mig, i, hmmt_backing(dpage),
				 mig.src[i] & MIGRATE_PFN_WRITE))
			hmmt_forget(dpage);
		else
			*ret = VM_FAULT_OOM;
	}
move:
	migrate_vma_pages(&mig);
	migrate_vma_finalize(&mig);
out:
	kfree(xfer);
	return true;
}

/*
 * dev_pagemap_ops.migrate_to_ram: the CPU touched a page on the device.
 * The core calls this with vmf->page locked and referenced and unlocks it
 * afterwards; migrate_vma_setup() expects exactly that of a fault page.
 */
static vm_fault_t hmmt_migrate_to_ram(struct vm_fault *vmf)
{
	unsigned long addr = ALIGN_DOWN(vmf->address, PAGE_SIZE);
	struct hmmt_device *hdev = hmmt_page_device(vmf->page);
	unsigned long src = 0, dst = 0;
	struct migrate_vma mig = {
		.vma		= vmf->vma,
		.start		= addr,
		.end		= addr + PAGE_SIZE,
		.src		= &src,
		.dst		= &dst,
		.pgmap_owner	= hdev,
		.flags		= MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
		.fault_page	= vmf->page,
	};
	struct page *dpage;
	vm_fault_t ret = 0;

	atomic64_inc(&hdev->cpu_faults);
	if (folio_test_large(page_folio(vmf->page)) &&
	    hmmt_fault_folio(vmf, &ret))
		return ret;
	if (migrate_vma_setup(&mig))
		return VM_FAULT_SIGBUS;

	/*
	 * Nothing collected means the page could not be taken right now
	 * (someone holds a transient extra reference, e.g. an eviction or a
	 * MIGRATE_TO_DEV copying it out): return and let the fault retry.
	 */
	dpage = migrate_pfn_to_page(src);
	if (dpage && (src & MIGRATE_PFN_MIGRATE)) {
		if (hmmt_sys_dst(&mig, 0, hmmt_backing(dpage),
				 src & MIGRATE_PFN_WRITE))
			hmmt_forget(dpage);
		else
			ret = VM_FAULT_OOM;
	}

	migrate_vma_pages(&mig);
	migrate_vma_finalize(&mig);
	return ret;
}

/* ---------------------------------------------------------------------------
 * Eviction: move everything in device memory back to system memory without
 * knowing where it is mapped (RELEASE and module unload).
 */

static bool hmmt_window_busy(struct hmmt_chunk *chunk, unsigned long first,
			     unsigned long n)
{
	bool busy;

	spin_lock(&chunk->hdev->pool_lock);
	busy = find_next_bit(chunk->in_use, first + n, first) < first + n;
	spin_unlock(&chunk->hdev->pool_lock);
	return busy;
}

/*
 * Evict the @n device pages starting at page @first of @chunk.  A device
 * folio taken whole goes to a system THP, or else to base pages, which
 * make the core split it.  With @nofail the base page allocations may not
 * fail; otherwise a page that gets no memory stays on the device and
 * -ENOMEM is returned.
 */
static int hmmt_evict_window(struct hmmt_chunk *chunk,
			     struct hmmt_xfer *xfer, unsigned long first,
			     unsigned long n, bool nofail)
{
	gfp_t gfp = GFP_HIGHUSER_MOVABLE | (nofail ? __GFP_NOFAIL : 0);
	unsigned int delay;
	unsigned long i;
	int ret = 0;

	memset(xfer->dst, 0, n * sizeof(xfer->dst[0]));
	migrate_device_range(xfer->src, chunk->first_pfn + first, n);
	/* Let a test unmap the pages or exit while they are collected. */
	delay = READ_ONCE(chunk->hdev->evict_delay_ms);
	if (delay)
		msleep(delay);

	for (i = 0; i < n; i++) {
		struct page *dpage = migrate_pfn_to_page(xfer->src[i]);
		unsigned long j, nr = 1;
		struct folio *folio;
		struct page *page;

		if (!dpage || !(xfer->src[i] & MIGRATE_PFN_MIGRATE))
			continue;
		if (hmmt_whole_folio(xfer->src[i]))
			nr = folio_nr_pages(page_folio(dpage));
		if (nr == HPAGE_PMD_NR) {
			folio = hmmt_sys_folio(page_folio(dpage), NULL, 0);
			if (folio) {
				xfer->dst[i] = hmmt_copy_out_folio(dpage,
								   folio);
				continue;
			}
		}
		for (j = 0; j < nr; j++) {
			page = alloc_page(gfp);
			if (!page) {
				ret = -ENOMEM;
				continue;
			}
			lock_page(page);
			hmmt_copy_out(dpage + j, page);
			xfer->dst[i + j] = migrate_pfn(page_to_pfn(page));
		}
	}

	migrate_device_pages(xfer->src, xfer->dst, n);
	migrate_device_finalize(xfer->src, xfer->dst, n);
	return ret;
}

static int hmmt_evict_chunk(struct hmmt_chunk *chunk, struct hmmt_xfer *xfer,
			    bool nofail)
{
	unsigned long window = READ_ONCE(chunk->hdev->evict_window);
	unsigned long first, n;
	int ret = 0;

	for (first = 0; first < chunk->npages; first += n) {
		n = min(window, chunk->npages - first);
		if (!hmmt_window_busy(chunk, first, n))
			continue;
		if (hmmt_evict_window(chunk, xfer, first, n, nofail))
			ret = -ENOMEM;
		cond_resched();
	}
	return ret;
}

static unsigned int hmmt_nr_chunks(struct hmmt_device *hdev)
{
	unsigned int nr;

	spin_lock(&hdev->pool_lock);
	nr = hdev->nr_chunks;
	spin_unlock(&hdev->pool_lock);
	return nr;
}

/*
 * HMM_DMIRROR_RELEASE: evict all of the device's memory, in one pass, as a
 * driver unbinding from its device would: migrate_device_range() waits for
 * pages that a CPU fault or a migration holds at the time, so none is left
 * behind unless it lacks system memory to go to (-ENOMEM).  Chunks are
 * never removed before module unload, so reading them without grow_lock is
 * fine.
 */
static int hmmt_release_all(struct hmmt_device *hdev)
{
	unsigned int nr = hmmt_nr_chunks(hdev);
	struct hmmt_xfer *xfer;
	unsigned int i;
	int ret = 0;

	xfer = kmalloc(sizeof(*xfer), GFP_KERNEL);
	if (!xfer)
		return -ENOMEM;
	for (i = 0; i < nr; i++)
		if (hmmt_evict_chunk(hdev->chunks[i], xfer, false))
			ret = -ENOMEM;
	kfree(xfer);
	return ret;
}

/*
 * Module unload: no file is open any more, but processes may still have
 * pages on the device.  Evict until every chunk is empty, then give the
 * memory back.  memunmap_pages() waits for the last page reference, which
 * also waits out a CPU fault still running our migrate_to_ram().
 */
static void hmmt_destroy_memory(struct hmmt_device *hdev)
{
	struct hmmt_xfer *xfer;
	unsigned int i;

	xfer = kmalloc(sizeof(*xfer), GFP_KERNEL | __GFP_NOFAIL);
	for (i = 0; i < hdev->nr_chunks; i++) {
		struct hmmt_chunk *chunk = hdev->chunks[i];
		unsigned int pass = 0;

		while (hmmt_chunk_used(chunk)) {
			hmmt_evict_chunk(chunk, xfer, true);
			if (!hmmt_chunk_used(chunk))
				break;
			if (++pass == 100)
				dev_warn(&hdev->dev,
					 "%lu device pages still busy\n",
					 hmmt_chunk_used(chunk));
			msleep(20);
		}

		memunmap_pages(&chunk->pagemap);
		release_mem_region(chunk->pagemap.range.start,
				   range_len(&chunk->pagemap.range));
		kvfree(chunk->data);
		bitmap_free(chunk->in_use);
		kfree(chunk);
		hdev->chunks[i] = NULL;
	}
	hdev->nr_chunks = 0;
	kfree(xfer);
}

static const struct dev_pagemap_ops hmmt_pagemap_ops = {
	.folio_free	= hmmt_folio_free,
	.migrate_to_ram	= hmmt_migrate_to_ram,
};

/* The CPU maps device-coherent pages: it never faults them back. */
static const struct dev_pagemap_ops hmmt_coherent_ops = {
	.folio_free	= hmmt_folio_free,
};

/* ---------------------------------------------------------------------------
 * Device access to the process's memory through the mirror
 */

/*
 * Walk (and, as @range asks, fault) @range with hmm_range_fault() until the
 * result is known to be current: sample the notifier sequence, walk under
 * the mmap read lock, then take the mirror lock and check that no
 * invalidation ran in between.  One that did may have changed what the
 * walk saw, so everything starts over; -EBUSY from hmm_range_fault() means
 * the same.  Holding the mirror lock keeps further invalidations waiting
 * until the caller is done with the result.
 *
 * Gives up with -EBUSY after HMM_RANGE_DEFAULT_TIMEOUT ms of retrying, or
 * -EINTR on a fatal signal.  Returns 0 with mirror->lock held, or a
 * negative errno without it.  The caller holds a reference on the mm.
 */
static int hmmt_range_fault_locked(struct hmmt_mirror *mirror,
				   struct hmm_range *range)
{
	unsigned long deadline =
		jiffies + msecs_to_jiffies(HMM_RANGE_DEFAULT_TIMEOUT);
	struct mm_struct *mm = mirror->notifier.mm;
	int ret;

	for (;;) {
		if (fatal_signal_pending(current))
			return -EINTR;
		if (time_after(jiffies, deadline))
			return -EBUSY;

		range->notifier_seq = mmu_interval_read_begin(range->notifier);
		if (mmap_read_lock_killable(mm))
			return -EINTR;
		ret = hmm_range_fault(range);
		mmap_read_unlock(mm);
		if (ret == -EBUSY) {
			cond_resched();
			continue;
		}
		if (ret)
			return ret;

		mutex_lock(&mirror->lock);
		if (!mmu_interval_read_retry(range->notifier,
					     range->notifier_seq))
			return 0;
		mutex_unlock(&mirror->lock);
	}
}

/*
 * Record in the mirror what hmm_range_fault() found for @range, which
 * asked for every page to be faulted in (for writing if @write).  Called
 * under mirror->lock, right after the sequence check.
 *
 * One of this device's own pages may come back read-only although a write
 * was asked for: hmm_range_fault() reports the caller's own device pages as
 * they are mapped and never faults them (a fault would call our own
 * migrate_to_ram()).  Then -EAGAIN is returned with the address in
 * @unshare, for the caller to move that page back to system memory first.
 */
static int hmmt_ptab_fill(struct hmmt_mirror *mirror,
			  const struct hmm_range *range, bool write,
			  unsigned long *unshare)
{
	unsigned long npages = (range->end - range->start) >> PAGE_SHIFT;
	unsigned long vpfn = range->start >> PAGE_SHIFT;
	XA_STATE(xas, &mirror->ptab, vpfn);
	unsigned long i;
	int ret = 0;

	lockdep_assert_held(&mirror->lock);
	xas_lock(&xas);
	for (i = 0; i < npages && !ret; i++) {
		unsigned long hpfn = range->hmm_pfns[i];
		bool writable = hpfn & HMM_PFN_WRITE;
		bool own = false;
		struct page *page;

		/*
		 * Having asked for a fault, success means every entry is
		 * valid.  Do not take that on trust: an entry the device
		 * cannot use would have the caller fault again and again.
		 */
		if (!(hpfn & HMM_PFN_VALID) || (hpfn & HMM_PFN_ERROR)) {
			ret = -EFAULT;
			break;
		}
		page = hmm_pfn_to_page(hpfn);
		if (is_device_private_page(page)) {
			/* Others' device memory is faulted back, not shown. */
			if (hmmt_pgmap(page)->owner != mirror->hdev) {
				ret = -EFAULT;
				break;
			}
			own = true;
		}
		if (write && !writable) {
			ret = -EFAULT;
			if (own) {
				*unshare = range->start + (i << PAGE_SHIFT);
				ret = -EAGAIN;
			}
			break;
		}
		ret = hmmt_ptab_store(&xas, vpfn + i,
				      hmmt_pfn_entry(page_to_pfn(page),
						     writable));
	}
	xas_unlock(&xas);
	return ret;
}

/*
 * Move this device's pages mapped in [@start, @end) back to system memory,
 * so that a write fault can copy them (after fork()) like any other page:
 * @start is the first one that hmm_range_fault() reported read-only, and
 * the others of the range are likely read-only too.  One batch, which
 * stops at the end of the VMA or of the page table; the caller comes back
 * for the rest.  A write to a VMA without VM_WRITE is refused right away
 * instead.
 */
static int hmmt_unshare(struct hmmt_mirror *mirror, unsigned long start,
			unsigned long end)
{
	struct mm_struct *mm = mirror->notifier.mm;
	struct hmmt_xfer *xfer;
	struct migrate_vma mig = {
		.start		= start,
		.pgmap_owner	= mirror->hdev,
		.flags		= MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
	};
	u64 moved = 0;
	int ret;

	xfer = kmalloc(sizeof(*xfer), GFP_KERNEL);
	if (!xfer)
		return -ENOMEM;
	mig.src = xfer->src;
	mig.dst = xfer->dst;
	if (mmap_read_lock_killable(mm)) {
		kfree(xfer);
		return -EINTR;
	}
	mig.vma = vma_lookup(mm, start);
	if (!mig.vma) {
		ret = -EFAULT;
	} else if (!(mig.vma->vm_flags & VM_WRITE)) {
		ret = -EPERM;
	} else {
		mig.end = hmmt_batch_end(mig.vma, start, end);
		ret = hmmt_to_sys_batch(mirror, &mig, &moved);
	}
	mmap_read_unlock(mm);
	kfree(xfer);
	return ret;
}

/*
 * Fault in and mirror one chunk of at most HMMT_MIRROR_PAGES pages.  The
 * mirror slots are reserved while we may still sleep, so that filling
 * them under the mirror lock does not allocate; slots already in use are
 * left as they are, and unused reservations are given back at the end.
 */
static int hmmt_mirror_chunk(struct hmmt_mirror *mirror,
			     struct hmm_range *range, bool write)
{
	unsigned long npages = (range->end - range->start) >> PAGE_SHIFT;
	unsigned long vpfn = range->start >> PAGE_SHIFT;
	unsigned long unshare = 0;
	unsigned int tries = 0;
	int ret;

	ret = hmmt_ptab_reserve(mirror, vpfn, npages);
	while (!ret) {
		ret = hmmt_range_fault_locked(mirror, range);
		if (ret)
			break;
		ret = hmmt_ptab_fill(mirror, range, write, &unshare);
		mutex_unlock(&mirror->lock);
		if (ret != -EAGAIN)
			break;
		/* A page that keeps coming back busy: give up some time. */
		if (++tries > HMMT_UNSHARE_TRIES) {
			ret = -EBUSY;
			break;
		}
		ret = hmmt_unshare(mirror, unshare, range->end);
	}

	hmmt_ptab_unreserve(mirror, vpfn, npages);
	return ret;
}

/*
 * Device page table miss: fault [start, end) in through hmm_range_fault(),
 * for writing if @write, and mirror it, HMMT_MIRROR_PAGES at a time.
 * Returns 0 or a negative errno: -EFAULT where no VMA or an inaccessible
 * one covers the range, -EPERM for a write to a read-only VMA, -EBUSY if
 * the range kept changing, as hmm_range_fault() and its callers do.
 */
static int hmmt_mirror_fault(struct hmmt_mirror *mirror, unsigned long start,
			     unsigned long end, bool write)
{
	struct mm_struct *mm = mirror->notifier.mm;
	unsigned long pfns[HMMT_MIRROR_PAGES];
	struct hmm_range range = {
		.notifier		= &mirror->notifier,
		.hmm_pfns		= pfns,
		.default_flags		= HMM_PFN_REQ_FAULT |
					  (write ? HMM_PFN_REQ_WRITE : 0),
		.pfn_flags_mask		= 0,
		.dev_private_owner	= mirror->hdev,
	};
	unsigned long addr, npages;
	int ret = 0;

	/* The file may outlive the process that opened it. */
	if (!mmget_not_zero(mm))
		return -EFAULT;

	for (addr = start; addr < end && !ret; addr += npages << PAGE_SHIFT) {
		npages = min(HMMT_MIRROR_PAGES, (end - addr) >> PAGE_SHIFT);
		range.start = addr;
		range.end = addr + (npages << PAGE_SHIFT);
		ret = hmmt_mirror_chunk(mirror, &range, write);
	}

	mmput(mm);
	return ret;
}

/*
 * The page holding what the device sees at virtual page @vpfn, or NULL
 * when the mirror has no entry for it, or no writable one if @write.  For a
 * page in device memory that is its backing page.  Called under
 * mirror->lock, which keeps the page in place, see struct hmmt_mirror.
 */
static struct page *hmmt_ptab_data(struct hmmt_mirror *mirror,
				   unsigned long vpfn, bool write)
{
	void *entry = xa_load(&mirror->ptab, vpfn);
	struct page *page;

	lockdep_assert_held(&mirror->lock);
	if (!entry)
		return NULL;

	if (xa_is_value(entry)) {
		unsigned long val = xa_to_value(entry);

		if (write && !(val & HMMT_PFN_WRITE))
			return NULL;
		page = pfn_to_page(val >> 1);
		/* hmmt_ptab_fill() only lets in device pages of ours. */
		if (!is_device_private_page(page))
			return page;
	} else {
		if (write && !xa_get_mark(&mirror->ptab, vpfn, HMMT_MARK_WRITE))
			return NULL;
		page = entry;
	}
	return hmmt_backing(page);
}

/*
 * Copy @npages pages from the device's view of the process at @addr into
 * @buf, or with @write from @buf into it, as far as the mirror has entries
 * for them.  Returns the number of pages copied: all of them, or those up
 * to the first miss.
 */
static unsigned long hmmt_ptab_copy(struct hmmt_mirror *mirror,
				    unsigned long addr, unsigned long npages,
				    char *buf, bool write)
{
	unsigned long vpfn = addr >> PAGE_SHIFT;
	unsigned long i;

	mutex_lock(&mirror->lock);
	for (i = 0; i < npages; i++) {
		struct page *page = hmmt_ptab_data(mirror, vpfn + i, write);
		char *kaddr;

		if (!page)
			break;
		kaddr = kmap_local_page(page);
		if (write) {
			memcpy(kaddr, buf + i * PAGE_SIZE, PAGE_SIZE);
			flush_dcache_page(page);
		} else {
			memcpy(buf + i * PAGE_SIZE, kaddr, PAGE_SIZE);
		}
		kunmap_local(kaddr);
	}
	mutex_unlock(&mirror->lock);
	return i;
}

/*
 * Mirror the page at @addr if it is in this device's memory already.  A
 * MIGRATE_TO_DEV batch leaves such a page where it is, device-coherent
 * pages in particular, which the CPU uses in place; but its own
 * invalidation drops whatever the mirror knew of the batch's range apart
 * from the pages it moves.  Nothing is faulted in.  Returns whether the
 * page is now in the mirror.
 */
static bool hmmt_mirror_own_page(struct hmmt_mirror *mirror,
				 unsigned long addr)
{
	struct mm_struct *mm = mirror->notifier.mm;
	unsigned long hpfn, vpfn = addr >> PAGE_SHIFT;
	struct hmm_range range = {
		.notifier		= &mirror->notifier,
		.start			= addr,
		.end			= addr + PAGE_SIZE,
		.hmm_pfns		= &hpfn,
		.dev_private_owner	= mirror->hdev,
	};
	struct page *page;
	bool own = false;

	if (!mmget_not_zero(mm))
		return false;
	if (hmmt_ptab_reserve(mirror, vpfn, 1))
		goto out_mmput;
	if (hmmt_range_fault_locked(mirror, &range))
		goto out_release;
	if ((hpfn & HMM_PFN_VALID) && !(hpfn & HMM_PFN_ERROR)) {
		page = hmm_pfn_to_page(hpfn);
		own = hmmt_own_page(mirror->hdev, page) &&
		      !xa_is_err(xa_store(&mirror->ptab, vpfn,
					  hmmt_pfn_entry(page_to_pfn(page),
							 hpfn & HMM_PFN_WRITE),
					  GFP_NOWAIT | __GFP_NOWARN));
	}
	mutex_unlock(&mirror->lock);
out_release:
	hmmt_ptab_unreserve(mirror, vpfn, 1);
out_mmput:
	mmput(mm);
	return own;
}

/*
 * A device access missed at @miss.  With @fault, fault in and mirror
 * everything from there to @end, counting one fault in @cmd; without, the
 * page must be in the device's memory already (hmmt_mirror_own_page()),
 * else -ENOENT.
 */
static int hmmt_access_miss(struct hmmt_mirror *mirror,
			    struct hmm_dmirror_cmd *cmd, unsigned long miss,
			    unsigned long end, bool write, bool fault)
{
	int ret;

	if (!fault)
		return hmmt_mirror_own_page(mirror, miss) ? 0 : -ENOENT;
	ret = hmmt_mirror_fault(mirror, miss, end, write);
	if (!ret)
		cmd->faults++;
	return ret;
}

/*
 * HMM_DMIRROR_READ and HMM_DMIRROR_WRITE: the device reads [start, end)
 * into the user buffer at cmd->ptr, or writes the buffer there, through
 * its page table.  With @fault, a miss faults in everything from the
 * missing page to the end of the range and counts one in cmd->faults;
 * without (the report of MIGRATE_TO_DEV), see hmmt_access_miss().
 * cmd->cpages counts the pages copied.  Data goes through a bounce buffer
 * since the mirror lock cannot be held across user copies.  On error,
 * what was copied before it stays copied.
 */
static int hmmt_access(struct hmmt_mirror *mirror,
		       struct hmm_dmirror_cmd *cmd, unsigned long start,
		       unsigned long end, bool write, bool fault)
{
	char __user *ubuf = u64_to_user_ptr(cmd->ptr);
	unsigned long addr, npages, done;
	size_t bytes;
	char *buf;
	int ret = 0;

	/* No bigger than the range: a short access needs a small buffer. */
	npages = min(HMMT_MIRROR_PAGES, (end - start) >> PAGE_SHIFT);
	buf = kvmalloc(npages << PAGE_SHIFT, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;

	for (addr = start; addr < end; addr += bytes) {
		npages = min(HMMT_MIRROR_PAGES, (end - addr) >> PAGE_SHIFT);
		bytes = npages << PAGE_SHIFT;
		if (write && copy_from_user(buf, ubuf, bytes)) {
			ret = -EFAULT;
			break;
		}

		done = hmmt_ptab_copy(mirror, addr, npages, buf, write);
		while (done < npages) {
			unsigned long miss = addr + (done << PAGE_SHIFT);

			ret = hmmt_access_miss(mirror, cmd, miss, end, write,
					       fault);
			if (ret)
				goto out;
			/* An invalidation may beat us to it: then again. */
			done += hmmt_ptab_copy(mirror, miss, npages - done,
					       buf + (done << PAGE_SHIFT),
					       write);
		}

		if (!write && copy_to_user(ubuf, buf, bytes)) {
			ret = -EFAULT;
			break;
		}
		ubuf += bytes;
		cmd->cpages += npages;
	}
out:
	kvfree(buf);
	return ret;
}

/* What HMM_DMIRROR_SNAPSHOT reports for one hmm_range_fault() entry. */
static u8 hmmt_snapshot_prot(struct hmmt_mirror *mirror, unsigned long hpfn)
{
	unsigned int order;
	struct page *page;
	u8 prot;

	if (hpfn & HMM_PFN_ERROR)
		return HMM_DMIRROR_PROT_ERROR;
	if (!(hpfn & HMM_PFN_VALID))
		return HMM_DMIRROR_PROT_NONE;

	page = hmm_pfn_to_page(hpfn);
	if (is_device_private_page(page)) {
		prot = hmmt_pgmap(page)->owner == mirror->hdev ?
		       HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL :
		       HMM_DMIRROR_PROT_DEV_PRIVATE_REMOTE;
	} else if (is_device_coherent_page(page)) {
		prot = hmmt_pgmap(page)->owner == mirror->hdev ?
		       HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL :
		       HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE;
	} else if (is_zero_pfn(page_to_pfn(page))) {
		prot = HMM_DMIRROR_PROT_ZERO;
	} else {
		prot = 0;
	}

	prot |= (hpfn & HMM_PFN_WRITE) ? HMM_DMIRROR_PROT_WRITE :
					 HMM_DMIRROR_PROT_READ;

	order = hmm_pfn_to_map_order(hpfn);
	if (order == PMD_SHIFT - PAGE_SHIFT)
		prot |= HMM_DMIRROR_PROT_PMD;
	else if (order == PUD_SHIFT - PAGE_SHIFT)
		prot |= HMM_DMIRROR_PROT_PUD;
	return prot;
}

/*
 * HMM_DMIRROR_SNAPSHOT: one HMM_DMIRROR_PROT_* byte per page of
 * [start, end) to cmd->ptr, from a hmm_range_fault() walk that faults
 * nothing in.  cmd->cpages counts the pages reported.  The device's page
 * table is neither used nor changed.
 */
static int hmmt_snapshot(struct hmmt_mirror *mirror,
			 struct hmm_dmirror_cmd *cmd, unsigned long start,
			 unsigned long end)
{
	u8 __user *ubuf = u64_to_user_ptr(cmd->ptr);
	struct mm_struct *mm = mirror->notifier.mm;
	unsigned long pfns[HMMT_MIRROR_PAGES];
	u8 prot[HMMT_MIRROR_PAGES];
	struct hmm_range range = {
		.notifier		= &mirror->notifier,
		.hmm_pfns		= pfns,
		.default_flags		= 0,
		.pfn_flags_mask		= 0,
		.dev_private_owner	= mirror->hdev,
	};
	unsigned long npages, i;
	int ret = 0;

	if (!mmget_not_zero(mm))
		return -EINVAL;

	for (range.start = start; range.start < end; range.start = range.end) {
		npages = min(HMMT_MIRROR_PAGES,
			     (end - range.start) >> PAGE_SHIFT);
		range.end = range.start + (npages << PAGE_SHIFT);

		ret = hmmt_range_fault_locked(mirror, &range);
		if (ret)
			break;
		/* Under the lock: the pages are still mapped as seen. */
		for (i = 0; i < npages; i++)
			prot[i] = hmmt_snapshot_prot(mirror, pfns[i]);
		mutex_unlock(&mirror->lock);

		if (copy_to_user(ubuf, prot, npages)) {
			ret = -EFAULT;
			break;
		}
		ubuf += npages;
		cmd->cpages += npages;
		cond_resched();
	}

	mmput(mm);
	return ret;
}

/*
 * Make the pages of [start, end), at most HMMT_MIRROR_PAGES of them, exclusive
 * to the device and record them in the mirror as writable and exclusive.
 *
 * The pages come back from make_device_exclusive_range() locked, which keeps
 * a CPU fault, migration and reclaim from taking them back before they are
 * recorded.  What remains is a zap under the mmap read lock (MADV_DONTNEED),
 * which takes no page lock: an in-flight window opened before the call
 * catches that.  The window is opened, which waits for running
 * invalidations, while no page is locked yet: such an invalidation may need
 * one of the page locks to finish.
 *
 * The notifier sequence cannot replace the window:
 * make_device_exclusive_range() invalidates the range itself when it splits
 * a THP, and when it faults back a page still exclusive from an earlier
 * call.  The second happens on every retry, so a sequence check would
 * retry for ever.
 *
 * When something else did change the range, nothing is recorded: the pages
 * are let go and it all starts over, for up to HMM_RANGE_DEFAULT_TIMEOUT ms.
 *
 * Returns 0 when every page was made exclusive and recorded, -EBUSY when some
 * page could not be (what was recorded stays so) or the range kept changing,
 * -EINTR on a fatal signal, or another negative errno from
 * make_device_exclusive_range().
 */
static int hmmt_exclusive_chunk(struct hmmt_mirror *mirror,
				unsigned long start, unsigned long end)
{
	unsigned long deadline =
		jiffies + msecs_to_jiffies(HMM_RANGE_DEFAULT_TIMEOUT);
	unsigned long npages = (end - start) >> PAGE_SHIFT;
	unsigned long vpfn = start >> PAGE_SHIFT;
	struct mm_struct *mm = mirror->notifier.mm;
	struct page *pages[HMMT_MIRROR_PAGES];
	unsigned long i, recorded = 0;
	XA_STATE(xas, &mirror->ptab, vpfn);
	int ret, got;

	/* Reserve the slots now: no allocation under the mirror lock. */
	ret = hmmt_ptab_reserve(mirror, vpfn, npages);

	while (!ret) {
		struct hmmt_inflight win;
		bool changed;

		if (fatal_signal_pending(current)) {
			ret = -EINTR;
			break;
		}
		if (time_after(jiffies, deadline)) {
			ret = -EBUSY;
			break;
		}

		hmmt_inflight_open(mirror, &win, start, end);
		if (mmap_read_lock_killable(mm)) {
			mutex_lock(&mirror->lock);
			hmmt_inflight_close(mirror, &win);
			mutex_unlock(&mirror->lock);
			ret = -EINTR;
			break;
		}
		got = make_device_exclusive_range(mm, start, end, pages,
						  mirror->hdev);
		if (got < 0) {
			ret = got;
			got = 0;	/* no page to record or release */
		}

		mutex_lock(&mirror->lock);
		changed = win.dirty_start < win.dirty_end;
		hmmt_inflight_close(mirror, &win);
		xas_lock(&xas);
		for (i = 0; !changed && i < got; i++) {
			if (!pages[i] ||
			    hmmt_ptab_store(&xas, vpfn + i,
					    hmmt_pfn_entry(page_to_pfn(pages[i]),
							   true)))
				continue;
			xas_set_mark(&xas, HMMT_MARK_EXCLUSIVE);
			recorded++;
		}
		xas_unlock(&xas);
		mutex_unlock(&mirror->lock);

		/* From here on a CPU access revokes the device's access. */
		for (i = 0; i < got; i++) {
			if (pages[i]) {
				unlock_page(pages[i]);
				put_page(pages[i]);
			}
		}
		mmap_read_unlock(mm);

		if (!changed)
			break;
		cond_resched();
	}

	if (!ret && recorded < npages)
		ret = -EBUSY;
	hmmt_ptab_unreserve(mirror, vpfn, npages);
	return ret;
}

/*
 * HMM_DMIRROR_EXCLUSIVE: make [start, end) exclusive to the device, then
 * read it through the device into cmd->ptr as HMM_DMIRROR_READ does, for
 * the caller to check; cmd->cpages counts the pages read, all of them on
 * success.  -EBUSY if some page could not be made exclusive, -EINVAL for a
 * range the core refuses (hugetlb, shared, ...), -EFAULT for a hole or a
 * read-only mapping at the start.
 */
static int hmmt_exclusive(struct hmmt_mirror *mirror,
			  struct hmm_dmirror_cmd *cmd, unsigned long start,
			  unsigned long end)
{
	struct mm_struct *mm = mirror->notifier.mm;
	unsigned long addr, next;
	int ret = 0;

	if (!mmget_not_zero(mm))
		return -EINVAL;
	for (addr = start; addr < end && !ret; addr = next) {
		next = min(end, addr + (HMMT_MIRROR_PAGES << PAGE_SHIFT));
		ret = hmmt_exclusive_chunk(mirror, addr, next);
		cond_resched();
	}
	mmput(mm);
	if (ret)
		return ret;
	return hmmt_access(mirror, cmd, start, end, false, true);
}

/*
 * HMM_DMIRROR_CHECK_EXCLUSIVE: 0 once the CPU has taken back every page of
 * [start, end) that HMM_DMIRROR_EXCLUSIVE gave the device, -EPERM while the
 * device still holds one of them exclusively.
 */
static int hmmt_check_exclusive(struct hmmt_mirror *mirror,
				unsigned long start, unsigned long end)
{
	unsigned long vpfn = start >> PAGE_SHIFT;
	void *entry;

	mutex_lock(&mirror->lock);
	entry = xa_find(&mirror->ptab, &vpfn, (end - 1) >> PAGE_SHIFT,
			HMMT_MARK_EXCLUSIVE);
	mutex_unlock(&mirror->lock);
	return entry ? -EPERM : 0;
}

/* ---------------------------------------------------------------------------
 * File operations
 */

static int hmmt_open(struct inode *inode, struct file *filp)
{
	struct hmmt_device *hdev =
		container_of(inode->i_cdev, struct hmmt_device, cdev);
	struct mm_struct *mm = current->mm;
	struct hmmt_mirror *mirror;
	int ret;

	if (!mm)
		return -EINVAL;

	mirror = kzalloc(sizeof(*mirror), GFP_KERNEL);
	if (!mirror)
		return -ENOMEM;
	kref_init(&mirror->ref);
	mirror->hdev = hdev;
	mutex_init(&mirror->lock);
	xa_init(&mirror->ptab);
	INIT_LIST_HEAD(&mirror->inflight);

	/* Mirror the whole user address space of the opener. */
	ret = mmu_interval_notifier_insert(&mirror->notifier, mm, 0,
					   mm->task_size, &hmmt_notifier_ops);
	if (ret) {
		hmmt_mirror_put(mirror);
		return ret;
	}

	filp->private_data = mirror;
	return 0;
}

static int hmmt_release(struct inode *inode, struct file *filp)
{
	struct hmmt_mirror *mirror = filp->private_data;

	/* After this no invalidation callback can run any more. */
	mmu_interval_notifier_remove(&mirror->notifier);

	/*
	 * Pages still on the device stay there and keep the mirror alive;
	 * nobody will look them up in the page table again.
	 */
	mutex_lock(&mirror->lock);
	xa_destroy(&mirror->ptab);
	mutex_unlock(&mirror->lock);

	hmmt_mirror_put(mirror);
	return 0;
}

/*
 * Check the range of a command, common to all ioctls:
 * page aligned start, at least one page, no wrap-around.
 */
static int hmmt_cmd_range(const struct hmm_dmirror_cmd *cmd,
			  unsigned long *startp, unsigned long *endp)
{
	unsigned long start, end;

	if (cmd->addr > ULONG_MAX || !PAGE_ALIGNED(cmd->addr))
		return -EINVAL;
	if (!cmd->npages || cmd->npages > (ULONG_MAX >> PAGE_SHIFT))
		return -EINVAL;
	start = cmd->addr;
	if (check_add_overflow(start, (unsigned long)cmd->npages << PAGE_SHIFT,
			       &end))
		return -EINVAL;

	*startp = start;
	*endp = end;
	return 0;
}

/* HMM_DMIRROR_FLAGS: @flags replaces the file's HMM_DMIRROR_FLAG_* bits. */
static int hmmt_set_flags(struct hmmt_mirror *mirror, u64 flags)
{
	if (flags & ~HMM_DMIRROR_FLAG_FAIL_ALLOC)
		return -EINVAL;
	if (flags & HMM_DMIRROR_FLAG_FAIL_ALLOC)
		set_bit(HMMT_FLAG_FAIL_ALLOC, &mirror->flags);
	else
		clear_bit(HMMT_FLAG_FAIL_ALLOC, &mirror->flags);
	return 0;
}

static long hmmt_ioctl(struct file *filp, unsigned int op, unsigned long arg)
{
	struct hmmt_mirror *mirror = filp->private_data;
	void __user *uarg = (void __user *)arg;
	struct hmm_dmirror_cmd cmd;
	unsigned long start, end;
	int ret;

	if (copy_from_user(&cmd, uarg, sizeof(cmd)))
		return -EFAULT;
	ret = hmmt_cmd_range(&cmd, &start, &end);
	if (ret)
		return ret;
	cmd.cpages = 0;
	cmd.faults = 0;

	switch (op) {
	case HMM_DMIRROR_MIGRATE_TO_DEV:
		ret = hmmt_migrate_range(mirror, &cmd, start, end, true);
		break;
	case HMM_DMIRROR_MIGRATE_TO_SYS:
		ret = hmmt_migrate_range(mirror, &cmd, start, end, false);
		break;
	case HMM_DMIRROR_RELEASE:
		ret = hmmt_release_all(mirror->hdev);
		break;
	case HMM_DMIRROR_READ:
		ret = hmmt_access(mirror, &cmd, start, end, false, true);
		break;
	case HMM_DMIRROR_WRITE:
		ret = hmmt_access(mirror, &cmd, start, end, true, true);
		break;
	case HMM_DMIRROR_SNAPSHOT:
		ret = hmmt_snapshot(mirror, &cmd, start, end);
		break;
	case HMM_DMIRROR_EXCLUSIVE:
		ret = hmmt_exclusive(mirror, &cmd, start, end);
		break;
	case HMM_DMIRROR_CHECK_EXCLUSIVE:
		ret = hmmt_check_exclusive(mirror, start, end);
		break;
	case HMM_DMIRROR_FLAGS:
		ret = hmmt_set_flags(mirror, cmd.npages);
		break;
	default:
		ret = -EINVAL;
	}
	/* cpages and faults only go back to user space on success */
	if (!ret && copy_to_user(uarg, &cmd, sizeof(cmd)))
		ret = -EFAULT;
	return ret;
}

/*
 * mmap() of the device file gives zeroed kernel pages inserted into a
 * VM_MIXEDMAP mapping: memory that migrate_vma must leave alone.
 */
static int hmmt_mmap(struct file *filp, struct vm_area_struct *vma)
{
	unsigned long i, npages = vma_pages(vma);
	int ret = 0;

	for (i = 0; i < npages && !ret; i++) {
		struct page *page = alloc_page(GFP_KERNEL | __GFP_ZERO);

		if (!page)
			return -ENOMEM;
		ret = vm_insert_page(vma, vma->vm_start + i * PAGE_SIZE, page);
		/* vm_insert_page() took a reference of its own if it worked */
		put_page(page);
	}
	return ret;
}

static const struct file_operations hmmt_fops = {
	.owner		= THIS_MODULE,
	.open		= hmmt_open,
	.release	= hmmt_release,
	.mmap		= hmmt_mmap,
	.unlocked_ioctl	= hmmt_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
	.llseek		= noop_llseek,
};

/* ---------------------------------------------------------------------------
 * Devices
 */

/*
 * Read-only counters under /sys/dev/char/<major>:<minor>/:
 * pages_used: device pages currently holding data (0 when nothing is on
 *	the device), chunks: device memory chunks created so far.
 */
static ssize_t pages_used_show(struct device *dev,
			       struct device_attribute *attr, char *buf)
{
	struct hmmt_device *hdev = container_of(dev, struct hmmt_device, dev);
	unsigned long used;

	spin_lock(&hdev->pool_lock);
	used = hdev->pages_used;
	spin_unlock(&hdev->pool_lock);
	return sysfs_emit(buf, "%lu\n", used);
}
static DEVICE_ATTR_RO(pages_used);

static ssize_t chunks_show(struct device *dev, struct device_attribute *attr,
			   char *buf)
{
	struct hmmt_device *hdev = container_of(dev, struct hmmt_device, dev);

	return sysfs_emit(buf, "%u\n", hmmt_nr_chunks(hdev));
}
static DEVICE_ATTR_RO(chunks);

/*
 * How often the core asked this device to give a page back to a CPU fault;
 * the tests use it to see that concurrent faults on one page are handled
 * by one call, not retried over and over.
 */
static ssize_t cpu_faults_show(struct device *dev,
			       struct device_attribute *attr, char *buf)
{
	struct hmmt_device *hdev = container_of(dev, struct hmmt_device, dev);

	return sysfs_emit(buf, "%lld\n", atomic64_read(&hdev->cpu_faults));
}
static DEVICE_ATTR_RO(cpu_faults);

/*
 * A pause, in milliseconds, between collecting a window of device pages for
 * eviction and moving them: the tests use it to have a process unmap them
 * or exit while the eviction holds them.  0 (the default) for none.
 */
static ssize_t evict_delay_ms_show(struct device *dev,
				   struct device_attribute *attr, char *buf)
{
	struct hmmt_device *hdev = container_of(dev, struct hmmt_device, dev);

	return sysfs_emit(buf, "%u\n", READ_ONCE(hdev->evict_delay_ms));
}

static ssize_t evict_delay_ms_store(struct device *dev,
				    struct device_attribute *attr,
				    const char *buf, size_t count)
{
	struct hmmt_device *hdev = container_of(dev, struct hmmt_device, dev);
	unsigned int ms;
	int ret;

	ret = kstrtouint(buf, 0, &ms);
	if (ret)
		return ret;
	if (ms > 10000)
		return -EINVAL;
	WRITE_ONCE(hdev->evict_delay_ms, ms);
	return count;
}
static DEVICE_ATTR_RW(evict_delay_ms);

/*
 * How many device pages an eviction hands migrate_device_range() at a time,
 * from 1 to 512 (the default).  A window that is not a multiple of 512
 * pages cuts through device THPs: the tests use it to have the core split
 * a folio of which the range holds only a part.
 */
static ssize_t evict_window_show(struct device *dev,
				 struct device_attribute *attr, char *buf)
{
	struct hmmt_device *hdev = container_of(dev, struct hmmt_device, dev);

	return sysfs_emit(buf, "%u\n", READ_ONCE(hdev->evict_window));
}

static ssize_t evict_window_store(struct device *dev,
				  struct device_attribute *attr,
				  const char *buf, size_t count)
{
	struct hmmt_device *hdev = container_of(dev, struct hmmt_device, dev);
	unsigned int pages;
	int ret;

	ret = kstrtouint(buf, 0, &pages);
	if (ret)
		return ret;
	if (!pages || pages > HMMT_BATCH)
		return -EINVAL;
	WRITE_ONCE(hdev->evict_window, pages);
	return count;
}
static DEVICE_ATTR_RW(evict_window);

static struct attribute *hmmt_attrs[] = {
	&dev_attr_pages_used.attr,
	&dev_attr_chunks.attr,
	&dev_attr_cpu_faults.attr,
	&dev_attr_evict_delay_ms.attr,
	&dev_attr_evict_window.attr,
	NULL,
};
ATTRIBUTE_GROUPS(hmmt);

static void hmmt_device_release(struct device *dev)
{
	struct hmmt_device *hdev = container_of(dev, struct hmmt_device, dev);

	mutex_destroy(&hdev->grow_lock);
	kfree(hdev);
}

static void hmmt_device_destroy(struct hmmt_device *hdev);

/*
 * Create /dev/hmm_dmirror@minor.  A device-coherent device (@spm_addr set)
 * gets its memory right away, so that a wrong address fails the module
 * load instead of the first migration.
 */
static struct hmmt_device *hmmt_device_create(unsigned int minor,
					      unsigned long spm_addr)
{
	struct hmmt_device *hdev;
	int ret;

	hdev = kzalloc(sizeof(*hdev), GFP_KERNEL);
	if (!hdev)
		return ERR_PTR(-ENOMEM);
	hdev->mem_type = spm_addr ? HMM_DMIRROR_MEMORY_DEVICE_COHERENT :
				    HMM_DMIRROR_MEMORY_DEVICE_PRIVATE;
	hdev->spm_addr = spm_addr;
	hdev->evict_window = HMMT_BATCH;
	mutex_init(&hdev->grow_lock);
	spin_lock_init(&hdev->pool_lock);

	device_initialize(&hdev->dev);
	hdev->dev.devt = MKDEV(MAJOR(hmmt_devt), minor);
	hdev->dev.groups = hmmt_groups;
	hdev->dev.release = hmmt_device_release;
	ret = dev_set_name(&hdev->dev, "hmm_dmirror%u", minor);
	if (ret)
		goto out_put;

	cdev_init(&hdev->cdev, &hmmt_fops);
	hdev->cdev.owner = THIS_MODULE;
	ret = cdev_device_add(&hdev->cdev, &hdev->dev);
	if (ret)
		goto out_put;

	if (hmmt_coherent(hdev)) {
		ret = hmmt_chunk_add(hdev, 1);
		if (ret) {
			dev_err(&hdev->dev,
				"no device-coherent memory at %#lx: %d\n",
				spm_addr, ret);
			hmmt_device_destroy(hdev);
			return ERR_PTR(ret);
		}
	}
	return hdev;

out_put:
	put_device(&hdev->dev);
	return ERR_PTR(ret);
}

static void hmmt_device_destroy(struct hmmt_device *hdev)
{
	cdev_device_del(&hdev->cdev, &hdev->dev);
	hmmt_destroy_memory(hdev);
	put_device(&hdev->dev);
}

/* The specific-purpose memory of device @minor, 0 for device-private. */
static unsigned long hmmt_spm_addr(unsigned int minor)
{
	if (minor < HMMT_PRIVATE_DEVICES)
		return 0;
	return minor == HMMT_PRIVATE_DEVICES ? spm_addr_dev1 : spm_addr_dev0;
}

static int __init hmmt_init(void)
{
	unsigned int i, ndevices = HMMT_PRIVATE_DEVICES;
	int ret;

	if (spm_addr_dev0 && spm_addr_dev1)
		ndevices = HMMT_MINORS;
	else if (spm_addr_dev0 || spm_addr_dev1)
		pr_warn("device-coherent devices need both spm_addr_dev0 and spm_addr_dev1\n");

	ret = alloc_chrdev_region(&hmmt_devt, 0, HMMT_MINORS, "HMM_DMIRROR");
	if (ret)
		return ret;

	for (i = 0; i < ndevices; i++) {
		struct hmmt_device *hdev = hmmt_device_create(i,
							      hmmt_spm_addr(i));

		if (IS_ERR(hdev)) {
			ret = PTR_ERR(hdev);
			goto out_destroy;
		}
		hmmt_devices[i] = hdev;
	}

	pr_info("loaded: a test device for HMM, not for production use\n");
	return 0;

out_destroy:
	while (i--) {
		hmmt_device_destroy(hmmt_devices[i]);
		hmmt_devices[i] = NULL;
	}
	unregister_chrdev_region(hmmt_devt, HMMT_MINORS);
	return ret;
}

static void __exit hmmt_exit(void)
{
	unsigned int i;

	for (i = 0; i < HMMT_MINORS; i++) {
		if (!hmmt_devices[i])
			continue;
		hmmt_device_destroy(hmmt_devices[i]);
		hmmt_devices[i] = NULL;
	}
	unregister_chrdev_region(hmmt_devt, HMMT_MINORS);
}

module_init(hmmt_init);
module_exit(hmmt_exit);
MODULE_DESCRIPTION("Test driver for HMM mirroring and device memory");
MODULE_LICENSE("GPL");
