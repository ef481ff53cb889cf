-- Sliding-window rate limit step (see ratelimit::sliding_window, the same arithmetic).
-- KEYS[1] = state key ("w,prev,cur"); ARGV = limit, period ms, cost.
-- Returns {allowed, remaining, retry_after_ms, reset_ms}. Clock: the server's TIME.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit, period, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local w = math.floor(now / period)
local elapsed = now - w * period
local prev, cur = 0, 0
local s = redis.call('GET', KEYS[1])
if s then
  local sw, sp, sc = string.match(s, '^(%d+),(%d+),(%d+)$')
  sw, sp, sc = tonumber(sw), tonumber(sp), tonumber(sc)
  if sw == w then prev, cur = sp, sc elseif sw and sw + 1 == w then prev, cur = sc, 0 end
end
local weighted = prev * (period - elapsed) + cur * period
local budget = limit * period
local reset = period - elapsed
if weighted + cost * period > budget then
  return {0, math.floor(math.max(budget - weighted, 0) / period), reset, reset}
end
cur = cur + cost
local used = prev * (period - elapsed) + cur * period
if cost > 0 then
  redis.call('SET', KEYS[1], string.format('%d,%d,%d', w, prev, cur), 'PX', 2 * period)
end
return {1, math.floor(math.max(budget - used, 0) / period), 0, reset}
