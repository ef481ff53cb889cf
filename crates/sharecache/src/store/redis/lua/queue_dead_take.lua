-- Takes one dead letter out. KEYS: stream, dead-letter stream. ARGV: the message's id
-- (as claims and dead_letters show it), 1 to push its payload back on the queue as a new
-- message (0 to drop it), how many dead letters to look through at most.
-- Returns the new message's id (requeued), the id (dropped), or nil (not found).
local key, dlq = KEYS[1], KEYS[2]
local want, requeue, most = ARGV[1], ARGV[2] == '1', tonumber(ARGV[3])
local from, seen = '-', 0
while seen < most do
  local batch = redis.call('XRANGE', dlq, from, '+', 'COUNT', 100)
  if #batch == 0 then return nil end
  for _, e in ipairs(batch) do
    seen = seen + 1
    local f, data, id = e[2], nil, nil
    for i = 1, #f, 2 do
      if f[i] == 'data' then data = f[i + 1] elseif f[i] == 'id' then id = f[i + 1] end
    end
    if id == want then
      redis.call('XDEL', dlq, e[1])
      if requeue then return redis.call('XADD', key, '*', 'data', data) end
      return want
    end
  end
  from = '(' .. batch[#batch][1]
end
return nil
