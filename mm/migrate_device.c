// SPDX-License-Identifier: GPL-2.0
/*
 * Migration of anonymous memory to and from device memory, driven by a
 * device driver (struct migrate_vma, migrate_device_range()).
 *
 * A migration runs in three calls with the driver's work in between:
 *
 *  1. migrate_vma_setup() (or migrate_device_range()) collects the source
 *     pages, locks them and replaces every CPU mapping of them with a
 *     migration entry.  CPU faults on those entries sleep on the page lock.
 *  2. The driver allocates destination pages, copies the data and fills in
 *     the dst array; migrate_vma_pages() (or migrate_device_pages()) then
 *     moves the page metadata (mapping, index, flags, memcg charge) over and
 *     maps new pages into unpopulated addresses.
 *  3. migrate_vma_finalize() (or migrate_device_finalize()) turns every
 *     migration entry back into a mapping, of the new page where the
 *     migration went through and of the old one elsewhere, and drops the
 *     locks and references taken in step 1.
 *
 * Reference and lock rules for a collected source page: from collection to
 * finalize this code holds one reference and the page lock.  For a page on
 * the LRU the reference is the one folio_isolate_lru() took; the reference
 * taken while collecting is dropped at isolation.  The exception is
 * struct migrate_vma.fault_page, whose lock (and one more reference) belong
 * to the fault handler: it is never locked or unlocked here.  Destination
 * pages arrive locked with one reference owned by the driver; finalize
 * unlocks them and drops that reference, so a destination page that did not
 * get used is freed there.
 *
 * Every lock is taken with a trylock while collecting (two migrations of
 * overlapping ranges would otherwise deadlock on each other's pages); a page
 * that cannot be locked at once is simply left out, migration being best
 * effort.
 */
#include <linux/delay.h>
#include <linux/export.h>
#include <linux/memcontrol.h>
#include <linux/memremap.h>
#include <linux/migrate.h>
#include <linux/mm.h>
#include <linux/mm_inline.h>
#include <linux/mmu_notifier.h>
#include <linux/oom.h>
#include <linux/pagemap.h>
#include <linux/pagewalk.h>
#include <linux/pgalloc.h>
#include <linux/rmap.h>
#include <linux/swap.h>
#include <linux/swapops.h>
#include <linux/userfaultfd_k.h>
#include <asm/tlbflush.h>
#include "internal.h"

/*
 * State of one page table walk of migrate_vma_setup().  The walker may hand
 * us the same PMD several times (ACTION_AGAIN after splitting a huge page or
 * waiting for a migration); @next says where the previous visit stopped, so
 * that no entry is recorded twice.
 */
struct mvd_walk {
	struct migrate_vma *mig;
	unsigned long next;
	/* THPs collected whole, as MIGRATE_PFN_COMPOUND entries. */
	unsigned long compound;
	/* A large folio that could not be split: do not try again. */
	struct folio *unsplittable;
};

static void mvd_record(struct mvd_walk *w, unsigned long addr,
		       unsigned long mpfn)
{
	struct migrate_vma *mig = w->mig;

	mig->src[(addr - mig->start) >> PAGE_SHIFT] = mpfn;
	if (mpfn & MIGRATE_PFN_MIGRATE)
		mig->cpages++;
}

static void mvd_record_range(struct mvd_walk *w, unsigned long addr,
			     unsigned long end, unsigned long mpfn)
{
	for (; addr < end; addr += PAGE_SIZE)
		mvd_record(w, addr, mpfn);
	w->next = max(w->next, end);
}

/*
 * An address without a page can be given a new page by migrate_vma_pages()
 * if the VMA is private anonymous memory, whatever the select flags: a
 * driver migrating its own pages back may fill the holes of the range too.
 */
static unsigned long mvd_empty_entry(struct vm_area_struct *vma)
{
	return vma_is_anonymous(vma) ? MIGRATE_PFN_MIGRATE : 0;
}

/*
 * The shared zero page reads as zeroes, like a hole, but it is system
 * memory: it is offered only when system memory is selected.
 */
static unsigned long mvd_zero_entry(struct mvd_walk *w,
				    struct vm_area_struct *vma)
{
	if (w->mig->flags & MIGRATE_VMA_SELECT_SYSTEM)
		return mvd_empty_entry(vma);
	return 0;
}

/*
 * Can [@addr, @end), with nothing mapped or the huge zero page, be given a
 * PMD-sized folio as one MIGRATE_PFN_COMPOUND entry?  Only if the driver
 * asked for compound entries, the range is one aligned PMD, and the VMA
 * could map a PMD: private anonymous memory not opted out of THPs (by
 * MADV_NOHUGEPAGE or prctl()), on an architecture that has non-present
 * PMDs to map device-private memory with and hardware that has huge PMDs.
 */
static bool mvd_huge_hole(const struct mvd_walk *w, struct vm_area_struct *vma,
			  unsigned long addr, unsigned long end)
{
#ifdef CONFIG_ARCH_ENABLE_THP_MIGRATION
	return (w->mig->flags & MIGRATE_VMA_SELECT_COMPOUND) &&
	       IS_ALIGNED(addr, HPAGE_PMD_SIZE) &&
	       end - addr == HPAGE_PMD_SIZE && vma_is_anonymous(vma) &&
	       !thp_disabled_by_hw() && !vma_thp_disabled(vma, vma->vm_flags);
#else
	return false;
#endif
}

/*
 * Record [@addr, @end), inside one PMD, where nothing is mapped (or the
 * zero page) and @mpfn says whether a page may be supplied: a whole PMD as
 * one compound entry without a pfn if mvd_huge_hole() allows it, else
 * page by page.
 */
static void mvd_record_hole(struct mvd_walk *w, struct vm_area_struct *vma,
			    unsigned long addr, unsigned long end,
			    unsigned long mpfn)
{
	if (mpfn && mvd_huge_hole(w, vma, addr, end)) {
		mvd_record(w, addr, mpfn | MIGRATE_PFN_COMPOUND);
		mpfn = 0;
		addr += PAGE_SIZE;
	}
	mvd_record_range(w, addr, end, mpfn);
}

/* A hole may span many PMDs (a missing PUD, say): one at a time. */
static int mvd_walk_hole(unsigned long start, unsigned long end,
			 __always_unused int depth, struct mm_walk *walk)
{
	struct mvd_walk *w = walk->private;
	unsigned long mpfn = mvd_empty_entry(walk->vma);
	unsigned long addr, next;

	for (addr = max(start, w->next); addr < end; addr = next) {
		next = pmd_addr_end(addr, end);
		mvd_record_hole(w, walk->vma, addr, next, mpfn);
	}
	return 0;
}

/*
 * Does @folio hold @mig's fault page?  The fault handler then holds the
 * folio's lock and a reference to it, whatever page of it faulted.
 */
static bool mvd_holds_fault_page(const struct migrate_vma *mig,
				 const struct folio *folio)
{
	return mig->fault_page && page_folio(mig->fault_page) == folio;
}

/*
 * Split @folio, which is locked, so that its pages can be collected one by
 * one, then drop the lock and our reference.  If it cannot be split, the
 * walk leaves its pages out (@w->unsplittable).
 *
 * A large device folio that holds the fault page is locked by the fault
 * handler, which also holds a reference to the fault page: the split then
 * works under that lock and reference, and leaves the fault page in a
 * folio of its own, still locked and referenced, as the handler expects.
 */
static void mvd_split_locked(struct mvd_walk *w, struct folio *folio)
{
	if (mvd_holds_fault_page(w->mig, folio)) {
		folio_put(folio);
		if (split_huge_page(w->mig->fault_page))
			w->unsplittable = folio;
		return;
	}
	/* The lock and reference stay with the first page, now @folio. */
	if (split_folio(folio))
		w->unsplittable = folio;
	folio_unlock(folio);
	folio_put(folio);
}

/*
 * mvd_split_locked() for a folio not locked yet; one that someone else
 * holds locked is left out.  Called without page table locks, with a
 * reference on @folio which is dropped.
 */
static void mvd_split_folio(struct mvd_walk *w, struct folio *folio)
{
	if (mvd_holds_fault_page(w->mig, folio) || folio_trylock(folio)) {
		mvd_split_locked(w, folio);
		return;
	}
	w->unsplittable = folio;
	folio_put(folio);
}

/* The migration entry for @pfn, mapped @writable or anon-@exclusive. */
static swp_entry_t mvd_migration_entry(unsigned long pfn, bool writable,
				       bool exclusive)
{
	if (writable)
		return make_writable_migration_entry(pfn);
	if (exclusive)
		return make_readable_exclusive_migration_entry(pfn);
	return make_readable_migration_entry(pfn);
}

static pte_t mvd_migration_pte(struct page *page, pte_t old, bool writable,
			       bool exclusive)
{
	swp_entry_t entry = mvd_migration_entry(page_to_pfn(page), writable,
						exclusive);
	pte_t swp;

	if (!pte_present(old)) {
		/* A device-private entry: carry its software bits over. */
		swp = swp_entry_to_pte(entry);
		if (pte_swp_soft_dirty(old))
			swp = pte_swp_mksoft_dirty(swp);
		if (pte_swp_uffd_wp(old))
			swp = pte_swp_mkuffd_wp(swp);
		return swp;
	}

	if (pte_young(old))
		entry = make_migration_entry_young(entry);
	if (pte_dirty(old))
		entry = make_migration_entry_dirty(entry);
	swp = swp_entry_to_pte(entry);
	if (pte_soft_dirty(old))
		swp = pte_swp_mksoft_dirty(swp);
	if (pte_uffd_wp(old))
		swp = pte_swp_mkuffd_wp(swp);
	return swp;
}

