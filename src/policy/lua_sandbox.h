/* lua_sandbox: the parts of the Lua host that keep a rule inside its box —
 * the budgeted allocator, the time budget's hook (armed by the watchdog,
 * lua_watchdog.h), the cost accounting of library work, the allow-listed
 * environment and the freezing of module environments. Private to
 * src/policy/lua_host.c. */
#ifndef CRIER_LUA_SANDBOX_H
#define CRIER_LUA_SANDBOX_H

#include "policy/lua_host.h"
#include "policy/lua_watchdog.h"

#include <lua.h>

#include <openssl/evp.h>
#include <stddef.h>
#include <time.h>

/* Why the hook stopped the current call. */
enum { LHS_RUNNING = 0, LHS_OVER_INSTRUCTIONS, LHS_OVER_TIME };

struct lh_state {
    lua_State *L; /* owned */
    lh_limits_t lim;
    size_t mem_used;
    size_t mem_peak;          /* the most mem_used has been */
    int enforce;              /* memory budget applies (only while Lua code runs) */
    size_t slack;             /* bytes allowed past mem_bytes (the traceback's) */
    int running;              /* inside a budgeted entry: the hook checks budgets */
    int mem_refused;          /* the allocator refused a block during this entry */
    int expired;              /* LHS_* */
    unsigned long long instr; /* library work charged in this entry */
    struct timespec deadline; /* read by this thread only; lhw has its copy */
    lhw_t watch;
    int frozen;
    int log_lines;          /* crier.log lines written during this entry */
    const char *cur_module; /* borrowed from the caller for one entry */
    EVP_MD_CTX *hash;       /* owned; content hash until the freeze */
    char version[17];
};

#define LHS_LOG_MAX_LINES 20
#define LHS_MSGH_TEXT     1024
#define LHS_MSGH_SLACK    (64 * 1024)
#define LHS_LOG_MAX_TEXT  512

/* lua_Alloc accounting s->mem_used; ud is the lh_state_t. */
void *lhs_alloc(void *ud, void *ptr, size_t osize, size_t nsize);
/* Protected builder of the environment (run with lua_pcall, the lh_state_t
 * as light userdata argument): opens the allowed libraries, builds the base
 * environment and the crier table, and strips the real globals. */
int lhs_open(lua_State *L);
/* Starts and stops the state's watchdog (lh_new, lh_free); -1 when its
 * thread cannot be started. */
int lhs_watch_start(lh_state_t *s);
void lhs_watch_stop(lh_state_t *s);
/* Starts and ends a budgeted entry into Lua on s->L. */
void lhs_begin(lh_state_t *s);
void lhs_end(lh_state_t *s);
/* The current entry now runs on the Lua thread to (a coroutine resumed by
 * a guarded library function, or its resumer again); returns the thread it
 * ran on. Pass that back once the resume has returned, before anything that
 * can raise, so the watchdog never arms a thread that may be collected. */
lua_State *lhs_switch_thread(lua_State *L, lua_State *to);
/* Budget accounting for the guarded library functions (lua_guard.c); each
 * raises the budget error on L when it applies, and does nothing outside a
 * budgeted entry. lhs_spend charges cost instruction-equivalents, refusing
 * (raising) when they do not fit; what names the work in the message. */
void lhs_spend(lua_State *L, double cost, const char *what);
/* Instruction-equivalents left in this entry (INFINITY outside one). */
double lhs_budget_left(lua_State *L);
/* Bytes the memory budget has left (INFINITY while it is not enforced). */
double lhs_memory_left(lua_State *L);
/* Raises again when the budget is already spent. */
void lhs_check_spent(lua_State *L);
/* Raises the time budget error when the entry is past its deadline. */
void lhs_check_clock(lua_State *L);
/* 1 when the current entry is past its deadline. */
int lhs_late(const lh_state_t *s);
/* Message handler for lua_pcall: appends a traceback. */
int lhs_msgh(lua_State *L);
/* Pushes a new module environment: its own table reading through to the
 * base environment, with _G pointing at itself. */
void lhs_push_module_env(lua_State *L);
/* Protected: freezes the module environment given as argument 1 and returns
 * the table now holding its contents (the module's functions). */
int lhs_freeze_env(lua_State *L);
/* Turns the table on top of the stack into a read-only view (see
 * lh_readonly), and pushes the backing table of the view at idx. */
void lhs_readonly(lua_State *L);
void lhs_push_raw(lua_State *L, int idx);
/* Pushes the real crier table (host functions are added to it). */
void lhs_push_crier(lua_State *L);

#endif
