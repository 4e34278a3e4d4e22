/* SPDX-License-Identifier: GPL-2.0 */
/*
 * hmm_range_fault(): let a device mirror part of a process address space.
 *
 * A driver that keeps its own page table for a range of a process's memory
 * (a GPU, an RDMA NIC with on-demand paging, ...) uses hmm_range_fault() to
 * read the CPU page tables of that range into an array of "hmm pfns", one
 * entry per base page, optionally faulting pages in first.  An
 * mmu_interval_notifier covering the range tells the driver when what it
 * read went stale.
 */
#ifndef _LINUX_HMM_H
#define _LINUX_HMM_H

#include <linux/bits.h>
#include <linux/mm.h>

struct mmu_interval_notifier;

/**
 * enum hmm_pfn_flags - bits of an hmm pfn
 * @HMM_PFN_VALID: output: the low bits hold a pfn the device may read.
 *	With a non-NULL &hmm_range.dev_private_owner the pfn may be a
 *	device-private page of that owner.
 * @HMM_PFN_WRITE: output: the device may also write to the page (only
 *	ever set together with @HMM_PFN_VALID).
 * @HMM_PFN_ERROR: output: the device must not access this page at all
 *	(no VMA, an unreadable or I/O mapping, a poisoned or special page).
 * @HMM_PFN_ORDER_SHIFT: output: position of the 5-bit field giving the
 *	order of the CPU mapping the page belongs to (see
 *	hmm_pfn_to_map_order()).
 * @HMM_PFN_REQ_FAULT: input: the entry must come back with
 *	@HMM_PFN_VALID; fault the page in if it is not mapped.
 * @HMM_PFN_REQ_WRITE: input: the entry must come back with
 *	@HMM_PFN_WRITE; only meaningful together with @HMM_PFN_REQ_FAULT.
 * @HMM_PFN_FLAGS: all bits that are not part of the pfn.
 *
 * An entry that comes back as 0 is not mapped by the CPU right now; asking
 * for it again with @HMM_PFN_REQ_FAULT may succeed.  The input flags share
 * their bits with the matching output flags, so an array can be reused for
 * a new call only after its request bits have been set again.
 */
enum hmm_pfn_flags {
	HMM_PFN_VALID = 1UL << (BITS_PER_LONG - 1),
	HMM_PFN_WRITE = 1UL << (BITS_PER_LONG - 2),
	HMM_PFN_ERROR = 1UL << (BITS_PER_LONG - 3),
	HMM_PFN_ORDER_SHIFT = (BITS_PER_LONG - 8),

	HMM_PFN_REQ_FAULT = HMM_PFN_VALID,
	HMM_PFN_REQ_WRITE = HMM_PFN_WRITE,

	HMM_PFN_FLAGS = 0xFFUL << HMM_PFN_ORDER_SHIFT,
};

/**
 * hmm_pfn_to_page() - the page an hmm pfn refers to
 * @hmm_pfn: an entry filled by hmm_range_fault() with %HMM_PFN_VALID set
 *
 * The page is only guaranteed to still be the one mapped at that address
 * while the driver holds the lock it pairs with mmu_interval_read_retry()
 * and that retry check has passed.
 *
 * Return: the struct page of the entry's pfn.
 */
static inline struct page *hmm_pfn_to_page(unsigned long hmm_pfn)
{
	unsigned long pfn = hmm_pfn & ~HMM_PFN_FLAGS;

	return pfn_to_page(pfn);
}

/**
 * hmm_pfn_to_map_order() - order of the CPU mapping behind an hmm pfn
 * @hmm_pfn: an entry filled by hmm_range_fault() with %HMM_PFN_VALID set
 *
 * A driver able to map large pages itself can use this to find entries the
 * CPU maps with one PMD, PUD or hugetlb entry.  Such a mapping covers the
 * naturally aligned block of (1 << order) pages around the address, which
 * may reach past the start or end of the range that was walked; every entry
 * of the block inside the range carries the same flags and order.
 *
 * Return: the mapping order, 0 for a page mapped by a single PTE.
 */
static inline unsigned int hmm_pfn_to_map_order(unsigned long hmm_pfn)
{
	return (hmm_pfn >> HMM_PFN_ORDER_SHIFT) & GENMASK(4, 0);
}

/**
 * struct hmm_range - one request to hmm_range_fault()
 * @notifier: interval notifier whose interval covers [@start, @end)
 * @notifier_seq: sequence number from mmu_interval_read_begin() on @notifier
 * @start: first virtual address of the range (page aligned)
 * @end: end of the range, exclusive (page aligned, above @start)
 * @hmm_pfns: one entry per page of the range: request flags on input, the
 *	result on output
 * @default_flags: request flags applied to every page of the range
 * @pfn_flags_mask: which request bits of each @hmm_pfns entry are used on
 *	top of @default_flags (0: ignore the per-page input entirely)
 * @dev_private_owner: device-private pages whose pgmap owner is this value
 *	are reported as they are instead of being migrated back to the CPU
 */
struct hmm_range {
	struct mmu_interval_notifier *notifier;
	unsigned long		notifier_seq;
	unsigned long		start;
	unsigned long		end;
	unsigned long		*hmm_pfns;
	unsigned long		default_flags;
	unsigned long		pfn_flags_mask;
	void			*dev_private_owner;
};

int hmm_range_fault(struct hmm_range *range);

/*
 * How long (in milliseconds) a driver should keep retrying
 * hmm_range_fault() after -EBUSY before giving up.
 */
#define HMM_RANGE_DEFAULT_TIMEOUT 1000

#endif /* _LINUX_HMM_H */
