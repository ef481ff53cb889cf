-- Takes a lock and draws its fence in one step, so fences follow acquisition order.
-- KEYS[1] = lock, KEYS[2] = fence counter (never expires); ARGV = token, ttl ms.
-- Returns the new fence, or false (nil) if the lock is held.
--
-- The fence is max(counter + 1, Redis's clock in microseconds). The counter alone would
-- restart at 1 when it is lost (a restart without persistence, an `allkeys-*` eviction,
-- a FLUSHALL); the clock keeps a fence drawn after such a loss above every earlier one
-- (an earlier fence exceeds its own moment's clock only past one acquire a microsecond).
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local fence = redis.call('INCR', KEYS[2])
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  if now > fence then
    redis.call('SET', KEYS[2], string.format('%d', now))
    return now
  end
  return fence
else
  return false
end
