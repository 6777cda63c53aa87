#include "policy/lua_host.h"
#include "util/file.h"
#include "util/errmsg.h"

#include "policy/lua_sandbox.h"
#include "util/buf.h"

#include <lauxlib.h>

#include <math.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LH_NAME_MAX 64
#define LH_PATH_MAX 4096

/* Registry key of the table module name -> module functions. */
static const char lh_key_modules = 'M';

static const char *const lh_default_files[] = {"channels.lua", "timing.lua", "batching.lua",
                                               "fallback.lua", NULL};

/* Module and host-function names are plain identifiers, so they can never
 * smuggle a path or a metamethod name ("__index") into the tables. */
static int lh_valid_name(const char *name)
{
    if (!name || !*name || strlen(name) > LH_NAME_MAX || !strncmp(name, "__", 2))
        return 0;
    for (const char *p = name; *p; p++) {
        int alpha = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_';
        if (!alpha && !(p != name && *p >= '0' && *p <= '9'))
            return 0;
    }
    return 1;
}

lh_state_t *lh_new(const lh_limits_t *limits, char *err, size_t errlen)
{
    lh_state_t *s = calloc(1, sizeof *s);
    if (!s) {
        errmsg_set(err, errlen, "out of memory");
        return NULL;
    }
    if (limits)
        s->lim = *limits;
    if (!s->lim.mem_bytes)
        s->lim.mem_bytes = LH_DEFAULT_MEM_BYTES;
    if (!s->lim.time_ms)
        s->lim.time_ms = LH_DEFAULT_TIME_MS;
    if (!s->lim.instructions)
        s->lim.instructions = LH_DEFAULT_INSTRUCTIONS;

    s->hash = EVP_MD_CTX_new();
    if (!s->hash || EVP_DigestInit_ex(s->hash, EVP_sha256(), NULL) != 1) {
        errmsg_set(err, errlen, "cannot start the rules hash");
        lh_free(s);
        return NULL;
    }
    if (lhs_watch_start(s) != 0) {
        errmsg_set(err, errlen, "cannot start the rules watchdog");
        lh_free(s);
        return NULL;
    }
    s->L = lua_newstate(lhs_alloc, s);
    if (!s->L) {
        errmsg_set(err, errlen, "cannot create a Lua state");
        lh_free(s);
        return NULL;
    }
    lua_pushcfunction(s->L, lhs_open);
    if (lua_pcall(s->L, 0, 0, 0) != LUA_OK) {
        errmsg_set(err, errlen, "cannot build the sandbox: %s", lua_tostring(s->L, -1));
        lh_free(s);
        return NULL;
    }
    lua_newtable(s->L);
    lua_rawsetp(s->L, LUA_REGISTRYINDEX, &lh_key_modules);
    /* A call's garbage (inputs, results, the rules' temporaries) dies young
     * while the rules themselves live as long as the state: the case the
     * generational collector is made for. */
    lua_gc(s->L, LUA_GCGEN, 0, 0);
    return s;
}

void lh_free(lh_state_t *s)
{
    if (!s)
        return;
    if (s->L) {
        s->enforce = 0;
        lua_close(s->L);
    }
    lhs_watch_stop(s);
    EVP_MD_CTX_free(s->hash);
    free(s);
}

int lh_register(lh_state_t *s, const char *name, lua_CFunction fn)
{
    if (!s || !fn || s->frozen || s->running || !lh_valid_name(name))
        return LH_EMISUSE;
    lua_State *L = s->L;
    lhs_push_crier(L);
    lua_pushstring(L, name);
    if (lua_rawget(L, -2) != LUA_TNIL) {
        lua_pop(L, 2);
        return LH_EMISUSE;
    }
    lua_pop(L, 1);
    lua_pushstring(L, name);
    lua_pushcfunction(L, fn);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    return LH_OK;
}

lua_State *lh_lua(lh_state_t *s)
{
    return s->L;
}

const char *lh_version(const lh_state_t *s)
{
    return s->version;
}

size_t lh_mem_used(const lh_state_t *s)
{
    return s->mem_used;
}

