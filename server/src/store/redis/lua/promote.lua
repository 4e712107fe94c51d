-- ARGV: prefix, limit. Moves due tasks from the delayed set to the pending set and wakes the
-- workers (one per moved task on each server). Returns {moved, ms until the next one is due or -1}.
local limit = tonumber(ARGV[2])
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', K.delayed, '-inf', now, 'LIMIT', 0, limit)
for _, id in ipairs(due) do
  redis.call('ZREM', K.delayed, id)
  local priority = redis.call('HGET', task_key(id), 'priority')
  if priority then enqueue(id, priority) end
end
if #due > 0 then redis.call(PUBLISH, K.events, cjson.encode({ wake = #due })) end
local next = redis.call('ZRANGE', K.delayed, 0, 0, 'WITHSCORES')
local wait = -1
if #next > 0 then wait = math.max(0, tonumber(next[2]) - now) end
return { #due, wait }
