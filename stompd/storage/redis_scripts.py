"""
The Lua scripts of the Redis store: each change that takes more than one
Redis command is one script, so it happens whole or not at all, and no
other node sees it half done.

Every script gets the queue's base key as C{KEYS[1]}
(C{<prefix>q:{<queue>}}: the braces make it a Redis Cluster hash tag) and
derives the queue's other keys from it, so all of a queue's keys share one
slot. C{ARGV[1]} is the key prefix, C{ARGV[2]} the queue's name and
C{ARGV[3]} the calling node's id; the rest is per script. docs/redis.md
describes the key layout and what each script keeps true.

Times are broker-clock seconds, passed in exactly (Python's C{repr} of a
float) and returned as strings, because Redis turns a Lua number in a reply
into an integer.

Scripts are called by their SHA-1 (L{sha}); Redis forgets them when it
restarts, and then the store sends them whole once.
"""

import hashlib

_shas: dict[str, bytes] = {}


def sha(source: str) -> bytes:
    """
    The SHA-1 Redis knows script C{source} by, for EVALSHA.
    """
    found = _shas.get(source)
    if found is None:
        found = _shas[source] = hashlib.sha1(source.encode()).hexdigest().encode()
    return found


# Shared by every script: key names, the ready set's order, moving messages
# between ready, delayed, in flight and the dead-letter queue.
_PRELUDE = r"""
local prefix, qname, node = ARGV[1], ARGV[2], ARGV[3]
local base = KEYS[1]
-- 2^40: priorities are bands of this width in the ready set's scores, and
-- the sequence orders messages within one.
local BAND = 1099511627776
-- state fields (see stompd.storage.codec)
local SEQ, PRIO, CHAN, EXPIRES, COUNT, FIRST, LAST = 1, 2, 3, 4, 5, 6, 7
-- in-flight fields
-- (a message's stored state stays as it was before the delivery, which the
-- in-flight record describes: its count and time, F_COUNT and F_AT)
local F_COUNT, F_LEASE, F_NODE, F_AT, F_MAX, F_DLQ, F_DLQ_DEST, F_DLE = 1, 2, 3, 4, 5, 6, 7, 8

local moved = {}    -- dead-letter queues that got messages: told to this node
local notify = {}   -- queues that got deliverable messages: told to every node
local dead = {}     -- reason .. ' ' .. dead-letter queue (or '') -> messages taken out
local function count_dead(reason, dlq)
  local what = reason .. ' ' .. (dlq or '')
  dead[what] = (dead[what] or 0) + 1
end

local function key(b, part) return b .. ':' .. part end

-- One variadic command (HMGET, HSET, HDEL, ZADD, ZREM) on the key for
-- many items instead of one call each, which costs Redis more than the
-- command does; in pieces, because Lua passes arguments on a bounded
-- stack. Returns the replies joined (HMGET's values, in order).
local PIECE = 2000
local function each_piece(command, name, items)
  local replies = {}
  for i = 1, #items, PIECE do
    local reply = redis.call(command, name, unpack(items, i, math.min(i + PIECE - 1, #items)))
    if type(reply) == 'table' then
      for _, value in ipairs(reply) do replies[#replies + 1] = value end
    end
  end
  return replies
end

local function base_of(name) return prefix .. 'q:{' .. name .. '}' end

local function score(state) return (9 - state[PRIO]) * BAND + state[SEQ] end

-- A queue's messages are three hashes, by message id: heads, bodies and
-- states; so a batch of messages is one command on each, not one per
-- message.
local PARTS = {'head', 'body', 'state'}

local function get_state(b, id)
  local packed = redis.call('HGET', key(b, 'state'), id)
  if not packed then return nil end
  return cmsgpack.unpack(packed)
end

local function put_state(b, id, state)
  redis.call('HSET', key(b, 'state'), id, cmsgpack.pack(state))
end

local function store(b, id, head, body, packed_state)
  redis.call('HSET', key(b, 'head'), id, head)
  redis.call('HSET', key(b, 'body'), id, body)
  redis.call('HSET', key(b, 'state'), id, packed_state)
end

-- Sets (ready, channel lanes) seen this run, and whether each was empty
-- then: a queue or channel that was empty gets a work notice; one looked
-- at once per run, not once per message.
local was_empty = {}
local function empty_before(set)
  local empty = was_empty[set]
  if empty == nil then
    empty = redis.call('ZCARD', set) == 0
    was_empty[set] = empty
  end
  return empty
end

local function ready_add(b, name, id, state)
  local s = score(state)
  local ready = key(b, 'ready')
  if empty_before(ready) then notify[name] = true end
  redis.call('ZADD', ready, s, id)
  local channel = state[CHAN]
  if channel then
    local lane = key(b, 'ch:' .. channel)
    if empty_before(lane) then notify[name] = true end
    redis.call('ZADD', lane, s, id)
    redis.call('SADD', key(b, 'channels'), channel)
  end
end

local function ready_remove(b, id, state, popped)
  if not popped then redis.call('ZREM', key(b, 'ready'), id) end
  local channel = state[CHAN]
  if channel then
    local lane = key(b, 'ch:' .. channel)
    redis.call('ZREM', lane, id)
    if redis.call('ZCARD', lane) == 0 then redis.call('SREM', key(b, 'channels'), channel) end
  end
end

-- Drop messages ids (a list) of queue b.
local function forget_all(b, ids)
  for _, part in ipairs(PARTS) do each_piece('HDEL', key(b, part), ids) end
end

local function forget(b, id) forget_all(b, {id}) end

local function end_flight(b, id, flight)
  redis.call('HDEL', key(b, 'flight'), id)
  if flight[F_LEASE] then redis.call('ZREM', key(b, 'leases'), id) end
end

local function set_header(flat, name, value)
  for i = 1, #flat, 2 do
    if flat[i] == name then
      flat[i + 1] = value
      return
    end
  end
  flat[#flat + 1] = name
  flat[#flat + 1] = value
end

local function millis(t) return string.format('%d', math.floor(t * 1000)) end

-- Move message id of queue b to dead-letter queue dlq (or drop it): the
-- copy is built as stompd.broker.message.dead_letter_of builds it, and the
-- store contract suite holds both to the same headers.
local function bury(b, id, state, dlq, dlq_dest, reason)
  local head, body = redis.call('HGET', key(b, 'head'), id), redis.call('HGET', key(b, 'body'), id)
  forget(b, id)
  count_dead(reason, head and dlq)
  if not dlq or not head then return end
  local message = cmsgpack.unpack(head)
  local flat = {}
  local old = message[3]
  for i = 1, #old, 2 do
    local name = old[i]
    if name ~= 'expires' and name ~= 'expiration' and name ~= 'ttl' then
      flat[#flat + 1] = name
      flat[#flat + 1] = old[i + 1]
    end
  end
  set_header(flat, 'destination', dlq_dest)
  set_header(flat, 'original-destination', message[2])
  set_header(flat, 'original-message-id', message[1])
  set_header(flat, 'dead-letter-reason', reason)
  set_header(flat, 'original-delivery-count', tostring(state[COUNT]))
  if state[FIRST] then
    set_header(flat, 'first-delivered-at', millis(state[FIRST]))
    set_header(flat, 'last-delivered-at', millis(state[LAST]))
  end
  local dead_id = message[1] .. '-dl'
  local db = base_of(dlq)
  local dead_state = {redis.call('INCR', key(db, 'seq')), state[PRIO], state[CHAN], false, 0, false, false, false}
  store(db, dead_id, cmsgpack.pack({dead_id, dlq_dest, flat}), body, cmsgpack.pack(dead_state))
  ready_add(db, dlq, dead_id, dead_state)
  moved[dlq] = true
  notify[dlq] = true
end

-- Make a message deliverable: now, or from visible_at.
local function place(b, name, id, state, visible_at)
  if visible_at then
    redis.call('ZADD', key(b, 'delayed'), visible_at, id)
    notify[name] = true
  else
    ready_add(b, name, id, state)
  end
end

-- The state of a message in flight, with its delivery counted: kept, now
-- that the delivery ends without an ACK.
local function delivered(b, id, flight)
  local state = get_state(b, id)
  if not state then return nil end
  state[COUNT] = flight[F_COUNT]
  state[LAST] = flight[F_AT]
  if not state[FIRST] then state[FIRST] = flight[F_AT] end
  put_state(b, id, state)
  return state
end

-- A delivery ended without an ACK: the message is ready again (or from
-- visible_at), unless it was delivered as often as its policy allows.
local function come_back(b, name, id, flight, visible_at)
  end_flight(b, id, flight)
  local state = delivered(b, id, flight)
  if not state then return end
  if flight[F_MAX] > 0 and state[COUNT] >= flight[F_MAX] then
    bury(b, id, state, flight[F_DLQ], flight[F_DLQ_DEST], 'max-deliveries')
  else
    place(b, name, id, state, visible_at)
  end
end

local function keys_of(set)
  local list = {}
  for name in pairs(set) do list[#list + 1] = name end
  return list
end

-- Tell every node (this one skips its own) which queues have work, and
-- return what this node must be told of itself: the dead-letter queues
-- that got messages, and the messages taken out without an ACK, as
-- {reason, dead-letter queue or '', count} triples.
local function finish()
  for name in pairs(notify) do
    redis.call('PUBLISH', prefix .. 'work', node .. ' ' .. name)
  end
  local counted = {}
  for what, count in pairs(dead) do
    local space = string.find(what, ' ', 1, true)
    counted[#counted + 1] = string.sub(what, 1, space - 1)
    counted[#counted + 1] = string.sub(what, space + 1)
    counted[#counted + 1] = count
  end
  return {keys_of(moved), counted}
end
"""