size_t lh_mem_peak(const lh_state_t *s)
{
    return s->mem_peak;
}

/* Ends a budgeted entry whose lua_pcall returned status, with the error
 * value (if any) on top of the stack. Classifies the failure, copies the
 * message into err and pops it. */
static int lh_finish(lh_state_t *s, int status, int nresults, const char *what, char *err,
                     size_t errlen)
{
    lua_State *L = s->L;
    int expired = s->expired != LHS_RUNNING;
    int memory = status == LUA_ERRMEM || s->mem_refused;
    /* A C function can overrun the clock and return just before the rule
     * does, with no hook in between to notice: the clock is read once more
     * here, so a late answer is never taken. */
    int late = status == LUA_OK && !expired && lhs_late(s);
    int spent = s->expired;
    lhs_end(s);
    if (late || (status == LUA_OK && expired)) {
        /* Late, or the rule caught its budget error and returned at once
         * (`return pcall(...)` is a tail call: no instruction of the rule
         * runs after it to raise again). Either way its answer is not
         * taken. */
        lua_pop(L, nresults);
        if (spent == LHS_OVER_INSTRUCTIONS)
            errmsg_set(err, errlen, "%s: instruction budget exceeded (%llu instructions)",
                       what[0] ? what : "rules", s->lim.instructions);
        else
            errmsg_set(err, errlen, "%s: time budget exceeded (%u ms)%s", what[0] ? what : "rules",
                       s->lim.time_ms, late ? " by the time it returned" : "");
        return LH_EBUDGET;
    }
    if (status == LUA_OK)
        return LH_OK;
    const char *msg = lua_tostring(L, -1);
    if (!msg)
        msg = "(error object is not a string)";
    int rc = LH_ERUN;
    if (expired) {
        rc = LH_EBUDGET;
        errmsg_set(err, errlen, "%s: %s", what, msg);
    } else if (memory) {
        rc = LH_EMEMORY;
        errmsg_set(err, errlen, "%s: memory budget exceeded (%zu bytes): %s", what,
                   s->lim.mem_bytes, msg);
    } else if (strncmp(msg, what, strlen(what)) != 0) {
        errmsg_set(err, errlen, "%s: %s", what, msg); /* e.g. a refused binary chunk */
    } else {
        errmsg_set(err, errlen, "%s", msg);
    }
    lua_pop(L, 1);
    /* The rule's garbage must not count against the next call: after an
     * allocation bomb the state is usable again once collected. */
    if (memory)
        lua_gc(L, LUA_GCCOLLECT);
    return rc;
}

static int lh_module_exists(lua_State *L, const char *module)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &lh_key_modules);
    lua_pushstring(L, module);
    int t = lua_rawget(L, -2);
    lua_pop(L, 2);
    return t != LUA_TNIL;
}

