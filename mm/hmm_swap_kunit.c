// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit tests for device-private memory: the encoding of device-private and
 * device-exclusive swap entries, and the life cycle of a MEMORY_DEVICE_PRIVATE pgmap from claiming
 * a free physical range to memunmap_pages().
 */
#include <kunit/device.h>
#include <kunit/test.h>
#include <linux/completion.h>
#include <linux/delay.h>
#include <linux/ioport.h>
#include <linux/kthread.h>
#include <linux/memremap.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/random.h>
#include <linux/sizes.h>
#include <linux/swap.h>
#include <linux/swapops.h>

/* A device entry flavour and what it has to decode to. */
struct dp_flavour {
	const char *name;
	swp_entry_t (*make)(pgoff_t offset);
	unsigned int type;
	bool writable;
	bool exclusive;		/* device-exclusive, else device-private */
};

static const struct dp_flavour dp_flavours[] = {
	{
		.name = "readable",
		.make = make_readable_device_private_entry,
		.type = SWP_DEVICE_READ,
		.writable = false,
	},
	{
		.name = "writable",
		.make = make_writable_device_private_entry,
		.type = SWP_DEVICE_WRITE,
		.writable = true,
	},
	{
		.name = "exclusive readable",
		.make = make_readable_device_exclusive_entry,
		.type = SWP_DEVICE_EXCLUSIVE_READ,
		.writable = false,
		.exclusive = true,
	},
	{
		.name = "exclusive writable",
		.make = make_writable_device_exclusive_entry,
		.type = SWP_DEVICE_EXCLUSIVE_WRITE,
		.writable = true,
		.exclusive = true,
	},
};

static void check_dp_entry(struct kunit *test, const struct dp_flavour *fl,
			   unsigned long pfn)
{
	swp_entry_t entry = fl->make(pfn);
	pte_t pte;

	KUNIT_EXPECT_EQ_MSG(test, swp_type(entry), fl->type,
			    "%s entry, pfn %#lx", fl->name, pfn);
	/* Exactly one of the two kinds, with the right permission. */
	KUNIT_EXPECT_EQ_MSG(test, is_device_private_entry(entry), !fl->exclusive,
			    "%s entry, pfn %#lx", fl->name, pfn);
	KUNIT_EXPECT_EQ_MSG(test, is_device_exclusive_entry(entry), fl->exclusive,
			    "%s entry, pfn %#lx", fl->name, pfn);
	KUNIT_EXPECT_EQ_MSG(test, is_writable_device_private_entry(entry),
			    fl->writable && !fl->exclusive,
			    "%s entry, pfn %#lx", fl->name, pfn);
	KUNIT_EXPECT_EQ_MSG(test, is_writable_device_exclusive_entry(entry),
			    fl->writable && fl->exclusive,
			    "%s entry, pfn %#lx", fl->name, pfn);
	KUNIT_EXPECT_TRUE(test, is_device_mapping_entry(entry));
	KUNIT_EXPECT_TRUE(test, non_swap_entry(entry));
	KUNIT_EXPECT_TRUE(test, is_pfn_swap_entry(entry));
	KUNIT_EXPECT_EQ_MSG(test, swp_offset_pfn(entry), pfn,
			    "%s entry", fl->name);
	KUNIT_EXPECT_FALSE(test, is_migration_entry(entry));
	KUNIT_EXPECT_FALSE(test, is_hwpoison_entry(entry));
	KUNIT_EXPECT_FALSE(test, is_pte_marker_entry(entry));

	/* Through the architecture's PTE format and back. */
	pte = swp_entry_to_pte(entry);
	KUNIT_EXPECT_FALSE(test, pte_present(pte));
	KUNIT_EXPECT_TRUE(test, is_swap_pte(pte));
	KUNIT_EXPECT_EQ_MSG(test, pte_to_swp_entry(pte).val, entry.val,
			    "%s entry, pfn %#lx", fl->name, pfn);

	/* The software bits a swap PTE carries must not leak into it. */
	pte = pte_swp_mkuffd_wp(pte_swp_mksoft_dirty(pte));
	KUNIT_EXPECT_EQ_MSG(test, pte_to_swp_entry(pte).val, entry.val,
			    "%s entry with PTE bits, pfn %#lx", fl->name, pfn);
}

static void dp_entry_basic(struct kunit *test)
{
	int i;

	for (i = 0; i < ARRAY_SIZE(dp_flavours); i++) {
		check_dp_entry(test, &dp_flavours[i], 0);
		check_dp_entry(test, &dp_flavours[i], 1);
		check_dp_entry(test, &dp_flavours[i], 0x12345);
	}
	KUNIT_EXPECT_NE(test, SWP_DEVICE_READ, SWP_DEVICE_WRITE);
	KUNIT_EXPECT_NE(test, SWP_DEVICE_EXCLUSIVE_READ,
			SWP_DEVICE_EXCLUSIVE_WRITE);
}