ENQUEUE = (
    _PRELUDE
    + r"""
-- ARGV[4..]: id, head, body, state (its sequence is set here) of each
-- message, in order
local count = (#ARGV - 3) / 4
local sequence = redis.call('INCRBY', key(base, 'seq'), count) - count
local ready = key(base, 'ready')
-- (score, id) of the messages that go straight to the ready set, added in
-- one ZADD once all are stored
local plain = {}
-- (id, part) pairs for one HSET of each part
local heads, bodies, states = {}, {}, {}
for i = 4, #ARGV, 4 do
  local id = ARGV[i]
  local state = cmsgpack.unpack(ARGV[i + 3])
  sequence = sequence + 1
  state[SEQ] = sequence
  heads[#heads + 1] = id
  heads[#heads + 1] = ARGV[i + 1]
  bodies[#bodies + 1] = id
  bodies[#bodies + 1] = ARGV[i + 2]
  states[#states + 1] = id
  states[#states + 1] = cmsgpack.pack(state)
  if state[8] or state[CHAN] then
    place(base, qname, id, state, state[8])
  else
    if empty_before(ready) then notify[qname] = true end
    plain[#plain + 1] = score(state)
    plain[#plain + 1] = id
  end
end
each_piece('HSET', key(base, 'head'), heads)
each_piece('HSET', key(base, 'body'), bodies)
each_piece('HSET', key(base, 'state'), states)
each_piece('ZADD', ready, plain)
finish()
return redis.call('ZCARD', key(base, 'ready')) + redis.call('ZCARD', key(base, 'delayed'))
"""
)