/*
 * Lock @page and replace the entry at @ptep, which maps it, with a migration
 * entry.  Called with the page table lock held.  Returns the src entry for
 * the address: the page with MIGRATE_PFN_MIGRATE, or 0 when the page cannot
 * be taken now.
 *
 * Present entries that are not anon-exclusive are cleared without a TLB
 * flush; *@flush asks the caller to flush before it drops the page table
 * lock.  Anon-exclusive entries are flushed at once, because the exclusive
 * marker may only be dropped once no CPU can still write through a stale TLB
 * entry and GUP-fast can no longer find the page.
 */
static unsigned long mvd_take_page(struct mvd_walk *w,
				   struct vm_area_struct *vma,
				   unsigned long addr, pte_t *ptep,
				   struct page *page, bool writable,
				   bool *flush)
{
	struct folio *folio = page_folio(page);
	bool locked_by_caller = page == w->mig->fault_page;
	struct mm_struct *mm = vma->vm_mm;
	bool present, exclusive;
	pte_t old;

	/* The page table lock keeps the page alive until we hold our own ref. */
	folio_get(folio);
	if (!locked_by_caller && !folio_trylock(folio)) {
		folio_put(folio);
		return 0;
	}

	old = ptep_get(ptep);
	present = pte_present(old);
	exclusive = PageAnonExclusive(page);
	if (present)
		flush_cache_page(vma, addr, pte_pfn(old));

	if (present && exclusive) {
		old = ptep_clear_flush(vma, addr, ptep);
	} else {
		old = ptep_get_and_clear(mm, addr, ptep);
		if (present)
			*flush = true;
	}

	/* A pinned exclusive page must stay where it is. */
	if (exclusive && folio_try_share_anon_rmap_pte(folio, page)) {
		set_pte_at(mm, addr, ptep, old);
		if (!locked_by_caller)
			folio_unlock(folio);
		folio_put(folio);
		return 0;
	}

	if (present && pte_dirty(old))
		folio_mark_dirty(folio);

	set_pte_at(mm, addr, ptep,
		   mvd_migration_pte(page, old, writable, exclusive));

	/*
	 * The mapping is gone: drop its rmap and the reference it held.  The
	 * page stays alive through the reference taken above.
	 */
	folio_remove_rmap_pte(folio, page, vma);
	folio_put(folio);

	return migrate_pfn(page_to_pfn(page)) | MIGRATE_PFN_MIGRATE |
		(writable ? MIGRATE_PFN_WRITE : 0);
}

/*
 * Whether @mig collects @page, mapped by a present PTE: a system page with
 * MIGRATE_VMA_SELECT_SYSTEM, a device-coherent page of the caller's own
 * (@mig->pgmap_owner) with MIGRATE_VMA_SELECT_DEVICE_COHERENT.  Other
 * ZONE_DEVICE pages (DAX, P2P memory) are not process memory that moves.
 */
static bool mvd_selects_present(const struct migrate_vma *mig,
				const struct page *page)
{
	if (!is_zone_device_page(page))
		return mig->flags & MIGRATE_VMA_SELECT_SYSTEM;
	return is_device_coherent_page(page) &&
	       (mig->flags & MIGRATE_VMA_SELECT_DEVICE_COHERENT) &&
	       page_pgmap(page)->owner == mig->pgmap_owner;
}

/*
 * Work out the src entry for one page table entry.  Called with the page
 * table lock held.  A large folio cannot be split here; it is returned in
 * *@split with a reference, for the caller to split after dropping the lock.
 */
static unsigned long mvd_collect_pte(struct mvd_walk *w,
				     struct vm_area_struct *vma,
				     unsigned long addr, pte_t *ptep,
				     bool *flush, struct folio **split)
{
	struct migrate_vma *mig = w->mig;
	pte_t pte = ptep_get(ptep);
	struct folio *folio;
	struct page *page;
	bool writable;

	if (pte_none(pte))
		return mvd_empty_entry(vma);

	if (pte_present(pte)) {
		if (is_zero_pfn(pte_pfn(pte)))
			return mvd_zero_entry(w, vma);
		/* Migrating device-private pages back: skip the lookup. */
		if (!(mig->flags & (MIGRATE_VMA_SELECT_SYSTEM |
				    MIGRATE_VMA_SELECT_DEVICE_COHERENT)))
			return 0;
		page = vm_normal_page(vma, addr, pte);
		if (!page || !mvd_selects_present(mig, page))
			return 0;
		writable = pte_write(pte);
	} else {
		swp_entry_t entry = pte_to_swp_entry(pte);

		/* Swapped out, under migration elsewhere, markers: skip. */
		if (!is_device_private_entry(entry) ||
		    !(mig->flags & MIGRATE_VMA_SELECT_DEVICE_PRIVATE))
			return 0;
		page = pfn_swap_entry_to_page(entry);
		if (page_pgmap(page)->owner != mig->pgmap_owner)
			return 0;
		writable = is_writable_device_private_entry(entry);
	}

	/* Only anonymous memory moves; page cache and shmem pages stay. */
	folio = page_folio(page);
	if (!folio_test_anon(folio) || folio_test_ksm(folio))
		return 0;

	if (folio_test_large(folio)) {
		if (folio != w->unsplittable) {
			folio_get(folio);
			*split = folio;
		}
		return 0;
	}

	return mvd_take_page(w, vma, addr, ptep, page, writable, flush);
}

static void mvd_collect_ptes(struct mvd_walk *w, struct mm_walk *walk,
			     pmd_t *pmdp, unsigned long addr,
			     unsigned long end)
{
	struct folio *split = NULL;
	unsigned long first = addr;
	bool flush = false;
	pte_t *table, *ptep;
	spinlock_t *ptl;	/* page table lock */

	table = pte_offset_map_lock(walk->mm, pmdp, addr, &ptl);
	if (!table) {
		/* The PMD changed under us; look at it again. */
		walk->action = ACTION_AGAIN;
		return;
	}

	for (ptep = table; addr < end; addr += PAGE_SIZE, ptep++) {
		unsigned long mpfn;

		mpfn = mvd_collect_pte(w, walk->vma, addr, ptep, &flush, &split);
		if (split)
			break;
		mvd_record(w, addr, mpfn);
	}
	w->next = addr;

	if (flush)
		flush_tlb_range(walk->vma, first, addr);
	pte_unmap_unlock(table, ptl);

	if (split) {
		/* Resume at the large folio once it is split (or known not to). */
		mvd_split_folio(w, split);
		walk->action = ACTION_AGAIN;
	}
}

/*
 * Can the PMD-mapped THP @folio at [@addr, @end) be collected whole, as one
 * src entry?  The range must cover it, and this PMD must be its only
 * mapping: then no other page table needs unmapping, and a later split of
 * the folio (see mvd_split_compound()) has only this PMD to split, which
 * nothing can copy meanwhile (fork() and mremap() take the mmap lock for
 * writing).  A folio in the swap cache is split first, as before.
 */
static bool mvd_whole_thp(struct folio *folio, unsigned long addr,
			  unsigned long end)
{
	return thp_migration_supported() && IS_ALIGNED(addr, HPAGE_PMD_SIZE) &&
	       end - addr == HPAGE_PMD_SIZE && folio_test_pmd_mappable(folio) &&
	       !folio_test_swapcache(folio) && folio_large_mapcount(folio) == 1;
}

/*
 * Lock the THP @folio mapped by @pmdp at @addr and replace the PMD with a
 * PMD migration entry; record it as one MIGRATE_PFN_COMPOUND entry.  Called
 * with the PMD lock held.  Returns false, with nothing changed, if the
 * folio is locked by someone else or pinned.
 */
static bool mvd_take_thp(struct mvd_walk *w, struct vm_area_struct *vma,
			 pmd_t *pmdp, unsigned long addr, unsigned long end,
			 struct folio *folio)
{
	struct page_vma_mapped_walk pvmw = {
		.vma = vma,
		.address = addr,
		.pmd = pmdp,
	};
	unsigned long mpfn;

	/* The PMD lock keeps the folio alive until we hold our own ref. */
	folio_get(folio);
	if (!folio_trylock(folio))
		goto put;
	mpfn = migrate_pfn(folio_pfn(folio)) | MIGRATE_PFN_MIGRATE |
	       MIGRATE_PFN_COMPOUND |
	       (pmd_write(pmdp_get(pmdp)) ? MIGRATE_PFN_WRITE : 0);
	/* Drops the mapping's rmap and reference; -EBUSY if pinned. */
	if (set_pmd_migration_entry(&pvmw, &folio->page)) {
		folio_unlock(folio);
		goto put;
	}
	mvd_record(w, addr, mpfn);
	mvd_record_range(w, addr + PAGE_SIZE, end, 0);
	w->compound++;
	return true;
put:
	folio_put(folio);
	return false;
}

/*
 * A PMD that maps a huge page: collect a THP whole if the range covers it,
 * otherwise split it, then look at the PTEs.
 */
