// SPDX-License-Identifier: GPL-2.0
/*
 * hmm_range_fault(): read the CPU page tables of a range for a device.
 *
 * The walk runs on the generic page table walker.  Each callback looks at
 * one piece of the range (a PTE table, a huge PMD or PUD, a hugetlb page or
 * a hole) with the page table lock of that piece held, writes the result
 * for the pages it can settle, and stops at the first page that needs
 * work the lock does not allow: a CPU fault or a wait for a migration.  It
 * notes that work in the walk state, drops the lock, does it, and ends the
 * walk with HMM_WALK_RESTART; hmm_range_fault() then starts a new walk at
 * the first page not yet settled.
 *
 * Locking:
 * - The caller holds the mmap lock (read is enough) for the whole call.
 *   It keeps the VMAs and the upper page table levels (PGD to PMD tables)
 *   in place; the walker relies on that and so do the PMD pointers kept
 *   across a migration wait.
 * - PTEs are read under the PTE table lock (pte_offset_map_lock(), which
 *   also copes with the table being freed or replaced under us), huge PMDs
 *   under the PMD lock, huge PUDs under the PUD lock and hugetlb entries
 *   under the hugetlb page table lock, with the hugetlb VMA lock the walker
 *   takes around hugetlb_entry.  None of these locks is held across
 *   handle_mm_fault() or a migration wait.
 * - handle_mm_fault() is called without FAULT_FLAG_ALLOW_RETRY, so it never
 *   drops the mmap lock and the VMA stays valid throughout.
 *
 * Why restarting is safe: entries are written strictly in address order and
 * a new walk starts at the first entry not written yet, so no output value
 * is ever read back as a request (the request and output bits overlap).
 * What the walk reports may go stale as soon as a lock is dropped; that is
 * what the interval notifier is for.  A walk that sees the notifier
 * sequence move returns -EBUSY and the caller starts over with a fresh
 * sequence; the driver only trusts the result after
 * mmu_interval_read_retry() under its own lock says nothing changed.
 */
#include <linux/export.h>
#include <linux/hmm.h>
#include <linux/huge_mm.h>
#include <linux/hugetlb.h>
#include <linux/memremap.h>
#include <linux/mm.h>
#include <linux/mmu_notifier.h>
#include <linux/pagewalk.h>
#include <linux/sched.h>
#include <linux/swapops.h>

/* A callback did blocking work; walk again from hmm_walk_state.restart. */
#define HMM_WALK_RESTART	1

/* The request bits of an hmm pfn. */
#define HMM_PFN_REQ_MASK	(HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE)

/**
 * struct hmm_walk_state - hmm_range_fault() state shared by the callbacks
 * @range: the request being served
 * @restart: where the next walk starts once a callback returned
 *	HMM_WALK_RESTART
 * @run_start: first page of a run that the current callback could not settle
 * @run_end: end of that run (exclusive)
 * @may_fault: some page of the range can ask for a fault at all; when false
 *	the per-page input is never looked at
 * @faulted: pages faulted in since hmm_range_fault() last gave up the CPU
 */
struct hmm_walk_state {
	struct hmm_range *range;
	unsigned long restart;
	unsigned long run_start;
	unsigned long run_end;
	unsigned long faulted;
	bool may_fault;
};

/*
 * hmm_range_fault() lets others run (cond_resched()) between two walks
 * once this many pages have been faulted in since it last did: a call
 * faulting a whole large range in does not hog the CPU without
 * preemption, and a small one is not charged for others' work.
 */
#define HMM_RESCHED_PAGES	PTRS_PER_PTE

/*
 * hmm_entry(), hmm_wanted() and hmm_unmet() run for every page, some of
 * them more than once.  They are forced inline: a kernel optimised for size
 * keeps them out of line otherwise, and the calls alone made faulting in a
 * range of zero pages about 5% slower.
 */
static __always_inline unsigned long *hmm_entry(struct hmm_walk_state *ws,
						unsigned long addr)
{
	return &ws->range->hmm_pfns[(addr - ws->range->start) >> PAGE_SHIFT];
}

/* The map order of a leaf of @shift bits, placed in the hmm pfn order field. */
static unsigned long hmm_order_bits(unsigned int shift)
{
	return (unsigned long)(shift - PAGE_SHIFT) << HMM_PFN_ORDER_SHIFT;
}