RESERVE = (
    _PRELUDE
    + r"""
-- ARGV[4] limit, ARGV[5] now, ARGV[6] policy:
-- [lease, max_deliveries, dlq, dlq destination, dead-letter expired, channel]
local limit, now = tonumber(ARGV[4]), tonumber(ARGV[5])
local policy = cmsgpack.unpack(ARGV[6])
local lease, max_deliveries, dlq, dlq_dest, dead_letter_expired, channel =
  policy[1], policy[2], policy[3], policy[4], policy[5], policy[6]

-- What time did: leases that ran out end, delayed messages become ready.
for _, id in ipairs(redis.call('ZRANGEBYSCORE', key(base, 'leases'), '-inf', now)) do
  local packed = redis.call('HGET', key(base, 'flight'), id)
  if packed then
    come_back(base, qname, id, cmsgpack.unpack(packed), nil)
  else
    redis.call('ZREM', key(base, 'leases'), id)
  end
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', key(base, 'delayed'), '-inf', now)) do
  redis.call('ZREM', key(base, 'delayed'), id)
  local state = get_state(base, id)
  if state then ready_add(base, qname, id, state) end
end

-- The next candidates, in delivery order, that the channel filter reads;
-- and whether they were taken off the ready set already.
local function candidates(wanted)
  if not channel then
    local popped = redis.call('ZPOPMIN', key(base, 'ready'), wanted)
    local ids = {}
    for i = 1, #popped, 2 do ids[#ids + 1] = popped[i] end
    return ids, true
  end
  if string.sub(channel, -1) ~= '*' then
    return redis.call('ZRANGE', key(base, 'ch:' .. channel), 0, wanted - 1), false
  end
  local stem = string.sub(channel, 1, -2)
  local found = {}
  for _, name in ipairs(redis.call('SMEMBERS', key(base, 'channels'))) do
    if string.sub(name, 1, #stem) == stem then
      local entries = redis.call('ZRANGE', key(base, 'ch:' .. name), 0, wanted - 1, 'WITHSCORES')
      for i = 1, #entries, 2 do found[#found + 1] = {tonumber(entries[i + 1]), entries[i]} end
    end
  end
  table.sort(found, function(a, b) return a[1] < b[1] end)
  local ids = {}
  for i = 1, math.min(wanted, #found) do ids[i] = found[i][2] end
  return ids, false
end

local taken = {}
local lease_until = false
if lease then lease_until = now + lease end
-- In-flight records (id, record) and leases (time, id) of what is taken,
-- written in one HSET and one ZADD at the end: nothing here reads them.
local flights, leases, records = {}, {}, {}
while #taken < limit do
  local ids, popped = candidates(limit - #taken)
  if #ids == 0 then break end
  local states = each_piece('HMGET', key(base, 'state'), ids)
  local heads = each_piece('HMGET', key(base, 'head'), ids)
  local bodies = each_piece('HMGET', key(base, 'body'), ids)
  for n, id in ipairs(ids) do
    local state = cmsgpack.unpack(states[n])
    ready_remove(base, id, state, popped)
    if state[EXPIRES] and state[EXPIRES] <= now then
      if dead_letter_expired then
        bury(base, id, state, dlq, dlq_dest, 'expired')
      else
        forget(base, id)
        count_dead('expired', false)
      end
    elseif max_deliveries > 0 and state[COUNT] >= max_deliveries then
      bury(base, id, state, dlq, dlq_dest, 'max-deliveries')
    else
      -- Stored as it was: the in-flight record counts the delivery (see
      -- delivered), so an ACK, the usual end, writes nothing back.
      state[COUNT] = state[COUNT] + 1
      state[LAST] = now
      if not state[FIRST] then state[FIRST] = now end
      -- The records of one run differ only in the count: packed once each.
      local record = records[state[COUNT]]
      if not record then
        record = cmsgpack.pack({state[COUNT], lease_until, node, now, max_deliveries, dlq, dlq_dest, dead_letter_expired})
        records[state[COUNT]] = record
      end
      flights[#flights + 1] = id
      flights[#flights + 1] = record
      if lease_until then
        leases[#leases + 1] = lease_until
        leases[#leases + 1] = id
      end
      taken[#taken + 1] = heads[n]
      taken[#taken + 1] = bodies[n]
      taken[#taken + 1] = cmsgpack.pack(state)
    end
  end
end
each_piece('HSET', key(base, 'flight'), flights)
each_piece('ZADD', key(base, 'leases'), leases)
if #taken > 0 then
  redis.call('SADD', prefix .. 'node:' .. node .. ':queues', qname)
end
return {finish(), taken}
"""
)