static void mvd_collect_huge_pmd(struct mvd_walk *w, struct mm_walk *walk,
				 pmd_t *pmdp, unsigned long addr,
				 unsigned long end)
{
	struct folio *folio;
	spinlock_t *ptl;	/* page table lock */
	pmd_t pmd;

	ptl = pmd_lock(walk->mm, pmdp);
	pmd = pmdp_get(pmdp);
	if (!pmd_trans_huge(pmd)) {
		spin_unlock(ptl);
		if (pmd_present(pmd) && (pmd_leaf(pmd) || pmd_devmap(pmd)))
			mvd_record_range(w, addr, end, 0); /* DAX and the like */
		else
			walk->action = ACTION_AGAIN;
		return;
	}

	folio = pmd_folio(pmd);
	if (is_huge_zero_folio(folio)) {
		unsigned long mpfn = mvd_zero_entry(w, walk->vma);

		spin_unlock(ptl);
		if (!mpfn || mvd_huge_hole(w, walk->vma, addr, end)) {
			/* migrate_vma_pages() splits it if it must. */
			mvd_record_hole(w, walk->vma, addr, end, mpfn);
			return;
		}
		/* Zero PTEs can be replaced one by one by migrate_vma_pages(). */
		split_huge_pmd(walk->vma, pmdp, addr);
		walk->action = ACTION_AGAIN;
		return;
	}

	if (!(w->mig->flags & MIGRATE_VMA_SELECT_SYSTEM) ||
	    !folio_test_anon(folio) || folio == w->unsplittable) {
		spin_unlock(ptl);
		mvd_record_range(w, addr, end, 0);
		return;
	}

	if (mvd_whole_thp(folio, addr, end) &&
	    mvd_take_thp(w, walk->vma, pmdp, addr, end, folio)) {
		spin_unlock(ptl);
		return;
	}

	folio_get(folio);
	spin_unlock(ptl);
	mvd_split_folio(w, folio);
	walk->action = ACTION_AGAIN;
}

#ifdef CONFIG_ARCH_ENABLE_THP_MIGRATION
/*
 * Replace the device-private PMD at @pmdp, which maps the locked and
 * referenced @folio, with a PMD migration entry, as try_to_migrate() would;
 * record it as one MIGRATE_PFN_COMPOUND entry, which keeps the lock and the
 * reference.  Called with the PMD lock held, for a range that covers the
 * PMD, which is the folio's only mapping.
 */
static void mvd_take_device_pmd(struct mvd_walk *w, struct vm_area_struct *vma,
				pmd_t *pmdp, unsigned long addr,
				unsigned long end, struct folio *folio)
{
	swp_entry_t entry = pmd_to_swp_entry(pmdp_get(pmdp));
	bool writable = is_writable_device_private_entry(entry);
	DEFINE_FOLIO_VMA_WALK(pvmw, folio, vma, addr, 0);

	/* The mapping goes, and its rmap and reference with it. */
	pvmw.pmd = pmdp;
	set_pmd_migration_entry(&pvmw, &folio->page);

	mvd_record(w, addr, migrate_pfn(folio_pfn(folio)) |
			    MIGRATE_PFN_MIGRATE | MIGRATE_PFN_COMPOUND |
			    (writable ? MIGRATE_PFN_WRITE : 0));
	mvd_record_range(w, addr + PAGE_SIZE, end, 0);
	w->compound++;
}

/*
 * A device-private PMD.  If @w collects its folio (the rules of
 * mvd_collect_pte() for a device-private PTE), lock it, or skip it if
 * someone else holds its lock (a CPU fault bringing it back, another
 * migration), leaving the PMD alone: 6.12 skips a THP it cannot lock.
 * Take it whole when the driver asked for compound entries, the range
 * covers it and nothing else maps it, like a THP (mvd_whole_thp()).
 * Otherwise map the folio by PTEs and split it, still under its lock, and
 * look again: mvd_collect_ptes() takes its pages one by one.  Secondary
 * MMUs already dropped the range (mvd_collect()).
 */
static void mvd_collect_device_pmd(struct mvd_walk *w, struct mm_walk *walk,
				   pmd_t *pmdp, unsigned long addr,
				   unsigned long end)
{
	struct migrate_vma *mig = w->mig;
	spinlock_t *ptl;	/* PMD lock */
	struct folio *folio;
	bool locked_by_caller;
	pmd_t pmd;

	ptl = pmd_lock(walk->mm, pmdp);
	pmd = pmdp_get(pmdp);
	if (!is_pmd_device_private_entry(pmd)) {
		spin_unlock(ptl);
		walk->action = ACTION_AGAIN;
		return;
	}
	/* The mapping keeps the folio, and its pgmap, alive. */
	folio = pfn_swap_entry_folio(pmd_to_swp_entry(pmd));
	if (!(mig->flags & MIGRATE_VMA_SELECT_DEVICE_PRIVATE) ||
	    folio->pgmap->owner != mig->pgmap_owner)
		goto skip;

	/* Our own reference, for after the PMD lock or the mapping is gone. */
	folio_get(folio);
	locked_by_caller = mvd_holds_fault_page(mig, folio);
	if (!locked_by_caller && !folio_trylock(folio)) {
		folio_put(folio);
		goto skip;
	}
	if ((mig->flags & MIGRATE_VMA_SELECT_COMPOUND) &&
	    IS_ALIGNED(addr, HPAGE_PMD_SIZE) && end - addr == HPAGE_PMD_SIZE &&
	    folio_large_mapcount(folio) == 1) {
		mvd_take_device_pmd(w, walk->vma, pmdp, addr, end, folio);
		spin_unlock(ptl);
		return;
	}
	split_huge_pmd_locked(walk->vma, addr & HPAGE_PMD_MASK, pmdp, false,
			      NULL);
	spin_unlock(ptl);
	/* Still under the lock, so that nobody can take it in between. */
	mvd_split_locked(w, folio);
	walk->action = ACTION_AGAIN;
	return;
skip:
	spin_unlock(ptl);
	mvd_record_range(w, addr, end, 0);
}
#else
/* There are no device-private PMDs to collect. */
static void mvd_collect_device_pmd(struct mvd_walk *w, struct mm_walk *walk,
				   pmd_t *pmdp, unsigned long addr,
				   unsigned long end)
{
	mvd_record_range(w, addr, end, 0);
}
#endif

static int mvd_walk_pmd(pmd_t *pmdp, unsigned long start, unsigned long end,
			struct mm_walk *walk)
{
	struct mvd_walk *w = walk->private;
	unsigned long addr = max(start, w->next);
	pmd_t pmd = pmdp_get_lockless(pmdp);

	if (addr >= end)
		return 0;

	if (pmd_none(pmd))
		return mvd_walk_hole(addr, end, -1, walk);

	if (!pmd_present(pmd)) {
		if (is_pmd_migration_entry(pmd)) {
			/* A THP is being migrated by someone else: wait. */
			pmd_migration_entry_wait(walk->mm, pmdp);
			walk->action = ACTION_AGAIN;
		} else if (is_pmd_device_private_entry(pmd)) {
			mvd_collect_device_pmd(w, walk, pmdp, addr, end);
		} else {
			mvd_record_range(w, addr, end, 0);
		}
		return 0;
	}

	/*
	 * pmd_trans_huge() also catches a THP PMD that a split has
	 * temporarily invalidated: the PMD lock then waits for the split.
	 */
	if (pmd_trans_huge(pmd) || pmd_devmap(pmd) || pmd_leaf(pmd))
		mvd_collect_huge_pmd(w, walk, pmdp, addr, end);
	else
		mvd_collect_ptes(w, walk, pmdp, addr, end);
	return 0;
}

static const struct mm_walk_ops mvd_walk_ops = {
	.pmd_entry	= mvd_walk_pmd,
	.pte_hole	= mvd_walk_hole,
	.walk_lock	= PGWALK_RDLOCK,
};

/*
 * Invalidate secondary MMU mappings of [@start, @mig->end) before its page
 * table entries change.  The owner lets a driver recognise the invalidation
 * as its own migration's.
 */
static void mvd_notify_start(struct mmu_notifier_range *range,
			     struct migrate_vma *mig, unsigned long start)
{
	mmu_notifier_range_init_owner(range, MMU_NOTIFY_MIGRATE, 0,
				      mig->vma->vm_mm, start, mig->end,
				      mig->pgmap_owner);
	mmu_notifier_invalidate_range_start(range);
}

/*
 * First step of migrate_vma_setup(): walk [start, end), lock the pages that
 * can move and put migration entries in their place in this mm.  Pages that
 * other page tables map too are unmapped from those later, by
 * mvd_unmap_pages().  Returns the number of THPs collected whole.
 */
static unsigned long mvd_collect(struct migrate_vma *mig)
{
	struct mvd_walk w = { .mig = mig, .next = mig->start };
	struct vm_area_struct *vma = mig->vma;
	struct mmu_notifier_range range;

	mvd_notify_start(&range, mig, mig->start);
	walk_page_range_vma(vma, mig->start, mig->end, &mvd_walk_ops, &w);
	mmu_notifier_invalidate_range_end(&range);
	return w.compound;
}

/*
 * Split the THP of the MIGRATE_PFN_COMPOUND entry @mig->src[@i], collected
 * by mvd_take_thp() or mvd_take_device_pmd() and still held (locked,
 * isolated, unmapped), into base
 * pages, and give each its own entry, with the flags of the compound one.
 * Its PMD migration entry becomes a table of PTE migration entries first;
 * no invalidation is needed for that, secondary MMUs having dropped the
 * range when the entry was installed.  If something zapped the entry
 * meanwhile, there is nothing to split there.  Returns false, with the
 * entry unchanged, if the folio cannot be split (a stray reference): it is
 * then mapped by PTEs again when put back.
 */