/* Every pfn the entry can hold survives the trip, up to SWP_PFN_MASK. */
static void dp_entry_pfn_range(struct kunit *test)
{
	const unsigned long max = SWP_PFN_MASK;
	int i, bit;

	for (i = 0; i < ARRAY_SIZE(dp_flavours); i++) {
		const struct dp_flavour *fl = &dp_flavours[i];

		check_dp_entry(test, fl, max);
		for (bit = 0; bit < SWP_PFN_BITS; bit++) {
			check_dp_entry(test, fl, BIT(bit));
			check_dp_entry(test, fl, BIT(bit) - 1);
			check_dp_entry(test, fl, max & ~BIT(bit));
		}
	}
}

/*
 * Every swap type is exactly one of: a swap file, hwpoison, migration,
 * device-private, device-exclusive or the PTE marker; and the pfn-carrying
 * ones are exactly hwpoison, migration, device-private and device-exclusive.
 */
static void dp_entry_type_partition(struct kunit *test)
{
	unsigned int type, device_types = 0;

	for (type = 0; type < (1U << MAX_SWAPFILES_SHIFT); type++) {
		swp_entry_t entry = swp_entry(type, 42);
		bool dev = is_device_private_entry(entry);
		bool excl = is_device_exclusive_entry(entry);
		bool mig = is_migration_entry(entry);
		bool hwp = is_hwpoison_entry(entry);
		bool marker = is_pte_marker_entry(entry);
		bool file = !non_swap_entry(entry);

		KUNIT_EXPECT_EQ_MSG(test, dev + excl + mig + hwp + marker + file,
				    1, "swap type %u", type);
		KUNIT_EXPECT_EQ_MSG(test, is_pfn_swap_entry(entry),
				    dev || excl || mig || hwp, "swap type %u", type);
		KUNIT_EXPECT_EQ_MSG(test, is_device_mapping_entry(entry),
				    dev || excl, "swap type %u", type);
		KUNIT_EXPECT_EQ_MSG(test, file, type < MAX_SWAPFILES,
				    "swap type %u", type);
		if (!dev)
			KUNIT_EXPECT_FALSE(test,
					   is_writable_device_private_entry(entry));
		if (!excl)
			KUNIT_EXPECT_FALSE(test,
					   is_writable_device_exclusive_entry(entry));
		device_types += dev + excl;
	}
	KUNIT_EXPECT_EQ(test, device_types, SWP_DEVICE_NUM);
}

/* Other special entries are never taken for device-private ones. */
static void dp_entry_others(struct kunit *test)
{
	const unsigned long pfn = 0xabcde;
	swp_entry_t entry;

	if (IS_ENABLED(CONFIG_MIGRATION)) {
		swp_entry_t mig[] = {
			make_readable_migration_entry(pfn),
			make_readable_exclusive_migration_entry(pfn),
			make_writable_migration_entry(pfn),
		};
		int i;

		for (i = 0; i < ARRAY_SIZE(mig); i++) {
			KUNIT_EXPECT_TRUE(test, is_migration_entry(mig[i]));
			KUNIT_EXPECT_FALSE(test, is_device_private_entry(mig[i]));
			KUNIT_EXPECT_FALSE(test,
					   is_writable_device_private_entry(mig[i]));
			KUNIT_EXPECT_TRUE(test, is_pfn_swap_entry(mig[i]));
			KUNIT_EXPECT_EQ(test, swp_offset_pfn(mig[i]), pfn);
		}
	}

#ifdef CONFIG_MEMORY_FAILURE
	entry = swp_entry(SWP_HWPOISON, pfn);
	KUNIT_EXPECT_TRUE(test, is_hwpoison_entry(entry));
	KUNIT_EXPECT_FALSE(test, is_device_private_entry(entry));
	KUNIT_EXPECT_TRUE(test, is_pfn_swap_entry(entry));
	KUNIT_EXPECT_EQ(test, swp_offset_pfn(entry), pfn);
#endif

	entry = make_pte_marker_entry(PTE_MARKER_UFFD_WP);
	KUNIT_EXPECT_FALSE(test, is_device_private_entry(entry));
	KUNIT_EXPECT_FALSE(test, is_pfn_swap_entry(entry));

	/* An entry of the first swap file. */
	entry = swp_entry(0, pfn);
	KUNIT_EXPECT_FALSE(test, non_swap_entry(entry));
	KUNIT_EXPECT_FALSE(test, is_device_private_entry(entry));
	KUNIT_EXPECT_FALSE(test, is_pfn_swap_entry(entry));

	/* And a device-private entry is none of the others. */
	entry = make_writable_device_private_entry(pfn);
	KUNIT_EXPECT_FALSE(test, is_migration_entry(entry));
	KUNIT_EXPECT_FALSE(test, is_writable_migration_entry(entry));
	KUNIT_EXPECT_FALSE(test, is_hwpoison_entry(entry));
	KUNIT_EXPECT_FALSE(test, is_pte_marker_entry(entry));
	KUNIT_EXPECT_FALSE(test, is_device_exclusive_entry(entry));

	/* Nor is a device-exclusive one. */
	entry = make_writable_device_exclusive_entry(pfn);
	KUNIT_EXPECT_FALSE(test, is_migration_entry(entry));
	KUNIT_EXPECT_FALSE(test, is_writable_migration_entry(entry));
	KUNIT_EXPECT_FALSE(test, is_hwpoison_entry(entry));
	KUNIT_EXPECT_FALSE(test, is_pte_marker_entry(entry));
	KUNIT_EXPECT_FALSE(test, is_device_private_entry(entry));
	KUNIT_EXPECT_FALSE(test, is_writable_device_private_entry(entry));
}