/*
 * What the caller asks of the page at @addr: 0, HMM_PFN_REQ_FAULT or
 * HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE.  A write request without a fault
 * request asks for nothing.  Must not be called once the entry has been
 * written with its result.
 */
static __always_inline unsigned long hmm_wanted(struct hmm_walk_state *ws,
						unsigned long addr)
{
	const struct hmm_range *range = ws->range;
	unsigned long req;

	if (!ws->may_fault)
		return 0;
	req = (*hmm_entry(ws, addr) & range->pfn_flags_mask) |
	      range->default_flags;
	req &= HMM_PFN_REQ_MASK;
	return (req & HMM_PFN_REQ_FAULT) ? req : 0;
}

/* Does a page whose CPU mapping gives @have fall short of request @want? */
static __always_inline bool hmm_unmet(unsigned long want, unsigned long have)
{
	if (!want)
		return false;
	if (!(have & HMM_PFN_VALID))
		return true;
	return (want & HMM_PFN_REQ_WRITE) && !(have & HMM_PFN_WRITE);
}

/**
 * hmm_fill_span() - report the same mapping for a span of pages
 * @ws: walk state
 * @addr: first page of the span
 * @end: end of the span (exclusive)
 * @val: the entry for @addr: 0, HMM_PFN_ERROR, or a pfn with its flags
 *	(possibly none), in which case the pfn goes up by one for each
 *	following page
 *
 * Used for holes and for leaves that map the whole span in one entry (huge
 * PMD or PUD, hugetlb page), so the span is filled without looking at
 * single PTEs.  Filling stops at the first page whose request @val does not
 * satisfy; that page and the unsatisfied pages right after it are recorded
 * as the run in @ws, and their entries are left untouched.
 *
 * Return: true if a run was recorded.
 */
static bool hmm_fill_span(struct hmm_walk_state *ws, unsigned long addr,
			  unsigned long end, unsigned long val)
{
	unsigned long step = (val & ~HMM_PFN_FLAGS) ? 1 : 0;

	/*
	 * Without per-page requests every page asks the same, and @val grants
	 * the same to every page: the span is settled, or one run, at once.
	 */
	if (!ws->may_fault || !ws->range->pfn_flags_mask) {
		unsigned long *entry = hmm_entry(ws, addr);
		unsigned long i, n = (end - addr) >> PAGE_SHIFT;

		if (hmm_unmet(hmm_wanted(ws, addr), val)) {
			ws->run_start = addr;
			ws->run_end = end;
			return true;
		}
		for (i = 0; i < n; i++)
			entry[i] = val + i * step;
		return false;
	}
	for (; addr < end; addr += PAGE_SIZE, val += step) {
		if (hmm_unmet(hmm_wanted(ws, addr), val))
			break;
		*hmm_entry(ws, addr) = val;
	}
	if (addr == end)
		return false;

	ws->run_start = addr;
	do {
		addr += PAGE_SIZE;
	} while (addr < end && hmm_unmet(hmm_wanted(ws, addr), val));
	ws->run_end = addr;
	return true;
}

/*
 * Fill [@addr, @end) of a huge leaf read under @ptl with @val, then drop
 * @ptl.  Returns 0 when every entry is settled, -EFAULT when a fault was
 * asked for on an error entry, and 1 when the recorded run must be faulted.
 */
static int hmm_fill_leaf(struct hmm_walk_state *ws, unsigned long addr,
			 unsigned long end, unsigned long val, spinlock_t *ptl)
{
	bool run = hmm_fill_span(ws, addr, end, val);

	spin_unlock(ptl);
	if (!run)
		return 0;
	return (val & HMM_PFN_ERROR) ? -EFAULT : 1;
}

/* Fault in one page; @want says whether it must end up writable. */
static int hmm_fault_page(struct vm_area_struct *vma, unsigned long addr,
			  unsigned long want)
{
	unsigned int fault_flags = FAULT_FLAG_REMOTE;

	if (want & HMM_PFN_REQ_WRITE) {
		if (!(vma->vm_flags & VM_WRITE))
			return -EPERM;
		fault_flags |= FAULT_FLAG_WRITE;
	}
	if (handle_mm_fault(vma, addr, fault_flags, NULL) & VM_FAULT_ERROR)
		return -EFAULT;
	return 0;
}