static bool mvd_split_compound(struct migrate_vma *mig, unsigned long i)
{
	unsigned long flags = mig->src[i] & (MIGRATE_PFN_MIGRATE |
					     MIGRATE_PFN_WRITE);
	unsigned long addr = mig->start + (i << PAGE_SHIFT);
	struct page *head = migrate_pfn_to_page(mig->src[i]);
	struct mm_struct *mm = mig->vma->vm_mm;
	struct folio *folio = page_folio(head);
	unsigned long j, nr = folio_nr_pages(folio);
	bool holds_fault_page = mvd_holds_fault_page(mig, folio);
	spinlock_t *ptl;	/* PMD lock */
	pmd_t *pmdp;

	pmdp = mm_find_pmd(mm, addr);
	if (pmdp) {
		ptl = pmd_lock(mm, pmdp);
		if (is_pmd_migration_entry(*pmdp) &&
		    pfn_swap_entry_to_page(pmd_to_swp_entry(*pmdp)) == head)
			split_huge_pmd_locked(mig->vma, addr, pmdp, false, NULL);
		spin_unlock(ptl);
	}

	/*
	 * The fault handler's reference to a device folio holding the fault
	 * page stands in for ours during the split, which wants exactly one;
	 * afterwards the fault page's new folio gets ours back.
	 */
	if (holds_fault_page)
		folio_put(folio);
	if (folio_split_unmapped(folio, 0)) {
		if (holds_fault_page)
			folio_get(folio);
		return false;
	}
	if (holds_fault_page)
		folio_get(page_folio(mig->fault_page));
	for (j = 0; j < nr; j++)
		mig->src[i + j] = migrate_pfn(page_to_pfn(head + j)) | flags;
	return true;
}

/*
 * The end of a migration for one unmapped, locked folio: its migration
 * entries become mappings of @target, the destination it moved to or the
 * folio itself.  A system @target goes on the LRU before its mappings
 * return, so that an mlocked one gets its mlock count rebuilt.  Drops the
 * collection's reference on @folio, and its lock unless @keep_locked (the
 * fault page, whose lock belongs to the fault handler).
 */
static void mvd_put_back(struct folio *folio, struct folio *target,
			 bool keep_locked)
{
	if (!folio_is_zone_device(target))
		folio_add_lru(target);
	remove_migration_ptes(folio, target, 0);
	/*
	 * A zap of part of the range meanwhile leaves a large folio mapped
	 * in part, which nothing else would queue for a split.
	 */
	if (folio_test_large(target) && folio_mapped(target) &&
	    !folio_entire_mapcount(target) &&
	    folio_large_mapcount(target) < folio_nr_pages(target))
		deferred_split_folio(target, true);
	if (!keep_locked)
		folio_unlock(folio);
	folio_put(folio);
}

/*
 * For a driver that did not ask for MIGRATE_VMA_SELECT_COMPOUND: give
 * every page of the THPs collected whole its own entry, as if they had
 * been split before collection.  One that cannot be split is put back.
 * Returns the new number of entries marked MIGRATE_PFN_MIGRATE.
 */
static unsigned long mvd_split_compounds(struct migrate_vma *mig)
{
	unsigned long i, moving = 0;

	for (i = 0; i < mig->npages; i++) {
		struct page *page = migrate_pfn_to_page(mig->src[i]);
		struct folio *folio;

		if (!(mig->src[i] & MIGRATE_PFN_MIGRATE))
			continue;
		/* After a split, the loop goes on through the new entries. */
		if ((mig->src[i] & MIGRATE_PFN_COMPOUND) &&
		    !mvd_split_compound(mig, i)) {
			folio = page_folio(page);
			mvd_put_back(folio, folio, false);
			mig->src[i] = 0;
			continue;
		}
		moving++;
	}
	return moving;
}

/*
 * Can @folio, locked, unmapped and held by one reference of ours, be
 * migrated?  Anything beyond the references its mappings, swap cache slot,
 * our reference and the fault handler's (for the fault page) account for is
 * someone else's (a GUP pin, a racing lookup), and folio_migrate_mapping()
 * would refuse such a folio anyway.
 */
static bool mvd_folio_movable(struct folio *folio, bool is_fault_page)
{
	int expected;

	/* A large folio here is a THP collected whole (mvd_take_thp()). */
	if (folio_mapped(folio))
		return false;

	expected = folio_expected_ref_count(folio) + 1 + is_fault_page;
	return folio_ref_count(folio) == expected;
}

/*
 * Device memory holding process memory: what migrate_device_range() takes.
 * folio_is_device_private() || folio_is_device_coherent() with one load of
 * the pgmap, inline: an eviction asks this of every page it collects.
 */
static __always_inline bool mvd_device_folio(const struct folio *folio)
{
	enum memory_type type;

	if (!folio_is_zone_device(folio))
		return false;
	type = folio->pgmap->type;
	return type == MEMORY_DEVICE_PRIVATE || type == MEMORY_DEVICE_COHERENT;
}

/* How often an eviction looks again at a device page with a stray reference. */
#define MVD_EVICT_PATIENCE	32

/*
 * An eviction's second chance, after mvd_folio_movable() said no.  A
 * device-private folio cannot be pinned, so an extra reference on it is
 * always a short-lived one: most often a CPU fault that has just migrated
 * the page's previous contents away and unlocked it but not yet dropped its
 * reference, or a migration collector that lost the trylock race.  A
 * device-coherent folio can only be pinned for a short time too (a long-term
 * pin migrates it first), by direct I/O or process_vm_readv() say.  An
 * eviction that gave up there would leave the page on the device for good,
 * so it waits a little for such a reference to go away; the wait is bounded,
 * in case a driver keeps references of its own.
 */
static bool mvd_folio_evictable(struct folio *folio)
{
	int tries;

	for (tries = 0; tries < MVD_EVICT_PATIENCE; tries++) {
		if (!mvd_device_folio(folio) || folio_mapped(folio))
			return false;
		if (tries < MVD_EVICT_PATIENCE / 2)
			cond_resched();
		else
			usleep_range(1000, 2000);
		if (mvd_folio_movable(folio, false))
			return true;
	}
	return false;
}

/*
 * Take one collected folio off the LRU and out of every page table.  On
 * failure the folio is put back as it was (mapped, on the LRU) and released.
 * *@drained records whether the per-CPU LRU caches were already flushed
 * once during this call of mvd_unmap_pages().
 */
static bool mvd_unmap_folio(struct folio *folio, bool is_fault_page,
			    bool evict, bool *drained)
{
	struct anon_vma *anon_vma = NULL;
	bool isolated = false;

	if (evict) {
		/*
		 * An eviction holds no mmap lock, so nothing else keeps the
		 * anon_vma alive once the folio's mappings are migration
		 * entries: the processes may unmap them or exit before
		 * finalize.  Pin it for the rmap walks up to then.  A folio
		 * mapped nowhere (its contents just migrated back by a CPU
		 * fault) is about to be freed by whoever holds it: leave it.
		 */
		anon_vma = folio_get_anon_vma(folio);
		if (!anon_vma)
			goto release;
	}

	if (!folio_is_zone_device(folio)) {
		isolated = folio_isolate_lru(folio);
		if (!isolated && !*drained) {
			/* It may sit in another CPU's LRU cache: flush those. */
			lru_add_drain_all();
			*drained = true;
			isolated = folio_isolate_lru(folio);
		}
		if (!isolated)
			goto restore;
		/* Isolation took a reference; it replaces the collecting one. */
		folio_put(folio);
	}

	/*
	 * An eviction is not retried: TTU_SYNC makes the walk take each page
	 * table lock, so that a racing zap has dropped its mapcount by the
	 * time the folio is checked.
	 */
	if (folio_mapped(folio))
		try_to_migrate(folio, evict ? TTU_SYNC : 0);

	if (mvd_folio_movable(folio, is_fault_page) ||
	    (evict && mvd_folio_evictable(folio)))
		return true;

restore:
	remove_migration_ptes(folio, folio, 0);
	if (anon_vma)
		put_anon_vma(anon_vma);
release:
	if (isolated)
		folio_add_lru(folio);
	if (!is_fault_page)
		folio_unlock(folio);
	folio_put(folio);
	return false;
}

/*
 * Second step, shared by migrate_vma_setup() and migrate_device_range():
 * every src entry with a page holds a locked folio and a reference.  Unmap
 * each one from all page tables and check nobody else holds it; the ones
 * that cannot move are restored and their entry cleared.  @evict: called
 * by migrate_device_range(), see mvd_folio_evictable().  Returns the number
 * of entries still marked MIGRATE_PFN_MIGRATE (including empty addresses).
 */
static unsigned long mvd_unmap_pages(unsigned long *src, unsigned long npages,
				     struct page *fault_page, bool evict)
{
	unsigned long i, moving = 0;
	bool drained = false;

	lru_add_drain();

	for (i = 0; i < npages; i++) {
		struct page *page = migrate_pfn_to_page(src[i]);

		if (!(src[i] & MIGRATE_PFN_MIGRATE))
			continue;
		if (page && !mvd_unmap_folio(page_folio(page),
					     page == fault_page, evict,
					     &drained)) {
			src[i] = 0;
			continue;
		}
		moving++;
	}
	return moving;
}

/*
 * Check the arguments of migrate_vma_setup() and round @args->start and
 * @args->end down to page boundaries, as 6.12 does.  A range whose rounded
 * form has more pages than its length (end - start) allows, e.g.
 * [0x1fff, 0x3000), is refused: the driver sized src and dst for the
 * length, and 6.12 would write past them.  Nothing is changed on error.
 */
static int mvd_check_args(struct migrate_vma *args)
{
	struct vm_area_struct *vma = args->vma;
	unsigned long start, end;

	if (!vma || !args->src || !args->dst || args->end <= args->start)
		return -EINVAL;
	start = args->start & PAGE_MASK;
	end = args->end & PAGE_MASK;
	if (end == start ||
	    (end - start) >> PAGE_SHIFT != (args->end - args->start) >> PAGE_SHIFT)
		return -EINVAL;
	if (start < vma->vm_start || end > vma->vm_end)
		return -EINVAL;
	/* Mappings without normal anonymous pages behind them. */
	if (is_vm_hugetlb_page(vma) || (vma->vm_flags & VM_SPECIAL) ||
	    vma_is_dax(vma))
		return -EINVAL;
	/*
	 * The fault page is the one migrate_to_ram() was called for: device
	 * memory, locked by the fault handler.  Nothing else is asked of it;
	 * in particular it need not lie inside the range.
	 */
	if (args->fault_page &&
	    (!is_device_private_page(args->fault_page) ||
	     !folio_test_locked(page_folio(args->fault_page))))
		return -EINVAL;

	args->start = start;
	args->end = end;
	return 0;
}