# ARGV[4..]: id, count pairs of the deliveries to settle.
_DELIVERIES = r"""
-- The deliveries from ARGV[first]: their ids, and for each its in-flight
-- record if it is current, else false (acknowledged already, delivered
-- again since, or named twice: the first names it), read in one HMGET.
local function current_deliveries(first)
  local ids = {}
  for i = first, #ARGV, 2 do ids[#ids + 1] = ARGV[i] end
  local records = each_piece('HMGET', key(base, 'flight'), ids)
  local flights, seen = {}, {}
  for n, id in ipairs(ids) do
    local packed = records[n]
    local flight = packed and not seen[id] and cmsgpack.unpack(packed)
    if flight and flight[F_COUNT] == tonumber(ARGV[first - 1 + 2 * n]) then
      seen[id] = true
      flights[n] = flight
    else
      flights[n] = false
    end
  end
  return ids, flights
end

local function each_current(first, action)
  local ids, flights = current_deliveries(first)
  local settled = 0
  for n, id in ipairs(ids) do
    if flights[n] then
      action(id, flights[n])
      settled = settled + 1
    end
  end
  return settled
end
"""

ACK = (
    _PRELUDE
    + _DELIVERIES
    + r"""
-- Returns 1 or 0 for each delivery: whether it was current (and is gone).
-- What ends goes in one HDEL, one ZREM and one HDEL per message hash.
local ids, flights = current_deliveries(4)
local done, ended, leased = {}, {}, {}
for n, id in ipairs(ids) do
  local flight = flights[n]
  if flight then
    ended[#ended + 1] = id
    if flight[F_LEASE] then leased[#leased + 1] = id end
    done[n] = 1
  else
    done[n] = 0
  end
end
each_piece('HDEL', key(base, 'flight'), ended)
each_piece('ZREM', key(base, 'leases'), leased)
forget_all(base, ended)
return done
"""
)

