-- Takes a lock and draws its fence in one step, so fences follow acquisition order.
-- KEYS[1] = lock, KEYS[2] = fence counter (never expires); ARGV = token, ttl ms.
-- Returns the new fence, or false (nil) if the lock is held.
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
else
  return false
end
