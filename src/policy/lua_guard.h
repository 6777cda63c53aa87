/* lua_guard: replacements for the library functions a rule could otherwise
 * use to run past its budget — C functions whose work the count hook never
 * sees (string.rep, find, match, gmatch, gsub, format; table.move, sort,
 * concat, insert, remove, unpack; utf8 len, codepoint, offset, char), and
 * the ones that would run rule code where Lua runs no hook (xpcall's
 * handler, coroutine.close and coroutine.wrap on a thread the budget
 * stopped). Private to the sandbox (src/policy/lua_sandbox.c), which
 * installs them while it builds a state. */
#ifndef CRIER_LUA_GUARD_H
#define CRIER_LUA_GUARD_H

#include <lua.h>

/* Each replaces the named functions in the library table at index lib. */
void lhg_guard_string(lua_State *L, int lib);
void lhg_guard_table(lua_State *L, int lib);
void lhg_guard_utf8(lua_State *L, int lib);
void lhg_guard_coroutine(lua_State *L, int lib);
/* Sets xpcall in the base environment table at index base. */
void lhg_guard_base(lua_State *L, int base);

#endif
