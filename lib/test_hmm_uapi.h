/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * Userspace interface of the test_hmm pseudo driver (lib/test_hmm.c).
 *
 * The driver pretends to be a device with its own memory and its own page
 * table that mirrors the address space of the process that opened it.  The
 * selftests in tools/testing/selftests/mm/hmm-tests.c include this header
 * straight from the source tree; it is deliberately not part of
 * include/uapi.  The layout and the numbers below are a stable ABI.
 */
#ifndef _LIB_TEST_HMM_UAPI_H
#define _LIB_TEST_HMM_UAPI_H

#include <linux/const.h>
#include <linux/types.h>
#include <linux/ioctl.h>

/**
 * struct hmm_dmirror_cmd - argument of every HMM_DMIRROR_* ioctl
 * @addr:   in: page aligned start of the range of the caller's address
 *          space the device works on
 * @ptr:    in: user buffer the device copies data to or from (one byte per
 *          page for HMM_DMIRROR_SNAPSHOT, one page per page otherwise)
 * @npages: in: length of the range in pages, at least one
 * @cpages: out: number of pages the command handled
 * @faults: out: number of device faults the command had to take
 */
struct hmm_dmirror_cmd {
	__u64		addr;
	__u64		ptr;
	__u64		npages;
	__u64		cpages;
	__u64		faults;
};

/* Device reads/writes the range through its mirror page table. */
#define HMM_DMIRROR_READ		_IOWR('H', 0x00, struct hmm_dmirror_cmd)
#define HMM_DMIRROR_WRITE		_IOWR('H', 0x01, struct hmm_dmirror_cmd)
/* Move the range into device memory, or device memory back to RAM. */
#define HMM_DMIRROR_MIGRATE_TO_DEV	_IOWR('H', 0x02, struct hmm_dmirror_cmd)
#define HMM_DMIRROR_MIGRATE_TO_SYS	_IOWR('H', 0x03, struct hmm_dmirror_cmd)
/* Report how the CPU page table maps each page (HMM_DMIRROR_PROT_*). */
#define HMM_DMIRROR_SNAPSHOT		_IOWR('H', 0x04, struct hmm_dmirror_cmd)
/* Take exclusive (atomic) access to the range, and check it is held. */
#define HMM_DMIRROR_EXCLUSIVE		_IOWR('H', 0x05, struct hmm_dmirror_cmd)
#define HMM_DMIRROR_CHECK_EXCLUSIVE	_IOWR('H', 0x06, struct hmm_dmirror_cmd)
/* Evict everything held in this device's memory back to system RAM. */
#define HMM_DMIRROR_RELEASE		_IOWR('H', 0x07, struct hmm_dmirror_cmd)
/*
 * Set the HMM_DMIRROR_FLAG_* bits given in @npages for this open file
 * (@addr must still be page aligned, and @npages is not 0).
 */
#define HMM_DMIRROR_FLAGS		_IOWR('H', 0x08, struct hmm_dmirror_cmd)

/* The next allocation of a 2 MiB device folio fails (then clears itself). */
#define HMM_DMIRROR_FLAG_FAIL_ALLOC	_BITULL(0)

/*
 * One byte per page written to @ptr by HMM_DMIRROR_SNAPSHOT.  The low bits
 * give the access the CPU page table allows, PMD/PUD tell that the page is
 * mapped by a huge entry, and the high nibble says what kind of page backs
 * the address:
 *
 * ERROR:               the range could not be walked (no valid mapping)
 * NONE:                nothing mapped, or mapped without access
 * READ, WRITE:         read-only or writable mapping
 * PMD, PUD:            the page is part of a PMD or PUD sized mapping
 * ZERO:                the shared zero page
 * DEV_PRIVATE_LOCAL:   device-private page of the device asked
 * DEV_PRIVATE_REMOTE:  device-private page of some other device
 * DEV_COHERENT_LOCAL:  device-coherent page of the device asked
 * DEV_COHERENT_REMOTE: device-coherent page of some other device
 */
enum {
	HMM_DMIRROR_PROT_ERROR			= 0xFF,
	HMM_DMIRROR_PROT_NONE			= 0x00,
	HMM_DMIRROR_PROT_READ			= 0x01,
	HMM_DMIRROR_PROT_WRITE			= 0x02,
	HMM_DMIRROR_PROT_PMD			= 0x04,
	HMM_DMIRROR_PROT_PUD			= 0x08,
	HMM_DMIRROR_PROT_ZERO			= 0x10,
	HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL	= 0x20,
	HMM_DMIRROR_PROT_DEV_PRIVATE_REMOTE	= 0x30,
	HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL	= 0x40,
	HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE	= 0x50,
};

/* Kind of memory a dmirror device simulates; 0 means "not set". */
enum {
	HMM_DMIRROR_MEMORY_DEVICE_PRIVATE	= 1,
	HMM_DMIRROR_MEMORY_DEVICE_COHERENT	= 2,
};

#endif /* _LIB_TEST_HMM_UAPI_H */