static int lh_hash_module(lh_state_t *s, const char *module, const char *data, size_t len)
{
    unsigned char n[8];
    for (int i = 0; i < 8; i++)
        n[i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
    /* name, NUL, length: no two different sets hash the same bytes. */
    if (EVP_DigestUpdate(s->hash, module, strlen(module) + 1) != 1 ||
        EVP_DigestUpdate(s->hash, n, sizeof n) != 1 || EVP_DigestUpdate(s->hash, data, len) != 1)
        return -1;
    return 0;
}

int lh_load_buffer(lh_state_t *s, const char *module, const char *chunkname, const char *data,
                   size_t len, char *err, size_t errlen)
{
    if (!s || s->frozen || s->running || !data || !chunkname) {
        errmsg_set(err, errlen, "rules can only be loaded before the freeze");
        return LH_EMISUSE;
    }
    if (!lh_valid_name(module)) {
        errmsg_set(err, errlen, "%s: invalid module name", chunkname);
        return LH_EMISUSE;
    }
    if (len > LH_MAX_FILE_BYTES) {
        errmsg_set(err, errlen, "%s: larger than %d bytes", chunkname, LH_MAX_FILE_BYTES);
        return LH_EMISUSE;
    }
    lua_State *L = s->L;
    if (lh_module_exists(L, module)) {
        errmsg_set(err, errlen, "%s: module '%s' is already loaded", chunkname, module);
        return LH_EMISUSE;
    }
    if (lh_hash_module(s, module, data, len) != 0) {
        errmsg_set(err, errlen, "%s: cannot hash the rules", chunkname);
        return LH_EMISUSE;
    }
    char name[LH_PATH_MAX];
    snprintf(name, sizeof name, "@%s", chunkname);

    int base = lua_gettop(L);
    lhs_push_module_env(L);
    lua_pushcfunction(L, lhs_msgh);
    s->cur_module = module;
    lhs_begin(s);
    /* Mode "t": a precompiled chunk can break the VM's invariants, so only
     * source text is accepted. */
    int status = luaL_loadbufferx(L, data, len, name, "t");
    if (status == LUA_OK) {
        lua_pushvalue(L, base + 1);
        if (!lua_setupvalue(L, -2, 1)) {
            lua_pop(L, 1);
            lhs_end(s);
            lua_settop(L, base);
            errmsg_set(err, errlen, "%s: chunk has no environment", chunkname);
            return LH_EMISUSE;
        }
        status = lua_pcall(L, 0, 0, base + 2);
    }
    int rc = lh_finish(s, status, 0, chunkname, err, errlen);
    s->cur_module = NULL;
    if (rc == LH_OK) {
        lua_rawgetp(L, LUA_REGISTRYINDEX, &lh_key_modules);
        lua_pushstring(L, module);
        lua_pushvalue(L, base + 1);
        lua_rawset(L, -3);
    }
    lua_settop(L, base);
    return rc;
}

int lh_freeze(lh_state_t *s)
{
    if (!s || s->frozen || s->running)
        return LH_EMISUSE;
    lua_State *L = s->L;
    int base = lua_gettop(L);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &lh_key_modules);
    int modules = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, modules)) {
        lua_pushcfunction(L, lhs_freeze_env);
        lua_insert(L, -2);
        if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
            lua_settop(L, base);
            return LH_EMISUSE;
        }
        /* Replacing the value of an existing key keeps lua_next valid. */
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, modules);
    }
    lua_settop(L, base);

    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_DigestFinal_ex(s->hash, md, &mdlen) != 1 || mdlen < 8)
        return LH_EMISUSE;
    for (int i = 0; i < 8; i++)
        snprintf(s->version + 2 * i, 3, "%02x", md[i]);
    EVP_MD_CTX_free(s->hash);
    s->hash = NULL;
    s->frozen = 1;
    return LH_OK;
}

int lh_load_dir(lh_state_t *s, const char *dir, const char *const *files, char *err, size_t errlen)
{
    if (!s || !dir) {
        errmsg_set(err, errlen, "no rules directory");
        return LH_EMISUSE;
    }
    if (!files)
        files = lh_default_files;
    /* Errors name files by the directory's last component ("rules/x.lua") */
    size_t llen;
    const char *label = file_dir_label(dir, &llen);
    size_t dlen = strlen(dir);
    for (size_t i = 0; files[i]; i++) {
        const char *file = files[i];
        size_t flen = strlen(file);
        char module[LH_NAME_MAX + 1];
        if (flen <= 4 || flen - 4 > LH_NAME_MAX || strcmp(file + flen - 4, ".lua") != 0) {
            errmsg_set(err, errlen, "%s: rule files must be named <module>.lua", file);
            return LH_EMISUSE;
        }
        memcpy(module, file, flen - 4);
        module[flen - 4] = '\0';
        if (!lh_valid_name(module)) {
            errmsg_set(err, errlen, "%s: invalid module name", file);
            return LH_EMISUSE;
        }
        char display[LH_PATH_MAX];
        if (dlen + 1 + flen >= LH_PATH_MAX) {
            errmsg_set(err, errlen, "%s: path too long", file);
            return LH_EMISUSE;
        }
        snprintf(display, sizeof display, "%.*s/%s", (int)llen, label, file);
        buf_t b;
        buf_init(&b, LH_MAX_FILE_BYTES);
        /* Only regular files inside the directory: a FIFO must not block the
         * load, a symlink must not read a file from elsewhere. */
        if (file_append_in_dir(dir, file, display, &b, err, errlen) != 0) {
            buf_free(&b);
            return LH_EMISUSE;
        }
        int rc = lh_load_buffer(s, module, display, b.data ? b.data : "", b.len, err, errlen);
        buf_free(&b);
        if (rc != LH_OK)
            return rc;
    }
    int rc = lh_freeze(s);
    if (rc != LH_OK)
        errmsg_set(err, errlen, "cannot freeze the rules");
    return rc;
}

