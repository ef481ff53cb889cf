-- Compare-and-set. KEYS[1] = key; ARGV[1] = expected value; ARGV[2] = new value;
-- ARGV[3] = ttl ms (0: none). Returns 1 if set, 0 if the key holds anything else or
-- nothing. A key of another type is answered with Redis's own WRONGTYPE error.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if tonumber(ARGV[3]) > 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[2])
end
return 1
