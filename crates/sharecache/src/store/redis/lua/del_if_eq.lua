-- Compare-and-delete. KEYS[1] = key; ARGV[1] = expected value. Returns 1 if deleted.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
else
  return 0
end