/**
 * hmm_fault_run() - fault in the run recorded by the current callback
 * @ws: walk state
 * @vma: the VMA holding the run
 * @one_leaf: the run lies inside one huge mapping (huge PMD or PUD, hugetlb
 *	page), which a single fault fixes as a whole
 *
 * Called with the mmap lock held and no page table lock.  A run inside one
 * leaf gets one fault, a write fault if any of its pages asks to write; a
 * run of base pages gets one fault per page.  Either way the walk then
 * starts again at the run, to read what the faults produced.
 *
 * Return: HMM_WALK_RESTART, -EPERM for a write request in a VMA that is not
 * writable, -EFAULT if the fault failed.
 */
static int hmm_fault_run(struct hmm_walk_state *ws, struct vm_area_struct *vma,
			 bool one_leaf)
{
	unsigned long addr, want = hmm_wanted(ws, ws->run_start);
	/* Without per-page requests every page of the run asks the same. */
	bool per_page = ws->range->pfn_flags_mask;
	int ret;

	if (one_leaf) {
		ws->faulted++;
		for (addr = ws->run_start + PAGE_SIZE;
		     per_page && addr < ws->run_end; addr += PAGE_SIZE)
			want |= hmm_wanted(ws, addr);
		ret = hmm_fault_page(vma, ws->run_start, want);
		if (ret)
			return ret;
	} else {
		ws->faulted += (ws->run_end - ws->run_start) >> PAGE_SHIFT;
		for (addr = ws->run_start; addr < ws->run_end;
		     addr += PAGE_SIZE) {
			if (per_page)
				want = hmm_wanted(ws, addr);
			ret = hmm_fault_page(vma, addr, want);
			if (ret)
				return ret;
		}
	}
	ws->restart = ws->run_start;
	return HMM_WALK_RESTART;
}

/* Has the range been invalidated since the caller's mmu_interval_read_begin()? */
static bool hmm_range_stale(const struct hmm_range *range)
{
	return mmu_interval_check_retry(range->notifier, range->notifier_seq);
}

/*
 * test_walk: called once per VMA.  Device access goes through the struct
 * pages, so VMAs without them (VM_IO, VM_PFNMAP) and VMAs the owner cannot
 * read are reported as errors and never walked.
 */
static int hmm_walk_test(unsigned long start, unsigned long end,
			 struct mm_walk *walk)
{
	struct hmm_walk_state *ws = walk->private;
	struct vm_area_struct *vma = walk->vma;

	if ((vma->vm_flags & VM_READ) && !(vma->vm_flags & (VM_IO | VM_PFNMAP)))
		return 0;
	if (hmm_fill_span(ws, start, end, HMM_PFN_ERROR))
		return -EFAULT;
	return 1;
}

/*
 * pte_hole: nothing is mapped at [addr, end).  Outside any VMA no fault can
 * help, so a request is -EFAULT; inside a VMA requested pages are faulted
 * in.  In a hugetlb VMA the walker calls this with the hugetlb VMA lock
 * held, which hugetlb_fault() takes itself: drop it around the fault.
 */
static int hmm_walk_hole(unsigned long addr, unsigned long end,
			 __always_unused int depth, struct mm_walk *walk)
{
	struct hmm_walk_state *ws = walk->private;
	struct vm_area_struct *vma = walk->vma;
	int ret;

	if (!vma)
		return hmm_fill_span(ws, addr, end, HMM_PFN_ERROR) ? -EFAULT : 0;
	if (!hmm_fill_span(ws, addr, end, 0))
		return 0;
	if (!is_vm_hugetlb_page(vma))
		return hmm_fault_run(ws, vma, false);

	hugetlb_vma_unlock_read(vma);
	ret = hmm_fault_run(ws, vma, true);
	hugetlb_vma_lock_read(vma);
	return ret;
}

/* What hmm_pte_verdict() decided for one PTE. */
enum hmm_verdict {
	HMM_SETTLED,		/* the entry's result is known */
	HMM_NEEDS_FAULT,	/* the request needs a CPU fault */
	HMM_NEEDS_WAIT,		/* a migration must finish first */
	HMM_FAILS,		/* the request cannot be met: -EFAULT */
};

/* Settle a page whose CPU mapping gives @have, unless @want needs more. */
static enum hmm_verdict hmm_settle(unsigned long want, unsigned long have,
				   unsigned long *out)
{
	if (hmm_unmet(want, have))
		return HMM_NEEDS_FAULT;
	*out = have;
	return HMM_SETTLED;
}