/**
 * migrate_vma_setup() - collect, lock and unmap the pages of a range
 * @args: the migration; @args->vma, @args->start, @args->end, @args->src,
 *	@args->dst, @args->flags, @args->pgmap_owner and @args->fault_page are
 *	inputs, the rest is written here
 *
 * Looks at every page of [@args->start, @args->end) in @args->vma and takes
 * the ones @args->flags selects: system pages (MIGRATE_VMA_SELECT_SYSTEM),
 * device-private pages (MIGRATE_VMA_SELECT_DEVICE_PRIVATE) and
 * device-coherent pages (MIGRATE_VMA_SELECT_DEVICE_COHERENT) whose pgmap
 * owner is @args->pgmap_owner.  Each page taken is locked, removed
 * from all CPU page tables (CPU accesses wait until migrate_vma_finalize())
 * and checked for extra references; a page pinned by someone else is put
 * back.  Only anonymous memory moves.  A transparent huge page is split
 * into base pages, each with its own entry, unless the driver asks for
 * MIGRATE_VMA_SELECT_COMPOUND and the range covers the THP whole: then it
 * gets one entry, see below.
 *
 * On return @args->src[i] describes address @args->start + i * PAGE_SIZE:
 *
 * - migrate_pfn(pfn) | MIGRATE_PFN_MIGRATE, plus MIGRATE_PFN_WRITE if the
 *   CPU could write to it: the page is locked, unmapped and its contents
 *   are stable; the driver copies them to the destination page.
 * - MIGRATE_PFN_MIGRATE alone: nothing is mapped there in a private
 *   anonymous VMA (whatever the select flags), or the zero page, which
 *   reads as zeroes, and system memory was selected; the driver may supply
 *   a page to populate the address.
 * - 0: the address does not take part.
 * - migrate_pfn(pfn of the head page) | MIGRATE_PFN_MIGRATE |
 *   MIGRATE_PFN_COMPOUND, plus MIGRATE_PFN_WRITE if writable, with
 *   MIGRATE_VMA_SELECT_COMPOUND only: a PMD-mapped THP, or a device folio
 *   mapped by a device-private PMD, that the range covers whole and that
 *   no other page table maps, locked and unmapped; the entries of its
 *   other pages are 0.  The driver answers with a compound destination of
 *   the same order (MIGRATE_PFN_COMPOUND, at the same index), which takes
 *   it whole, or with a base page for each address (or 0 for some), and
 *   migrate_vma_pages() splits it then.
 * - MIGRATE_PFN_MIGRATE | MIGRATE_PFN_COMPOUND without a pfn, with
 *   MIGRATE_VMA_SELECT_COMPOUND only: a PMD-aligned, PMD-sized stretch of
 *   the range where nothing is mapped (or the huge zero page, when system
 *   memory is selected), in a VMA that THPs are not disabled for; the
 *   entries of its other addresses are 0.  The driver may answer with a
 *   compound destination of PMD order, mapped there by one PMD, or with
 *   base pages, each address then handled as a hole of its own.
 *
 * @args->cpages is the number of entries with MIGRATE_PFN_MIGRATE and
 * @args->npages the number of pages in the range.  An unaligned
 * @args->start and @args->end are rounded down to page boundaries (and
 * written back), as long as that does not add a page to the range; bits of
 * @args->flags other than MIGRATE_VMA_SELECT_* are ignored.
 *
 * The driver then fills @args->dst: for each entry it wants to move,
 * migrate_pfn() of a destination page it allocated, locked and holding the
 * one reference the driver owns, with the data already copied (a system
 * page from alloc_page(), locked with lock_page(), or a device page from
 * zone_device_page_init(), which returns it locked); 0 to leave the entry
 * alone.  It need not move every entry; a migrate_to_ram() handler that
 * did not move its fault page returns 0 and the CPU access faults again.
 * Then it calls migrate_vma_pages() and migrate_vma_finalize().
 *
 * If @args->fault_page is set (a migrate_to_ram() callback migrating
 * vmf->page), the fault handler holds that page's lock and a reference:
 * the page is collected without locking it, with that reference allowed
 * for, if the walk meets it, and this function and the two that follow
 * never take or release its lock.  It need not lie inside the range (a
 * driver may migrate a window around the fault in several calls, one per
 * VMA), nor be selected by @args->flags or @args->pgmap_owner.
 *
 * Context: Process context.  The caller holds the mmap lock of
 * @args->vma->vm_mm for read (at least) from here until migrate_vma_finalize()
 * returns, which keeps the VMA and the range from being unmapped.
 * Return: 0 on success, including when no page could be collected; -EINVAL
 * if @args->vma, @args->src or @args->dst is NULL, the range is less than a
 * page long, grows by rounding or is not inside the VMA, the VMA is
 * hugetlb, DAX or a VM_IO/VM_PFNMAP/VM_MIXEDMAP mapping, or
 * @args->fault_page is not a locked device-private page.  Nothing is
 * changed on error.
 */
int migrate_vma_setup(struct migrate_vma *args)
{
	unsigned long npages, compound;
	int ret;

	ret = mvd_check_args(args);
	if (ret)
		return ret;
	mmap_assert_locked(args->vma->vm_mm);

	npages = (args->end - args->start) >> PAGE_SHIFT;
	memset(args->src, 0, npages * sizeof(*args->src));
	memset(args->dst, 0, npages * sizeof(*args->dst));
	args->npages = npages;
	args->cpages = 0;

	compound = mvd_collect(args);
	if (args->cpages)
		args->cpages = mvd_unmap_pages(args->src, npages,
					       args->fault_page, false);
	if (compound && !(args->flags & MIGRATE_VMA_SELECT_COMPOUND))
		args->cpages = mvd_split_compounds(args);
	return 0;
}
EXPORT_SYMBOL(migrate_vma_setup);

/*
 * Make sure @vma has an anon_vma and @addr a PMD entry, allocating what is
 * missing, and return that entry; NULL if memory ran out.
 */
static pmd_t *mvd_prepare_pmd(struct vm_area_struct *vma, unsigned long addr)
{
	struct mm_struct *mm = vma->vm_mm;
	pud_t *pudp;
	p4d_t *p4dp;

	if (unlikely(anon_vma_prepare(vma)))
		return NULL;

	p4dp = p4d_alloc(mm, pgd_offset(mm, addr), addr);
	pudp = p4dp ? pud_alloc(mm, p4dp, addr) : NULL;
	return pudp ? pmd_alloc(mm, pudp, addr) : NULL;
}

/*
 * Make sure @vma has an anon_vma and @addr a page table, allocating what is
 * missing, and return the PMD entry pointing to that table.  NULL if memory
 * ran out or a huge mapping (or a PMD migration entry) has appeared at @addr
 * since collection.
 */
static pmd_t *mvd_prepare_tables(struct vm_area_struct *vma,
				 unsigned long addr)
{
	pmd_t *pmdp = mvd_prepare_pmd(vma, addr);
	pmd_t pmd;

	if (!pmdp)
		return NULL;

	pmd = pmdp_get_lockless(pmdp);
	if (!pmd_none(pmd) && (!pmd_present(pmd) || pmd_leaf(pmd) ||
			       pmd_trans_huge(pmd) || pmd_devmap(pmd)))
		return NULL;
	return pte_alloc(vma->vm_mm, pmdp) ? NULL : pmdp;
}

/* The device-private entry of a new mapping of device memory at @pfn. */
static swp_entry_t mvd_device_entry(unsigned long pfn, bool writable)
{
	return writable ? make_writable_device_private_entry(pfn) :
			  make_readable_device_private_entry(pfn);
}

/* The entry mapping @page, a new anonymous page, in @vma. */
static pte_t mvd_new_pte(struct vm_area_struct *vma, struct page *page)
{
	bool writable = vma->vm_flags & VM_WRITE;
	unsigned long pfn = page_to_pfn(page);
	pte_t pte;

	/* The CPU cannot map device memory: it gets a device-private entry. */
	if (is_device_private_page(page))
		return swp_entry_to_pte(mvd_device_entry(pfn, writable));

	pte = pfn_pte(pfn, vma->vm_page_prot);
	/* Like an anonymous write fault: a new writable page starts dirty. */
	return writable ? pte_mkwrite(pte_mkdirty(pte), vma) : pte;
}

/*
 * Map @page, a new page from the driver, at @addr where collection found no
 * page or the zero page.  This does what an anonymous write fault would, with
 * the driver's page instead of a freshly zeroed one.  Returns false, leaving
 * the address alone, if that cannot be done, in particular if a CPU fault has
 * populated the address in the meantime (the faulting thread wins: its page
 * may already have been written to).
 */
static bool mvd_populate(struct migrate_vma *mig, unsigned long addr,
			 struct page *page)
{
	struct folio *folio = page_folio(page);
	struct vm_area_struct *vma = mig->vma;
	struct mm_struct *mm = vma->vm_mm;
	spinlock_t *ptl;	/* page table lock */
	bool free_slot;
	pte_t *ptep;
	pte_t new, old;
	pmd_t *pmdp;

	if (!vma_is_anonymous(vma) || folio_test_large(folio))
		return false;
	if (folio_is_zone_device(folio) && !mvd_device_folio(folio))
		return false;

	pmdp = mvd_prepare_tables(vma, addr);
	if (!pmdp)
		return false;
	/*
	 * Charging may sleep, so it happens before the page table lock.  If
	 * the address turns out to be taken, finalize frees the page and the
	 * charge with it.
	 */
	if (mem_cgroup_charge(folio, mm, GFP_KERNEL))
		return false;
	/* Orders the driver's copy before the page becomes visible. */
	__folio_mark_uptodate(folio);
	new = mvd_new_pte(vma, page);

