-- ARGV: prefix, token, lease_ms. Takes the first runnable task and leases it to `token`, in
-- one step: the task moves from the pending set to the lease set. Returns the task's hash
-- as a flat field/value list, or false when nothing is runnable. `claim:<token>` names the
-- task for one lease, so that a worker whose reply was lost can hand it back (unclaim.lua).
local token, lease_ms = ARGV[2], tonumber(ARGV[3])
for _ = 1, 16 do
  local popped = redis.call('ZPOPMIN', K.tasks)
  if #popped == 0 then return false end
  local id = popped[1]
  local key = task_key(id)
  if redis.call('EXISTS', key) == 1 then
    local now = now_ms()
    redis.call('HINCRBY', key, 'attempt', 1)
    redis.call('HSET', key, 'state', 'IN_PROGRESS', 'token', token, 'progress', 0,
      'updated_ms', now)
    redis.call('ZADD', K.leases, now + lease_ms, id)
    redis.call('SET', P .. 'claim:' .. token, id, 'PX', lease_ms + 60000)
    emit(id, false)
    return redis.call('HGETALL', key)
  end
  -- A pending id without its task cannot be run; dropping it is all that can be done.
end
return false
