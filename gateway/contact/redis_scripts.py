"""Lua scripts of the Redis backend: atomic check-and-reserve, commit, release.

All keys of one subscriber share the hash tag ``{msisdn}``: a script touches exactly one key
(``<prefix>:{<msisdn>}:c``), so it is Redis Cluster safe. That hash maps contact_id to a
record ``at FS channel FS campaign FS class FS priority FS expires_at FS state`` (FS is the
ASCII unit separator 0x1F, which no campaign id or channel name contains; state 0 reserved,
1 committed, 2 expired). Ended records are deleted. A reservation past ``expires_at`` stops
counting (refunded by time, as in the SQLite backend): the next RESERVE that reads the hash
marks it expired (state 2) instead of deleting it, so a commit that arrives late (journaled
on a node while Redis was unreachable, see :mod:`.redis_journal`) still finds it and makes it
count again: the message went out. Expired records go with the horizon, like every record.

The counting in RESERVE mirrors :func:`gateway.contact.engine.first_violation`; the checks
themselves (window starts in local time, limits) are computed in Python by
:meth:`gateway.contact.engine.Engine.plan` and passed as arguments.
"""

from __future__ import annotations

#: KEYS[1] history hash. ARGV: now, contact_id, mode (0 dry, 1 reserve), record, prune_before,
#: priority, ttl_seconds (0 = no expiry), checks: ``kind FS value FS since FS limit RS`` each
#: (RS is the record separator 0x1E). Checks are numbered from 0 in the reply.
#: Returns {1} allowed, {2, expires_at} duplicate, {0, check_index, count, victim...} full.
RESERVE = r"""
local key = KEYS[1]
local now = tonumber(ARGV[1])
local cid = ARGV[2]
local mode = ARGV[3]
local prune = tonumber(ARGV[5])
local prio = tonumber(ARGV[6])
local ttl = tonumber(ARGV[7])
local all = redis.call('HGETALL', key)
local recs = {}
for i = 1, #all, 2 do
  local f, v = all[i], all[i + 1]
  local at, ch, camp, cls, p, exp, st = string.match(v, '^([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)$')
  at = tonumber(at)
  exp = tonumber(exp)
  if at == nil or at < prune then
    redis.call('HDEL', key, f)
  elseif st == '0' and exp <= now then
    redis.call('HSET', key, f, string.sub(v, 1, -2) .. '2')
  elseif st == '2' then
    -- expired: not counted; reserving the same contact_id again overwrites it below
  elseif f == cid and mode == '1' then
    if st == '0' then return {2, tostring(exp)} end
    return {2, ''}
  else
    recs[#recs + 1] = {f, ch, camp, cls, tonumber(p), st, at}
  end
end
local c = -1
for kind, val, since_s, limit_s in string.gmatch(ARGV[8], '([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\30]*)\30') do
  c = c + 1
  local since = tonumber(since_s)
  local limit = tonumber(limit_s)
  if limit <= #recs then
    local count = 0
    local victims = {}
    for _, r in ipairs(recs) do
      if r[7] >= since and (kind == '0' or (kind == '1' and r[2] == val)
          or (kind == '2' and r[3] == val) or (kind == '3' and r[4] == val)) then
        count = count + 1
        if r[6] == '0' and r[5] < prio then victims[#victims + 1] = {r[5], r[1]} end
      end
    end
    if count >= limit then
      table.sort(victims, function(a, b) return a[1] < b[1] end)
      local out = {0, c, count}
      for _, v in ipairs(victims) do out[#out + 1] = v[2] end
      return out
    end
  end
end
if mode == '1' then
  redis.call('HSET', key, cid, ARGV[4])
  if ttl > 0 then redis.call('EXPIRE', key, ttl) end
end
return {1}
"""

#: KEYS[1] history hash. ARGV: contact_id, now. Reserved or expired -> committed (a late
#: commit counts: the message went out). Committed already: {0}, so a replay is harmless.
#: Returns {1, record} or {0}.
COMMIT = r"""
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return {0} end
local st = string.sub(v, -1)
if st ~= '0' and st ~= '2' then return {0} end
local committed = string.sub(v, 1, -2) .. '1'
redis.call('HSET', KEYS[1], ARGV[1], committed)
return {1, committed}
"""

#: KEYS[1] history hash. ARGV: contact_id, now, only_reserved ("1": leave a committed
#: contact alone). Ends a live record (reserved and unexpired, or committed); an expired
#: one is deleted without a refund (time refunded it). Returns {1, record} the first time,
#: {0} after.
RELEASE = r"""
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return {0} end
local exp, st = string.match(v, '\31([^\31]*)\31([^\31]*)$')
if ARGV[3] == '1' and st == '1' then return {0} end
redis.call('HDEL', KEYS[1], ARGV[1])
if st == '1' or (st == '0' and tonumber(exp) > tonumber(ARGV[2])) then return {1, v} end
return {0}
"""

FS = "\x1f"
RS = "\x1e"

SCRIPTS = {"reserve": RESERVE, "commit": COMMIT, "release": RELEASE}
