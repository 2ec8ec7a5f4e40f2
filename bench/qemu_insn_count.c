/* A qemu TCG plugin that counts the guest instructions a program retires under qemu-user, for
 * bench/arm_instructions.sh: each translated block adds its instruction count to a counter every time it runs
 * (inline, no callback), and the counts are logged at exit (`-d plugin`). By default one counter, the total
 * ("insns: N"); with the plugin argument `by=symbol`, one counter per symbol of the executable that a block starts
 * in ("N SYMBOL" lines, unmangled as the binary has them; blocks in shared libraries, which qemu cannot name, under
 * "?"): a profile. One guest thread at a time: the counters are not atomic.
 *
 * Debian ships neither qemu's plugins nor its qemu-plugin.h, so the few declarations of the plugin API used here
 * (qemu 7.2, plugin API version 1) are written out below. Build: gcc -shared -fPIC -O2 -o libinsn.so this file. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t qemu_info_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };

extern size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
extern struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
extern const char *qemu_plugin_insn_symbol(const struct qemu_plugin_insn *insn);
extern void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op, void *ptr,
                                                     uint64_t imm);
extern void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id,
                                                  void (*cb)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb));
extern void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, void (*cb)(qemu_plugin_id_t id, void *userdata),
                                           void *userdata);
extern void qemu_plugin_outs(const char *string);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

static uint64_t retired;

/* by=symbol: an open-addressing table from a symbol's name (qemu's own string for it, so compared by address) to
 * its counter. */
#define SYMBOLS (1 << 16)
static int by_symbol;
static struct {
    const char *name;
    uint64_t count;
} symbols[SYMBOLS];

/* The counter of the symbol `name` (never full: a program has far fewer symbols than slots). */
static uint64_t *counter_of(const char *name) {
    size_t h = ((uintptr_t)name >> 3) % SYMBOLS;
    while (symbols[h].name && symbols[h].name != name) h = (h + 1) % SYMBOLS;
    symbols[h].name = name;
    return &symbols[h].count;
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    (void)id;
    uint64_t *counter = &retired;
    if (by_symbol) {
        const char *name = qemu_plugin_insn_symbol(qemu_plugin_tb_get_insn(tb, 0));
        counter = counter_of(name ? name : "?");
    }
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, counter, qemu_plugin_tb_n_insns(tb));
}

static void at_exit(qemu_plugin_id_t id, void *userdata) {
    (void)id;
    (void)userdata;
    char line[1024];
    if (!by_symbol) {
        snprintf(line, sizeof line, "insns: %llu\n", (unsigned long long)retired);
        qemu_plugin_outs(line);
        return;
    }
    for (size_t i = 0; i < SYMBOLS; i++) {
        if (symbols[i].name && symbols[i].count) {
            snprintf(line, sizeof line, "%llu %s\n", (unsigned long long)symbols[i].count, symbols[i].name);
            qemu_plugin_outs(line);
        }
    }
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc,
                                                               char **argv) {
    (void)info;
    for (int i = 0; i < argc; i++) by_symbol |= strcmp(argv[i], "by=symbol") == 0;
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