	ptep = pte_offset_map_lock(mm, pmdp, addr, &ptl);
	if (!ptep)
		return false;
	old = ptep_get(ptep);
	free_slot = pte_none(old) ||
		    (pte_present(old) && is_zero_pfn(pte_pfn(old)));
	/*
	 * Give up if a fault got there first, if missing-page userfaults must
	 * reach userspace instead, or if the OOM reaper is tearing the mm
	 * down.
	 */
	if (!free_slot || userfaultfd_missing(vma) ||
	    check_stable_address_space(mm)) {
		pte_unmap_unlock(ptep, ptl);
		return false;
	}

	/* The reference, rmap and RSS count of the new mapping. */
	folio_get(folio);
	folio_add_new_anon_rmap(folio, vma, addr, RMAP_EXCLUSIVE);
	inc_mm_counter(mm, MM_ANONPAGES);
	if (pte_present(old)) {
		/* Off with the zero page, on every CPU, first. */
		flush_cache_page(vma, addr, pte_pfn(old));
		ptep_clear_flush(vma, addr, ptep);
	}
	set_pte_at(mm, addr, ptep, new);
	if (pte_present(new))
		update_mmu_cache(vma, addr, ptep);
	/* Device memory never goes on an LRU list. */
	if (!folio_is_zone_device(folio))
		folio_add_lru_vma(folio, vma);
	pte_unmap_unlock(ptep, ptl);
	return true;
}

#ifdef CONFIG_ARCH_ENABLE_THP_MIGRATION
/* The PMD mapping @folio, a new PMD-sized anonymous folio, in @vma. */
static pmd_t mvd_new_pmd(struct vm_area_struct *vma, struct folio *folio)
{
	bool writable = vma->vm_flags & VM_WRITE;
	unsigned long pfn = folio_pfn(folio);
	pmd_t pmd;

	if (folio_is_device_private(folio))
		return swp_entry_to_pmd(mvd_device_entry(pfn, writable));

	pmd = mk_huge_pmd(&folio->page, vma->vm_page_prot);
	return writable ? maybe_pmd_mkwrite(pmd_mkdirty(pmd), vma) : pmd;
}

/*
 * Map @folio, a new PMD-sized folio from the driver, with one PMD at @addr,
 * where collection found no page table or the huge zero page: what a THP
 * write fault would do, with the driver's folio.  Returns false, leaving
 * the address alone, if that cannot be done, in particular if a CPU fault
 * has populated the range in the meantime.  Like mvd_populate(), which
 * explains the rest.
 */
static bool mvd_populate_huge(struct migrate_vma *mig, unsigned long addr,
			      struct folio *folio)
{
	struct vm_area_struct *vma = mig->vma;
	struct mm_struct *mm = vma->vm_mm;
	pgtable_t pgtable;
	spinlock_t *ptl;	/* PMD lock */
	pmd_t *pmdp;
	pmd_t old;

	if (!vma_is_anonymous(vma) || folio_order(folio) != HPAGE_PMD_ORDER ||
	    !folio_test_large_rmappable(folio))
		return false;
	if (folio_is_zone_device(folio) && !mvd_device_folio(folio))
		return false;

	pmdp = mvd_prepare_pmd(vma, addr);
	if (!pmdp)
		return false;
	/* The page table that a split of the PMD will need. */
	pgtable = pte_alloc_one(mm);
	if (!pgtable)
		return false;
	if (mem_cgroup_charge(folio, mm, GFP_KERNEL)) {
		pte_free(mm, pgtable);
		return false;
	}
	__folio_mark_uptodate(folio);

	ptl = pmd_lock(mm, pmdp);
	old = pmdp_get(pmdp);
	/* A write-protect userfault is owed for the zero page: not here. */
	if (!(pmd_none(old) || is_huge_zero_pmd(old)) ||
	    (!pmd_none(old) && pmd_uffd_wp(old)) ||
	    userfaultfd_missing(vma) || check_stable_address_space(mm)) {
		spin_unlock(ptl);
		pte_free(mm, pgtable);
		return false;
	}

	folio_get(folio);
	folio_add_new_anon_rmap(folio, vma, addr, RMAP_EXCLUSIVE);
	add_mm_counter(mm, MM_ANONPAGES, HPAGE_PMD_NR);
	if (pmd_none(old)) {
		pgtable_trans_huge_deposit(mm, pmdp, pgtable);
		mm_inc_nr_ptes(mm);
		pgtable = NULL;
	} else {
		/* The zero page's deposited table serves the new PMD. */
		pmdp_huge_clear_flush(vma, addr, pmdp);
	}
	set_pmd_at(mm, addr, pmdp, mvd_new_pmd(vma, folio));
	if (!folio_is_zone_device(folio)) {
		update_mmu_cache_pmd(vma, addr, pmdp);
		folio_add_lru_vma(folio, vma);
		/* Like a THP fault's: the shrinker may split it if underused. */
		deferred_split_folio(folio, false);
	}
	spin_unlock(ptl);
	if (pgtable)
		pte_free(mm, pgtable);
	return true;
}
#else
/* mvd_huge_hole() collects no huge holes to populate. */
static bool mvd_populate_huge(struct migrate_vma *mig, unsigned long addr,
			      struct folio *folio)
{
	return false;
}
#endif

/*
 * Hand the identity of @folio (anonymous mapping and index, swap cache slot,
 * flags, memcg charge) over to @newfolio.  Both are locked, @folio is
 * unmapped.  @extra_refs counts references the caller knows about beyond the
 * one this code holds.
 */
static bool mvd_move_folio(struct folio *folio, struct folio *newfolio,
			   int extra_refs)
{
	/* A THP collected whole moves whole, to a folio of its own order. */
	if (folio_test_large(folio) != folio_test_large(newfolio))
		return false;
	if (folio_test_large(newfolio) &&
	    (folio_nr_pages(folio) != folio_nr_pages(newfolio) ||
	     !folio_test_large_rmappable(newfolio)))
		return false;

	if (folio_is_zone_device(newfolio)) {
		if (!mvd_device_folio(newfolio) || !folio_test_anon(folio))
			return false;
		/* Device memory cannot sit in the swap cache. */
		if (folio_test_swapcache(folio) && !folio_free_swap(folio))
			return false;
	}

	/* A swap cache folio may still be written out; try again later. */
	if (folio_test_writeback(folio))
		return false;

	if (folio_migrate_mapping(folio_mapping(folio), newfolio, folio,
				  extra_refs) != MIGRATEPAGE_SUCCESS)
		return false;
	/* This also transfers the memcg charge (mem_cgroup_migrate()). */
	folio_migrate_flags(newfolio, folio);
	return true;
}

/*
 * The hole (or huge zero page) of the MIGRATE_PFN_COMPOUND entry @i of @mig,
 * @nr pages long, gets base pages: give each address its own entry, as if
 * collection had not joined them, and map the huge zero page by PTEs of
 * the zero page, which mvd_populate() can replace one by one.
 */
static void mvd_hole_to_pages(struct migrate_vma *mig, unsigned long i,
			      unsigned long nr)
{
	unsigned long addr = mig->start + (i << PAGE_SHIFT);
	unsigned long j;
	pmd_t *pmdp;

	/*
	 * Checked without the PMD lock: split_huge_pmd() looks again under
	 * it, and if a fault has mapped a THP there meanwhile, splitting it
	 * only makes mvd_populate() find its pages and leave them be.
	 */
	pmdp = mm_find_pmd(mig->vma->vm_mm, addr);
	if (pmdp && is_huge_zero_pmd(pmdp_get_lockless(pmdp)))
		split_huge_pmd(mig->vma, pmdp, addr);
	mig->src[i] &= ~MIGRATE_PFN_COMPOUND;
	for (j = 1; j < nr; j++)
		mig->src[i + j] = mig->src[i];
}

/*
 * rmap_one of mvd_split_evicted(): split the PMD migration entry, if any,
 * by which @vma maps @folio.  An anonymous folio has one place in a VMA,
 * so the first entry found is the only one.
 */
static bool mvd_split_migration_pmd(struct folio *folio,
				    struct vm_area_struct *vma,
				    unsigned long addr, void *arg)
{
	DEFINE_FOLIO_VMA_WALK(pvmw, folio, vma, addr, PVMW_MIGRATION);

	if (page_vma_mapped_walk(&pvmw)) {
		if (!pvmw.pte)
			split_huge_pmd_locked(vma, pvmw.address, pvmw.pmd,
					      false, NULL);
		page_vma_mapped_walk_done(&pvmw);
	}
	return true;
}

/*
 * mvd_split_compound() for the large folio of the MIGRATE_PFN_COMPOUND
 * entry @i of an eviction: it may be mapped, by migration entries now, in
 * any number of processes, so the rmap finds its PMD migration entries to
 * split before the folio is split.  Each of its pages gets an entry of its
 * own, with a reference on the anon_vma (pinned once by mvd_unmap_folio())
 * for mvd_finish() to drop.  Returns false, with the entry unchanged, if
 * the folio cannot be split.
 */
static bool mvd_split_evicted(unsigned long *src, unsigned long i)
{
	struct folio *folio = page_folio(migrate_pfn_to_page(src[i]));
	struct anon_vma *anon_vma = folio_anon_vma(folio);
	unsigned long j, pfn = folio_pfn(folio), nr = folio_nr_pages(folio);
	struct rmap_walk_control rwc = {
		.rmap_one = mvd_split_migration_pmd,
	};

	/* Splitting the PMDs for a split that cannot be is no use. */
	if (!mvd_folio_movable(folio, false) && !mvd_folio_evictable(folio))
		return false;
	rmap_walk(folio, &rwc);
	if (folio_split_unmapped(folio, 0))
		return false;
	src[i] &= ~MIGRATE_PFN_COMPOUND;
	for (j = 1; j < nr; j++) {
		get_anon_vma(anon_vma);
		src[i + j] = migrate_pfn(pfn + j) | MIGRATE_PFN_MIGRATE;
	}
	return true;
}

