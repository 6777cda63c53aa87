/* crier.localtime and crier.from_local: the rules' view of time zones,
 * backed by src/tz (the system's tzdata), so that a rule never depends on
 * the process's TZ or on the C library's mktime. */
#include "policy/rules.h"
#include "tz/tz.h"

#include <lauxlib.h>

#include <math.h>
#include <stdint.h>

/* Raises (the rule's error) for an unknown zone: a bad zone name is a data
 * problem the caller must see, not something to guess around. */
static const tz_zone_t *rules_time_zone(lua_State *L, int idx)
{
    const char *name = luaL_checkstring(L, idx);
    char err[128];
    const tz_zone_t *z = tz_get(name, err, sizeof err);
    if (!z)
        luaL_error(L, "time zone: %s", err);
    return z;
}

static int64_t rules_time_instant(lua_State *L, int idx)
{
    lua_Number t = luaL_checknumber(L, idx);
    if (!isfinite(t) || t < (lua_Number)TZ_TIME_MIN || t > (lua_Number)TZ_TIME_MAX)
        luaL_error(L, "time out of range");
    return (int64_t)floor(t);
}

static void rules_time_setint(lua_State *L, const char *k, lua_Integer v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

/* crier.localtime(tz, t) -> {year, month, day, hour, min, sec, wday
 * (1 = Sunday, as os.date), yday (1-based), isdst, utc_offset, abbr} */
static int rules_time_localtime(lua_State *L)
{
    const tz_zone_t *z = rules_time_zone(L, 1);
    int64_t t = rules_time_instant(L, 2);
    tz_local_t l;
    if (tz_localtime(z, t, &l) != 0)
        return luaL_error(L, "time out of range");
    lua_createtable(L, 0, 11);
    rules_time_setint(L, "year", l.year);
    rules_time_setint(L, "month", l.month);
    rules_time_setint(L, "day", l.day);
    rules_time_setint(L, "hour", l.hour);
    rules_time_setint(L, "min", l.min);
    rules_time_setint(L, "sec", l.sec);
    rules_time_setint(L, "wday", l.wday + 1);
    rules_time_setint(L, "yday", l.yday + 1);
    rules_time_setint(L, "utc_offset", l.utc_offset);
    lua_pushboolean(L, l.is_dst);
    lua_setfield(L, -2, "isdst");
    lua_pushstring(L, l.abbr);
    lua_setfield(L, -2, "abbr");
    return 1;
}

static int rules_time_field(lua_State *L, int idx, const char *k, int dflt, int required)
{
    int type = lua_getfield(L, idx, k);
    lua_Integer v = dflt;
    if (type == LUA_TNIL) {
        if (required)
            luaL_error(L, "from_local: field '%s' missing", k);
    } else {
        int ok = 0;
        v = lua_tointegerx(L, -1, &ok);
        /* the bound keeps tz's normalisation far from int overflow */
        if (!ok || v < -1000000 || v > 1000000)
            luaL_error(L, "from_local: field '%s' must be an integer", k);
    }
    lua_pop(L, 1);
    return (int)v;
}

/* crier.from_local(tz, {year, month, day, hour=0, min=0, sec=0}) -> t, how
 * how: "exact", "gap" (moved forward by the gap) or "overlap" (the earlier
 * of the two instants). */
static int rules_time_from_local(lua_State *L)
{
    const tz_zone_t *z = rules_time_zone(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    tz_fields_t f;
    f.year = rules_time_field(L, 2, "year", 0, 1);
    f.month = rules_time_field(L, 2, "month", 1, 1);
    f.day = rules_time_field(L, 2, "day", 1, 1);
    f.hour = rules_time_field(L, 2, "hour", 0, 0);
    f.min = rules_time_field(L, 2, "min", 0, 0);
    f.sec = rules_time_field(L, 2, "sec", 0, 0);
    int64_t t;
    tz_resolution_t how;
    if (tz_resolve(z, &f, &t, &how) != 0)
        return luaL_error(L, "from_local: time out of range");
    lua_pushinteger(L, (lua_Integer)t);
    lua_pushstring(L, how == TZ_GAP ? "gap" : how == TZ_OVERLAP ? "overlap" : "exact");
    return 2;
}

int rules_time_register(lh_state_t *h)
{
    if (lh_register(h, "localtime", rules_time_localtime) != LH_OK ||
        lh_register(h, "from_local", rules_time_from_local) != LH_OK)
        return -1;
    return 0;
}