int lh_call(lh_state_t *s, const char *module, const char *fn, int nargs, int nresults, char *err,
            size_t errlen)
{
    lua_State *L = s->L;
    if (nargs < 0 || lua_gettop(L) < nargs) {
        errmsg_set(err, errlen, "lh_call: %d arguments expected on the stack", nargs);
        return LH_EMISUSE;
    }
    int first = lua_gettop(L) - nargs + 1;
    if (!s->frozen || s->running || nresults < 0 || !lua_checkstack(L, nresults + 4) || !module ||
        !fn) {
        lua_settop(L, first - 1);
        errmsg_set(err, errlen, "lh_call: rules not loaded, nested call or bad arguments");
        return LH_EMISUSE;
    }
    /* Raw lookups only: a metamethod here would run rule code outside the
     * budget, and a miss in the environment chain raises. */
    lua_rawgetp(L, LUA_REGISTRYINDEX, &lh_key_modules);
    lua_pushstring(L, module);
    if (lua_rawget(L, -2) != LUA_TTABLE) {
        lua_settop(L, first - 1);
        errmsg_set(err, errlen, "no rules module '%s'", module);
        return LH_EMISUSE;
    }
    lua_pushstring(L, fn);
    if (lua_rawget(L, -2) != LUA_TFUNCTION) {
        lua_settop(L, first - 1);
        errmsg_set(err, errlen, "rules module '%s' has no function '%s'", module, fn);
        return LH_EMISUSE;
    }
    lua_replace(L, -3);
    lua_pop(L, 1);
    lua_insert(L, first);
    lua_pushcfunction(L, lhs_msgh);
    lua_insert(L, first);

    s->cur_module = module;
    lhs_begin(s);
    int status = lua_pcall(L, nargs, nresults, first);
    /* the name errors start with, only written when there is one */
    char what[2 * LH_NAME_MAX + 8] = "";
    if (status != LUA_OK || s->expired != LHS_RUNNING || lhs_late(s))
        snprintf(what, sizeof what, "%s.%s", module, fn);
    int rc = lh_finish(s, status, nresults, what, err, errlen);
    s->cur_module = NULL;
    lua_remove(L, first); /* the message handler */
    return rc;
}

void lh_readonly(lh_state_t *s)
{
    lhs_readonly(s->L);
}

void lh_push_raw(lh_state_t *s, int idx)
{
    lhs_push_raw(s->L, idx);
}

/* ---- JSON across the boundary ---------------------------------------- */

static int lh_utf8_valid(const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i];
        size_t len;
        unsigned min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            len = 2, min = 0x80, c &= 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3, min = 0x800, c &= 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4, min = 0x10000, c &= 0x07;
        } else {
            return 0;
        }
        if (n - i < len)
            return 0;
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return 0;
            c = (c << 6) | (p[i + k] & 0x3F);
        }
        if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
            return 0;
        i += len;
    }
    return 1;
}