/*
 * A fake device: counts what the core hands back through page_free() or
 * folio_free(), and the order of the last folio at the time.
 */
struct fake_device_memory {
	atomic_t nr_freed;
	struct page *freed;
	unsigned int freed_order;
	/* Last: struct dev_pagemap ends in a flexible array. */
	struct dev_pagemap pgmap;
};

static void fake_page_free(struct page *page)
{
	struct fake_device_memory *mem =
		container_of(page_pgmap(page), struct fake_device_memory, pgmap);

	mem->freed = page;
	atomic_inc(&mem->nr_freed);
}

static void fake_folio_free(struct folio *folio)
{
	struct fake_device_memory *mem =
		container_of(folio->pgmap, struct fake_device_memory, pgmap);

	mem->freed = &folio->page;
	mem->freed_order = folio_order(folio);
	atomic_inc(&mem->nr_freed);
}

static vm_fault_t fake_migrate_to_ram(struct vm_fault *vmf)
{
	/* Nothing is ever mapped from this memory, so nothing faults. */
	return VM_FAULT_SIGBUS;
}

static const struct dev_pagemap_ops fake_ops = {
	.page_free = fake_page_free,
	.migrate_to_ram = fake_migrate_to_ram,
};

static void release_region_action(void *data)
{
	struct resource *res = data;

	release_mem_region(res->start, resource_size(res));
}

static void memunmap_action(void *data)
{
	memunmap_pages(data);
}

/* Claim a free range; the test releases it when it ends. */
static struct resource *claim_free_range(struct kunit *test,
					 unsigned long size)
{
	struct resource *res;
	int ret;

	res = request_free_mem_region(&iomem_resource, size, "hmm_swap_kunit");
	KUNIT_ASSERT_FALSE_MSG(test, IS_ERR(res),
			       "request_free_mem_region: %ld", PTR_ERR(res));
	ret = kunit_add_action_or_reset(test, release_region_action, res);
	KUNIT_ASSERT_EQ(test, ret, 0);
	return res;
}

static void dp_free_region(struct kunit *test)
{
	struct resource *res = claim_free_range(test, SZ_2M);
	struct resource *clash;

	KUNIT_EXPECT_EQ(test, res->desc, IORES_DESC_DEVICE_PRIVATE_MEMORY);
	KUNIT_EXPECT_TRUE(test, res->flags & IORESOURCE_MEM);
	KUNIT_EXPECT_TRUE(test, res->flags & IORESOURCE_BUSY);
	KUNIT_EXPECT_GE(test, resource_size(res), (resource_size_t)SZ_2M);
	KUNIT_EXPECT_EQ(test, region_intersects(res->start, resource_size(res),
						IORESOURCE_SYSTEM_RAM,
						IORES_DESC_NONE),
			REGION_DISJOINT);

	/* Nobody else gets these addresses while the range is claimed. */
	clash = request_mem_region(res->start, PAGE_SIZE, "hmm_swap_kunit");
	KUNIT_EXPECT_NULL(test, clash);
	if (clash)
		release_mem_region(res->start, PAGE_SIZE);
}

static void dp_devm_free_region(struct kunit *test)
{
	struct resource *res, *again;
	resource_size_t start, size;
	struct device *dev;

	dev = kunit_device_register(test, "hmm_swap_kunit");
	KUNIT_ASSERT_FALSE(test, IS_ERR(dev));

	res = devm_request_free_mem_region(dev, &iomem_resource, SZ_2M);
	KUNIT_ASSERT_FALSE_MSG(test, IS_ERR(res),
			       "devm_request_free_mem_region: %ld",
			       PTR_ERR(res));
	KUNIT_EXPECT_EQ(test, res->desc, IORES_DESC_DEVICE_PRIVATE_MEMORY);
	KUNIT_EXPECT_STREQ(test, res->name, dev_name(dev));
	start = res->start;
	size = resource_size(res);

	/* Unbinding the device gives the range back. */
	kunit_device_unregister(test, dev);
	again = request_mem_region(start, size, "hmm_swap_kunit");
	KUNIT_EXPECT_NOT_NULL(test, again);
	if (again)
		release_mem_region(start, size);
}