RELEASE = (
    _PRELUDE
    + _DELIVERIES
    + r"""
-- ARGV[4] visible_at or ''
local visible_at = tonumber(ARGV[4])
local settled = each_current(5, function(id, flight)
  come_back(base, qname, id, flight, visible_at)
end)
return {finish(), settled}
"""
)

UNRESERVE = (
    _PRELUDE
    + _DELIVERIES
    + r"""
-- The stored state is still the one from before the delivery.
local settled = each_current(4, function(id, flight)
  end_flight(base, id, flight)
  ready_add(base, qname, id, get_state(base, id))
end)
finish()
return settled
"""
)

DEAD_LETTER = (
    _PRELUDE
    + _DELIVERIES
    + r"""
-- ARGV[4] reason
local reason = ARGV[4]
local settled = each_current(5, function(id, flight)
  end_flight(base, id, flight)
  bury(base, id, delivered(base, id, flight), flight[F_DLQ], flight[F_DLQ_DEST], reason)
end)
return {finish(), settled}
"""
)

NEXT_VISIBLE_AT = (
    _PRELUDE
    + r"""
local times = {}
for _, set in ipairs({'leases', 'delayed'}) do
  local first = redis.call('ZRANGE', key(base, set), 0, 0, 'WITHSCORES')
  if #first > 0 then times[#times + 1] = tonumber(first[2]) end
end
if #times == 0 then return false end
return string.format('%.17g', math.min(unpack(times)))
"""
)

# Removes what waits (ready, in channel lanes, delayed): returns how many.
_REMOVE_WAITING = r"""
local function remove_waiting()
  for _, channel in ipairs(redis.call('SMEMBERS', key(base, 'channels'))) do
    redis.call('DEL', key(base, 'ch:' .. channel))
  end
  local removed = 0
  for _, set in ipairs({'ready', 'delayed'}) do
    local ids = redis.call('ZRANGE', key(base, set), 0, -1)
    forget_all(base, ids)
    removed = removed + #ids
    redis.call('DEL', key(base, set))
  end
  return removed
end
"""

DELETE = (
    _PRELUDE
    + _REMOVE_WAITING
    + r"""
remove_waiting()
for _, part in ipairs({'flight', 'leases', 'seq', 'channels', 'head', 'body', 'state'}) do
  redis.call('DEL', key(base, part))
end
return 0
"""
)

# What waits goes; deliveries in flight (and their leases) stay.
PURGE = (
    _PRELUDE
    + _REMOVE_WAITING
    + r"""
return remove_waiting()
"""
)

# ARGV[4]: the node whose deliveries in this queue end (it is gone).
REAP_NODE = (
    _PRELUDE
    + r"""
-- Rare (a node died): every delivery in flight is looked at.
local gone = ARGV[4]
local flights = redis.call('HGETALL', key(base, 'flight'))
for i = 1, #flights, 2 do
  local flight = cmsgpack.unpack(flights[i + 1])
  if flight[F_NODE] == gone then come_back(base, qname, flights[i], flight, nil) end
end
return {finish(), 0}
"""
)

DEPTH = (
    _PRELUDE
    + r"""
return redis.call('ZCARD', key(base, 'ready')) + redis.call('ZCARD', key(base, 'delayed'))
"""
)

# ARGV[4]: the binding record (empty to unbind), ARGV[5]: the notice for
# other nodes. Bindings are one hash for the whole broker: every node reads
# them all at start.
BIND = (
    _PRELUDE
    + r"""
if ARGV[4] == '' then
  redis.call('HDEL', prefix .. 'bindings', qname)
else
  redis.call('HSET', prefix .. 'bindings', qname, ARGV[4])
end
redis.call('PUBLISH', prefix .. 'bindings', ARGV[5])
return 0
"""
)

# ARGV[4..]: topic messages of one reactor turn, each published to every
# node on the topic channel (KEYS[1] is not used).
PUBLISH = (
    _PRELUDE
    + r"""
for i = 4, #ARGV do
  redis.call('PUBLISH', prefix .. 'topic', ARGV[i])
end
return 0
"""
)
