"""Numba kernels for the PDQ index: table build, multi-index probe, linear scan.

Hashes are handled as four little-endian uint64 words (a view of the 32 bytes), so a
256-bit Hamming distance is four XORs and four POPCNTs. Chunk ``i`` of a hash is the
contiguous bit range ``[start[i], start[i] + nbits[i])`` of that 256-bit word space.

All kernels are ``nogil`` so several Python threads can search at once, and
``cache=True`` so a restart does not pay the JIT compile again.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

_U64 = np.uint64
# Prefetch distances (in loop iterations), tuned on a 2-core EPYC VM at 1M-10M hashes.
PF_DIR = 16
PF_ROWS = 8
PF_WORDS = 16
_ONE = np.uint64(1)


@intrinsic
def _ctpop(typingctx, x):  # type: ignore[no-untyped-def]
    # LLVM's ctpop lowers to the POPCNT instruction on the host CPU; numba has no
    # public popcount and the SWAR fallback is several times slower.
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.ctpop(args[0])

    return sig, codegen


@intrinsic
def _prefetch(typingctx, arr, i, j):  # type: ignore[no-untyped-def]
    # Software prefetch of arr[i, j]: the probe and verify loops are bound by random
    # DRAM reads, and the CPU's out-of-order window alone keeps too few in flight.
    sig = types.void(arr, i, j)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(
            context, builder, aryty, ary, [args[1], args[2]], wraparound=False
        )
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        # read, high temporal locality, data cache
        builder.call(
            fn,
            [
                builder.bitcast(ptr, i8p),
                ir.Constant(i32, 0),
                ir.Constant(i32, 3),
                ir.Constant(i32, 1),
            ],
        )
        return context.get_dummy_value()

    return sig, codegen


@njit(inline="always", cache=True)
def _dist(a, i, b, j):  # type: ignore[no-untyped-def]
    return np.int64(
        _ctpop(a[i, 0] ^ b[j, 0])
        + _ctpop(a[i, 1] ^ b[j, 1])
        + _ctpop(a[i, 2] ^ b[j, 2])
        + _ctpop(a[i, 3] ^ b[j, 3])
    )


@njit(inline="always", cache=True)
def _chunk(words, row, start, nbits):  # type: ignore[no-untyped-def]
    wi = start >> 6
    off = start & 63
    v = words[row, wi] >> _U64(off)
    if off + nbits > 64:
        v |= words[row, wi + 1] << _U64(64 - off)
    return v & ((_ONE << _U64(nbits)) - _ONE)


@njit(nogil=True, cache=True)
def build_table(words, start, nbits, offsets, rows):  # type: ignore[no-untyped-def]
    """Counting-sort one chunk table into ``offsets`` (CSR, 2**nbits + 1 entries) and
    ``rows`` (n,). The caller allocates both with numpy, whose allocator asks for
    transparent huge pages; the probes are random reads, and 4 KiB pages make each
    one a TLB miss (very costly under virtualisation). ``nogil`` lets the caller
    build tables on several threads.

    O(n) with no comparison sort; rows inside a bucket stay ascending, which keeps
    the verify gathers roughly monotone in memory.
    """
    n = words.shape[0]
    size = np.int64(1) << nbits
    counts = np.zeros(size + 1, dtype=np.int64)
    for r in range(n):
        counts[np.int64(_chunk(words, r, start, nbits)) + 1] += 1
    for k in range(size):
        counts[k + 1] += counts[k]
    for k in range(size + 1):
        offsets[k] = counts[k]
    for r in range(n):
        k = np.int64(_chunk(words, r, start, nbits))
        rows[counts[k]] = r
        counts[k] += 1


@njit(nogil=True, cache=True)
def search_mih(  # type: ignore[no-untyped-def]
    queries,
    words,
    rows,
    offsets,
    dir_start,
    starts,
    nbits,
    radii,
    max_distance,
    tomb,
    out_q,
    out_r,
    out_d,
):
    """Exact range search over the multi-index tables.

    ``radii[t]`` is the per-table probe radius (-1: table skipped). The radii satisfy
    sum(radii + 1) == max_distance + 1, so by the pigeonhole principle every hash within
    ``max_distance`` has some table ``t`` with chunk distance <= radii[t]; probing all
    keys within that radius in every table therefore finds every match. A match is
    reported only from the first table that qualifies, which deduplicates without a set.
    ``tomb`` is a packed bitmap of removed rows (empty array: none removed).

    Each query runs in three flat passes (bucket bounds, candidate rows, verify) rather
    than one nested loop: the nested form chains three dependent cache misses per
    bucket (offset -> row -> hash) and the short bucket loops' mispredicted exits stop
    the CPU from overlapping them; flat passes over independent addresses keep many
    misses in flight (about 5x faster at 1M hashes).

    Matches are written to the preallocated ``out_*`` arrays; the return value is the
    total match count, which may exceed their capacity, in which case the caller
    retries with larger buffers (growing arrays inside the hot loop makes numba
    refcount them every iteration).
    """
    nq = queries.shape[0]
    m = starts.shape[0]
    has_tomb = tomb.shape[0] > 0
    cap = out_q.shape[0]
    count = 0
    offsets2 = offsets.reshape((offsets.shape[0], 1))
    qkeys = np.empty(m, dtype=np.uint64)
    pos = np.empty(64, dtype=np.int64)
    # Probe count per query is fixed by the radii: size the bucket scratch once.
    nprobe = 0
    for t in range(m):
        if radii[t] >= 0:
            c = 1
            for f in range(1, radii[t] + 1):
                c = c * (nbits[t] - f + 1) // f
                nprobe += c
            nprobe += 1
    b_lo = np.empty(nprobe, dtype=np.int64)
    b_hi = np.empty(nprobe, dtype=np.int64)
    b_t = np.empty(nprobe, dtype=np.int64)
    cand_r = np.empty(1024, dtype=np.int64)
    cand_t = np.empty(1024, dtype=np.int64)
    for qi in range(nq):
        for t in range(m):
            qkeys[t] = _chunk(queries, qi, starts[t], nbits[t])
        # Pass 1: bucket bounds for every probe key (independent directory loads).
        nb = 0
        total = 0
        for t in range(m):
            rad = radii[t]
            if rad < 0:
                continue
            b = nbits[t]
            ds = dir_start[t]
            qk = qkeys[t]
            for f in range(rad + 1):
                for j in range(f):
                    pos[j] = j
                while True:
                    mask = _U64(0)
                    for j in range(f):
                        mask |= _ONE << _U64(pos[j])
                    b_lo[nb] = ds + np.int64(qk ^ mask)
                    b_t[nb] = t
                    nb += 1
                    # Next f-combination of bit positions in lexicographic order.
                    j = f - 1
                    while j >= 0 and pos[j] == b - f + j:
                        j -= 1
                    if j < 0:
                        break
                    pos[j] += 1
                    for k in range(j + 1, f):
                        pos[k] = pos[k - 1] + 1
        for i in range(nb):
            if i + PF_DIR < nb:
                _prefetch(offsets2, b_lo[i + PF_DIR], 0)
            key = b_lo[i]
            lo = np.int64(offsets[key])
            hi = np.int64(offsets[key + 1])
            b_lo[i] = lo
            b_hi[i] = hi
            total += hi - lo
        # Pass 2: candidate rows (contiguous runs of each table's row array).
        if total > cand_r.shape[0]:
            cand_r = np.empty(2 * total, dtype=np.int64)
            cand_t = np.empty(2 * total, dtype=np.int64)
        nc = 0
        for i in range(nb):
            if i + PF_ROWS < nb:
                _prefetch(rows, b_t[i + PF_ROWS], b_lo[i + PF_ROWS])
            t = b_t[i]
            for p in range(b_lo[i], b_hi[i]):
                cand_r[nc] = rows[t, p]
                cand_t[nc] = t
                nc += 1
        # Pass 3: verify on the full 256 bits (independent random reads).
        q0 = queries[qi, 0]
        q1 = queries[qi, 1]
        q2 = queries[qi, 2]
        q3 = queries[qi, 3]
        for i in range(nc):
            if i + PF_WORDS < nc:
                _prefetch(words, cand_r[i + PF_WORDS], 0)
            row = cand_r[i]
            d = np.int64(
                _ctpop(words[row, 0] ^ q0)
                + _ctpop(words[row, 1] ^ q1)
                + _ctpop(words[row, 2] ^ q2)
                + _ctpop(words[row, 3] ^ q3)
            )
            if d > max_distance:
                continue
            # Dedup: an earlier table whose radius also covers this row reports it.
            t = cand_t[i]
            dup = False
            for u in range(t):
                if radii[u] >= 0:
                    ck = _chunk(words, row, starts[u], nbits[u])
                    if np.int64(_ctpop(ck ^ qkeys[u])) <= radii[u]:
                        dup = True
                        break
            if dup:
                continue
            if has_tomb and (tomb[row >> 3] >> (row & 7)) & 1:
                continue
            if count < cap:
                out_q[count] = qi
                out_r[count] = row
                out_d[count] = d
            count += 1
    return count


@njit(nogil=True, cache=True)
def search_scan(  # type: ignore[no-untyped-def]
    queries, words, n, max_distance, dead, out_q, out_r, out_d
):
    """Brute-force scan of ``words[:n]``; used for the delta segment, tiny bases and
    radii so large that probing would cost more than reading everything.

    ``dead`` is a packed bitmap of removed rows (empty array: none removed). Output
    protocol as in ``search_mih``.
    """
    nq = queries.shape[0]
    has_dead = dead.shape[0] > 0
    cap = out_q.shape[0]
    count = 0
    for qi in range(nq):
        for row in range(n):
            d = _dist(words, row, queries, qi)
            if d <= max_distance:
                if has_dead and (dead[row >> 3] >> (row & 7)) & 1:
                    continue
                if count < cap:
                    out_q[count] = qi
                    out_r[count] = row
                    out_d[count] = d
                count += 1
    return count