/* A mapping the device cannot use: an error, or -EFAULT if requested. */
static enum hmm_verdict hmm_unusable(unsigned long want, unsigned long *out)
{
	if (want)
		return HMM_FAILS;
	*out = HMM_PFN_ERROR;
	return HMM_SETTLED;
}

/* Verdict for a non-present, non-empty PTE (a swap-type entry). */
static enum hmm_verdict hmm_swap_verdict(struct hmm_walk_state *ws,
					 unsigned long want, pte_t pte,
					 unsigned long *out)
{
	void *owner = ws->range->dev_private_owner;
	swp_entry_t entry = pte_to_swp_entry(pte);

	/*
	 * Pages of the caller's own device are reported as they are, and
	 * never faulted, whatever the request: the fault would call back
	 * into the caller's migrate_to_ram(), which may well be waiting on
	 * this very call.  A write request on a read-only one (a COW copy
	 * after fork) therefore comes back without HMM_PFN_WRITE, and the
	 * driver decides what to do about it.  The entry holds a reference on
	 * the device page and we hold the PTL, so the page and its pgmap are
	 * stable here.
	 */
	if (is_device_private_entry(entry) &&
	    page_pgmap(pfn_swap_entry_to_page(entry))->owner == owner) {
		*out = swp_offset_pfn(entry) | HMM_PFN_VALID;
		if (is_writable_device_private_entry(entry))
			*out |= HMM_PFN_WRITE;
		return HMM_SETTLED;
	}
	/* Unless asked for, nothing the CPU cannot use is looked into. */
	if (!want) {
		*out = 0;
		return HMM_SETTLED;
	}
	if (is_migration_entry(entry))
		return HMM_NEEDS_WAIT;
	/*
	 * A real swap entry, another device's private page, or a page some
	 * device holds exclusive access to: the CPU fault brings the page
	 * back.  Poisoned pages and anything not known here cannot be had.
	 */
	if (!non_swap_entry(entry) || is_device_private_entry(entry) ||
	    is_device_exclusive_entry(entry))
		return HMM_NEEDS_FAULT;
	return HMM_FAILS;
}

/*
 * Does a present, non-zero-page PTE map a page the walk may report?  Where
 * the architecture marks every PTE without a refcounted page special, the
 * bit says it, sparing a snapshot a vm_normal_page() call on every PTE.
 */
static bool hmm_pte_has_page(struct vm_area_struct *vma, unsigned long addr,
			     pte_t pte)
{
	if (pte_devmap(pte))
		return true;
	if (IS_ENABLED(CONFIG_ARCH_HAS_PTE_SPECIAL))
		return !pte_special(pte);
	return vm_normal_page(vma, addr, pte);
}

/**
 * hmm_pte_verdict() - decide what to report for one PTE
 * @ws: walk state
 * @vma: the VMA being walked
 * @addr: address the PTE maps
 * @pte: the PTE, read under its page table lock
 * @out: the entry's result when HMM_SETTLED is returned
 *
 * Return: the verdict for the page.
 */
static enum hmm_verdict hmm_pte_verdict(struct hmm_walk_state *ws,
					struct vm_area_struct *vma,
					unsigned long addr, pte_t pte,
					unsigned long *out)
{
	unsigned long want = hmm_wanted(ws, addr);
	unsigned long pfn, have;

	if (!pte_present(pte)) {
		/* PTE markers count as empty: a fault resolves them or fails. */
		if (pte_none_mostly(pte))
			return hmm_settle(want, 0, out);
		return hmm_swap_verdict(ws, want, pte, out);
	}

	/*
	 * A NUMA hinting PTE gives nothing until a fault restores the
	 * protection; unless one is asked for, the pfn is reported without
	 * any flag, as by 6.12.
	 */
	have = 0;
	if (!pte_protnone(pte)) {
		have = HMM_PFN_VALID;
		if (pte_write(pte))
			have |= HMM_PFN_WRITE;
	}
	if (hmm_unmet(want, have))
		return HMM_NEEDS_FAULT;

	/* The zero page is readable, never writable (its PTE says so). */
	pfn = pte_pfn(pte);
	if (!is_zero_pfn(pfn) && !hmm_pte_has_page(vma, addr, pte))
		/* A special mapping without a usable struct page. */
		return hmm_unusable(want, out);
	*out = pfn | have;
	return HMM_SETTLED;
}