static void check_fresh_device_page(struct kunit *test, struct page *page,
				    struct dev_pagemap *pgmap)
{
	KUNIT_EXPECT_TRUE(test, is_zone_device_page(page));
	KUNIT_EXPECT_EQ(test, page_zonenum(page), ZONE_DEVICE);
	KUNIT_EXPECT_TRUE(test, is_device_private_page(page));
	KUNIT_EXPECT_TRUE(test, folio_is_device_private(page_folio(page)));
	KUNIT_EXPECT_FALSE(test, is_device_coherent_page(page));
	KUNIT_EXPECT_FALSE(test, folio_is_device_coherent(page_folio(page)));
	KUNIT_EXPECT_PTR_EQ(test, page_pgmap(page), pgmap);
	KUNIT_EXPECT_EQ(test, page_ref_count(page), 0);
}

/*
 * Map @mem's @nr_range ranges, already set, as device-private memory with
 * @ops.  The caller sees to memunmap_pages().
 */
static void fake_map_ranges(struct kunit *test, struct fake_device_memory *mem,
			    int nr_range, const struct dev_pagemap_ops *ops)
{
	void *addr;

	mem->pgmap.type = MEMORY_DEVICE_PRIVATE;
	mem->pgmap.nr_range = nr_range;
	mem->pgmap.ops = ops;
	mem->pgmap.owner = mem;

	addr = memremap_pages(&mem->pgmap, numa_node_id());
	KUNIT_ASSERT_FALSE_MSG(test, IS_ERR_OR_NULL(addr),
			       "memremap_pages: %ld", PTR_ERR(addr));
}

/*
 * fake_map_ranges(), unmapped when the test ends, which waits for every
 * page to be freed.
 */
static void fake_map_ranges_managed(struct kunit *test,
				    struct fake_device_memory *mem,
				    int nr_range,
				    const struct dev_pagemap_ops *ops)
{
	int ret;

	fake_map_ranges(test, mem, nr_range, ops);
	ret = kunit_add_action_or_reset(test, memunmap_action, &mem->pgmap);
	KUNIT_ASSERT_EQ(test, ret, 0);
}

/*
 * A fake device with one range set, not mapped yet: a PMD's worth of free
 * physical addresses, aligned to it so that it can hold a PMD-sized folio.
 */
static struct fake_device_memory *fake_pmd_memory(struct kunit *test)
{
	struct fake_device_memory *mem;
	struct resource *res;

	mem = kunit_kzalloc(test, sizeof(*mem), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, mem);
	res = claim_free_range(test, 2 * PMD_SIZE);
	mem->pgmap.range.start = ALIGN(res->start, PMD_SIZE);
	mem->pgmap.range.end = mem->pgmap.range.start + PMD_SIZE - 1;
	return mem;
}

/* fake_pmd_memory() mapped with @ops until the test ends. */
static struct fake_device_memory *
fake_memremap(struct kunit *test, const struct dev_pagemap_ops *ops)
{
	struct fake_device_memory *mem = fake_pmd_memory(test);

	fake_map_ranges_managed(test, mem, 1, ops);
	return mem;
}

static void dp_memremap_lifecycle(struct kunit *test)
{
	struct fake_device_memory *mem = fake_memremap(test, &fake_ops);
	struct page *first, *last;

	first = pfn_to_page(PHYS_PFN(mem->pgmap.range.start));
	last = pfn_to_page(PHYS_PFN(mem->pgmap.range.end));
	check_fresh_device_page(test, first, &mem->pgmap);
	check_fresh_device_page(test, last, &mem->pgmap);

	/* Handed out: one reference, locked for use as a migration target. */
	zone_device_page_init(first);
	KUNIT_EXPECT_EQ(test, page_ref_count(first), 1);
	KUNIT_EXPECT_TRUE(test, PageLocked(first));
	unlock_page(first);

	/* Only the last reference gives it back, exactly once. */
	get_page(first);
	put_page(first);
	KUNIT_EXPECT_EQ(test, atomic_read(&mem->nr_freed), 0);
	put_page(first);
	KUNIT_EXPECT_EQ(test, atomic_read(&mem->nr_freed), 1);
	KUNIT_EXPECT_PTR_EQ(test, mem->freed, first);
	KUNIT_EXPECT_EQ(test, page_ref_count(first), 0);

	/* A freed page can be handed out again. */
	zone_device_page_init(first);
	unlock_page(first);
	put_page(first);
	KUNIT_EXPECT_EQ(test, atomic_read(&mem->nr_freed), 2);
	KUNIT_EXPECT_EQ(test, page_ref_count(first), 0);

	/* The memunmap_pages() action must not wait for anything now. */
}

static const struct dev_pagemap_ops fake_folio_ops = {
	.folio_free = fake_folio_free,
	.migrate_to_ram = fake_migrate_to_ram,
};

