/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * Interface of the hmm_bench module (bench/hmm_bench.c): each ioctl runs
 * one core HMM API call (or one sequence of them) on a range of the
 * caller's address space and reports how long the core calls took,
 * measured in the kernel with ktime_get_ns().  The module's own work
 * (allocating pfn arrays and destination pages, inserting the interval
 * notifier) is not counted.
 *
 * The module is built out of tree against each kernel it measures, from
 * the same source, so it uses only the exported HMM API of Linux 6.12.
 */
#ifndef _HMM_BENCH_UAPI_H
#define _HMM_BENCH_UAPI_H

#include <linux/const.h>
#include <linux/types.h>
#include <linux/ioctl.h>

#define HMM_BENCH_DEVICE "/dev/hmm_bench"

/**
 * struct hmm_bench_cmd - argument of the range ioctls
 * @addr:     in: page aligned start of the range
 * @size:     in: length of the range in bytes, a non-zero multiple of
 *            the page size
 * @flags:    in: HMM_BENCH_F_* bits
 * @ns:       out: nanoseconds spent in the core API calls
 * @pages:    out: pages the calls handled (valid pfns for SNAPSHOT and
 *            FAULT, migrated pages for TO_DEV, TO_SYS and EVICT, pages
 *            made exclusive for EXCLUSIVE)
 * @phase_ns: out: for the migrations, the time of each of the three
 *            calls: setup (migrate_vma_setup or migrate_device_range),
 *            pages, finalize; for EXCLUSIVE, [1] is the time to unlock
 *            and put the returned pages
 * @peak_bytes: out: with HMM_BENCH_F_SAMPLE, the largest drop of free
 *            system memory seen during the call, in bytes
 */
struct hmm_bench_cmd {
	__u64 addr;
	__u64 size;
	__u64 flags;
	__u64 ns;
	__u64 pages;
	__u64 phase_ns[3];
	__u64 peak_bytes;
};

/* FAULT: ask for write access (HMM_PFN_REQ_WRITE), not only read */
#define HMM_BENCH_F_WRITE	_BITULL(0)
/* TO_DEV, TO_SYS, EVICT: sample free memory during the call */
#define HMM_BENCH_F_SAMPLE	_BITULL(1)
#define HMM_BENCH_F_ALL		(HMM_BENCH_F_WRITE | HMM_BENCH_F_SAMPLE)

/**
 * struct hmm_bench_info - state of the module, read by HMM_BENCH_INFO
 * @pool_pages:  device-private pages of the module's pagemap
 * @pool_used:   of these, pages now in use
 * @meta_bytes:  drop of free system memory when the pagemap was added
 *               (its struct pages and page tables)
 * @fault_count: migrate_to_ram() calls since the last HMM_BENCH_INFO
 * @fault_pages: pages they migrated back to system memory
 * @fault_ns:    nanoseconds they spent in migrate_vma_*()
 */
struct hmm_bench_info {
	__u64 pool_pages;
	__u64 pool_used;
	__u64 meta_bytes;
	__u64 fault_count;
	__u64 fault_pages;
	__u64 fault_ns;
};

/* hmm_range_fault() of a range without faulting: a snapshot */
#define HMM_BENCH_SNAPSHOT	_IOWR('B', 0x00, struct hmm_bench_cmd)
/* hmm_range_fault() with HMM_PFN_REQ_FAULT (and REQ_WRITE if F_WRITE) */
#define HMM_BENCH_FAULT		_IOWR('B', 0x01, struct hmm_bench_cmd)
/* migrate_vma_*() of the range's system pages to device-private pages */
#define HMM_BENCH_TO_DEV	_IOWR('B', 0x02, struct hmm_bench_cmd)
/* migrate_vma_*() of the range's device-private pages to system pages */
#define HMM_BENCH_TO_SYS	_IOWR('B', 0x03, struct hmm_bench_cmd)
/*
 * migrate_device_*() of the first size / page size pages of the pool (the
 * pool hands out pages lowest first, and starts again at its first page
 * whenever it is empty, so after TO_DEV of N pages into an empty pool
 * these are exactly those N pages); addr must be 0
 */
#define HMM_BENCH_EVICT		_IOWR('B', 0x04, struct hmm_bench_cmd)
/* make_device_exclusive_range() of the range */
#define HMM_BENCH_EXCLUSIVE	_IOWR('B', 0x05, struct hmm_bench_cmd)
/* read the module's state and reset the fault counters */
#define HMM_BENCH_INFO		_IOR('B', 0x06, struct hmm_bench_info)

#endif /* _HMM_BENCH_UAPI_H */