/**
 * hmm_walk_ptes() - handle the PTEs of [@addr, @end) in one PTE table
 * @ws: walk state
 * @pmdp: the PMD pointing to the table
 * @addr: first address
 * @end: end address (exclusive), inside the same table
 * @walk: the walk
 *
 * Reads the PTEs under the table lock, writing results until it meets a
 * page it cannot settle.  A run of pages needing a fault is collected
 * and faulted in after the lock is dropped; a migration entry is waited
 * for, also without the lock.  Both end the walk for a restart at the
 * first unsettled page.
 *
 * Return: 0, HMM_WALK_RESTART or a negative errno.
 */
static int hmm_walk_ptes(struct hmm_walk_state *ws, pmd_t *pmdp,
			 unsigned long addr, unsigned long end,
			 struct mm_walk *walk)
{
	enum hmm_verdict verdict = HMM_SETTLED;
	bool in_run = false;
	pte_t *first, *ptep;
	spinlock_t *ptl;		/* the PTE table lock */

	first = pte_offset_map_lock(walk->mm, pmdp, addr, &ptl);
	if (!first) {
		/* The table went away or was replaced: look at the PMD again. */
		walk->action = ACTION_AGAIN;
		return 0;
	}
	for (ptep = first; addr < end; addr += PAGE_SIZE, ptep++) {
		pte_t pte = ptep_get(ptep);
		unsigned long val;

		/*
		 * With one request for the whole range, an empty PTE inside a
		 * run needs the fault as well: spare it the verdict.
		 */
		if (in_run && !ws->range->pfn_flags_mask && pte_none(pte))
			continue;
		verdict = hmm_pte_verdict(ws, walk->vma, addr, pte, &val);
		if (verdict == HMM_NEEDS_FAULT) {
			if (!in_run)
				ws->run_start = addr;
			in_run = true;
			continue;
		}
		if (in_run || verdict != HMM_SETTLED)
			break;
		*hmm_entry(ws, addr) = val;
	}
	pte_unmap_unlock(first, ptl);

	if (in_run) {
		ws->run_end = addr;
		return hmm_fault_run(ws, walk->vma, false);
	}
	if (verdict == HMM_SETTLED)
		return 0;
	if (verdict == HMM_FAILS)
		return -EFAULT;

	/* The PMD table stays put: we hold the mmap lock. */
	migration_entry_wait(walk->mm, pmdp, addr);
	ws->restart = addr;
	return HMM_WALK_RESTART;
}

/*
 * A device-private PMD, read under @ptl, which is dropped here.  As for a
 * device-private PTE (hmm_swap_verdict()), the caller's own device folio is
 * reported as it is, never faulted, here with the PMD map order; another
 * device's is reported as 0 unless a fault is asked for, which brings the
 * pages back to system memory (see do_huge_pmd_device_private()).
 */
static int hmm_walk_device_pmd(struct hmm_walk_state *ws, pmd_t pmd,
			       unsigned long addr, unsigned long end,
			       spinlock_t *ptl, struct vm_area_struct *vma)
{
	swp_entry_t entry = pmd_to_swp_entry(pmd);
	struct folio *folio = pfn_swap_entry_folio(entry);
	unsigned long val;
	int ret;

	/* The mapping holds the folio, so its pgmap is stable. */
	if (folio->pgmap->owner != ws->range->dev_private_owner) {
		ret = hmm_fill_leaf(ws, addr, end, 0, ptl);
		if (ret <= 0)
			return ret;
		return hmm_fault_run(ws, vma, true);
	}

	val = HMM_PFN_VALID | hmm_order_bits(PMD_SHIFT) |
	      (swp_offset_pfn(entry) + ((addr & ~PMD_MASK) >> PAGE_SHIFT));
	if (is_writable_device_private_entry(entry))
		val |= HMM_PFN_WRITE;
	for (; addr < end; addr += PAGE_SIZE, val++)
		*hmm_entry(ws, addr) = val;
	spin_unlock(ptl);
	return 0;
}

