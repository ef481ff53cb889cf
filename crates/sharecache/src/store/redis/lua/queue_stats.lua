-- Queue figures. KEYS: stream, dead-letter stream. Returns {ready, pending, dead}:
-- messages not yet delivered, delivered and not acknowledged, dead-lettered.
local key, dlq = KEYS[1], KEYS[2]
local len = redis.call('XLEN', key)
local pending = 0
if len > 0 then
  local ok, p = pcall(redis.call, 'XPENDING', key, 'sharecache')
  if ok then pending = tonumber(p[1]) end
end
return {len - pending, pending, redis.call('XLEN', dlq)}