static int lh_push_json_at(lua_State *L, const cJSON *v, int depth, size_t *nodes, char *err,
                           size_t errlen)
{
    if (++*nodes > LH_JSON_MAX_NODES) {
        errmsg_set(err, errlen, "JSON value has more than %d nodes", LH_JSON_MAX_NODES);
        return -1;
    }
    if (depth > LH_JSON_MAX_DEPTH) {
        errmsg_set(err, errlen, "JSON value nested deeper than %d", LH_JSON_MAX_DEPTH);
        return -1;
    }
    if (!lua_checkstack(L, 3)) {
        errmsg_set(err, errlen, "Lua stack exhausted");
        return -1;
    }
    if (cJSON_IsNull(v)) {
        lua_pushnil(L);
    } else if (cJSON_IsBool(v)) {
        lua_pushboolean(L, cJSON_IsTrue(v));
    } else if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        /* Whole numbers become integers, so a rule can use them as table
         * indexes and string.format("%d") works. */
        if (d == floor(d) && fabs(d) <= 9007199254740992.0)
            lua_pushinteger(L, (lua_Integer)d);
        else
            lua_pushnumber(L, d);
    } else if (cJSON_IsString(v)) {
        lua_pushstring(L, v->valuestring);
    } else if (cJSON_IsArray(v) || cJSON_IsObject(v)) {
        int array = cJSON_IsArray(v);
        int n = cJSON_GetArraySize(v);
        lua_createtable(L, array ? n : 0, array ? 0 : n);
        lua_Integer i = 0;
        for (const cJSON *c = v->child; c; c = c->next) {
            i++;
            if (lh_push_json_at(L, c, depth + 1, nodes, err, errlen) != 0)
                return -1;
            if (lua_isnil(L, -1)) {
                lua_pop(L, 1); /* null: an absent field, a hole in an array */
            } else if (array) {
                lua_rawseti(L, -2, i);
            } else {
                if (!c->string) {
                    errmsg_set(err, errlen, "JSON member without a name");
                    return -1;
                }
                lua_pushstring(L, c->string);
                lua_insert(L, -2);
                lua_rawset(L, -3);
            }
        }
    } else {
        errmsg_set(err, errlen, "unsupported JSON value");
        return -1;
    }
    return 0;
}

int lh_push_json(lh_state_t *s, const cJSON *v, char *err, size_t errlen)
{
    lua_State *L = s->L;
    int top = lua_gettop(L);
    size_t nodes = 0;
    if (!v || lh_push_json_at(L, v, 1, &nodes, err, errlen) != 0) {
        if (!v)
            errmsg_set(err, errlen, "no JSON value");
        lua_settop(L, top);
        return LH_ECONVERT;
    }
    return LH_OK;
}

int lh_text_ok(const char *p, size_t len)
{
    return p && len <= LH_JSON_MAX_STRING && strlen(p) == len &&
           lh_utf8_valid((const unsigned char *)p, len);
}

static cJSON *lh_json_at(lua_State *L, int idx, int depth, size_t *nodes, char *err, size_t errlen);

/* A table is an array when its keys are exactly 1..n, an object when they
 * are all strings. Counting first bounds the work before anything is built. */
static cJSON *lh_json_table(lua_State *L, int idx, int depth, size_t *nodes, char *err,
                            size_t errlen)
{
    size_t n = 0;
    int all_int = 1, all_str = 1;
    lua_Integer maxk = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (++n + *nodes > LH_JSON_MAX_NODES) {
            lua_pop(L, 1);
            errmsg_set(err, errlen, "result has more than %d values", LH_JSON_MAX_NODES);
            return NULL;
        }
        if (lua_type(L, -1) == LUA_TSTRING) {
            all_int = 0;
        } else if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1) {
            all_str = 0;
            if (lua_tointeger(L, -1) > maxk)
                maxk = lua_tointeger(L, -1);
        } else {
            lua_pop(L, 1);
            errmsg_set(err, errlen, "table keys must be strings or 1..n");
            return NULL;
        }
    }
    if (n == 0 || (all_int && (size_t)maxk == n)) {
        cJSON *arr = cJSON_CreateArray();
        if (!arr) {
            errmsg_set(err, errlen, "out of memory");
            return NULL;
        }
        for (lua_Integer i = 1; i <= (lua_Integer)n; i++) {
            lua_rawgeti(L, idx, i);
            cJSON *c = lh_json_at(L, lua_gettop(L), depth + 1, nodes, err, errlen);
            lua_pop(L, 1);
            if (!c) {
                cJSON_Delete(arr);
                return NULL;
            }
            cJSON_AddItemToArray(arr, c);
        }
        return arr;
    }
    if (!all_str) {
        errmsg_set(err, errlen, "table mixes array and object keys, or is a sparse array");
        return NULL;
    }
    cJSON *obj = cJSON_CreateObject();
    if (!obj) {
        errmsg_set(err, errlen, "out of memory");
        return NULL;
    }
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        size_t klen = 0;
        const char *k = lua_tolstring(L, -2, &klen);
        if (strlen(k) != klen || !lh_utf8_valid((const unsigned char *)k, klen)) {
            lua_pop(L, 2);
            cJSON_Delete(obj);
            errmsg_set(err, errlen, "table key is not valid UTF-8 text");
            return NULL;
        }
        cJSON *c = lh_json_at(L, lua_gettop(L), depth + 1, nodes, err, errlen);
        lua_pop(L, 1);
        if (!c) {
            lua_pop(L, 1);
            cJSON_Delete(obj);
            return NULL;
        }
        cJSON_AddItemToObject(obj, k, c);
    }
    return obj;
}