/* Every page of @folio, head or tail, leads to @folio and its pgmap. */
static void check_device_folio(struct kunit *test, struct folio *folio,
			       unsigned int order, struct dev_pagemap *pgmap)
{
	unsigned long i;

	KUNIT_ASSERT_EQ(test, folio_order(folio), order);
	KUNIT_EXPECT_EQ(test, folio_ref_count(folio), 1);
	KUNIT_EXPECT_TRUE(test, folio_test_locked(folio));
	KUNIT_EXPECT_NULL(test, folio->mapping);
	KUNIT_EXPECT_EQ(test, folio_mapcount(folio), 0);
	if (order && IS_ENABLED(CONFIG_TRANSPARENT_HUGEPAGE))
		KUNIT_EXPECT_TRUE(test, folio_test_large_rmappable(folio));
	if (order) {
		KUNIT_EXPECT_FALSE(test, folio_test_has_hwpoisoned(folio));
		KUNIT_EXPECT_FALSE(test, folio_test_partially_mapped(folio));
	}
	for (i = 0; i < folio_nr_pages(folio); i++) {
		struct page *page = folio_page(folio, i);

		KUNIT_EXPECT_PTR_EQ(test, page_folio(page), folio);
		KUNIT_EXPECT_PTR_EQ(test, page_pgmap(page), pgmap);
		KUNIT_EXPECT_TRUE(test, is_device_private_page(page));
		KUNIT_EXPECT_FALSE(test, is_device_coherent_page(page));
	}
	/* Nothing left of an earlier folio's second page in a single page. */
	if (!order)
		KUNIT_EXPECT_EQ(test, folio->flags & PAGE_FLAGS_SECOND & ~0xffUL,
				0UL);
}

/*
 * Put the only reference of @folio, which must be order @order then: the
 * driver gets it back whole, once.
 */
static void free_device_folio(struct kunit *test, struct fake_device_memory *mem,
			      struct folio *folio, unsigned int order)
{
	int before = atomic_read(&mem->nr_freed);

	folio_unlock(folio);
	folio_put(folio);
	KUNIT_EXPECT_EQ(test, atomic_read(&mem->nr_freed), before + 1);
	KUNIT_EXPECT_PTR_EQ(test, mem->freed, &folio->page);
	KUNIT_EXPECT_EQ(test, mem->freed_order, order);
	KUNIT_EXPECT_EQ(test, folio_ref_count(folio), 0);
}

/* Hand out @page as a folio of @order, check it and free it again. */
static void device_folio_round(struct kunit *test,
			       struct fake_device_memory *mem,
			       struct page *page, unsigned int order)
{
	struct folio *folio = (struct folio *)page;

	KUNIT_ASSERT_EQ(test, zone_device_folio_init(folio, order), 0);
	check_device_folio(test, folio, order, &mem->pgmap);
	free_device_folio(test, mem, folio, order);
}

/*
 * Device pages as large folios: a PMD-sized one, whose pages are handed out
 * again as smaller folios and single pages, at other orders and offsets, and
 * then as a PMD-sized folio again.  Only folio_free is set: a pgmap without
 * page_free is accepted.
 */
static void dp_large_folio_lifecycle(struct kunit *test)
{
	struct fake_device_memory *mem;
	unsigned int order = PMD_ORDER;
	struct folio *folio;
	struct page *head;

	if (PMD_ORDER > MAX_PAGE_ORDER)
		kunit_skip(test, "no page order as large as a PMD's");
	mem = fake_memremap(test, &fake_folio_ops);
	head = pfn_to_page(PHYS_PFN(mem->pgmap.range.start));

	device_folio_round(test, mem, head, order);
	/* Its second page, its head and a tail, each on its own. */
	device_folio_round(test, mem, head + 1, 0);
	/*
	 * Flags a migration leaves on a single page mean has_hwpoisoned and
	 * partially_mapped in a second page: they must not get there.
	 */
	folio = (struct folio *)(head + 1);
	KUNIT_ASSERT_EQ(test, zone_device_folio_init(folio, 0), 0);
	folio_set_active(folio);
	folio_set_reclaim(folio);
	free_device_folio(test, mem, folio, 0);
	device_folio_round(test, mem, head, 1);
	device_folio_round(test, mem, head, 0);
	device_folio_round(test, mem, head + 200, 0);
	/* A smaller folio inside it, then one overlapping that. */
	device_folio_round(test, mem, head + 8, 3);
	device_folio_round(test, mem, head, 4);
	/* The last pages, which the PMD-sized folio's tail ended with. */
	device_folio_round(test, mem, head + (1 << order) - 2, 1);
	device_folio_round(test, mem, head, order);

	/* zone_device_page_init() takes a former tail page, too. */
	zone_device_page_init(head + 300);
	check_device_folio(test, page_folio(head + 300), 0, &mem->pgmap);
	free_device_folio(test, mem, page_folio(head + 300), 0);
}

#define FOLIO_WORKERS	4
#define FOLIO_ROUNDS	2000