/**
 * hmm_walk_pmd_leaf() - handle a huge PMD (THP, devmap) or a PMD swap entry
 * @ws: walk state
 * @pmdp: the PMD
 * @addr: first address
 * @end: end address (exclusive), inside the PMD
 * @walk: the walk
 *
 * The entry is read under the PMD lock and all its pages are reported at
 * once, with the PMD map order.  The huge zero page is never writable.
 *
 * Return: 0, HMM_WALK_RESTART or a negative errno.
 */
static int hmm_walk_pmd_leaf(struct hmm_walk_state *ws, pmd_t *pmdp,
			     unsigned long addr, unsigned long end,
			     struct mm_walk *walk)
{
	struct vm_area_struct *vma = walk->vma;
	unsigned long val;
	spinlock_t *ptl;		/* the PMD lock */
	bool run;
	int ret;
	pmd_t pmd;

	ptl = pmd_trans_huge_lock(pmdp, vma);
	if (!ptl) {
		/* Split or zapped since we looked: look again. */
		walk->action = ACTION_AGAIN;
		return 0;
	}
	pmd = pmdp_get(pmdp);

	if (is_pmd_migration_entry(pmd)) {
		run = hmm_fill_span(ws, addr, end, 0);
		spin_unlock(ptl);
		if (!run)
			return 0;
		pmd_migration_entry_wait(walk->mm, pmdp);
		ws->restart = ws->run_start;
		return HMM_WALK_RESTART;
	}

	if (is_pmd_device_private_entry(pmd))
		return hmm_walk_device_pmd(ws, pmd, addr, end, ptl, vma);

	if (!pmd_present(pmd)) {
		val = HMM_PFN_ERROR;
	} else if (pmd_protnone(pmd)) {
		/* NUMA hinting: the pfn without any flag, as for a PTE. */
		val = pmd_pfn(pmd) + ((addr & ~PMD_MASK) >> PAGE_SHIFT);
	} else if (is_huge_zero_pmd(pmd)) {
		val = HMM_PFN_VALID;
	} else if (pmd_devmap(pmd) || vm_normal_page_pmd(vma, addr, pmd)) {
		val = HMM_PFN_VALID;
		if (pmd_write(pmd))
			val |= HMM_PFN_WRITE;
	} else {
		val = HMM_PFN_ERROR;
	}
	if (val & HMM_PFN_VALID) {
		val |= hmm_order_bits(PMD_SHIFT);
		val |= pmd_pfn(pmd) + ((addr & ~PMD_MASK) >> PAGE_SHIFT);
	}

	ret = hmm_fill_leaf(ws, addr, end, val, ptl);
	if (ret <= 0)
		return ret;
	return hmm_fault_run(ws, vma, true);
}

/*
 * pmd_entry: called for each non-empty PMD of a non-hugetlb VMA.  There is
 * no pte_entry callback, so the core walker never splits a huge PMD for us
 * and never descends on its own: PTE tables are handled here.
 */
static int hmm_walk_pmd(pmd_t *pmdp, unsigned long addr, unsigned long end,
			struct mm_walk *walk)
{
	struct hmm_walk_state *ws = walk->private;
	pmd_t pmd;

	if (hmm_range_stale(ws->range))
		return -EBUSY;

	pmd = pmdp_get_lockless(pmdp);
	if (pmd_none(pmd))
		return hmm_walk_hole(addr, end, -1, walk);
	/* Exactly the entries pmd_trans_huge_lock() accepts. */
	if (IS_ENABLED(CONFIG_TRANSPARENT_HUGEPAGE) &&
	    (is_swap_pmd(pmd) || pmd_trans_huge(pmd) || pmd_devmap(pmd)))
		return hmm_walk_pmd_leaf(ws, pmdp, addr, end, walk);
	if (!pmd_present(pmd) || pmd_bad(pmd))
		return hmm_fill_span(ws, addr, end, HMM_PFN_ERROR) ? -EFAULT : 0;
	return hmm_walk_ptes(ws, pmdp, addr, end, walk);
}

#if defined(CONFIG_TRANSPARENT_HUGEPAGE) && \
	defined(CONFIG_HAVE_ARCH_TRANSPARENT_HUGEPAGE_PUD)
/*
 * pud_entry: a huge PUD (devmap, e.g. device DAX) is reported in one go,
 * under the PUD lock, and the walker is told not to descend, which would
 * split it.  A PUD pointing to a PMD table is left to the walker.
 */
