-- GCRA rate limit step (see ratelimit::gcra, the same integer arithmetic).
-- KEYS[1] = state key (the TAT, ms); ARGV = limit, period ms, cost.
-- Returns {allowed, remaining, retry_after_ms, reset_after_ms}. Clock: the server's TIME.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local interval = math.max(math.floor(period / limit), 1)
local capacity = interval * limit
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval * cost
local allow_at = new_tat - capacity
if now < allow_at then
  local used = tat - now
  return {0, math.floor(math.max(capacity - used, 0) / interval), allow_at - now, used}
end
local used = new_tat - now
if cost > 0 then
  redis.call('SET', KEYS[1], new_tat, 'PX', math.max(used, 1))
end
return {1, math.floor(math.max(capacity - used, 0) / interval), 0, used}