/*
 * A MIGRATE_PFN_COMPOUND entry at @i of @src (@npages entries) whose
 * destination is not compound: the driver answered with base pages (or with
 * none for some addresses), so split the folio and let each page go its
 * own way; a hole becomes one hole per address.  One none of whose
 * addresses has a destination stays whole.  @mig is NULL for an eviction.
 * Returns whether the entry was split; if not, it does not move.
 */
static bool mvd_compound_to_pages(unsigned long *src, unsigned long *dst,
				  unsigned long npages, unsigned long i,
				  struct migrate_vma *mig)
{
	struct page *page = migrate_pfn_to_page(src[i]);
	unsigned long j, nr;

	/* A hole stands for one PMD. */
	nr = page ? folio_nr_pages(page_folio(page)) :
		    min(PMD_SIZE >> PAGE_SHIFT, npages - i);
	for (j = 0; j < nr; j++)
		if (dst[i + j] & MIGRATE_PFN_VALID)
			break;
	if (j == nr)
		return false;
	if (!mig)
		return mvd_split_evicted(src, i);
	if (page)
		return mvd_split_compound(mig, i);
	mvd_hole_to_pages(mig, i, nr);
	return true;
}

/*
 * Third step, shared by migrate_vma_pages() and migrate_device_pages().
 * @mig is NULL for migrate_device_pages(), whose sources always have pages.
 */
static void mvd_move_pages(unsigned long *src, unsigned long *dst,
			   unsigned long npages, struct migrate_vma *mig)
{
	struct mmu_notifier_range range;
	bool notifying = false;
	unsigned long i;

	for (i = 0; i < npages; i++) {
		struct page *newpage = migrate_pfn_to_page(dst[i]);
		struct page *page;
		bool moved;

		if (!(src[i] & MIGRATE_PFN_MIGRATE))
			continue;
		/* A compound destination takes the THP whole, below. */
		if ((src[i] & MIGRATE_PFN_COMPOUND) &&
		    !(dst[i] & MIGRATE_PFN_COMPOUND) &&
		    !mvd_compound_to_pages(src, dst, npages, i, mig)) {
			src[i] &= ~MIGRATE_PFN_MIGRATE;
			continue;
		}
		page = migrate_pfn_to_page(src[i]);

		if (!newpage) {
			moved = false;
		} else if (page) {
			moved = mvd_move_folio(page_folio(page),
					       page_folio(newpage),
					       mig && page == mig->fault_page);
		} else if (mig) {
			unsigned long addr = mig->start + (i << PAGE_SHIFT);

			/*
			 * Populating may replace zero-page mappings that
			 * secondary MMUs may have copied.
			 */
			if (!notifying) {
				mvd_notify_start(&range, mig, addr);
				notifying = true;
			}
			if (src[i] & MIGRATE_PFN_COMPOUND)
				moved = mvd_populate_huge(mig, addr,
							  page_folio(newpage));
			else
				moved = mvd_populate(mig, addr, newpage);
		} else {
			moved = false;
		}

		if (!moved)
			src[i] &= ~MIGRATE_PFN_MIGRATE;
	}

	if (notifying)
		mmu_notifier_invalidate_range_end(&range);
}

/**
 * migrate_vma_pages() - switch the collected pages over to their destinations
 * @migrate: the migration prepared by migrate_vma_setup(), with @migrate->dst
 *	filled in by the driver
 *
 * For every @migrate->src entry still marked MIGRATE_PFN_MIGRATE that has a
 * destination page, moves the page's metadata (anonymous mapping and index,
 * flags, memcg charge) to the destination, or, for an address without a
 * page, maps the destination page there (a device-private entry for device
 * memory, an ordinary PTE for system memory; both count as anonymous memory
 * of the process).  Where that fails, or there is no destination page,
 * MIGRATE_PFN_MIGRATE is cleared in @migrate->src: afterwards the entries
 * still marked are exactly the ones that moved.  An address populated by a
 * racing CPU fault since migrate_vma_setup() is left to the fault.
 *
 * A MIGRATE_PFN_COMPOUND entry moves whole to a MIGRATE_PFN_COMPOUND
 * destination, a folio of the same order; a device-private one is then
 * mapped by a device-private PMD.  Otherwise it is split here when any of
 * its addresses has a destination page: @migrate->src then gets one entry
 * per page, as if the THP had been split before collection.  If the THP
 * cannot be split (somebody else holds a reference), or none of its pages
 * has a destination, it does not move.  A compound hole is mapped by one
 * PMD of its compound destination, or else gets one entry per address
 * (and the huge zero page one PTE per page) before base pages fill it.
 *
 * Between this call and migrate_vma_finalize() both the source and the
 * destination pages stay locked and the CPU cannot reach them, so the driver
 * may update its device page tables for the pages that moved.  It must not
 * change @migrate->dst any more.
 *
 * Context: Process context, mmap lock of @migrate->vma->vm_mm held for read,
 * as for migrate_vma_setup().
 */
void migrate_vma_pages(struct migrate_vma *migrate)
{
	mvd_move_pages(migrate->src, migrate->dst, migrate->npages, migrate);
}
EXPORT_SYMBOL(migrate_vma_pages);

/*
 * Last step, shared by both finalize functions: map each source address to
 * its new page (if it moved) or its old one, and release everything.
 * @evict: the pages come from migrate_device_range(), which pinned the
 * anon_vma of each (see mvd_unmap_folio()); the source folio still points
 * to it, whether or not it moved.
 */
static void mvd_finish(unsigned long *src, unsigned long *dst,
		       unsigned long npages, struct page *fault_page,
		       bool evict)
{
	unsigned long i;

	for (i = 0; i < npages; i++) {
		struct page *newpage = migrate_pfn_to_page(dst[i]);
		struct page *page = migrate_pfn_to_page(src[i]);
		struct folio *newfolio = newpage ? page_folio(newpage) : NULL;
		struct folio *folio, *target;
		struct anon_vma *anon_vma;

		if (page) {
			folio = page_folio(page);
			target = folio;
			if (newfolio && (src[i] & MIGRATE_PFN_MIGRATE))
				target = newfolio;
			/* Pinned by mvd_unmap_folio(), still valid after. */
			anon_vma = evict ? folio_anon_vma(folio) : NULL;

			mvd_put_back(folio, target, page == fault_page);
			if (anon_vma)
				put_anon_vma(anon_vma);
		}

		/*
		 * The driver's reference: a page now mapped keeps the
		 * mapping's reference, an unused one is freed here.
		 */
		if (newfolio) {
			folio_unlock(newfolio);
			folio_put(newfolio);
		}
	}
}

/**
 * migrate_vma_finalize() - end a migration started by migrate_vma_setup()
 * @migrate: the migration, after migrate_vma_pages()
 *
 * Replaces the migration entries with mappings of the destination pages
 * where the migration went through and of the original pages elsewhere,
 * puts system pages back on the LRU, unlocks source and destination pages
 * and drops this code's references: source pages that moved and destination
 * pages that were not used are freed.  @migrate->fault_page stays locked
 * (its lock belongs to the fault handler), whether or not it moved.
 *
 * The driver must have finished copying into the destination pages, with
 * the data visible to the CPU, before calling this.
 *
 * Context: Process context, mmap lock of @migrate->vma->vm_mm held for read,
 * as for migrate_vma_setup().
 */
void migrate_vma_finalize(struct migrate_vma *migrate)
{
	mvd_finish(migrate->src, migrate->dst, migrate->npages,
		   migrate->fault_page, false);
}
EXPORT_SYMBOL(migrate_vma_finalize);

/*
 * A reference to the folio that holds @page, a device page; NULL if the
 * page is free, ERR_PTR(-EAGAIN) if its folio changed meanwhile (a split).
 * A free page that was a tail page still points at its old head, which may
 * be in use again in a folio that does not hold @page: the folio is checked
 * once our reference keeps it from being split or freed.
 */
static struct folio *mvd_get_device_page_folio(struct page *page)
{
	struct folio *folio = page_folio(page);

	/*
	 * A split holds its folio locked and frozen at refcount 0 while it
	 * makes the tails folios: busy, not free.
	 */
	if (!folio_try_get(folio))
		return folio_test_locked(folio) ? ERR_PTR(-EAGAIN) : NULL;
	/*
	 * @page was a head (or order-0) page: it still is.  A tail page has
	 * no reference count of its own, so it could not have been the page
	 * we got, and a folio we hold a reference on is neither split nor
	 * freed.
	 */
	if (likely(&folio->page == page))
		return folio;
	if (unlikely(page_folio(page) != folio)) {
		folio_put(folio);
		return ERR_PTR(-EAGAIN);
	}
	if (unlikely(page_to_pfn(page) - folio_pfn(folio) >=
		     folio_nr_pages(folio))) {
		folio_put(folio);
		return NULL;
	}
	return folio;
}

