-- ARGV: prefix, id, reason, retention_ms. Cancels a task. Returns {outcome, state}:
-- outcome 'cancelled' (it was waiting and is now CANCELLED), 'requested' (it is running; its
-- worker is told to stop), 'finished' (it had already ended), or 'missing'.
local id, reason, retention_ms = ARGV[2], ARGV[3], tonumber(ARGV[4])
local key = task_key(id)
local state = redis.call('HGET', key, 'state')
if not state then return { 'missing', '' } end
if state == 'QUEUED' then
  redis.call('ZREM', K.tasks, id)
  redis.call('ZREM', K.delayed, id)
  finish(id, 'CANCELLED', { 'error', reason }, retention_ms, now_ms())
  return { 'cancelled', 'CANCELLED' }
end
if state == 'IN_PROGRESS' then
  redis.call('HSET', key, 'cancel', 1, 'error', reason)
  local token = redis.call('HGET', key, 'token')
  redis.call(PUBLISH, K.events, cjson.encode({ cancel = id, token = token }))
  return { 'requested', state }
end
return { 'finished', state }