static int hmm_walk_pud(pud_t *pudp, unsigned long addr, unsigned long end,
			struct mm_walk *walk)
{
	struct hmm_walk_state *ws = walk->private;
	unsigned long val;
	spinlock_t *ptl;		/* the PUD lock */
	int ret;
	pud_t pud;

	pud = pudp_get(pudp);
	if (pud_present(pud) && !pud_leaf(pud))
		return 0;

	ptl = pud_lock(walk->mm, pudp);
	pud = pudp_get(pudp);
	if (pud_none(pud) || (pud_present(pud) && !pud_leaf(pud))) {
		/* Changed since we looked: let the walker look again. */
		spin_unlock(ptl);
		walk->action = ACTION_AGAIN;
		return 0;
	}
	walk->action = ACTION_CONTINUE;

	if (pud_present(pud) && pud_devmap(pud)) {
		val = HMM_PFN_VALID | hmm_order_bits(PUD_SHIFT);
		if (pud_write(pud))
			val |= HMM_PFN_WRITE;
		val |= pud_pfn(pud) + ((addr & ~PUD_MASK) >> PAGE_SHIFT);
	} else {
		/* Nothing else has struct pages we could hand out. */
		val = HMM_PFN_ERROR;
	}
	ret = hmm_fill_leaf(ws, addr, end, val, ptl);
	if (ret <= 0)
		return ret;
	return hmm_fault_run(ws, walk->vma, true);
}
#else
#define hmm_walk_pud NULL
#endif

#ifdef CONFIG_HUGETLB_PAGE
/*
 * hugetlb_entry: one hugetlb page (or the part of it inside the range).
 * The walker holds the hugetlb VMA lock for read, which keeps @ptep valid
 * (shared PMDs cannot be unshared under it); the entry itself is read under
 * the hugetlb page table lock.  Both are dropped before faulting or
 * waiting, since hugetlb_fault() takes them itself, and the VMA lock is
 * taken again before returning because the walker releases it.
 */
static int hmm_walk_hugetlb(pte_t *ptep, unsigned long hmask,
			    unsigned long addr, unsigned long end,
			    struct mm_walk *walk)
{
	struct hmm_walk_state *ws = walk->private;
	struct vm_area_struct *vma = walk->vma;
	struct hstate *h = hstate_vma(vma);
	unsigned long val;
	spinlock_t *ptl;		/* the hugetlb page table lock */
	pte_t entry;
	bool run;
	int ret;

	if (hmm_range_stale(ws->range))
		return -EBUSY;

	ptl = huge_pte_lock(h, walk->mm, ptep);
	entry = huge_ptep_get(walk->mm, addr & hmask, ptep);

	if (is_hugetlb_entry_migration(entry)) {
		run = hmm_fill_span(ws, addr, end, 0);
		spin_unlock(ptl);
		if (!run)
			return 0;
		/* Drops the hugetlb VMA lock, whatever it finds. */
		migration_entry_wait_huge(vma, addr & hmask, ptep);
		hugetlb_vma_lock_read(vma);
		ws->restart = ws->run_start;
		return HMM_WALK_RESTART;
	}

	if (huge_pte_none_mostly(entry)) {
		val = 0;
	} else if (!pte_present(entry)) {
		/* Poisoned, or something we do not know about. */
		val = HMM_PFN_ERROR;
	} else {
		val = HMM_PFN_VALID | hmm_order_bits(huge_page_shift(h));
		if (huge_pte_write(entry))
			val |= HMM_PFN_WRITE;
		val |= pte_pfn(entry) + ((addr & ~hmask) >> PAGE_SHIFT);
	}
	ret = hmm_fill_leaf(ws, addr, end, val, ptl);
	if (ret <= 0)
		return ret;

	hugetlb_vma_unlock_read(vma);
	ret = hmm_fault_run(ws, vma, true);
	hugetlb_vma_lock_read(vma);
	return ret;
}
#else
#define hmm_walk_hugetlb NULL
#endif

static const struct mm_walk_ops hmm_walk_ops = {
	.test_walk	= hmm_walk_test,
	.pte_hole	= hmm_walk_hole,
	.pud_entry	= hmm_walk_pud,
	.pmd_entry	= hmm_walk_pmd,
	.hugetlb_entry	= hmm_walk_hugetlb,
	.walk_lock	= PGWALK_RDLOCK,
};