static cJSON *lh_json_at(lua_State *L, int idx, int depth, size_t *nodes, char *err, size_t errlen)
{
    if (++*nodes > LH_JSON_MAX_NODES) {
        errmsg_set(err, errlen, "result has more than %d values", LH_JSON_MAX_NODES);
        return NULL;
    }
    if (depth > LH_JSON_MAX_DEPTH) {
        errmsg_set(err, errlen, "result nested deeper than %d", LH_JSON_MAX_DEPTH);
        return NULL;
    }
    if (!lua_checkstack(L, 8)) {
        errmsg_set(err, errlen, "Lua stack exhausted");
        return NULL;
    }
    cJSON *out = NULL;
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        out = cJSON_CreateNull();
        break;
    case LUA_TBOOLEAN:
        out = cJSON_CreateBool(lua_toboolean(L, idx));
        break;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            out = cJSON_CreateNumber((double)lua_tointeger(L, idx));
        } else {
            double d = lua_tonumber(L, idx);
            if (!isfinite(d)) {
                errmsg_set(err, errlen, "result contains a non-finite number");
                return NULL;
            }
            out = cJSON_CreateNumber(d);
        }
        break;
    case LUA_TSTRING: {
        size_t len = 0;
        const char *str = lua_tolstring(L, idx, &len);
        if (len > LH_JSON_MAX_STRING || strlen(str) != len ||
            !lh_utf8_valid((const unsigned char *)str, len)) {
            errmsg_set(err, errlen, "result string is too long or not valid UTF-8 text");
            return NULL;
        }
        out = cJSON_CreateString(str);
        break;
    }
    case LUA_TTABLE: {
        /* a read-only input handed back converts as what it shows */
        lhs_push_raw(L, idx);
        out = lh_json_table(L, lua_gettop(L), depth, nodes, err, errlen);
        lua_pop(L, 1);
        return out;
    }
    default:
        errmsg_set(err, errlen, "cannot convert a %s value to JSON", luaL_typename(L, idx));
        return NULL;
    }
    if (!out)
        errmsg_set(err, errlen, "out of memory");
    return out;
}

int lh_to_json(lh_state_t *s, int idx, cJSON **out, char *err, size_t errlen)
{
    lua_State *L = s->L;
    size_t nodes = 0;
    *out = lh_json_at(L, lua_absindex(L, idx), 1, &nodes, err, errlen);
    return *out ? LH_OK : LH_ECONVERT;
}

int lh_call_json(lh_state_t *s, const char *module, const char *fn, const cJSON *const *args,
                 int nargs, cJSON **result, char *err, size_t errlen)
{
    lua_State *L = s->L;
    *result = NULL;
    int top = lua_gettop(L);
    if (nargs < 0 || !lua_checkstack(L, nargs + 4)) {
        errmsg_set(err, errlen, "lh_call_json: too many arguments");
        return LH_EMISUSE;
    }
    for (int i = 0; i < nargs; i++) {
        if (lh_push_json(s, args[i], err, errlen) != LH_OK) {
            lua_settop(L, top);
            return LH_ECONVERT;
        }
    }
    int rc = lh_call(s, module, fn, nargs, 1, err, errlen);
    if (rc != LH_OK)
        return rc;
    rc = lh_to_json(s, -1, result, err, errlen);
    lua_pop(L, 1);
    return rc;
}