/* One thread of dp_large_folio_threads(), with a slice of its own. */
struct folio_worker {
	struct dev_pagemap *pgmap;
	struct page *first;
	unsigned long nr;		/* pages in the slice, a power of two */
	unsigned long made, bad;
	struct completion done;
};

/*
 * Hand out folios of random orders at random aligned offsets of the slice,
 * check each from its last page and free it; count the failures.
 */
static int folio_worker_fn(void *data)
{
	struct folio_worker *w = data;
	unsigned int max_order = ilog2(w->nr);
	unsigned long i;

	for (i = 0; i < FOLIO_ROUNDS; i++) {
		unsigned int order = get_random_u32_below(max_order + 1);
		unsigned long off = (unsigned long)
			get_random_u32_below(w->nr >> order) << order;
		struct page *page = w->first + off;
		struct page *last = page + (1UL << order) - 1;
		struct folio *folio = (struct folio *)page;

		if (zone_device_folio_init(folio, order)) {
			w->bad++;
			continue;
		}
		if (folio_order(folio) != order || page_folio(last) != folio ||
		    page_pgmap(last) != w->pgmap || !is_device_private_page(last))
			w->bad++;
		w->made++;
		folio_unlock(folio);
		folio_put(folio);
		cond_resched();
	}
	/* Never returns into this module's code: it may be unloaded. */
	kthread_complete_and_exit(&w->done, 0);
}

/*
 * Four threads make and free folios of every order up to a quarter of a
 * PMD in their own quarter of the memory, all at once, starting from the
 * remains of one PMD-sized folio: the pgmap reference count and the free
 * method see them all, and the whole range makes a PMD-sized folio again.
 */
static void dp_large_folio_threads(struct kunit *test)
{
	unsigned long slice = (1UL << PMD_ORDER) / FOLIO_WORKERS;
	struct fake_device_memory *mem;
	unsigned long made = 0;
	struct folio_worker *w;
	struct page *head;
	int i, started;

	if (PMD_ORDER > MAX_PAGE_ORDER)
		kunit_skip(test, "no page order as large as a PMD's");
	mem = fake_memremap(test, &fake_folio_ops);
	head = pfn_to_page(PHYS_PFN(mem->pgmap.range.start));

	device_folio_round(test, mem, head, PMD_ORDER);
	atomic_set(&mem->nr_freed, 0);

	w = kunit_kcalloc(test, FOLIO_WORKERS, sizeof(*w), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, w);
	for (started = 0; started < FOLIO_WORKERS; started++) {
		struct task_struct *task;

		w[started].pgmap = &mem->pgmap;
		w[started].first = head + started * slice;
		w[started].nr = slice;
		init_completion(&w[started].done);
		task = kthread_run(folio_worker_fn, &w[started], "dp_folio/%d",
				   started);
		if (IS_ERR(task))
			break;
	}
	/* Whatever started must end before the memory goes. */
	for (i = 0; i < started; i++)
		wait_for_completion(&w[i].done);
	KUNIT_ASSERT_EQ(test, started, FOLIO_WORKERS);

	for (i = 0; i < FOLIO_WORKERS; i++) {
		KUNIT_EXPECT_EQ_MSG(test, w[i].bad, 0UL, "worker %d", i);
		made += w[i].made;
	}
	KUNIT_EXPECT_EQ(test, made, (unsigned long)FOLIO_WORKERS * FOLIO_ROUNDS);
	KUNIT_EXPECT_EQ(test, atomic_read(&mem->nr_freed), (int)made);

	device_folio_round(test, mem, head, PMD_ORDER);
}

/*
 * A pgmap of two ranges with a gap between them: a folio must lie in one
 * range.  The second range starts on a boundary of twice a PMD, so that the
 * only thing wrong with a folio of that size there is that it would run
 * past the end of its range.
 */
static void dp_large_folio_ranges(struct kunit *test)
{
	struct fake_device_memory *mem;
	struct resource *res;
	struct page *first;
	phys_addr_t start;

	if (PMD_ORDER + 1 > MAX_PAGE_ORDER)
		kunit_skip(test, "no page order above a PMD's");

	mem = kunit_kzalloc(test, struct_size(mem, pgmap.ranges, 2),
			    GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, mem);
	res = claim_free_range(test, 8 * PMD_SIZE);
	start = ALIGN(res->start + 2 * PMD_SIZE, 4 * PMD_SIZE);

	mem->pgmap.ranges[0].start = start - 2 * PMD_SIZE;
	mem->pgmap.ranges[0].end = start - PMD_SIZE - 1;
	mem->pgmap.ranges[1].start = start;
	mem->pgmap.ranges[1].end = start + PMD_SIZE - 1;
	fake_map_ranges_managed(test, mem, 2, &fake_folio_ops);

	first = pfn_to_page(PHYS_PFN(start));
	KUNIT_EXPECT_EQ(test, zone_device_folio_init((struct folio *)first,
						     PMD_ORDER + 1), -EINVAL);
	KUNIT_EXPECT_EQ(test, page_ref_count(first), 0);
	KUNIT_EXPECT_FALSE(test, PageHead(first));

	/* Each range holds a PMD-sized folio. */
	device_folio_round(test, mem, first, PMD_ORDER);
	device_folio_round(test, mem, pfn_to_page(PHYS_PFN(start - 2 * PMD_SIZE)),
			   PMD_ORDER);
}

