-- ARGV: prefix, id, token, retention_ms. Hands a running task back to the front of its
-- priority (on shutdown) without spending an attempt; a task with a pending cancellation
-- ends CANCELLED instead. Returns 1, or 0 when the lease is lost.
local id, token, retention_ms = ARGV[2], ARGV[3], tonumber(ARGV[4])
if not holds(id, token) then return 0 end
local key = task_key(id)
local h = redis.call('HMGET', key, 'priority', 'cancel', 'error')
local now = now_ms()
if h[2] == '1' then
  finish(id, 'CANCELLED', { 'error', h[3] }, retention_ms, now)
  return 1
end
redis.call('HINCRBY', key, 'attempt', -1)
redis.call('HSET', key, 'state', 'QUEUED', 'token', '', 'progress', 0, 'updated_ms', now)
redis.call('ZREM', P .. 'leases', id)
enqueue(id, h[1], true)
emit(id)
return 1
