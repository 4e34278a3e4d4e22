// SPDX-License-Identifier: GPL-2.0
/*
 * tbcount: a QEMU TCG plugin that counts the guest kernel instructions
 * executed, per translation block.  With -icount the guest clock is the
 * instruction count, so this is exactly what the bench's figures measure,
 * attributed to code: harness/profile.sh turns it into instructions per
 * function, ours against the reference.
 *
 * Written against the plugin API of QEMU 7.2 (Debian 12), which ships the
 * plugin loader but not qemu-plugin.h: the few calls used are declared
 * here.
 *
 * Arguments: out=FILE (default tbcount.out); toggle=ADDR (hex), a user
 * function the guest program calls at the start and at the end of each
 * timed region (hmm-bench: clock_gettime()), which opens and closes a
 * window; every=N (default 1) and phase=K (default 0) count only the
 * windows whose index (from 0) is K modulo N, e.g. every=2 phase=1 for the
 * second of two timed regions that alternate.  Output, at exit: one line
 * per translated block that ran, "vaddr instructions executions
 * executions-in-windows".
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
struct qemu_info_t;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*udata_cb_t)(qemu_plugin_id_t id, void *userdata);
typedef void (*vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS };

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id,
					   tb_trans_cb_t cb);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb,
					      enum qemu_plugin_op op,
					      void *ptr, uint64_t imm);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb,
					  vcpu_udata_cb_t cb,
					  enum qemu_plugin_cb_flags flags,
					  void *userdata);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, udata_cb_t cb,
				    void *userdata);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

/* Kernel text on x86-64: the kernel image and modules. */
#define KERNEL_TEXT_START	0xffffffff80000000ull

struct block {
	uint64_t vaddr;
	uint64_t insns;
	uint64_t runs;		/* bumped inline by the translated code */
	uint64_t at_open;	/* runs when the current window opened */
	uint64_t in_windows;	/* runs inside closed windows */
	struct block *next;
};

static struct block *blocks;
static const char *out_path = "tbcount.out";
static uint64_t toggle_vaddr;
static int window_open;
static unsigned long window_index, window_every = 1, window_phase;

/* The guest program called the toggle function: open or close a window. */
static void on_toggle(unsigned int vcpu_index, void *unused)
{
	struct block *b;

	window_open = !window_open;
	if (!window_open && window_index++ % window_every != window_phase)
		return;
	for (b = blocks; b; b = b->next) {
		if (window_open)
			b->at_open = b->runs;
		else
			b->in_windows += b->runs - b->at_open;
	}
}

/*
 * Translation runs under QEMU's TB lock and -icount runs the vCPUs in one
 * thread, so neither the list nor the inline counters need more locking.
 */
static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
	uint64_t vaddr = qemu_plugin_tb_vaddr(tb);
	struct block *b;

	if (toggle_vaddr && vaddr == toggle_vaddr)
		qemu_plugin_register_vcpu_tb_exec_cb(tb, on_toggle,
						     QEMU_PLUGIN_CB_NO_REGS, NULL);
	if (vaddr < KERNEL_TEXT_START)
		return;
	b = calloc(1, sizeof(*b));
	if (!b)
		abort();
	b->vaddr = vaddr;
	b->insns = qemu_plugin_tb_n_insns(tb);
	b->next = blocks;
	blocks = b;
	/* A block first run inside an open window counts from 0. */
	qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64,
						 &b->runs, 1);
}

static void on_qemu_exit(qemu_plugin_id_t id, void *unused)
{
	FILE *f = fopen(out_path, "w");
	struct block *b;

	if (!f) {
		perror(out_path);
		return;
	}
	for (b = blocks; b; b = b->next)
		if (b->runs)
			fprintf(f, "%llx %llu %llu %llu\n",
				(unsigned long long)b->vaddr,
				(unsigned long long)b->insns,
				(unsigned long long)b->runs,
				(unsigned long long)b->in_windows);
	fclose(f);
}

__attribute__((visibility("default")))
int qemu_plugin_install(qemu_plugin_id_t id, const struct qemu_info_t *info,
			int argc, char **argv)
{
	int i;

	for (i = 0; i < argc; i++)
		if (!strncmp(argv[i], "out=", 4))
			out_path = strdup(argv[i] + 4);
		else if (!strncmp(argv[i], "toggle=", 7))
			toggle_vaddr = strtoull(argv[i] + 7, NULL, 16);
		else if (!strncmp(argv[i], "every=", 6))
			window_every = strtoul(argv[i] + 6, NULL, 10) ?: 1;
		else if (!strncmp(argv[i], "phase=", 6))
			window_phase = strtoul(argv[i] + 6, NULL, 10);
	qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
	qemu_plugin_register_atexit_cb(id, on_qemu_exit, NULL);
	return 0;
}