/*
 * Unlock and put the folio at @head, the last reference: once the pgmap
 * reference it held is gone, a waiting memunmap_pages() may free the
 * memmap, so nothing here looks at the page afterwards.
 */
static void put_device_folio(struct page *head)
{
	struct folio *folio = page_folio(head);

	folio_unlock(folio);
	folio_put(folio);
}

struct memunmap_worker {
	struct dev_pagemap *pgmap;
	struct completion done;
};

static int memunmap_worker_fn(void *data)
{
	struct memunmap_worker *u = data;

	memunmap_pages(u->pgmap);
	kthread_complete_and_exit(&u->done, 0);
}

/*
 * While memunmap_pages() waits for a folio still in use, the driver cannot
 * hand out more: -ENODEV, nothing taken.  Freeing the folio lets the
 * teardown finish.
 */
static void check_dying_pgmap(struct kunit *test)
{
	struct fake_device_memory *mem;
	struct memunmap_worker *u;
	struct task_struct *task;
	struct page *head;
	int ret;

	u = kunit_kzalloc(test, sizeof(*u), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, u);
	mem = fake_pmd_memory(test);
	/* No cleanup action: the teardown is what this checks. */
	fake_map_ranges(test, mem, 1, &fake_folio_ops);
	head = pfn_to_page(PHYS_PFN(mem->pgmap.range.start));

	ret = zone_device_folio_init((struct folio *)head, 0);
	KUNIT_EXPECT_EQ(test, ret, 0);
	u->pgmap = &mem->pgmap;
	init_completion(&u->done);
	task = kthread_run(memunmap_worker_fn, u, "dp_memunmap");
	if (IS_ERR(task)) {
		if (!ret)
			put_device_folio(head);
		memunmap_pages(&mem->pgmap);
		KUNIT_FAIL(test, "kthread_run: %ld", PTR_ERR(task));
		return;
	}
	while (!percpu_ref_is_dying(&mem->pgmap.ref))
		usleep_range(100, 1000);

	KUNIT_EXPECT_EQ(test, zone_device_folio_init((struct folio *)(head + 2),
						     1), -ENODEV);
	KUNIT_EXPECT_EQ(test, page_ref_count(head + 2), 0);
	KUNIT_EXPECT_FALSE(test, PageHead(head + 2));
	/* The teardown is still waiting for the folio. */
	KUNIT_EXPECT_FALSE(test, completion_done(&u->done));
	if (!ret)
		put_device_folio(head);
	wait_for_completion(&u->done);
	/* The pages are gone: memunmap_pages() has removed their memmap. */
	KUNIT_EXPECT_EQ(test, atomic_read(&mem->nr_freed), ret ? 0 : 1);
}

/* zone_device_folio_init() refuses what it cannot do, and changes nothing. */
static void dp_large_folio_invalid(struct kunit *test)
{
	struct fake_device_memory *mem = fake_memremap(test, &fake_folio_ops);
	struct fake_device_memory *old = fake_memremap(test, &fake_ops);
	struct page *head = pfn_to_page(PHYS_PFN(mem->pgmap.range.start));
	struct page *old_head = pfn_to_page(PHYS_PFN(old->pgmap.range.start));
	struct page *sys;

	/* Not aligned to its order. */
	KUNIT_EXPECT_EQ(test, zone_device_folio_init((struct folio *)(head + 1),
						     1), -EINVAL);
	KUNIT_EXPECT_EQ(test, zone_device_folio_init((struct folio *)(head + 256),
						     PMD_ORDER), -EINVAL);
	/* Past the end of the pgmap's range, and beyond any order. */
	KUNIT_EXPECT_EQ(test, zone_device_folio_init((struct folio *)head,
						     PMD_ORDER + 1),
			-EINVAL);
	KUNIT_EXPECT_EQ(test, zone_device_folio_init((struct folio *)head,
						     MAX_PAGE_ORDER + 1),
			-EINVAL);
	/* Large folios need folio_free. */
	KUNIT_EXPECT_EQ(test, zone_device_folio_init((struct folio *)old_head,
						     1), -EINVAL);
	/* Not device memory. */
	sys = alloc_page(GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, sys);
	KUNIT_EXPECT_EQ(test, zone_device_folio_init(page_folio(sys), 0),
			-EINVAL);
	__free_page(sys);
	/* In use. */
	KUNIT_ASSERT_EQ(test, zone_device_folio_init((struct folio *)head, 0),
			0);
	KUNIT_EXPECT_EQ(test, zone_device_folio_init((struct folio *)head, 0),
			-EBUSY);
	KUNIT_EXPECT_EQ(test, folio_ref_count(page_folio(head)), 1);
	free_device_folio(test, mem, page_folio(head), 0);

	/* Nothing was made of the refused calls. */
	KUNIT_EXPECT_FALSE(test, PageHead(head));
	KUNIT_EXPECT_FALSE(test, PageTail(head + 1));
	KUNIT_EXPECT_FALSE(test, PageHead(old_head));
	KUNIT_EXPECT_EQ(test, page_ref_count(old_head), 0);
	KUNIT_EXPECT_EQ(test, atomic_read(&old->nr_freed), 0);
	/* A pgmap with page_free still hands out single pages. */
	zone_device_page_init(old_head);
	unlock_page(old_head);
	put_page(old_head);
	KUNIT_EXPECT_EQ(test, atomic_read(&old->nr_freed), 1);

	check_dying_pgmap(test);
}