/*
 * Take a reference on the device folio of @page and lock it, for an
 * eviction.  NULL if the page is free, neither device-private nor
 * device-coherent, a migration destination that stays locked for too
 * long, or part of a large folio that cannot be split for as long.  A
 * large folio is returned whole if @page is its first page and the range
 * has room for all of it (@room pages from @page on); any other is split
 * first, and the folio returned holds @page alone.
 *
 * A folio locked by someone else is waited for rather than skipped: a
 * driver emptying its memory must not leave a page behind.  The wait is
 * done without a reference, so that the lock holder's own migration of the
 * page still sees the reference count it expects; then the folio is looked
 * up again, since it may have been freed in the meantime.  Sleeping on the
 * lock without a reference is safe here because the caller owns the pgmap:
 * its struct pages stay in place for the whole call.
 *
 * Locks are taken in pfn order with earlier pages of the range held.  The
 * holders of an anonymous device folio's lock (a CPU fault in
 * migrate_to_ram(), a migration between its setup and finalize steps)
 * take device page locks only with a trylock and allocate no device
 * memory, so they finish without needing anything the evicting driver may
 * hold.  A folio that is not anonymous yet is the destination of a
 * migration in progress, locked since zone_device_page_init(): its holder
 * may still be allocating device memory, which can take a driver lock the
 * caller holds while evicting.  That one is polled for a bounded time
 * instead of slept on.
 */
static noinline struct folio *mvd_lock_device_folio(struct page *page,
						    unsigned long room)
{
	unsigned int polls = 0;
	struct folio *folio;
	bool anon;

	for (;;) {
		/* A free device page has no references and is skipped. */
		folio = mvd_get_device_page_folio(page);
		if (IS_ERR(folio)) {
			cond_resched();
			continue;
		}
		if (!folio)
			return NULL;
		if (!mvd_device_folio(folio)) {
			folio_put(folio);
			return NULL;
		}
		if (folio_trylock(folio)) {
			/*
			 * A split leaves @page's folio locked and referenced,
			 * so that its pages move one by one.
			 */
			if (!folio_test_large(folio) ||
			    (&folio->page == page &&
			     folio_nr_pages(folio) <= room))
				return folio;
			if (!split_huge_page(page))
				return page_folio(page);
			folio_unlock(folio);
			folio_put(folio);
			goto poll;
		}
		anon = folio_test_anon(folio);
		folio_put(folio);
		if (anon) {
			folio_wait_locked(folio);
			continue;
		}
poll:
		if (++polls > MVD_EVICT_PATIENCE)
			return NULL;
		usleep_range(1000, 2000);
	}
}

/*
 * The common case of mvd_lock_device_folio(), inline: @page is an order-0
 * device folio in use, which nobody holds locked.  Returns it referenced
 * and locked; NULL, with nothing changed, in any other case.
 */
static __always_inline struct folio *mvd_trylock_device_page(struct page *page)
{
	struct folio *folio = page_folio(page);

	/* A head page we hold stays one, see mvd_get_device_page_folio(). */
	if (&folio->page != page || !folio_try_get(folio))
		return NULL;
	if (mvd_device_folio(folio) && !folio_test_large(folio) &&
	    folio_trylock(folio))
		return folio;
	folio_put(folio);
	return NULL;
}

/**
 * migrate_device_range() - collect device pages by pfn for eviction
 * @src_pfns: array of @npages entries, filled in here
 * @start: first pfn of the range
 * @npages: number of pfns
 *
 * The counterpart of migrate_vma_setup() for a driver that must empty its
 * device memory (unbind, unload) without knowing which processes map it.
 * Every device-private or device-coherent page in the range that is in use
 * is locked (a page locked by a CPU fault or another migration is waited
 * for, not skipped), unmapped from every process mapping it (CPU accesses
 * wait until migrate_device_finalize()) and checked for extra references,
 * with a short wait for the transient ones.  On return @src_pfns[i] is
 * migrate_pfn(@start + i) | MIGRATE_PFN_MIGRATE (with MIGRATE_PFN_WRITE
 * never set) for a page taken, 0 for a free page, one mapped by no process
 * (on its way to being freed by whoever still holds it) or one that cannot
 * move because someone keeps a reference to it; the driver retries those
 * later.  A large folio that the range holds whole, from its first page on,
 * is taken whole, as in Linux 6.19: its first entry also has
 * MIGRATE_PFN_COMPOUND and the entries of its other pages are 0.  One that
 * the range holds only in part is split, and its pages in the range are
 * taken one by one.  The anon_vma of each page taken is pinned until
 * migrate_device_finalize(), since no mmap lock keeps it alive.
 *
 * The driver then fills a dst array the same way as for migrate_vma_pages()
 * (normally with system pages) and calls migrate_device_pages() and
 * migrate_device_finalize().  No mmap lock is needed.
 *
 * Context: Process context; may sleep, waiting for the lock of pages in
 * the range: the caller must not hold the lock of any of them (for
 * instance call this from migrate_to_ram() over a range holding the fault
 * page), nor a lock that its own migrate_to_ram() takes.
 * Return: 0.
 */
int migrate_device_range(unsigned long *src_pfns, unsigned long start,
			 unsigned long npages)
{
	unsigned long i, nr;
	bool valid = false;

	for (i = 0; i < npages; i += nr) {
		unsigned long pfn = start + i;
		struct folio *folio = NULL;

		/*
		 * pfn_valid() answers for whole subsections: ask once per
		 * subsection.  Stepping over a folio skips no check that
		 * matters: the folio lies in one pgmap range, valid
		 * throughout, which ends on a subsection boundary.
		 */
		if (!i || !(pfn & (PAGES_PER_SUBSECTION - 1)))
			valid = pfn_valid(pfn);
		nr = 1;
		src_pfns[i] = 0;
		if (valid) {
			struct page *page = pfn_to_page(pfn);

			folio = mvd_trylock_device_page(page);
			if (!folio)
				folio = mvd_lock_device_folio(page, npages - i);
		}
		if (!folio)
			continue;
		src_pfns[i] = migrate_pfn(pfn) | MIGRATE_PFN_MIGRATE;
		if (folio_test_large(folio)) {
			nr = folio_nr_pages(folio);
			src_pfns[i] |= MIGRATE_PFN_COMPOUND;
			memset(&src_pfns[i + 1], 0,
			       (nr - 1) * sizeof(*src_pfns));
		}
	}

	mvd_unmap_pages(src_pfns, npages, NULL, true);
	return 0;
}
EXPORT_SYMBOL(migrate_device_range);

/**
 * migrate_device_pages() - switch pages collected by pfn to their destinations
 * @src_pfns: the array filled by migrate_device_range()
 * @dst_pfns: destination entries: migrate_pfn() of a locked page owned by
 *	the driver with the data copied, or 0
 * @npages: number of entries
 *
 * Like migrate_vma_pages(): moves the metadata of each source page still
 * marked MIGRATE_PFN_MIGRATE to its destination page and clears
 * MIGRATE_PFN_MIGRATE where that fails or no destination was given.  A
 * folio taken whole moves whole to a MIGRATE_PFN_COMPOUND destination of
 * its order, and is mapped back by PMDs where it was; given base pages for
 * any of its pages, it is split, in every process that maps it, and
 * @src_pfns gets an entry for each of its pages.
 *
 * Context: Process context.
 */
void migrate_device_pages(unsigned long *src_pfns, unsigned long *dst_pfns,
			  unsigned long npages)
{
	mvd_move_pages(src_pfns, dst_pfns, npages, NULL);
}
EXPORT_SYMBOL(migrate_device_pages);

/**
 * migrate_device_finalize() - end a migration started by migrate_device_range()
 * @src_pfns: the array filled by migrate_device_range()
 * @dst_pfns: the destination array given to migrate_device_pages()
 * @npages: number of entries
 *
 * Like migrate_vma_finalize(): maps every process that mapped a source page
 * to the destination page if it moved, or back to the source page, then
 * unlocks and releases source and destination pages.  The driver must have
 * finished copying before calling this.
 *
 * Context: Process context.
 */
void migrate_device_finalize(unsigned long *src_pfns,
			     unsigned long *dst_pfns, unsigned long npages)
{
	mvd_finish(src_pfns, dst_pfns, npages, NULL, true);
}
EXPORT_SYMBOL(migrate_device_finalize);

/**
 * migrate_device_coherent_folio() - move a device-coherent folio to system memory
 * @folio: order-0 device-coherent folio, unlocked; the caller's reference
 *	to it is consumed
 *
 * For GUP, before a long-term pin: device-coherent memory must stay
 * evictable, so a page about to be pinned for long moves to system memory
 * first, with its mappings in every process.  The new page comes from
 * outside ZONE_MOVABLE and CMA, where it may be pinned.
 *
 * Context: Process context; may sleep.  The caller holds no page lock.
 * Return: 0 if the folio moved, -EBUSY if it could not be unmapped, had
 * other references, or no system page was available.
 */
int migrate_device_coherent_folio(struct folio *folio)
{
	unsigned long src, dst = 0;
	struct folio *dfolio;

	if (WARN_ON_ONCE(!folio_is_device_coherent(folio) ||
			 folio_test_large(folio))) {
		folio_put(folio);
		return -EBUSY;
	}

	/*
	 * Collect it as an eviction does: no mmap lock need be held, so the
	 * anon_vma is pinned until the end.  On failure the folio is
	 * unlocked and our reference dropped.
	 */
	folio_lock(folio);
	src = migrate_pfn(folio_pfn(folio)) | MIGRATE_PFN_MIGRATE;
	mvd_unmap_pages(&src, 1, NULL, true);
	if (!(src & MIGRATE_PFN_MIGRATE))
		return -EBUSY;

	dfolio = folio_alloc(GFP_USER | __GFP_NOWARN, 0);
	if (dfolio) {
		folio_lock(dfolio);
		folio_copy(dfolio, folio);
		dst = migrate_pfn(folio_pfn(dfolio));
	}
	mvd_move_pages(&src, &dst, 1, NULL);
	mvd_finish(&src, &dst, 1, NULL, true);
	return (src & MIGRATE_PFN_MIGRATE) ? 0 : -EBUSY;
}