static bool hmm_range_valid(const struct hmm_range *range)
{
	return range && range->notifier && range->notifier->mm &&
	       range->hmm_pfns && range->start < range->end &&
	       PAGE_ALIGNED(range->start) && PAGE_ALIGNED(range->end);
}

/**
 * hmm_range_fault() - snapshot, and optionally fault in, a range of memory
 * @range: the range, with its notifier, sequence, pfn array and requests
 *
 * Fills @range->hmm_pfns with one entry per page of [@range->start,
 * @range->end): the pfn and the %HMM_PFN_VALID and %HMM_PFN_WRITE flags of
 * what the CPU maps there, plus the map order for pages mapped by a huge
 * PMD, PUD or hugetlb entry; 0 for a page not mapped; %HMM_PFN_ERROR for a
 * page the device must not touch.  Pages whose request (@range->default_flags
 * combined with the entry's own bits selected by @range->pfn_flags_mask) is
 * %HMM_PFN_REQ_FAULT, possibly with %HMM_PFN_REQ_WRITE, are first faulted in
 * as by a remote access from the CPU, so that the result meets the request.
 * Device-private pages owned by @range->dev_private_owner are reported with
 * their pfn, %HMM_PFN_VALID and, if the CPU may write to them,
 * %HMM_PFN_WRITE; they are never faulted, even when a write is requested on
 * a read-only one (a COW copy after fork), since that would call the
 * caller's own migrate_to_ram().  Other device-private pages, like swapped
 * out pages and pages under device-exclusive access, are reported as 0
 * when no fault is requested and brought back by the CPU fault path when
 * one is.  Other non-present entries (poisoned pages) are 0 without a
 * request and -EFAULT with one.
 *
 * The caller's side of the contract:
 *
 * 1. insert an mmu_interval_notifier covering the range, whose invalidate
 *    callback takes the driver's page table lock and calls
 *    mmu_interval_set_seq();
 * 2. @range->notifier_seq = mmu_interval_read_begin(@range->notifier);
 * 3. take the mmap lock of @range->notifier->mm for read, call this
 *    function, drop the mmap lock; on -EBUSY go back to step 2;
 * 4. take the driver's page table lock; if mmu_interval_read_retry() says
 *    the range was invalidated, drop it and go back to step 2;
 * 5. program the device from @range->hmm_pfns, then drop the lock.
 *
 * The request bits are read from @range->hmm_pfns only when
 * @range->pfn_flags_mask selects them; they must be set again before each
 * call, as the results overwrite them.  Drivers usually bound the retries
 * with %HMM_RANGE_DEFAULT_TIMEOUT.
 *
 * Context: Process context, may sleep.  The mmap lock of
 * @range->notifier->mm must be held (for read or write) and the mm kept
 * alive by the caller.  The lock is never dropped.
 *
 * Return: 0 when every entry has been filled; otherwise the content of
 * @range->hmm_pfns is undefined and the error is
 * -EINVAL for a malformed @range (no notifier or pfn array, unaligned or
 * empty range);
 * -EBUSY when the range was invalidated since @range->notifier_seq was
 * read (start over from mmu_interval_read_begin());
 * -EFAULT when a requested page lies outside any VMA, in a VMA that cannot
 * be read or has no struct pages (VM_IO, VM_PFNMAP), is poisoned or special,
 * or could not be faulted in;
 * -EPERM when a write is requested in a VMA without write permission.
 */
int hmm_range_fault(struct hmm_range *range)
{
	struct hmm_walk_state ws;
	struct mm_struct *mm;
	int ret;

	if (!hmm_range_valid(range))
		return -EINVAL;

	mm = range->notifier->mm;
	mmap_assert_locked(mm);

	ws = (struct hmm_walk_state) {
		.range = range,
		.restart = range->start,
		.may_fault = (range->default_flags | range->pfn_flags_mask) &
			     HMM_PFN_REQ_FAULT,
	};
	for (;;) {
		if (hmm_range_stale(range))
			return -EBUSY;
		ret = walk_page_range(mm, ws.restart, range->end,
				      &hmm_walk_ops, &ws);
		if (ret != HMM_WALK_RESTART)
			return ret;
		if (ws.faulted >= HMM_RESCHED_PAGES) {
			ws.faulted = 0;
			cond_resched();
		}
	}
}
EXPORT_SYMBOL(hmm_range_fault);