static const struct dev_pagemap_ops fake_ops_no_fault = {
	.page_free = fake_page_free,
};

static const struct dev_pagemap_ops fake_ops_no_free = {
	.migrate_to_ram = fake_migrate_to_ram,
};

/*
 * memremap_pages() refuses, with -EINVAL, a device-private or
 * device-coherent pgmap that lacks what its type needs.
 */
static void dp_memremap_invalid(struct kunit *test)
{
	static const struct {
		const char *what;
		enum memory_type type;
		const struct dev_pagemap_ops *ops;
		bool owner;
		unsigned long vmemmap_shift;
	} cases[] = {
		{ "no ops", MEMORY_DEVICE_PRIVATE, NULL, true, 0 },
		{ "no migrate_to_ram", MEMORY_DEVICE_PRIVATE, &fake_ops_no_fault,
		  true, 0 },
		{ "no page_free or folio_free", MEMORY_DEVICE_PRIVATE,
		  &fake_ops_no_free, true, 0 },
		{ "no owner", MEMORY_DEVICE_PRIVATE, &fake_ops, false, 0 },
		{ "compound pages", MEMORY_DEVICE_PRIVATE, &fake_ops, true, 1 },
		/* Device-coherent memory needs no migrate_to_ram. */
		{ "coherent, no ops", MEMORY_DEVICE_COHERENT, NULL, true, 0 },
		{ "coherent, no page_free or folio_free", MEMORY_DEVICE_COHERENT,
		  &fake_ops_no_free, true, 0 },
		{ "coherent, no owner", MEMORY_DEVICE_COHERENT,
		  &fake_ops_no_fault, false, 0 },
		{ "coherent, compound pages", MEMORY_DEVICE_COHERENT,
		  &fake_ops_no_fault, true, 1 },
	};
	struct resource *res = claim_free_range(test, SZ_2M);
	int i;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		struct fake_device_memory *mem;
		void *addr;

		mem = kunit_kzalloc(test, sizeof(*mem), GFP_KERNEL);
		KUNIT_ASSERT_NOT_NULL(test, mem);
		mem->pgmap.type = cases[i].type;
		mem->pgmap.range.start = res->start;
		mem->pgmap.range.end = res->start + SZ_2M - 1;
		mem->pgmap.nr_range = 1;
		mem->pgmap.ops = cases[i].ops;
		if (cases[i].owner)
			mem->pgmap.owner = mem;
		mem->pgmap.vmemmap_shift = cases[i].vmemmap_shift;

		addr = memremap_pages(&mem->pgmap, numa_node_id());
		KUNIT_EXPECT_EQ_MSG(test, PTR_ERR_OR_ZERO(addr), -EINVAL,
				    "%s", cases[i].what);
		if (!IS_ERR(addr))
			memunmap_pages(&mem->pgmap);
	}
}

static struct kunit_case hmm_swap_cases[] = {
	KUNIT_CASE(dp_entry_basic),
	KUNIT_CASE(dp_entry_pfn_range),
	KUNIT_CASE(dp_entry_type_partition),
	KUNIT_CASE(dp_entry_others),
	KUNIT_CASE(dp_free_region),
	KUNIT_CASE(dp_devm_free_region),
	KUNIT_CASE(dp_memremap_lifecycle),
	KUNIT_CASE(dp_memremap_invalid),
	KUNIT_CASE(dp_large_folio_lifecycle),
	KUNIT_CASE(dp_large_folio_invalid),
	KUNIT_CASE(dp_large_folio_ranges),
	KUNIT_CASE(dp_large_folio_threads),
	{}
};

static struct kunit_suite hmm_swap_suite = {
	.name = "hmm_device_private",
	.test_cases = hmm_swap_cases,
};

kunit_test_suite(hmm_swap_suite);

MODULE_DESCRIPTION("KUnit tests for device-private swap entries and pgmaps");
MODULE_LICENSE("GPL");
