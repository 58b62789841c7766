-- tarantool_init.lua -- the Tarantool side of the userdb benchmark.
--
-- Run as `tarantool bench/tarantool_init.lua` with the environment:
--   TT_PORT   loopback port to listen on (required)
--   TT_DIR    directory for snapshots and the write-ahead log (required)
--   TT_MEMORY memtx arena in bytes (default 4 GiB; a quota, not allocated up front)
--   TT_WAL    wal_mode: write (default) or none
--
-- Space 512 "users" holds one tuple per user, in the field order the load
-- generator (bench/userdb-bench.c, tnt_insert) writes:
--   1 id  2 email_folded  3 name  4 email  5 role  6 status  7 avatar
--   8 custom_data (map)  9 created_at  10 updated_at
-- Indexes: 0 primary HASH on id, 1 unique HASH on the folded email (the
-- case-insensitive lookup), 2 TREE on role and 3 TREE on status
-- (non-unique), 4 TREE on {role, status}: the index a Tarantool user adds to
-- page through one role and status combination.
--
-- The guest user gets read, write and execute on the universe: the benchmark
-- connects without authentication, calls box.snapshot and bench_search.

local port = os.getenv('TT_PORT') or error('TT_PORT is not set')
local dir = os.getenv('TT_DIR') or error('TT_DIR is not set')

box.cfg {
    listen = '127.0.0.1:' .. port,
    memtx_dir = dir,
    wal_dir = dir,
    memtx_memory = tonumber(os.getenv('TT_MEMORY') or 4 * 1024 ^ 3),
    wal_mode = os.getenv('TT_WAL') or 'write',
    checkpoint_interval = 0, -- snapshots only when the benchmark asks
    log_level = 4,
}

box.once('userdb_bench_schema', function()
    local s = box.schema.space.create('users', { id = 512 })
    s:create_index('primary', { type = 'hash', parts = { 1, 'string' } })
    s:create_index('email', { type = 'hash', parts = { 2, 'string' } })
    s:create_index('role', { type = 'tree', unique = false,
                             parts = { 5, 'string' } })
    s:create_index('status', { type = 'tree', unique = false,
                               parts = { 6, 'string' } })
    s:create_index('role_status', { type = 'tree', unique = false,
                                    parts = { 5, 'string', 6, 'string' } })
    box.schema.user.grant('guest', 'read,write,execute', 'universe')
end)

-- Substring search over name and email, case-insensitive, the way a
-- Tarantool user without a full-text index would write it: a full scan that
-- counts every match and returns the first `limit` tuples.
function bench_search(term, limit)
    term = string.lower(term)
    local out, total = {}, 0
    for _, t in box.space.users:pairs() do
        if string.find(string.lower(t[3]), term, 1, true)
            or string.find(t[2], term, 1, true) then
            total = total + 1
            if #out < limit then
                out[#out + 1] = t
            end
        end
    end
    return total, out
end

-- Defined only once box.cfg has returned, that is after recovery: Tarantool
-- listens (and answers pings and even selects) while it is still loading,
-- so the benchmark's start-up probe calls this instead.
function bench_ready()
    return box.info.status
end
