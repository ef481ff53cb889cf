-- Extends a lock only for its holder. KEYS[1] = lock; ARGV = token, ttl ms.
-- Returns 1 if extended, 0 if the token does not hold the lock.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
else
  return 0
end
